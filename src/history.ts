/*
 * A session's replay history, kept without one object per event: the frames' bytes
 * are copied into one growing Buffer (the arena) and their sequence numbers and
 * offsets into typed arrays. A history entry of objects would live for as long as
 * the history keeps it, long enough to reach V8's old generation, whose
 * mark-compact collections then stalled token streaming for tens of milliseconds
 * (bench/, tokens scenario). The frames handed in are copied, so they stay
 * short-lived; the bytes handed out by `after()` are a copy too, because the arena
 * is rewritten in place and a socket may still be holding a write.
 */

const EMPTY = Buffer.alloc(0)
// Shared by every history that has kept nothing yet: a session without events costs no arrays.
const NO_INDEX = new Float64Array(0)
const MIN_INDEX = 8
const MIN_ARENA = 1024

/** Where an id lies in a {@link History}: the frames after it, or why there are none to give. */
export type Lookup =
  | { readonly found: true, readonly frames: Buffer, readonly events: number }
  | { readonly found: false, readonly reason: 'history_trimmed' | 'unknown_event_id' }

export class History {
  /** Sequence numbers of the kept events, oldest at `#first`. */
  #seqs: Float64Array = NO_INDEX
  /** Where each kept event's frame starts in the arena. */
  #starts: Float64Array = NO_INDEX
  #first = 0
  #count = 0
  #arena: Buffer = EMPTY
  /** The kept bytes are `#arena[#byteStart, #byteEnd)`. */
  #byteStart = 0
  #byteEnd = 0

  /** At most `maxEvents` events and `maxBytes` bytes are kept; the oldest go first. */
  constructor (readonly maxEvents: number, readonly maxBytes: number) {}

  /** Events kept. */
  get length (): number { return this.#count }

  /** Bytes kept. */
  get bytes (): number { return this.#byteEnd - this.#byteStart }

  /** The sequence number of the newest event kept; undefined when none is. */
  get newestSeq (): number | undefined {
    return this.#count === 0 ? undefined : this.#seqs[this.#first + this.#count - 1]
  }

  /** Keeps a copy of `frame` as the newest event, dropping the oldest to stay within both limits. */
  push (seq: number, frame: Buffer): void {
    if (this.maxEvents === 0) return
    if (frame.length > this.maxBytes) {
      // It cannot be kept, and what is older must not be replayed across the gap it leaves.
      this.#clear()
      return
    }
    while (this.#count >= this.maxEvents || this.bytes + frame.length > this.maxBytes) this.#dropOldest()
    this.#makeRoom(frame.length)
    const i = this.#first + this.#count
    this.#seqs[i] = seq
    this.#starts[i] = this.#byteEnd
    frame.copy(this.#arena, this.#byteEnd)
    this.#byteEnd += frame.length
    this.#count++
  }

  /** The frames of the events after `seq` (a copy, in order), or why they cannot be given. */
  after (seq: number): Lookup {
    const at = this.#find(seq)
    if (at < 0) {
      const oldest = this.#count === 0 ? undefined : this.#seqs[this.#first] as number
      // Older than what is kept: the session has moved on past it.
      return { found: false, reason: oldest === undefined || seq < oldest ? 'history_trimmed' : 'unknown_event_id' }
    }
    const next = at + 1
    const end = this.#first + this.#count
    const from = next < end ? this.#starts[next] as number : this.#byteEnd
    return { found: true, frames: Buffer.from(this.#arena.subarray(from, this.#byteEnd)), events: end - next }
  }

  // Sequence numbers increase, so binary search; -1 when absent.
  #find (seq: number): number {
    const seqs = this.#seqs
    let lo = this.#first
    let hi = this.#first + this.#count - 1
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1
      const at = seqs[mid] as number
      if (at === seq) return mid
      if (at < seq) lo = mid + 1
      else hi = mid - 1
    }
    return -1
  }

  #dropOldest (): void {
    this.#first++
    this.#count--
    if (this.#count === 0) this.#clear()
    else this.#byteStart = this.#starts[this.#first] as number
  }

  #clear (): void {
    this.#first = this.#count = this.#byteStart = this.#byteEnd = 0
  }

  /** Makes room for one more index entry and `size` more bytes, moving what is kept to the front (amortised O(1)). */
  #makeRoom (size: number): void {
    if (this.#first + this.#count === this.#seqs.length) {
      const length = this.#count * 2 < this.#seqs.length ? this.#seqs.length : Math.max(MIN_INDEX, this.#seqs.length * 2)
      this.#seqs = moved(this.#seqs, this.#first, this.#count, length)
      this.#starts = moved(this.#starts, this.#first, this.#count, length)
      this.#first = 0
    }
    if (this.#byteEnd + size <= this.#arena.length) return
    const kept = this.bytes
    const shift = this.#byteStart
    if ((kept + size) * 2 <= this.#arena.length) {
      this.#arena.copyWithin(0, shift, this.#byteEnd)
    } else {
      let length = Math.max(MIN_ARENA, this.#arena.length)
      while (length < (kept + size) * 2) length *= 2
      // Never over twice what may be kept: at that size moving to the front always leaves room.
      length = Math.min(length, this.maxBytes * 2)
      // Its own ArrayBuffer, not a slice of Node's shared pool: the arena outlives any one write.
      const arena = Buffer.allocUnsafeSlow(length)
      this.#arena.copy(arena, 0, shift, this.#byteEnd)
      this.#arena = arena
    }
    const starts = this.#starts
    for (let i = this.#first, end = this.#first + this.#count; i < end; i++) starts[i] = (starts[i] as number) - shift
    this.#byteStart = 0
    this.#byteEnd = kept
  }
}

/** `count` entries of `from` from `first` on, at the start of an array of `length` (`from` itself when it is long enough). */
function moved (from: Float64Array, first: number, count: number, length: number): Float64Array {
  if (length === from.length) {
    from.copyWithin(0, first, first + count)
    return from
  }
  const to = new Float64Array(length)
  to.set(from.subarray(first, first + count))
  return to
}
