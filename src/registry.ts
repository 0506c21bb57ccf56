/*
 * The sessions of one kind and that kind's public API: broadcasting, closing sessions, removing clients,
 * heartbeats, cleanup and stats. Opening streams is the joiner's job (./join.ts); storing and replaying
 * events, the event log's; writing them, the fan-out's and the client's; counting streams, the limits'.
 */
import type { FastifyReply } from 'fastify'
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { Batch, HEARTBEAT, Outgoing } from './batch.js'
import { Client, clientOf, debugging, FAILED, WRITTEN, type RawResponse } from './client-writer.js'
import type { Counters, RegistryStats } from './counters.js'
import type { EventLog } from './event-log/types.js'
import type { EventMap, SessionKind } from './events.js'
import type { FanOutHost } from './fanout.js'
import type { HubParts } from './hub-parts.js'
import { Joiner } from './join.js'
import type { FanOutTimer } from './metrics/types.js'
import type { ResolvedOptions } from './options.js'
import type { SharedValues } from './leases/types.js'
import { kindProducers, type Producers, type PipedEvent, type PipeOptions, type Producer } from './pipe.js'
import { Session } from './session.js'
import { Sessions } from './sessions.js'
import { FST_ERR_SSE_HUB_WIRE_FORMAT } from './errors.js'
import { checkSessionId } from './validate.js'
import { HUB_FORMAT, type WireFormat } from './wire-format.js'

/**
 * All sessions of one kind. The hub creates one per kind (conversation, debate, and the `kinds` option's);
 * the kinds differ only in their event map `E`.
 */
export class SessionRegistry<E extends EventMap<E>> {
  readonly #sessions: Sessions
  readonly #hub: HubParts
  readonly #opts: ResolvedOptions
  readonly #counters: Counters
  readonly #limits: HubParts['limits']
  readonly #eventLog: EventLog
  readonly #fanOut: FanOutHost
  readonly #joiner: Joiner
  readonly #producers: Producers
  /** Counts `heartbeatIdle()` calls: the periods between them. */
  #period = 0
  // One listener of each per registry, not a closure per client (perf note 3).
  readonly #onDisconnect: (this: RawResponse) => void
  readonly #onPeerEnd: (this: Socket) => void

