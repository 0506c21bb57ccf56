import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import { randomUUID } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Backplane, BackplaneEvent } from './backplane/types.js'
import {
  FST_ERR_SSE_HUB_CLOSING,
  FST_ERR_SSE_HUB_EVENT_TOO_LARGE,
  FST_ERR_SSE_HUB_FORBIDDEN,
  FST_ERR_SSE_HUB_INVALID_EVENT_TYPE,
  FST_ERR_SSE_HUB_INVALID_PAYLOAD,
  FST_ERR_SSE_HUB_INVALID_SESSION_ID,
  FST_ERR_SSE_HUB_REPLY_SENT,
  FST_ERR_SSE_HUB_TOO_MANY_CLIENTS,
  FST_ERR_SSE_HUB_TOO_MANY_CLIENTS_PER_IP
} from './errors.js'
import { RESERVED_EVENT_TYPES, type EventMap, type ResyncEvent, type SessionKind } from './events.js'
import { History } from './history.js'
import { HEARTBEAT_FRAME, encodeEvent, encodeJsonEvent, establishedJson, eventJson, eventTypeProblem, isSafeEventId, jsonEventText, retryField } from './frame.js'
import type { ResolvedOptions } from './options.js'
import { Batch, directSocket, fanOutTuning, Frame, writeBatch as write, type QueuedFrame } from './writer.js'

/** The raw response an SSE client is written through (HTTP/1 or HTTP/2 compatibility API). */
export type RawResponse = FastifyReply['raw']

/** Counters shared by every registry of one hub. */
export interface HubCounters {
  /** Events broadcast (each counted once, whatever the number of clients). */
  broadcasts: number
  /** Event deliveries: one per event per client, live or replayed. */
  eventsSent: number
  /** Bytes written to clients, heartbeats and replays included. */
  bytesSent: number
  /** Clients disconnected because their unsent bytes passed `maxBufferedBytes`. */
  clientsDroppedSlow: number
  /** Clients ended by cleanup because they reached `maxConnectionAge`. */
  clientsExpired: number
  /** Reconnections answered with a replay from history (possibly empty). */
  replaysServed: number
  /** Reconnections answered with a `resync` event. */
  resyncsSent: number
  /** Streams opened since start. */
  clientsConnected: number
  /** Streams refused by `maxClients` / `maxClientsPerSession` (503) or `maxClientsPerIp` (429). */
  clientsRejected: number
}

/** What one registry needs from its hub. */
export interface HubContext {
  readonly options: ResolvedOptions
  readonly counters: HubCounters
  readonly log: FastifyBaseLogger
  /** Open streams across both kinds (for `maxClients`). */
  totalClients: number
  /** Open streams per `request.ip`, both kinds (for `maxClientsPerIp`); an address leaves the map at zero. */
  readonly clientsPerIp: Map<string, number>
  /** True from `preClose` on. */
  closing: boolean
  /** The next sequence number of this hub; it increases across all sessions, so no two events share an id. */
  nextSeq: () => number
  /** The event id of a sequence number: `<hub epoch>-<seq>`. */
  formatEventId: (seq: number) => string
  /** The sequence number of an id this hub issued; undefined for any other string. */
  parseEventId: (id: string) => number | undefined
  now: () => number
  /** The shared event log when the hub runs on one (e.g. Redis); undefined for the in-memory hub. */
  readonly backplane: Backplane | undefined
}

// Captured at load: a test that fakes timers must not stall the write path.
const later = globalThis.setImmediate
// A microtask through a settled promise: queueMicrotask() would allocate an AsyncResource per call.
const settled = Promise.resolve()
const soon = (fn: () => void): void => { void settled.then(fn) }
const clock = performance.now.bind(performance)

/** A round in progress: one batch, written to the session's clients in insertion order. */
class Round {
  constructor (
    readonly batch: Batch,
    readonly clients: IterableIterator<Client>,
    /** Resolves the broadcasts of the batch once every client has been written to. */
    readonly waiters: Array<() => void>
  ) {}
}

// A class, not an object literal: see Frame in writer.ts (a literal's allocation site would be pretenured
// while thousands of clients stay connected, and then every short-lived client went to the old generation).
class Client {
  /** The socket to write to directly, when the response allows it. */
  readonly socket: Socket | undefined
  /** Whether the socket's high-water mark is above `maxBufferedBytes`, so staying under it vouches for nothing. */
  readonly markAboveLimit: boolean
  constructor (
    readonly id: string,
    readonly res: RawResponse,
    readonly connectedAt: number,
    /** The address counted against `maxClientsPerIp`; undefined when that option is off. */
    readonly ip: string | undefined,
    readonly session: Session,
    readonly log: FastifyBaseLogger,
    /** The newest event this client has (from replay or a write): queued frames up to it are skipped. */
    public sentSeq: number,
    /** Backplane only: events up to this id were already written to it by its replay. */
    public after: string | undefined,
    maxBufferedBytes: number
  ) {
    this.socket = directSocket(res)
    this.markAboveLimit = this.socket !== undefined && this.socket.writableHighWaterMark > maxBufferedBytes
  }
}

