/*
 * What a fan-out round writes: outgoing frames, and the batch of them written to each client as one
 * write (its bytes and chunked framing built once, on first use).
 */
import { HEARTBEAT_FRAME } from './frame.js'

/**
 * One frame on its way to a session's clients (its bytes are `frame`): an event with its sequence number
 * (increasing per session), or a frame every client gets (`seq` 0: a heartbeat, a `resync`). `id` is the
 * backplane's id of an event. A class, not an object literal (perf note 23).
 */
export class Outgoing {
  /** When a fan-out queued this event (`performance.now()`); set only while fan-out times are measured. */
  queuedAt = 0
  constructor (readonly seq: number, readonly frame: Buffer, readonly id: string | undefined = undefined) {}
}

/** The heartbeat comment: the only frame a stream that is ending may skip. */
export const HEARTBEAT = new Outgoing(0, HEARTBEAT_FRAME)

const CRLF = Buffer.from('\r\n')

/** Frames written together. */
export class Batch {
  /** Smallest event sequence number; Infinity when the batch holds no event. */
  readonly firstSeq: number = Infinity
  /** Largest event sequence number; 0 when the batch holds no event. */
  readonly lastSeq: number = 0
  /** Number of events (comments excluded). */
  readonly events: number = 0
  /** Number of heartbeat comments. */
  readonly heartbeats: number = 0
  /** SSE bytes, without transfer framing. */
  readonly bytes: number = 0
  #plain: Buffer | undefined
  #chunked: Buffer | undefined

  constructor (readonly outgoing: Outgoing[]) {
    for (const o of outgoing) {
      const { seq, frame } = o
      this.bytes += frame.length
      if (seq === 0) {
        if (o === HEARTBEAT) this.heartbeats++
        continue
      }
      this.events++
      if (seq < this.firstSeq) this.firstSeq = seq
      if (seq > this.lastSeq) this.lastSeq = seq
    }
  }

  /** The SSE bytes of the batch. */
  plain (): Buffer {
    if (this.#plain === undefined) {
      this.#plain = this.outgoing.length === 1
        ? (this.outgoing[0] as Outgoing).frame
        : Buffer.concat(this.outgoing.map((o) => o.frame), this.bytes)
    }
    return this.#plain
  }

  /** The batch as one HTTP/1.1 chunk: `<hex length>\r\n<bytes>\r\n`. */
  chunked (): Buffer {
    if (this.#chunked === undefined) {
      const body = this.plain()
      this.#chunked = Buffer.concat([Buffer.from(body.length.toString(16) + '\r\n', 'latin1'), body, CRLF])
    }
    return this.#chunked
  }

  /**
   * What a client that has every event up to `sentSeq` still needs: the later events, every `seq` 0 event
   * (`resync`), and heartbeats when `heartbeats` is true; undefined when that is nothing. The batch itself
   * when it needs all of it.
   */
  unsentTo (sentSeq: number, heartbeats: boolean): Batch | undefined {
    if (heartbeats && sentSeq < this.firstSeq) return this
    return this.select((o) => o.seq === 0 ? heartbeats || o !== HEARTBEAT : o.seq > sentSeq)
  }

  /** The outgoing frames `keep` accepts, in order; undefined when none. */
  select (keep: (o: Outgoing) => boolean): Batch | undefined {
    const rest = this.outgoing.filter(keep)
    return rest.length === 0 ? undefined : new Batch(rest)
  }
}
