import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import { randomUUID } from 'node:crypto'
import type { Socket } from 'node:net'
import {
  FST_ERR_SSE_HUB_CLOSING,
  FST_ERR_SSE_HUB_EVENT_TOO_LARGE,
  FST_ERR_SSE_HUB_FORBIDDEN,
  FST_ERR_SSE_HUB_INVALID_EVENT_TYPE,
  FST_ERR_SSE_HUB_INVALID_PAYLOAD,
  FST_ERR_SSE_HUB_INVALID_SESSION_ID,
  FST_ERR_SSE_HUB_REPLY_SENT,
  FST_ERR_SSE_HUB_TOO_MANY_CLIENTS
} from './errors.js'
import { RESERVED_EVENT_TYPES, type EventMap, type SessionKind } from './events.js'
import { HEARTBEAT_FRAME, encodeEvent, encodeRetry, eventJson, eventTypeProblem, isSafeEventId } from './frame.js'
import type { ResolvedOptions } from './options.js'
import { Batch, directSocket, fanOutTuning, writeBatch as write, type QueuedFrame } from './writer.js'

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
  /** Streams refused with 503 by `maxClients` / `maxClientsPerSession`. */
  clientsRejected: number
}

/** What one registry needs from its hub. */
export interface HubContext {
  readonly options: ResolvedOptions
  readonly counters: HubCounters
  readonly log: FastifyBaseLogger
  /** Open streams across both kinds (for `maxClients`). */
  totalClients: number
  /** True from `preClose` on. */
  closing: boolean
  /** The next sequence number of this hub; it increases across all sessions, so no two events share an id. */
  nextSeq: () => number
  /** The event id of a sequence number: `<hub epoch>-<seq>`. */
  formatEventId: (seq: number) => string
  /** The sequence number of an id this hub issued; undefined for any other string. */
  parseEventId: (id: string) => number | undefined
  now: () => number
}

type HistoryEntry = QueuedFrame

// Captured at load: a test that fakes timers must not stall the write path.
const later = globalThis.setImmediate
// A microtask through a settled promise: queueMicrotask() would allocate an AsyncResource per call.
const settled = Promise.resolve()
const soon = (fn: () => void): void => { void settled.then(fn) }
const clock = performance.now.bind(performance)

/** A round in progress: one batch, written to the session's clients in insertion order. */
interface Round {
  readonly batch: Batch
  readonly clients: IterableIterator<Client>
  /** Resolves the broadcasts of the batch once every client has been written to. */
  readonly waiters: Array<() => void>
}

interface Client {
  readonly id: string
  readonly res: RawResponse
  readonly connectedAt: number
  readonly session: Session
  readonly log: FastifyBaseLogger
  /** The socket to write to directly, when the response allows it. */
  readonly socket: Socket | undefined
  /** The newest event this client has (from replay or a write): queued frames up to it are skipped. */
  sentSeq: number
  detached: boolean
}