/** Backplane only: a client whose replay is being read; live events meanwhile are held for it. */
interface PendingJoin {
  readonly held: Array<{ readonly id: string | undefined, readonly frame: Buffer }>
}

class Session {
  readonly clients = new Map<string, Client>()
  readonly history: History
  /** The sequence number of this session's newest event. */
  lastSeq = 0
  /** Frames broadcast but not yet in a round, their bytes, and their broadcasts' resolvers. */
  queue: QueuedFrame[] = []
  queueBytes = 0
  waiters: Array<() => void> = []
  // The arrays of the last finished round, emptied, to be the next queue: no array per round (see Frame).
  spareQueue: QueuedFrame[] = []
  spareWaiters: Array<() => void> = []
  round: Round | undefined = undefined
  scheduled = false
  /** The heartbeat period (see `heartbeatIdle`) in which this session last had a round written. */
  wroteIn = -1
  lastActivity: number
  /** Backplane only: clients being admitted. */
  readonly pending = new Set<PendingJoin>()
  constructor (readonly id: string, now: number, options: ResolvedOptions) {
    this.lastActivity = now
    this.history = new History(options.historySize, options.historyBytes)
  }
}

/** Per-kind numbers of {@link SessionRegistry.stats}. */
export interface RegistryStats {
  /** Sessions with at least one client (the design's `count`). */
  count: number
  /** Open streams. */
  clients: number
  /** Sessions held in memory, with or without clients (their history is kept for replay). */
  sessions: number
  /** Events held for replay, all sessions together. */
  historyEvents: number
  /** Bytes held for replay, all sessions together. */
  historyBytes: number
}

/**
 * All sessions of one kind. The hub creates two (conversation and debate); every
 * behaviour lives here once, and the kinds differ only in their event map `E`.
 */
export class SessionRegistry<E extends EventMap<E>> {
  readonly #sessions = new Map<string, Session>()
  /** Counts `heartbeatIdle()` calls: the periods between them. */
  #period = 0
  readonly #ctx: HubContext
  readonly #opts: ResolvedOptions
  /** The 'close' listener of every client's response (`this` is the response). */
  readonly #onClose: (this: RawResponse) => void
  /** The 'end' listener of every client's socket (`this` is the socket). */
  readonly #onPeerEnd: (this: Socket) => void

  constructor (readonly kind: SessionKind, ctx: HubContext) {
    this.#ctx = ctx
    this.#opts = ctx.options
    const registry = this
    this.#onClose = function (this: Tracked) { registry.#detach(this[kClient] as Client) }
    // The peer closed its side of an HTTP/1 connection (the only kind with this listener). Node's server ends such
    // a connection at once (it keeps no half-open one), so the stream is over. The response is finished now,
    // before the socket closes, and without its last chunk:
    // - a response still open when its socket closes makes Node create (and format the stack of) an 'aborted'
    //   error (about a fifth of a short-lived connection's CPU time in bench/, churn);
    // - the last chunk would be written to a peer that has, nearly always, closed its socket: a write, and a
    //   reset back from the peer (about 4 µs more per connection there).
    // A peer that half-closed and still reads sees the body end without the last chunk, as from Node without the hub.
    this.#onPeerEnd = function (this: Tracked) { registry.#end(this[kClient] as Client, false) }
  }

  /**
   * Opens an SSE stream on `reply` for `sessionId` and returns the new client's id.
   * Runs `authorize`, applies the client limits, commits the response (200,
   * `text/event-stream`), writes `retry:`, `connection_established` and any replay
   * after the request's `Last-Event-ID` (header, else `lastEventId` query parameter),
   * and removes the client when the request closes.
   * Rejects with a 4xx/503 `FST_ERR_SSE_HUB_*` error before any SSE byte is sent.
   */
  async add (sessionId: string, reply: FastifyReply): Promise<string> {
    return await this.open(sessionId, reply)
  }

