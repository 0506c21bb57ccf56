/*
 * One connected SSE client, server side (the browser client is src/browser/): its response and socket, what it
 * already has, and writing a batch to it, with one of three outcomes: written, too slow (past `maxBufferedBytes`:
 * the caller drops it) or failed.
 * The direct socket path and the buffered-bytes rule live here and nowhere else.
 */
import type { FastifyBaseLogger, FastifyReply } from 'fastify'
import { ServerResponse } from 'node:http'
import { Socket } from 'node:net'
import type { Batch } from './batch.js'
import type { Counters } from './counters.js'
import type { Session } from './session.js'

/** The raw response an SSE client is written through (HTTP/1 or HTTP/2 compatibility API). */
export type RawResponse = FastifyReply['raw']

/** The batch reached the client (or its socket's buffer, within the limit). */
export const WRITTEN = 0
/** The client holds more than `maxBufferedBytes` unsent: it stopped reading, and must be dropped. */
export const TOO_SLOW = 1
/** The write threw (a broken `res.write` wrapper, say); logged here, the caller drops the client. */
export const FAILED = 2
export type WriteOutcome = typeof WRITTEN | typeof TOO_SLOW | typeof FAILED

/** Whether a backplane id is covered by what a client got before live events (see {@link Client.covered}). */
export type Covered = (id: string) => boolean

// The client a response or socket carries (perf note 3).
const kClient = Symbol('fastify-sse-hub.client')
type Tracked = (RawResponse | Socket) & { [kClient]?: Client | undefined }

/** The client of a response or socket that {@link Client.listen} was called for. */
export function clientOf (target: RawResponse | Socket): Client {
  return (target as Tracked)[kClient] as Client
}

// A class, not an object literal (perf note 6).
export class Client {
  /** The response's HTTP/1 socket, when the direct path can apply (see {@link directSocket}). */
  readonly socket: Socket | undefined
  /** Whether writes go straight to {@link socket}: confirmed by the first write that finds no byte held by the response. */
  #direct = false
  /** Whether the socket's high-water mark is above `maxBufferedBytes`, so staying under it vouches for nothing (perf note 19). */
  readonly markAboveLimit: boolean
  /** The round of its session's fan-out that last wrote to it (see `FanOut.unwritten`). */
  writtenIn = 0

  constructor (
    readonly id: string,
    readonly res: RawResponse,
    readonly connectedAt: number,
    /** The address counted against `maxClientsPerIp`; undefined when that option is off. */
    readonly ip: string | undefined,
    readonly session: Session,
    readonly logger: FastifyBaseLogger,
    /** The newest event this client has (from its welcome or a write): queued frames up to it are skipped. */
    public sentSeq: number,
    /**
     * Set after a backplane welcome: live events it already covered may still be on their way
     * (they come over another connection), and are skipped; cleared at the first event it lacks.
     */
    public covered: Covered | undefined,
    maxBufferedBytes: number
  ) {
    this.socket = directSocket(res)
    this.markAboveLimit = this.socket !== undefined && this.socket.writableHighWaterMark > maxBufferedBytes
  }

  /** What of `batch` this client lacks (heartbeats included when `heartbeats`); undefined when nothing. */
  unsent (batch: Batch, heartbeats: boolean): Batch | undefined {
    let part = batch.unsentTo(this.sentSeq, heartbeats)
    const covered = this.covered
    if (part !== undefined && covered !== undefined) {
      part = part.select((o) => o.id === undefined || !covered(o.id))
      if (part !== undefined && part.events > 0) this.covered = undefined
    }
    return part
  }

