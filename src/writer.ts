/*
 * The fan-out write path. Broadcasts to a session are queued and written in
 * rounds: a round is one batch of frames, written to each client as ONE write,
 * so events broadcast within one event-loop turn (or while a large fan-out is
 * still in progress) cost one write per client, not one per event.
 *
 * An HTTP/1 response whose head is already on its socket is written straight
 * to the socket, the chunked framing added once per batch instead of once per
 * client; anything else (HTTP/2 compatibility responses, injected requests)
 * goes through `res.write()`.
 */
import { ServerResponse } from 'node:http'
import { Socket } from 'node:net'

/**
 * Tuning of the write path (internal; the defaults are what the benchmark measured).
 * A round pauses, to let other work run, once it has held the event loop for
 * `sliceMs`; the clock is read every `checkEvery` clients.
 */
export const fanOutTuning = { sliceMs: 3, checkEvery: 32 }

/**
 * One queued frame: an event with its sequence number (in this process, increasing per session), or a
 * frame every client gets (`seq` 0: a heartbeat, a `resync`). `id` is the backplane's id of an event.
 */
export interface QueuedFrame {
  readonly seq: number
  readonly frame: Buffer
  readonly id?: string
}

/**
 * A {@link QueuedFrame} made with `new`. Broadcasts made in one burst all stay queued until the burst
 * yields; an object literal there gives V8 an allocation site whose objects it sees surviving a
 * young-generation collection, and it then allocates every later one straight into the old generation
 * (allocation-site pretenuring), whose mark-compact collections stalled token streaming (bench/).
 * Objects made by `new` have no such site.
 */
export class Frame implements QueuedFrame {
  constructor (readonly seq: number, readonly frame: Buffer, readonly id: string | undefined = undefined) {}
}

const CRLF = Buffer.from('\r\n')

/** Frames written together; their concatenation (and its chunked framing) is built once, on first use. */
export class Batch {
  /** Smallest event sequence number; Infinity when the batch holds no event. */
  readonly firstSeq: number = Infinity
  /** Largest event sequence number; 0 when the batch holds no event. */
  readonly lastSeq: number = 0
  /** Number of events (comments excluded). */
  readonly events: number = 0
  /** SSE bytes, without transfer framing. */
  readonly bytes: number = 0
  #plain: Buffer | undefined
  #chunked: Buffer | undefined

  constructor (readonly entries: QueuedFrame[]) {
    for (const { seq, frame } of entries) {
      this.bytes += frame.length
      if (seq === 0) continue
      this.events++
      if (seq < this.firstSeq) this.firstSeq = seq
      if (seq > this.lastSeq) this.lastSeq = seq
    }
  }

  /** The SSE bytes of the batch. */
  plain (): Buffer {
    if (this.#plain === undefined) {
      this.#plain = this.entries.length === 1
        ? (this.entries[0] as QueuedFrame).frame
        : Buffer.concat(this.entries.map((e) => e.frame), this.bytes)
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
   * What a client that already has every event up to `sentSeq` still needs from this batch,
   * comments included when `comments` is true; undefined when that is nothing.
   */
  after (sentSeq: number, comments: boolean): Batch | undefined {
    return this.select((e) => e.seq === 0 ? comments : e.seq > sentSeq)
  }

  /** The entries `keep` accepts, in order; undefined when none. */
  select (keep: (entry: QueuedFrame) => boolean): Batch | undefined {
    const rest = this.entries.filter(keep)
    return rest.length === 0 ? undefined : new Batch(rest)
  }
}

/** Where a client's bytes go: its response, and the response's socket when the direct path applies. */
export interface Target {
  readonly res: ServerResponse | { write: (chunk: Buffer) => boolean }
  /** See {@link directSocket}. */
  readonly socket: Socket | undefined
}

/**
 * The socket an HTTP/1 response body can be written to directly, or undefined
 * when writes must go through `res.write()`: an HTTP/2 compatibility response,
 * a response without a real socket (e.g. `fastify.inject`), one not (yet) the
 * current response of its connection (pipelining), or a HEAD request.
 * Call it after the response's first write: from then on `res.write()` itself
 * hands every byte straight to this socket, so writing there keeps the order.
 */
export function directSocket (res: unknown): Socket | undefined {
  if (!(res instanceof ServerResponse)) return undefined
  const socket: unknown = res.socket
  if (!(socket instanceof Socket) || socket.destroyed || res.req.method === 'HEAD') return undefined
  return socket
}

const responseWrite = ServerResponse.prototype.write

/**
 * Writes a batch to one client: straight to its socket when it can, else through `res.write()`.
 * True when the bytes went straight to the socket and it still holds less than its high-water mark
 * (`socket.write()`'s answer); false when the caller must look at `res.writableLength` itself.
 */
export function writeBatch (target: Target, batch: Batch): boolean {
  const { socket, res } = target
  // Through res.write() when it is wrapped (compression, instrumentation: they must see every byte), or when
  // the socket no longer takes writes (peer half-closed): Node then holds the bytes and counts them in writableLength.
  if (socket === undefined || !socket.writable || res.write !== responseWrite) {
    res.write(batch.plain())
    // A wrapper's answer says nothing about the bytes it holds.
    return false
  }
  // The response's own framing: HTTP/1.1 chunks, or (HTTP/1.0) the bytes as they are.
  return socket.write((res as ServerResponse).chunkedEncoding ? batch.chunked() : batch.plain())
}
