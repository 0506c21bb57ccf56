/*
 * Opening one kind's streams: `authorize`, the client limits, the event log's welcome, then attaching the
 * client; or, for a closed session, its last frames and the end (or 204 when there is nothing to send).
 */
import type { FastifyReply } from 'fastify'
import { randomUUID } from 'node:crypto'
import type { Socket } from 'node:net'
import { Client, debugging, type RawResponse } from './client-writer.js'
import type { Counters } from './counters.js'
import { FST_ERR_SSE_HUB_FORBIDDEN, FST_ERR_SSE_HUB_SHUTTING_DOWN, FST_ERR_SSE_HUB_TOO_MANY_CLIENTS } from './errors.js'
import { Welcome, type EventLog } from './event-log/types.js'
import type { SessionKind } from './events.js'
import type { HubParts } from './hub-parts.js'
import type { ResolvedOptions } from './options.js'
import type { Session } from './session.js'
import type { Sessions } from './sessions.js'
import { commitHeaders } from './stream.js'
import { checkSessionId } from './validate.js'

/** The listeners every client of a kind gets (one of each per registry, perf note 3). */
export interface ClientListeners {
  readonly onDisconnect: (this: RawResponse) => void
  readonly onPeerEnd: (this: Socket) => void
}

/** Opens the streams of one kind's sessions. */
export class Joiner {
  readonly #opts: ResolvedOptions
  readonly #limits: HubParts['limits']
  readonly #eventLog: EventLog

  constructor (
    readonly kind: SessionKind,
    private readonly hub: HubParts,
    private readonly counters: Counters,
    private readonly sessions: Sessions,
    private readonly listeners: ClientListeners
  ) {
    this.#opts = hub.options
    this.#limits = hub.limits
    this.#eventLog = hub.eventLog
  }