  /** Writes what of `batch` it lacks and counts what reached it. */
  write (batch: Batch, heartbeats: boolean, maxBufferedBytes: number, counters: Counters): WriteOutcome {
    const part = this.unsent(batch, heartbeats)
    if (part === undefined) return WRITTEN
    let underMark: boolean
    try {
      underMark = writeBatch(this.res, this.#direct || this.#confirmDirect() ? this.socket : undefined, part)
    } catch (err) {
      this.logger.warn({ kind: this.session.kind, sessionId: this.session.id, clientId: this.id, err }, 'sse client dropped: write failed')
      return FAILED
    }
    if (part.events > 0) this.sentSeq = part.lastSeq
    // perf note 19: writableLength only when the socket's answer cannot vouch for it.
    if ((!underMark || this.markAboveLimit) && this.res.writableLength > maxBufferedBytes) return TOO_SLOW
    counters.sent(part.events, part.bytes, part.heartbeats)
    return WRITTEN
  }

  /**
   * Whether the response holds no byte of its own, so a direct write cannot overtake one: Node 24 and later keep
   * the first chunks of a response in it until the next tick, for instance. Checked until it holds once.
   */
  #confirmDirect (): boolean {
    const socket = this.socket
    if (socket === undefined || this.res.writableLength !== socket.writableLength) return false
    this.#direct = true
    return true
  }

  /** Calls `onDisconnect` when the response closes and `onPeerEnd` when the peer closes its side (`this` is the response or socket). */
  listen (onDisconnect: (this: RawResponse) => void, onPeerEnd: (this: Socket) => void): void {
    ;(this.res as Tracked)[kClient] = this
    this.res.on('close', onDisconnect)
    const socket = this.socket as Tracked | undefined
    if (socket !== undefined) {
      socket[kClient] = this
      // Before Node's own 'end' listener, which ends the connection (perf note 5).
      socket.prependListener('end', onPeerEnd)
    }
  }

  /** Undoes {@link listen}. */
  unlisten (onDisconnect: (this: RawResponse) => void, onPeerEnd: (this: Socket) => void): void {
    this.res.removeListener('close', onDisconnect)
    const socket = this.socket as Tracked | undefined
    if (socket !== undefined) {
      socket.removeListener('end', onPeerEnd)
      // Not deleted: a keep-alive socket serves other requests (perf note 4).
      socket[kClient] = undefined
    }
  }
}

/**
 * The socket an HTTP/1 response body can be written to directly (perf note 17), or undefined when writes
 * must go through `res.write()`: an HTTP/2 compatibility response, a response without a real socket
 * (`fastify.inject`), one not (yet) the current response of its connection (pipelining), a HEAD request,
 * or a Node whose response has no boolean `chunkedEncoding` (the framing would be unknown). Call it after
 * the response's first write; {@link Client} also waits until the response holds no byte of its own.
 */
export function directSocket (res: unknown): Socket | undefined {
  if (!(res instanceof ServerResponse)) return undefined
  const socket: unknown = res.socket
  if (!(socket instanceof Socket) || socket.destroyed || res.req.method === 'HEAD') return undefined
  if (typeof res.chunkedEncoding !== 'boolean') return undefined
  return socket
}

const responseWrite = ServerResponse.prototype.write

/**
 * Writes a batch: straight to `socket` when given and it can, else through `res.write()`. True when the bytes
 * went to the socket and it holds less than its high-water mark; false when the caller must measure.
 */
export function writeBatch (res: ServerResponse | { write: (chunk: Buffer) => boolean }, socket: Socket | undefined, batch: Batch): boolean {
  // A wrapped res.write (compression, instrumentation) must see every byte; a socket that no longer takes
  // writes (peer half-closed) leaves them to Node, which counts them in writableLength.
  if (socket === undefined || !socket.writable || res.write !== responseWrite) {
    res.write(batch.plain())
    return false
  }
  // The response's own framing: HTTP/1.1 chunks, or (HTTP/1.0) the bytes as they are.
  return socket.write((res as ServerResponse).chunkedEncoding ? batch.chunked() : batch.plain())
}

/** Whether debug logs are written: their fields are not even gathered otherwise (perf note 8). */
export function debugging (logger: FastifyBaseLogger): boolean {
  // Fastify's no-op logger (`logger: false`) has no isLevelEnabled; pino's has.
  return (logger as { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled?.('debug') === true
}