  /**
   * {@link add}, synchronous when nothing has to be waited for (no `authorize`, no backplane): then it
   * returns the client id, or throws. Otherwise it returns the promise `add` does. For the stream
   * route, so that a connection costs no promises when none is needed.
   */
  open (sessionId: string, reply: FastifyReply): string | Promise<string> {
    this.#checkSessionId(sessionId)
    if (this.#opts.authorize === undefined && this.#ctx.backplane === undefined) return this.#attach(sessionId, reply, reply.request)
    return this.#authorizeAndJoin(sessionId, reply)
  }

  async #authorizeAndJoin (sessionId: string, reply: FastifyReply): Promise<string> {
    const request = reply.request
    const { authorize } = this.#opts
    if (authorize !== undefined) {
      const allowed = await authorize(request, { kind: this.kind, sessionId })
      if (allowed === false) throw new FST_ERR_SSE_HUB_FORBIDDEN()
    }
    const backplane = this.#ctx.backplane
    if (backplane !== undefined) return await this.#join(sessionId, reply, request, backplane)
    return this.#attach(sessionId, reply, request)
  }

  /**
   * Throws, before any SSE byte, when this reply cannot become a stream of `session` now.
   * Returns the address to count against `maxClientsPerIp`, undefined when that option is
   * off (reading `request.ip` costs a system call per connection).
   */
  #admit (reply: FastifyReply, request: FastifyRequest, session: Session | undefined): string | undefined {
    const ctx = this.#ctx
    const opts = this.#opts
    if (ctx.closing) throw new FST_ERR_SSE_HUB_CLOSING()
    if (reply.sent || reply.raw.headersSent) throw new FST_ERR_SSE_HUB_REPLY_SENT()
    const ip = opts.maxClientsPerIp === Infinity ? undefined : request.ip
    if (ip !== undefined && (ctx.clientsPerIp.get(ip) ?? 0) >= opts.maxClientsPerIp) {
      ctx.counters.clientsRejected++
      reply.header('retry-after', String(opts.retryAfter))
      throw new FST_ERR_SSE_HUB_TOO_MANY_CLIENTS_PER_IP()
    }
    const inSession = session === undefined ? 0 : session.clients.size + session.pending.size
    if (ctx.totalClients >= opts.maxClients || inSession >= opts.maxClientsPerSession) {
      ctx.counters.clientsRejected++
      reply.header('retry-after', String(opts.retryAfter))
      throw new FST_ERR_SSE_HUB_TOO_MANY_CLIENTS(ctx.totalClients >= opts.maxClients ? 'maxClients' : 'maxClientsPerSession')
    }
    return ip
  }

  /** Counts one stream (open, or waiting to open) against the limits. */
  #take (ip: string | undefined): void {
    const ctx = this.#ctx
    ctx.totalClients++
    if (ip === undefined) return
    ctx.clientsPerIp.set(ip, (ctx.clientsPerIp.get(ip) ?? 0) + 1)
  }

  /** Undoes {@link #take}; an address leaves the map at zero. */
  #give (ip: string | undefined): void {
    const ctx = this.#ctx
    ctx.totalClients--
    if (ip === undefined) return
    const fromIp = (ctx.clientsPerIp.get(ip) as number) - 1
    if (fromIp === 0) ctx.clientsPerIp.delete(ip)
    else ctx.clientsPerIp.set(ip, fromIp)
  }

  #attach (sessionId: string, reply: FastifyReply, request: FastifyRequest): string {
    const session = this.#sessions.get(sessionId)
    const ip = this.#admit(reply, request, session)
    const clientId = randomUUID()
    // The peer left while authorize ran: nothing to stream to, and 'close' has already fired.
    if (reply.raw.destroyed) return clientId

    const s = session ?? this.#createSession(sessionId)
    const lastEventId = readLastEventId(request)
    this.#open(s, reply, clientId, ip, lastEventId === undefined ? undefined : this.#replay(s, lastEventId), undefined, lastEventId)
    return clientId
  }

  /**
   * With a backplane: follow the session, read the replay, then open the stream. Live
   * events that arrive while the replay is read are held, and only those after it are
   * written, so the seam has no gap and no duplicate. Rejects with a 503 before any SSE
   * byte when the backplane is unavailable.
   */
  async #join (sessionId: string, reply: FastifyReply, request: FastifyRequest, backplane: Backplane): Promise<string> {
    const ctx = this.#ctx
    let s = this.#sessions.get(sessionId)
    const ip = this.#admit(reply, request, s)
    const clientId = randomUUID()
    if (reply.raw.destroyed) return clientId

    s ??= this.#createSession(sessionId)
    const pending: PendingJoin = { held: [] }
    s.pending.add(pending)
    this.#take(ip) // the place is taken while we wait
    const lastEventId = readLastEventId(request)
    let replay: Replay = { chunks: [], after: undefined }
    let subscribed = false
    try {
      await backplane.subscribe(this.kind, sessionId)
      subscribed = true
      if (lastEventId !== undefined) replay = await this.#readReplay(s, lastEventId, backplane)
      if (ctx.closing) throw new FST_ERR_SSE_HUB_CLOSING()
    } catch (err) {
      this.#leave(s, pending, subscribed, ip)
      // Unavailable or closing: both are answered 503.
      reply.header('retry-after', String(this.#opts.retryAfter))
      throw err
    }
    // The peer left while we waited.
    if (reply.raw.destroyed) {
      this.#leave(s, pending, true, ip)
      return clientId
    }
    s.pending.delete(pending)
    this.#give(ip)
    const after = replay.after
    for (const held of pending.held) {
      if (after === undefined || held.id === undefined || backplane.compareIds(held.id, after) > 0) replay.chunks.push(held.frame)
    }
    // Live events still on their way may be older than the replay (they come on another connection): the client skips those.
    this.#open(s, reply, clientId, ip, replay.chunks, after, lastEventId)
    return clientId
  }

  /** Undoes a join that did not become a client. */
  #leave (s: Session, pending: PendingJoin, subscribed: boolean, ip: string | undefined): void {
    s.pending.delete(pending)
    this.#give(ip)
    if (subscribed) (this.#ctx.backplane as Backplane).unsubscribe(this.kind, s.id)
    this.#forgetIfUnused(s)
  }

  /** Backplane only: the replay after `lastEventId`, or a `resync`. */
  async #readReplay (s: Session, lastEventId: string, backplane: Backplane): Promise<Replay> {
    const ctx = this.#ctx
    const { historySize, historyBytes } = this.#opts
    const read = await backplane.read(this.kind, s.id, lastEventId)
    let newestId: string
    let reason: ResyncEvent['reason'] = 'history_trimmed'
    if (read.found) {
      const chunks = read.events.map((e) => encodeEvent(e.id, e.type, e.data))
      const bytes = chunks.reduce((sum, c) => sum + c.length, 0)
      const last = read.events[read.events.length - 1]
      // Like the in-memory history: no more than historySize events or historyBytes bytes are replayed.
      if (chunks.length <= historySize && bytes <= historyBytes) {
        ctx.counters.replaysServed++
        ctx.counters.eventsSent += chunks.length
        return { chunks, after: last === undefined ? lastEventId : last.id }
      }
      newestId = (last as BackplaneEvent).id
    } else {
      newestId = read.newestId
      reason = read.reason
    }
    ctx.counters.resyncsSent++
    return { chunks: [this.#resyncFrame(s.id, newestId, reason)], after: newestId === '' ? undefined : newestId }
  }

  /**
   * Commits the stream, writes `retry:`, `connection_established` and `chunks` (the replay, or a `resync`),
   * and tracks the client. `after` and `replayFrom`: see {@link Client.after}, and the `Last-Event-ID` it
   * reconnected with, for the log.
   */
  #open (s: Session, reply: FastifyReply, clientId: string, ip: string | undefined, chunks: Buffer[] | undefined, after: string | undefined, replayFrom: string | undefined): void {
    const ctx = this.#ctx
    const opts = this.#opts
    const res = reply.raw
    const now = ctx.now()
    commitHeaders(reply)
    // Without a replay the greeting is written as the string it is: no Buffer to make.
    const greeting = retryField(opts.retry + Math.floor(Math.random() * (opts.retryJitter + 1))) +
      jsonEventText(undefined, 'connection_established', establishedJson(clientId, s.id, this.kind, now))
    if (chunks === undefined || chunks.length === 0) {
      res.write(greeting)
      ctx.counters.bytesSent += Buffer.byteLength(greeting)
    } else {
      chunks.unshift(Buffer.from(greeting))
      const initial = Buffer.concat(chunks)
      res.write(initial)
      ctx.counters.bytesSent += initial.length
    }
    ctx.counters.clientsConnected++

    // The replay (or resync) covers every event up to now, queued ones included.
    const client = new Client(clientId, res, now, ip, s, reply.log, s.lastSeq, after, this.#opts.maxBufferedBytes)
    // One shared listener per registry, not a closure per client: idle connections stay small.
    ;(res as Tracked)[kClient] = client
    res.on('close', this.#onClose)
    const socket = client.socket as Tracked | undefined
    if (socket !== undefined) {
      socket[kClient] = client
      // Before Node's own 'end' listener, which ends the connection (an HTTP server never keeps a half-open one).
      socket.prependListener('end', this.#onPeerEnd)
    }
    s.clients.set(clientId, client)
    this.#take(ip)
    if (debugging(client.log)) client.log.debug({ kind: this.kind, sessionId: s.id, clientId, replayFrom }, 'sse client connected')
  }

  #resyncFrame (sessionId: string, newestId: string, reason: ResyncEvent['reason']): Buffer {
    // The id field carries the session's newest id, so after reloading state the client resumes from now.
    return encodeJsonEvent(newestId, 'resync', eventJson('resync', { sessionId, reason }, this.#ctx.now()))
  }

  /**
   * Backplane only: one event of a session this process follows, from whichever
   * process broadcast it. Encoded once; written to every client of the session here.
   */
  deliver (sessionId: string, event: BackplaneEvent): void {
    const s = this.#sessions.get(sessionId)
    if (s === undefined) return
    const seq = this.#ctx.nextSeq()
    s.lastSeq = seq
    this.#deliverFrame(s, new Frame(seq, encodeEvent(event.id, event.type, event.data), event.id))
  }

  /**
   * Backplane only: events of the session were lost before reaching this process;
   * every client here (and every one joining) gets a `resync` and continues after `newestId`.
   */
  resync (sessionId: string, newestId: string): void {
    const s = this.#sessions.get(sessionId)
    if (s === undefined) return
    this.#ctx.counters.resyncsSent += s.clients.size
    for (const client of s.clients.values()) client.after = undefined
    // seq 0: every client gets it, whatever its replay covered.
    this.#deliverFrame(s, new Frame(0, this.#resyncFrame(sessionId, newestId, 'history_trimmed')))
  }

  #deliverFrame (s: Session, entry: QueuedFrame): void {
    s.lastActivity = this.#ctx.now()
    for (const p of s.pending) p.held.push({ id: entry.id, frame: entry.frame })
    if (s.clients.size > 0) this.#enqueue(s, entry)
  }

  /** The frames after `lastEventId` (undefined: none), or a `resync` event when that id is not in this session's history. */
  #replay (s: Session, lastEventId: string): Buffer[] | undefined {
    const ctx = this.#ctx
    const seq = isSafeEventId(lastEventId) ? ctx.parseEventId(lastEventId) : undefined
    const lookup = seq === undefined ? undefined : s.history.after(seq)
    if (lookup?.found === true) {
      ctx.counters.replaysServed++
      ctx.counters.eventsSent += lookup.events
      return lookup.events > 0 ? [lookup.frames] : undefined
    }
    ctx.counters.resyncsSent++
    const newest = s.history.newestSeq
    return [this.#resyncFrame(s.id, newest === undefined ? '' : ctx.formatEventId(newest), lookup?.reason ?? 'unknown_event_id')]
  }

  /** Removes a client and ends its stream cleanly. Returns false when it was not connected. */
  remove (sessionId: string, clientId: string): boolean {
    const client = this.#sessions.get(sessionId)?.clients.get(clientId)
    if (client === undefined) return false
    this.#end(client)
    return true
  }

  /**
   * Sends one event to every client of `sessionId` and keeps it for replay.
   * The payload is JSON-encoded once and framed once; the same bytes go to every client.
   * Throws a `FST_ERR_SSE_HUB_*` error, before anything is sent or stored, when the
   * session id, event type or payload is invalid or the event is over `maxEventBytes`.
   * Resolves with the event's id.
   */
  broadcast<K extends keyof E & string>(sessionId: string, type: K, payload: E[K]): Promise<string> {
    this.#checkSessionId(sessionId)
    const ctx = this.#ctx
    const problem = eventTypeProblem(type) ?? (RESERVED_EVENT_TYPES.has(type) ? 'it is reserved by the hub' : undefined)
    if (problem !== undefined) throw new FST_ERR_SSE_HUB_INVALID_EVENT_TYPE(`${JSON.stringify(String(type)).slice(0, 80)}: ${problem}`)
    if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
      throw new FST_ERR_SSE_HUB_INVALID_PAYLOAD('it must be a plain object')
    }
    let json: string
    try {
      json = eventJson(type, payload, ctx.now())
    } catch (err) {
      throw new FST_ERR_SSE_HUB_INVALID_PAYLOAD(`JSON cannot encode it (${(err as Error).message})`, { cause: err })
    }
    if (ctx.backplane !== undefined) return this.#publish(ctx.backplane, sessionId, type, json)
    const seq = ctx.nextSeq()
    const id = ctx.formatEventId(seq)
    const frame = encodeJsonEvent(id, type, json)
    if (frame.length > this.#opts.maxEventBytes) throw new FST_ERR_SSE_HUB_EVENT_TOO_LARGE(frame.length, this.#opts.maxEventBytes)

    const s = this.#sessions.get(sessionId) ?? this.#createSession(sessionId)
    s.lastActivity = ctx.now()
    s.history.push(seq, frame)
    s.lastSeq = seq
    ctx.counters.broadcasts++
    if (s.clients.size === 0) return Promise.resolve(id)
    const entry = new Frame(seq, frame)
    return new Promise((resolve) => { this.#enqueue(s, entry, () => { resolve(id) }) })
  }

  /**
   * Backplane only: persist, and the backplane delivers it to every process, this one
   * included. The id (and so the size of the `id:` line) is the backplane's, so the size
   * check counts the frame without it. A failure rejects the returned promise and is
   * logged, so a caller that does not await it still hears of it.
   */
  #publish (backplane: Backplane, sessionId: string, type: string, json: string): Promise<string> {
    const size = encodeJsonEvent(undefined, type, json).length
    if (size > this.#opts.maxEventBytes) throw new FST_ERR_SSE_HUB_EVENT_TOO_LARGE(size, this.#opts.maxEventBytes)
    const persisted = backplane.publish(this.kind, sessionId, type, json)
    persisted.then(() => { this.#ctx.counters.broadcasts++ }, (err: unknown) => {
      this.#ctx.log.error({ err, kind: this.kind, sessionId, type }, 'sse broadcast not persisted')
    })
    return persisted
  }

  /** Queues a frame for every client of `s`; the write happens in a round, right after the caller yields. */
  #enqueue (s: Session, entry: QueuedFrame, done?: () => void): void {
    s.queue.push(entry)
    s.queueBytes += entry.frame.length
    if (done !== undefined) s.waiters.push(done)
    if (s.round === undefined && !s.scheduled) {
      s.scheduled = true
      soon(() => {
        s.scheduled = false
        this.#pump(s)
      })
    }
  }

  /**
   * Runs rounds until the queue is empty. A round pauses for a turn of the event loop once it
   * has run for `fanOutTuning.sliceMs` (broadcasts meanwhile queue up for the next round), unless
   * the queue holds more than `maxBufferedBytes`: then it finishes now, so nothing grows unbounded.
   */
  #pump (s: Session): void {
    const { sliceMs, checkEvery } = fanOutTuning
    const max = this.#opts.maxBufferedBytes
    const deadline = clock() + sliceMs
    for (;;) {
      let round = s.round
      if (round === undefined) {
        if (s.queue.length === 0) return
        round = s.round = new Round(new Batch(s.queue), s.clients.values(), s.waiters)
        s.wroteIn = this.#period
        s.queue = s.spareQueue
        s.queueBytes = 0
        s.waiters = s.spareWaiters
      }
      const { batch, clients } = round
      let n = 0
      for (let next = clients.next(); next.done !== true; next = clients.next()) {
        this.#deliver(next.value, batch)
        if (++n % checkEvery === 0 && clock() >= deadline && s.queueBytes <= max) {
          later(() => { this.#pump(s) })
          return
        }
      }
      s.round = undefined
      const { entries } = round.batch
      const { waiters } = round
      for (const done of waiters) done()
      // Nothing refers to the finished round's arrays any more (resolving a broadcast runs no code now).
      entries.length = 0
      waiters.length = 0
      s.spareQueue = entries
      s.spareWaiters = waiters
    }
  }

  /** What of `batch` a client does not have yet: not what its replay covered; `comments` keeps seq-0 frames. */
  #missing (client: Client, batch: Batch, comments: boolean): Batch | undefined {
    // A client that joined after these frames were queued got them by replay.
    let part: Batch | undefined = client.sentSeq >= batch.firstSeq || !comments ? batch.after(client.sentSeq, comments) : batch
    const after = client.after
    if (part !== undefined && after !== undefined) {
      // Backplane: live events still on their way when its replay was read may be older than the replay.
      const backplane = this.#ctx.backplane as Backplane
      part = part.select((e) => e.id === undefined || backplane.compareIds(e.id, after) > 0)
      if (part !== undefined && part.events > 0) client.after = undefined
    }
    return part
  }

  /** Writes the part of `batch` a client does not have yet, then drops it if it stopped reading. */
  #deliver (client: Client, batch: Batch): void {
    const part = this.#missing(client, batch, true)
    if (part === undefined) return
    const underMark = this.#write(client, part)
    if (underMark === undefined) return
    if (part.events > 0) client.sentSeq = part.lastSeq
    // A socket under its high-water mark (at most maxBufferedBytes) needs no look at writableLength: a getter chain per write.
    if ((!underMark || client.markAboveLimit) && client.res.writableLength > this.#opts.maxBufferedBytes) {
      this.#dropSlow(client)
    } else {
      const counters = this.#ctx.counters
      counters.eventsSent += part.events
      counters.bytesSent += part.bytes
    }
  }

  /** Writes, before a client's stream ends, the events queued for it but not written yet. */
  #catchUp (client: Client): void {
    const s = client.session
    const pending = s.round === undefined ? s.queue : [...s.round.batch.entries, ...s.queue]
    if (pending.length === 0) return
    const part = this.#missing(client, new Batch(pending), false)
    if (part === undefined || this.#write(client, part) === undefined) return
    client.sentSeq = part.lastSeq
    this.#ctx.counters.eventsSent += part.events
    this.#ctx.counters.bytesSent += part.bytes
  }

  /**
   * Writes to one client. A write that throws (a broken `res.write` wrapper, say) costs that client
   * its stream, never the round: the others still get the batch. Undefined when it threw, else
   * whether the socket is known to be under its high-water mark (see `writeBatch`).
   */
  #write (client: Client, part: Batch): boolean | undefined {
    try {
      return write(client, part)
    } catch (err) {
      client.log.warn({ kind: this.kind, sessionId: client.session.id, clientId: client.id, err }, 'sse client dropped: write failed')
      this.#detach(client)
      client.res.destroy()
      return undefined
    }
  }

  #dropSlow (client: Client): void {
    this.#ctx.counters.clientsDroppedSlow++
    client.log.warn({ kind: this.kind, sessionId: client.session.id, clientId: client.id, buffered: client.res.writableLength }, 'sse client dropped: too slow')
    this.#detach(client)
    // Its backlog cannot be sent in time; destroying frees it now. The client reconnects and replays.
    client.res.destroy()
  }

  /** Writes a heartbeat comment to every client of one session, busy or not, in the next round. */
  heartbeat (sessionId: string): void {
    const s = this.#sessions.get(sessionId)
    if (s !== undefined && s.clients.size > 0) this.#enqueue(s, HEARTBEAT)
  }

  /**
   * A heartbeat comment to the clients of every session that has had nothing written to it since the
   * previous call. The hub's timer calls this every half `heartbeatInterval`, so no client goes longer than
   * `heartbeatInterval` without bytes, and a session streaming events at least that often gets no heartbeat:
   * its events already keep proxies and dead-peer detection busy, and a heartbeat round to thousands of
   * busy clients would be thousands of writes for nothing.
   */
  heartbeatIdle (): void {
    const period = this.#period++
    for (const s of this.#sessions.values()) {
      if (s.clients.size > 0 && s.wroteIn !== period) this.#enqueue(s, HEARTBEAT)
    }
  }

  /** Number of open streams of a session. */
  count (sessionId: string): number {
    return this.#sessions.get(sessionId)?.clients.size ?? 0
  }

  /**
   * Removes clients whose connection is gone, ends (cleanly, so they reconnect and
   * resume) clients connected for `maxAgeMs` or longer, and forgets sessions idle
   * for longer than `idleSessionTtl`. Returns the number of clients removed.
   */
  cleanup (maxAgeMs: number, now: number): number {
    let removed = 0
    for (const [sessionId, s] of this.#sessions) {
      for (const client of s.clients.values()) {
        const socket = client.res.socket
        if (client.res.destroyed || socket === null || socket.destroyed) {
          this.#detach(client)
          removed++
        } else if (now - client.connectedAt >= maxAgeMs) {
          this.#ctx.counters.clientsExpired++
          this.#end(client)
          removed++
        }
      }
      if (s.clients.size === 0 && s.pending.size === 0 && now - s.lastActivity > this.#opts.idleSessionTtl) {
        this.#sessions.delete(sessionId)
        s.history.clear()
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
    const stats: RegistryStats = { count: 0, clients: 0, sessions: this.#sessions.size, historyEvents: 0, historyBytes: 0 }
    for (const s of this.#sessions.values()) {
      if (s.clients.size > 0) stats.count++
      stats.clients += s.clients.size
      stats.historyEvents += s.history.length
      stats.historyBytes += s.history.bytes
    }
    return stats
  }

  #checkSessionId (sessionId: unknown): asserts sessionId is string {
    if (typeof sessionId !== 'string' || !this.#opts.sessionIdPattern.test(sessionId)) {
      const shown = typeof sessionId === 'string' ? JSON.stringify(sessionId.slice(0, 64)) : typeof sessionId
      throw new FST_ERR_SSE_HUB_INVALID_SESSION_ID(`${shown}: it must match ${String(this.#opts.sessionIdPattern)}`)
    }
  }

  #createSession (sessionId: string): Session {
    const s = new Session(sessionId, this.#ctx.now(), this.#opts)
    this.#sessions.set(sessionId, s)
    return s
  }

  /**
   * Ends a client's stream: first what was broadcast to it and not written yet (nothing accepted is lost),
   * then the response. `lastChunk` false: the peer has closed its side (see the `end` listener).
   */
  #end (client: Client, lastChunk = true): void {
    this.#catchUp(client)
    this.#detach(client)
    // Headers are sent: this only tells end() to write no terminating chunk.
    if (!lastChunk) (client.res as ServerResponse).chunkedEncoding = false
    client.res.end()
  }

  /**
   * Forgets a client and leaves no listener behind. Runs once per client: every caller
   * takes the client from its session's map, which this empties, and the close
   * listener that could call it later is removed here.
   */
  #detach (client: Client): void {
    client.res.removeListener('close', this.#onClose)
    const socket = client.socket as Tracked | undefined
    if (socket !== undefined) {
      socket.removeListener('end', this.#onPeerEnd)
      // Not deleted: a keep-alive socket serves other requests, and a deleted property slows every later access.
      socket[kClient] = undefined
    }
    const s = client.session
    s.clients.delete(client.id)
    this.#give(client.ip)
    if (s.clients.size === 0) s.lastActivity = this.#ctx.now()
    const backplane = this.#ctx.backplane
    if (backplane !== undefined) {
      backplane.unsubscribe(this.kind, s.id)
      this.#forgetIfUnused(s)
    }
    if (debugging(client.log)) client.log.debug({ kind: this.kind, sessionId: s.id, clientId: client.id }, 'sse client disconnected')
  }

  /** Backplane only: a session without clients keeps nothing here (its history is in the backplane). */
  #forgetIfUnused (s: Session): void {
    if (s.clients.size === 0 && s.pending.size === 0) this.#sessions.delete(s.id)
  }
}

const HEARTBEAT = new Frame(0, HEARTBEAT_FRAME)

// The client a response carries, as a property of the response (the shared close listener's one lookup);
// this replaced a WeakMap, whose entries the GC has to revisit as ephemerons.
const kClient = Symbol('fastify-sse-hub.client')
type Tracked = (RawResponse | Socket) & { [kClient]?: Client | undefined }

/** Whether debug logs are written: their fields are not even gathered otherwise (two per connection). */
function debugging (log: FastifyBaseLogger): boolean {
  // Fastify's no-op logger (`logger: false`) has no isLevelEnabled; pino's has.
  return (log as { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled?.('debug') === true
}

interface Replay {
  readonly chunks: Buffer[]
  /** The id of the newest event the replay covers; undefined when it covers nothing. */
  readonly after: string | undefined
}

function readLastEventId (request: FastifyRequest): string | undefined {
  // The header wins: EventSource sends it on every reconnect, with the URL (and its query) unchanged.
  const header = request.headers['last-event-id']
  if (typeof header === 'string') return header
  const query = request.query as Record<string, unknown> | null | undefined
  if (typeof query === 'object' && query !== null && typeof query.lastEventId === 'string') return query.lastEventId
  return undefined
}

const SSE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no'
})

/**
 * Commits the response as an SSE stream, with any header already set on the reply (by a hook, CORS, …).
 * On an app's route registered with @fastify/sse's `sse` option, through its context, so it knows.
 */
function commitHeaders (reply: FastifyReply): void {
  // @fastify/sse types `reply.sse` as always present; it is only there on routes registered with `sse`.
  const sse = (reply as { sse?: FastifyReply['sse'] }).sse
  // @fastify/sse's sendHeaders adds `Connection: keep-alive`, a header HTTP/2 forbids
  // (Node drops it with an UnsupportedWarning): on HTTP/2 the head is written here.
  if (sse !== undefined && reply.request.raw.httpVersionMajor < 2) {
    reply.headers(SSE_HEADERS)
    sse.keepAlive()
    sse.sendHeaders(200)
    return
  }
  sse?.keepAlive()
  const set = reply.getHeaders()
  // Node reads (never keeps or changes) the object it is given, so the shared one serves the common case.
  reply.raw.writeHead(200, hasKeys(set) ? { ...set, ...SSE_HEADERS } as Record<string, string> : SSE_HEADERS)
}

function hasKeys (o: object): boolean {
  for (const _ in o) return true
  return false
}