  /** See `SessionRegistry.open`. */
  open (sessionId: string, reply: FastifyReply): string | Promise<string> {
    checkSessionId(this.#opts.sessionIdPattern, sessionId)
    if (this.#opts.authorize === undefined) return this.#start(sessionId, reply)
    return this.#authorizeThenStart(sessionId, reply)
  }

  async #authorizeThenStart (sessionId: string, reply: FastifyReply): Promise<string> {
    try {
      const allowed = await (this.#opts.authorize as NonNullable<ResolvedOptions['authorize']>)(reply.request, { kind: this.kind, sessionId })
      if (allowed === false) throw new FST_ERR_SSE_HUB_FORBIDDEN()
    } catch (err) {
      this.counters.authorizeFailed(err)
      throw err
    }
    return await this.#start(sessionId, reply)
  }

  #start (sessionId: string, reply: FastifyReply): string | Promise<string> {
    const found = this.sessions.get(sessionId)
    const ip = this.#limits.admit(reply, found === undefined ? 0 : found.streams, this.counters)
    const clientId = randomUUID()
    // The peer left while authorize ran: nothing to stream to, and 'close' has already fired.
    if (reply.raw.destroyed) return clientId
    const s = found ?? this.sessions.obtain(sessionId, false)
    if (s === undefined) throw this.#limits.refuse(reply, new FST_ERR_SSE_HUB_TOO_MANY_CLIENTS('maxSessions'), this.counters, 'max_sessions')
    // Not to be evicted while its client joins; settled again if it does not.
    this.sessions.busy(s)
    const welcome = this.sessions.format.welcome(s, reply.request, this.hub.welcomer, this.#eventLog)
    if (!(welcome instanceof Welcome)) return this.#attachLater(s, reply, clientId, ip, welcome)
    this.#attach(s, reply, clientId, ip, welcome)
    return clientId
  }

  /** Waits for a welcome answered asynchronously (a backplane read, a snapshot hook), holding the client's place meanwhile. */
  async #attachLater (s: Session, reply: FastifyReply, clientId: string, ip: string | undefined, reading: Promise<Welcome>): Promise<string> {
    this.#limits.take(ip)
    let welcome: Welcome
    try {
      welcome = await reading
    } catch (err) {
      this.#limits.give(ip)
      this.sessions.settle(s)
      // A backplane that could not read (503) is worth retrying soon; a snapshot hook's error is not.
      if ((err as { statusCode?: unknown } | null | undefined)?.statusCode === 503) this.#limits.retryLater(reply)
      throw err
    }
    // Nothing yields from here to the attach: the frames held for the client meanwhile follow its welcome.
    welcome.endJoin(s)
    this.#limits.give(ip)
    if (this.#limits.shuttingDown) {
      this.abandon(s)
      this.#limits.retryLater(reply)
      throw new FST_ERR_SSE_HUB_SHUTTING_DOWN()
    }
    // The peer left while we waited.
    if (reply.raw.destroyed) this.abandon(s)
    else this.#attach(s, reply, clientId, ip, welcome)
    return clientId
  }

  /** Gives up on a client that held the session's feed and was not attached. */
  abandon (s: Session): void {
    this.#eventLog.release(s)
    this.sessions.settle(s)
  }

  /** Commits the stream, writes the greeting and the welcome, and tracks the client. */
  #attach (s: Session, reply: FastifyReply, clientId: string, ip: string | undefined, welcome: Welcome): void {
    if (s.closed !== undefined) {
      this.#finish(s, reply, clientId, welcome, s.closed)
      return
    }
    const res = reply.raw
    const now = this.hub.now()
    const hello = this.sessions.format.greeting(this.#opts, clientId, s.id, this.kind, now)
    let bytes: number
    try {
      commitHeaders(reply)
      // perf note 9: with nothing before live events the greeting is written as the string it is.
      if (welcome.frames.length === 0) {
        res.write(hello)
        bytes = Buffer.byteLength(hello)
      } else {
        // A replay kept whole (perf note 45) behind no greeting is written as it came.
        const initial = hello === '' && welcome.frames.length === 1 ? welcome.frames[0] as Buffer : Buffer.concat([Buffer.from(hello), ...welcome.frames])
        res.write(initial)
        bytes = initial.length
      }
    } catch (err) {
      // A header a hook set that Node refuses, say: nothing is tracked yet.
      this.abandon(s)
      throw err
    }
    this.#counted(welcome, bytes)

    // The welcome covers every event of the session up to now, queued ones included.
    const client = new Client(clientId, res, now, ip, s, reply.log, s.lastSeq, welcome.covered, this.#opts.maxBufferedBytes)
    client.listen(this.listeners.onDisconnect, this.listeners.onPeerEnd)
    s.clients.set(clientId, client)
    this.#limits.take(ip)
    if (debugging(client.logger)) client.logger.debug({ kind: this.kind, sessionId: s.id, clientId, welcome: welcome.outcome }, 'sse client connected')
  }

  /**
   * A client of a closed session: what its welcome holds, `closed` and the end; or, with nothing to send (it
   * has the final event, or the session closed without any), 204, which tells EventSource to stop for good.
   */
  #finish (s: Session, reply: FastifyReply, clientId: string, welcome: Welcome, lastEventId: string): void {
    this.abandon(s)
    const res = reply.raw
    if (welcome.frames.length === 0) {
      res.writeHead(204, reply.getHeaders() as Record<string, string>)
      res.end()
      return
    }
    const now = this.hub.now()
    const hello = this.sessions.format.greeting(this.#opts, clientId, s.id, this.kind, now)
    commitHeaders(reply)
    const all = Buffer.concat([Buffer.from(hello), ...welcome.frames, this.sessions.format.end(s.id, lastEventId, now)])
    res.end(all)
    this.#counted(welcome, all.length)
  }

  #counted (welcome: Welcome, bytes: number): void {
    const counters = this.counters
    counters.connected()
    counters.sent(welcome.events, bytes, 0)
    if (welcome.outcome !== 'none') counters.served(welcome.outcome)
  }
}