class Session {
  readonly clients = new Map<string, Client>()
  // Oldest first, from index `head`; dropped entries are compacted away in bulk.
  history: HistoryEntry[] = []
  head = 0
  historyBytes = 0
  /** The sequence number of this session's newest event. */
  lastSeq = 0
  /** Frames broadcast but not yet in a round, their bytes, and their broadcasts' resolvers. */
  queue: QueuedFrame[] = []
  queueBytes = 0
  waiters: Array<() => void> = []
  round: Round | undefined = undefined
  scheduled = false
  lastActivity: number
  constructor (readonly id: string, now: number) {
    this.lastActivity = now
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
  readonly #ctx: HubContext
  readonly #opts: ResolvedOptions
  readonly #clientOf = new WeakMap<RawResponse, Client>()
  /** The 'close' listener of every client's response (`this` is the response). */
  readonly #onClose: (this: RawResponse) => void

  constructor (readonly kind: SessionKind, ctx: HubContext) {
    this.#ctx = ctx
    this.#opts = ctx.options
    const registry = this
    this.#onClose = function (this: RawResponse) { registry.#detach(registry.#clientOf.get(this) as Client) }
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
    const request = reply.request
    this.#checkSessionId(sessionId)
    const { authorize } = this.#opts
    if (authorize !== undefined) {
      const allowed = await authorize(request, { kind: this.kind, sessionId })
      if (allowed === false) throw new FST_ERR_SSE_HUB_FORBIDDEN()
    }
    return this.#attach(sessionId, reply, request)
  }

  #attach (sessionId: string, reply: FastifyReply, request: FastifyRequest): string {
    const ctx = this.#ctx
    const opts = this.#opts
    if (ctx.closing) throw new FST_ERR_SSE_HUB_CLOSING()
    const res = reply.raw
    if (reply.sent || res.headersSent) throw new FST_ERR_SSE_HUB_REPLY_SENT()
    const session = this.#sessions.get(sessionId)
    const inSession = session === undefined ? 0 : session.clients.size
    if (ctx.totalClients >= opts.maxClients || inSession >= opts.maxClientsPerSession) {
      ctx.counters.clientsRejected++
      reply.header('retry-after', String(opts.retryAfter))
      throw new FST_ERR_SSE_HUB_TOO_MANY_CLIENTS(ctx.totalClients >= opts.maxClients ? 'maxClients' : 'maxClientsPerSession')
    }

    const clientId = randomUUID()
    // The peer left while authorize ran: nothing to stream to, and 'close' has already fired.
    if (res.destroyed) return clientId

    commitHeaders(reply)
    const s = session ?? this.#createSession(sessionId)
    const chunks: Buffer[] = [
      encodeRetry(opts.retry + Math.floor(Math.random() * (opts.retryJitter + 1))),
      encodeEvent(undefined, 'connection_established', eventJson('connection_established', { clientId, sessionId, kind: this.kind }, ctx.now()))
    ]
    const lastEventId = readLastEventId(request)
    if (lastEventId !== undefined) this.#replay(s, lastEventId, chunks)
    const initial = Buffer.concat(chunks)
    res.write(initial)
    ctx.counters.bytesSent += initial.length
    ctx.counters.clientsConnected++

    const client: Client = {
      id: clientId,
      res,
      connectedAt: ctx.now(),
      session: s,
      log: reply.log,
      socket: directSocket(res),
      // The replay (or resync) covers every event up to now, queued ones included.
      sentSeq: s.lastSeq,
      detached: false
    }
    // One shared listener per registry, not a closure per client: idle connections stay small.
    this.#clientOf.set(res, client)
    res.on('close', this.#onClose)
    s.clients.set(clientId, client)
    ctx.totalClients++
    client.log.debug({ kind: this.kind, sessionId, clientId, replayFrom: lastEventId }, 'sse client connected')
    return clientId
  }

  /** Appends to `out` the frames after `lastEventId`, or a `resync` event when that id is not in this session's history. */
  #replay (s: Session, lastEventId: string, out: Buffer[]): void {
    const ctx = this.#ctx
    const seq = isSafeEventId(lastEventId) ? ctx.parseEventId(lastEventId) : undefined
    const { history, head } = s
    let reason: 'unknown_event_id' | 'history_trimmed' = 'unknown_event_id'
    if (seq !== undefined) {
      const at = findSeq(history, head, seq)
      if (at >= 0) {
        for (let i = at + 1; i < history.length; i++) out.push((history[i] as HistoryEntry).frame)
        ctx.counters.replaysServed++
        ctx.counters.eventsSent += history.length - at - 1
        return
      }
      // An id of ours, older than what is kept: the session has moved on past it.
      const oldest = history[head]
      if (oldest === undefined || seq < oldest.seq) reason = 'history_trimmed'
    }
    ctx.counters.resyncsSent++
    // The id field carries the session's newest id, so after reloading state the client resumes from now.
    const newest = history.length > head ? (history[history.length - 1] as HistoryEntry) : undefined
    out.push(encodeEvent(newest === undefined ? '' : ctx.formatEventId(newest.seq), 'resync',
      eventJson('resync', { sessionId: s.id, reason }, ctx.now())))
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
   * Resolves with the event's id once it has been written to every client of the session.
   *
   * Writes happen right after the calling code yields (a microtask later): every event
   * broadcast to a session until then reaches each client in one write, and a fan-out
   * to many clients is spread over event-loop turns (see `fanOutTuning`) so other work
   * keeps running. Each client still gets every event once, in order.
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
    const seq = ctx.nextSeq()
    const id = ctx.formatEventId(seq)
    const frame = encodeEvent(id, type, json)
    if (frame.length > this.#opts.maxEventBytes) throw new FST_ERR_SSE_HUB_EVENT_TOO_LARGE(frame.length, this.#opts.maxEventBytes)

    const s = this.#sessions.get(sessionId) ?? this.#createSession(sessionId)
    s.lastActivity = ctx.now()
    const entry: HistoryEntry = { seq, frame }
    this.#remember(s, entry)
    s.lastSeq = seq
    ctx.counters.broadcasts++
    if (s.clients.size === 0) return Promise.resolve(id)
    return new Promise((resolve) => { this.#enqueue(s, entry, () => { resolve(id) }) })
  }

  #remember (s: Session, entry: HistoryEntry): void {
    const { historySize, historyBytes } = this.#opts
    if (historySize === 0) return
    const { frame } = entry
    s.history.push(entry)
    s.historyBytes += frame.length
    while (s.history.length - s.head > historySize || s.historyBytes > historyBytes) {
      s.historyBytes -= (s.history[s.head] as HistoryEntry).frame.length
      s.head++
    }
    if (s.head >= 64 && s.head * 2 >= s.history.length) {
      s.history = s.history.slice(s.head)
      s.head = 0
    }
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
        round = s.round = { batch: new Batch(s.queue), clients: s.clients.values(), waiters: s.waiters }
        s.queue = []
        s.queueBytes = 0
        s.waiters = []
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
      for (const done of round.waiters) done()
    }
  }

  /** Writes the part of `batch` a client does not have yet, then drops it if it stopped reading. */
  #deliver (client: Client, batch: Batch): void {
    let part: Batch | undefined = batch
    // A client that joined after these frames were queued got them by replay.
    if (client.sentSeq >= batch.firstSeq) part = batch.after(client.sentSeq, true)
    if (part === undefined || !this.#write(client, part)) return
    if (part.events > 0) client.sentSeq = part.lastSeq
    if (client.res.writableLength > this.#opts.maxBufferedBytes) {
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
    const part = new Batch(pending).after(client.sentSeq, false)
    if (part === undefined || !this.#write(client, part)) return
    client.sentSeq = part.lastSeq
    this.#ctx.counters.eventsSent += part.events
    this.#ctx.counters.bytesSent += part.bytes
  }

  /**
   * Writes to one client. A write that throws (a broken `res.write` wrapper, say) costs that client
   * its stream, never the round: the others still get the batch. False when it threw.
   */
  #write (client: Client, part: Batch): boolean {
    try {
      write(client, part)
      return true
    } catch (err) {
      client.log.warn({ kind: this.kind, sessionId: client.session.id, clientId: client.id, err }, 'sse client dropped: write failed')
      this.#detach(client)
      client.res.destroy()
      return false
    }
  }

  #dropSlow (client: Client): void {
    this.#ctx.counters.clientsDroppedSlow++
    client.log.warn({ kind: this.kind, sessionId: client.session.id, clientId: client.id, buffered: client.res.writableLength }, 'sse client dropped: too slow')
    this.#detach(client)
    // Its backlog cannot be sent in time; destroying frees it now. The client reconnects and replays.
    client.res.destroy()
  }

  /** Writes a heartbeat comment to every client of one session (all sessions when omitted), in the next round. */
  heartbeat (sessionId?: string): void {
    if (sessionId !== undefined) {
      const s = this.#sessions.get(sessionId)
      if (s !== undefined && s.clients.size > 0) this.#enqueue(s, HEARTBEAT)
      return
    }
    for (const s of this.#sessions.values()) {
      if (s.clients.size > 0) this.#enqueue(s, HEARTBEAT)
    }
  }

  /** Number of open streams of a session. */
  count (sessionId: string): number {
    return this.#sessions.get(sessionId)?.clients.size ?? 0
  }

  /**
   * Removes clients whose connection is gone, ends (cleanly, so they reconnect and
   * resume) clients connected for longer than `maxAgeMs`, and forgets sessions idle
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
        } else if (now - client.connectedAt > maxAgeMs) {
          this.#ctx.counters.clientsExpired++
          this.#end(client)
          removed++
        }
      }
      if (s.clients.size === 0 && now - s.lastActivity > this.#opts.idleSessionTtl) this.#sessions.delete(sessionId)
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
      stats.historyEvents += s.history.length - s.head
      stats.historyBytes += s.historyBytes
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
    const s = new Session(sessionId, this.#ctx.now())
    this.#sessions.set(sessionId, s)
    return s
  }

  #end (client: Client): void {
    // Nothing accepted is lost: events broadcast before the end still reach this client.
    this.#catchUp(client)
    this.#detach(client)
    client.res.end()
  }

  /** Forgets a client; idempotent, and leaves no listener behind. */
  #detach (client: Client): void {
    if (client.detached) return
    client.detached = true
    client.res.removeListener('close', this.#onClose)
    const s = client.session
    s.clients.delete(client.id)
    this.#ctx.totalClients--
    if (s.clients.size === 0) s.lastActivity = this.#ctx.now()
    client.log.debug({ kind: this.kind, sessionId: s.id, clientId: client.id }, 'sse client disconnected')
  }
}

const HEARTBEAT: QueuedFrame = { seq: 0, frame: HEARTBEAT_FRAME }

// Ids increase, so the entry is found by binary search; -1 when absent.
function findSeq (history: readonly HistoryEntry[], head: number, seq: number): number {
  let lo = head
  let hi = history.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const at = (history[mid] as HistoryEntry).seq
    if (at === seq) return mid
    if (at < seq) lo = mid + 1
    else hi = mid - 1
  }
  return -1
}

function readLastEventId (request: FastifyRequest): string | undefined {
  // The header wins: EventSource sends it on every reconnect, with the URL (and its query) unchanged.
  const header = request.headers['last-event-id']
  if (typeof header === 'string') return header
  const query = request.query as Record<string, unknown> | null | undefined
  if (typeof query === 'object' && query !== null && typeof query.lastEventId === 'string') return query.lastEventId
  return undefined
}

/** Commits the response as an SSE stream. With @fastify/sse on the route, through it; otherwise directly. */
function commitHeaders (reply: FastifyReply): void {
  reply
    .header('content-type', 'text/event-stream')
    .header('cache-control', 'no-cache, no-transform')
    .header('x-accel-buffering', 'no')
  // @fastify/sse types `reply.sse` as always present; it is only there on routes registered with `sse`.
  const sse = (reply as { sse?: FastifyReply['sse'] }).sse
  if (sse !== undefined) {
    sse.keepAlive()
    sse.sendHeaders(200)
  } else {
    reply.raw.writeHead(200, reply.getHeaders() as Record<string, string>)
  }
}
