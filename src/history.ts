/*
 * A session's replay history in this process (the in-memory event log's): the frames' bytes in reused
 * fixed-size blocks, their sequence numbers and positions in typed arrays, no object per event
 * (perf notes 26–28). Frames are copied in and out, because blocks are rewritten once reused.
 */

/** Bytes per block. */
export const BLOCK_SIZE = 4096
// Spare blocks kept for reuse, process-wide (16 MiB); more are left to the garbage collector.
const MAX_SPARE_BLOCKS = 4096
const spare: Buffer[] = []
const EMPTY = Buffer.alloc(0)
// Shared by every history that has kept nothing yet: a session without events costs no arrays.
const NO_INDEX = new Float64Array(0)
const MIN_INDEX = 8

/** Blocks held for reuse (for tests). */
export function spareBlocks (): number {
  return spare.length
}

/** Where an id lies in a {@link History}: the frames after it, or why there are none to give. */
export type Lookup =
  | { readonly found: true, readonly frames: Buffer, readonly events: number }
  | { readonly found: false, readonly reason: 'history_trimmed' | 'unknown_event_id' }

export class History {
  /** Sequence numbers of the kept events, oldest at `#first`. */
  #seqs: Float64Array = NO_INDEX
  /** Where each kept event's frame starts, as a position in the session's byte stream. */
  #starts: Float64Array = NO_INDEX
  #first = 0
  #count = 0
  /** The blocks holding the kept bytes; `#blocks[0]` starts at stream position `#base`. */
  readonly #blocks: Buffer[] = []
  #base = 0
  /** The kept bytes are the stream positions `[#byteStart, #byteEnd)`. */
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
      this.clear()
      return
    }
    while (this.#count >= this.maxEvents || this.bytes + frame.length > this.maxBytes) this.#dropOldest()
    this.#makeIndexRoom()
    const i = this.#first + this.#count
    this.#seqs[i] = seq
    this.#starts[i] = this.#byteEnd
    this.#write(frame)
    this.#count++
  }

  /** The frames of the events after `seq` (a copy, in order), or why they cannot be given. */
  framesAfter (seq: number): Lookup {
    const at = this.#find(seq)
    if (at < 0) {
      const oldest = this.#count === 0 ? undefined : this.#seqs[this.#first] as number
      // Older than what is kept: the session has moved on past it.
      return { found: false, reason: oldest === undefined || seq < oldest ? 'history_trimmed' : 'unknown_event_id' }
    }
    const next = at + 1
    const end = this.#first + this.#count
    if (next === end) return { found: true, frames: EMPTY, events: 0 }
    return { found: true, frames: this.#read(this.#starts[next] as number, this.#byteEnd), events: end - next }
  }

  /** The frames of every event kept (a copy, in order). */
  frames (): { readonly frames: Buffer, readonly events: number } {
    return { frames: this.#read(this.#byteStart, this.#byteEnd), events: this.#count }
  }

  /** Forgets every event and gives the blocks back for reuse. */
  clear (): void {
    for (const block of this.#blocks) if (spare.length < MAX_SPARE_BLOCKS) spare.push(block)
    this.#blocks.length = 0
    this.#first = this.#count = this.#base = this.#byteStart = this.#byteEnd = 0
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
    if (this.#count === 0) {
      this.clear()
      return
    }
    this.#byteStart = this.#starts[this.#first] as number
    while (this.#byteStart - this.#base >= BLOCK_SIZE) {
      const block = this.#blocks.shift() as Buffer
      if (spare.length < MAX_SPARE_BLOCKS) spare.push(block)
      this.#base += BLOCK_SIZE
    }
  }

  /** Appends `frame` to the byte stream, taking blocks as it goes. */
  #write (frame: Buffer): void {
    for (let from = 0; from < frame.length;) {
      const pos = this.#byteEnd - this.#base
      const index = Math.floor(pos / BLOCK_SIZE)
      // Its own ArrayBuffer, not a slice of Node's shared pool, which it would keep alive.
      if (index === this.#blocks.length) this.#blocks.push(spare.pop() ?? Buffer.allocUnsafeSlow(BLOCK_SIZE))
      const n = frame.copy(this.#blocks[index] as Buffer, pos % BLOCK_SIZE, from)
      from += n
      this.#byteEnd += n
    }
  }

  /** A copy of the stream positions `[start, end)`. */
  #read (start: number, end: number): Buffer {
    const out = Buffer.allocUnsafe(end - start)
    for (let pos = start; pos < end;) {
      const offset = pos - this.#base
      const block = this.#blocks[Math.floor(offset / BLOCK_SIZE)] as Buffer
      const at = offset % BLOCK_SIZE
      pos += block.copy(out, pos - start, at, Math.min(BLOCK_SIZE, at + end - pos))
    }
    return out
  }

  /** Makes room for one more index entry, moving what is kept to the front (amortised O(1)). */
  #makeIndexRoom (): void {
    if (this.#first + this.#count < this.#seqs.length) return
    const length = this.#count * 2 < this.#seqs.length ? this.#seqs.length : Math.max(MIN_INDEX, this.#seqs.length * 2)
    this.#seqs = moved(this.#seqs, this.#first, this.#count, length)
    this.#starts = moved(this.#starts, this.#first, this.#count, length)
    this.#first = 0
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