  /** `counters` and `timer` are this kind's own (the hub reads them for stats and metrics). */
  constructor (readonly kind: SessionKind, hub: HubParts, counters: Counters, timer: FanOutTimer) {
    this.#hub = hub
    this.#opts = hub.options
    this.#counters = counters
    this.#limits = hub.limits
    this.#eventLog = hub.eventLog
    const registry = this
    this.#fanOut = { tuning: hub.tuning, maxQueuedBytes: hub.options.maxBufferedBytes, timer, get period () { return registry.#period }, write (client, batch) { registry.#writeTo(client, batch) } }
    this.#sessions = new Sessions(kind, counters, hub.budget, (id) => new Session(id, kind, this.#eventLog.retained(), this.#fanOut, hub.now()), (s) => { this.#endSession(s) })
    hub.eventLog.serve(kind, this.#sessions)
    this.#onDisconnect = function () { registry.#detach(clientOf(this)) }
    // The peer closed its side: the stream is over, finished without its last chunk (perf note 5).
    this.#onPeerEnd = function () { registry.#end(clientOf(this), false) }
    this.#joiner = new Joiner(kind, hub, counters, this.#sessions, { onDisconnect: this.#onDisconnect, onPeerEnd: this.#onPeerEnd })
    this.#producers = kindProducers(this.#sessions, hub.eventLog, hub.now)
  }

  /**
   * Opens an SSE stream on `reply` for `sessionId` and returns the new client's id. Runs `authorize`, applies the
   * client limits, commits the response (200, `text/event-stream`), writes `retry:`, `connection_established` and
   * any replay after the request's `Last-Event-ID` (header, else `lastEventId` query parameter), and removes the
   * client when the request closes.
   * Rejects with a 4xx/503 `FST_ERR_SSE_HUB_*` error before any SSE byte is sent.
   */
  add (sessionId: string, reply: FastifyReply): Promise<string> {
    // Not async: one promise, not an async function's and an await's, on the design's call path (perf note 2).
    try {
      const opened = this.open(sessionId, reply)
      return typeof opened === 'string' ? Promise.resolve(opened) : opened
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /**
   * {@link add}, but what is found before anything is awaited (a bad id, a limit) is thrown, and without
   * `authorize` or a backplane it returns the client id itself, not a promise (perf note 2).
   */
  open (sessionId: string, reply: FastifyReply): string | Promise<string> {
    return this.#joiner.open(sessionId, reply)
  }

  /**
   * Sends one event to every client of `sessionId` and keeps it for replay.
   * The payload is JSON-encoded once and framed once; the same bytes go to every client.
   * Throws a `FST_ERR_SSE_HUB_*` error, before anything is sent or stored, when the
   * session id, event type or payload is invalid or the event is over `maxEventBytes`.
   * Resolves with the event's id.
   */
  broadcast<K extends keyof E & string>(sessionId: string, type: K, payload: E[K]): Promise<string> {
    checkSessionId(this.#opts.sessionIdPattern, sessionId)
    return this.#eventLog.append(this.#sessions, sessionId, type, this.#sessions.format.eventJson(type, payload, this.#hub.now()))
  }

  /**
   * Closes a session: sends the final event `type` (typed and checked like a {@link broadcast}; none when
   * omitted), then `closed` to every client, and ends their streams. From then on, until `closedSessionTtl`
   * has passed, a client gets the rest of the session, `closed` and the end, or 204 when it has everything;
   * a broadcast to it throws (with a backplane: rejects) `FST_ERR_SSE_HUB_SESSION_CLOSED`.
   * Resolves with the final event's id (without one: the session's newest id, '' when it has none).
   * Idempotent: closing a closed session resolves with that id again and sends nothing.
   */
  close<K extends keyof E & string>(sessionId: string, ...final: [] | [type: K, payload: E[K]]): Promise<string> {
    checkSessionId(this.#opts.sessionIdPattern, sessionId)
    const [type, payload] = final
    const json = type === undefined ? undefined : this.#sessions.format.eventJson(type, payload, this.#hub.now())
    return this.#eventLog.closeSession(this.#sessions, sessionId, type, json)
  }

  /**
   * Produces `sessionId` from `producer`: each event it yields (`{ type, payload }`, typed and checked like a
   * {@link broadcast}) is appended in order, each once the previous one is stored; when it ends, the session is
   * closed (its last event is the final one). When it throws (or an append fails) the session is closed with a
   * `pipe_failed` event (`reason: 'source_error'`) and the promise rejects with that error; when it is stopped
   * and a source given as is, or one told of the stop that throws, it is closed with `pipe_failed`
   * (`reason: 'stopped'`). Resolves with the final event's id. Throws `FST_ERR_SSE_HUB_ALREADY_PIPED` when the
   * session has a producer, and as {@link broadcast} for a bad id.
   */
  pipe (sessionId: string, producer: Producer<PipedEvent<E>>, options?: PipeOptions): Promise<string> {
    checkSessionId(this.#opts.sessionIdPattern, sessionId)
    return this.#producers.pipe(sessionId, producer, options)
  }

  /**
   * Stops the producer of `sessionId`, in this process or (with a backplane) another: aborts its signal and
   * resolves true once the session is closed; false when it has none.
   */
  stop (sessionId: string): Promise<boolean> {
    checkSessionId(this.#opts.sessionIdPattern, sessionId)
    return this.#producers.stop(sessionId)
  }

  /** Whether a producer of `sessionId` runs ({@link pipe}), in this process or (with a backplane) another. */
  producing (sessionId: string): Promise<boolean> {
    checkSessionId(this.#opts.sessionIdPattern, sessionId)
    return this.#producers.running(sessionId)
  }

  /** Aborts the producers running here and waits (up to 2 s) for their sessions' close (the hub calls this in `onClose`). */
  stopProducers (): Promise<void> {
    return this.#producers.stopAll(2000)
  }

  /** Advanced (`fastify-sse-hub/ai` keeps its chats' answers there): values shared by every process, as the sessions are. */
  get sharedValues (): SharedValues {
    return this.#eventLog.leases
  }

  /**
   * Advanced (`fastify-sse-hub/ai` calls it): this kind's streams speak `format` from now on. Throws
   * `FST_ERR_SSE_HUB_WIRE_FORMAT` when the kind already speaks another, or holds sessions.
   */
  useWireFormat (format: WireFormat): void {
    const sessions = this.#sessions
    if (sessions.format === format) return
    if (sessions.size > 0 || sessions.format !== HUB_FORMAT) throw new FST_ERR_SSE_HUB_WIRE_FORMAT(`kind '${this.kind}' ${sessions.size > 0 ? 'holds sessions' : 'speaks another wire format'}`)
    sessions.format = format
    if (format.replaysFromStart) this.#eventLog.keepFrames(this.kind)
  }

  /**
   * The most one replay of this kind sends (the `historySize` and `historyBytes` options, and what a backplane
   * keeps, e.g. Redis's `maxLen`): a longer session is replayed trimmed.
   */
  get replayLimits (): { readonly events: number, readonly bytes: number } {
    return { events: Math.min(this.#opts.historySize, this.#eventLog.retainedEvents), bytes: this.#opts.historyBytes }
  }

  /** Removes a client and ends its stream cleanly. Returns false when it was not connected. */
  remove (sessionId: string, clientId: string): boolean {
    const client = this.#sessions.get(sessionId)?.clients.get(clientId)
    if (client === undefined) return false
    this.#end(client)
    return true
  }

  /**
   * The id of the newest event of `sessionId` broadcast or received here, for a `snapshot` hook that keeps the
   * state in memory; undefined when there is none, or this process holds nothing of the session (with a
   * backplane, a process holds the sessions it has clients of: keep the ids your broadcasts resolve with).
   */
  lastEventId (sessionId: string): string | undefined {
    const s = this.#sessions.get(sessionId)
    return s === undefined ? undefined : this.#eventLog.lastEventId(s)
  }

  /** Number of open streams of a session. */
  count (sessionId: string): number {
    return this.#sessions.get(sessionId)?.clients.size ?? 0
  }

  /** Writes a heartbeat comment to every client of one session, busy or not, in the next round. */
  heartbeat (sessionId: string): void {
    const s = this.#sessions.get(sessionId)
    if (s !== undefined && s.clients.size > 0) s.fanOut.send(HEARTBEAT)
  }

  /**
   * A heartbeat comment to the clients of every session that has had nothing written to it since the
   * previous call. The hub's timer calls this every half `heartbeatInterval` (perf note 29).
   */
  heartbeatIdle (): void {
    const period = this.#period++
    for (const s of this.#sessions.values()) {
      if (s.clients.size > 0 && !s.fanOut.wroteIn(period)) s.fanOut.send(HEARTBEAT)
    }
  }

  /** Removes clients whose connection is gone, ends (cleanly) those connected `maxAgeMs` or longer; returns how many. */
  cleanup (maxAgeMs: number, now: number): number {
    let removed = 0
    for (const s of this.#sessions.values()) {
      for (const client of s.clients.values()) {
        const socket = client.res.socket
        if (client.res.destroyed || socket === null || socket.destroyed) {
          this.#detach(client)
          removed++
        } else if (now - client.connectedAt >= maxAgeMs) {
          this.#counters.expired()
          this.#end(client)
          removed++
        }
      }
    }
    return removed
  }

  /** Ends every stream (shutdown). */
  endAll (): void {
    for (const s of this.#sessions.values()) {
      for (const client of s.clients.values()) this.#end(client)
    }
  }

  /** Sessions, clients and retained history of this kind. */
  stats (): RegistryStats {
    return this.#sessions.stats()
  }

  /** Writes a round's batch to one client, and drops it when it stopped reading or its write failed. */
  #writeTo (client: Client, batch: Batch): void {
    const outcome = client.write(batch, true, this.#opts.maxBufferedBytes, this.#counters)
    if (outcome === WRITTEN) return
    if (outcome !== FAILED) {
      this.#counters.droppedSlow()
      client.logger.warn({ kind: this.kind, sessionId: client.session.id, clientId: client.id, buffered: client.res.writableLength }, 'sse client dropped: too slow')
    }
    this.#detach(client)
    // Its backlog cannot be sent in time; destroying frees it now. The client reconnects and replays.
    client.res.destroy()
  }

  /**
   * Ends a client's stream: first what was broadcast to it and not written yet (nothing accepted is lost;
   * a queued `resync` too, or the events after it would hide a gap), then the response.
   * `lastChunk` false: the peer has closed its side.
   */
  #end (client: Client, lastChunk = true, last?: Outgoing): void {
    const queued = client.session.fanOut.unwritten(client)
    const unwritten = last === undefined ? queued : [...queued, last]
    if (unwritten.length > 0 && client.write(new Batch(unwritten), false, Infinity, this.#counters) === FAILED) {
      this.#detach(client)
      client.res.destroy()
      return
    }
    this.#detach(client)
    // Headers are sent: this only tells end() to write no terminating chunk.
    if (!lastChunk) (client.res as ServerResponse).chunkedEncoding = false
    client.res.end()
  }

  /** A session was closed: its clients get what is queued for them, `closed`, and the end. */
  #endSession (s: Session): void {
    if (s.clients.size === 0) return
    const closed = new Outgoing(0, this.#sessions.format.end(s.id, s.closed as string, this.#hub.now()))
    for (const client of s.clients.values()) this.#end(client, true, closed)
  }

  /**
   * Forgets a client and leaves no listener behind. Runs once per client: every caller takes the client
   * from its session's map, which this empties, and the disconnect listener that could call it later goes here.
   */
  #detach (client: Client): void {
    client.unlisten(this.#onDisconnect, this.#onPeerEnd)
    const s = client.session
    s.clients.delete(client.id)
    this.#limits.give(client.ip)
    if (s.clients.size === 0) s.lastActivity = this.#hub.now()
    this.#eventLog.release(s)
    this.#sessions.settle(s)
    if (debugging(client.logger)) client.logger.debug({ kind: this.kind, sessionId: s.id, clientId: client.id }, 'sse client disconnected')
  }
}
