import type { FastifyBaseLogger, FastifyReply, FastifyRequest, RouteHandlerMethod, RouteShorthandOptions } from 'fastify'
import Negotiator from 'negotiator'
import { randomBytes } from 'node:crypto'
import { initialBackplaneStats, type BackplaneStats } from './backplane/types.js'
import { FST_ERR_SSE_HUB_NOT_ACCEPTABLE } from './errors.js'
import type { ConversationEvents, DebateEvents, EventMap, SessionKind } from './events.js'
import type { ResolvedOptions } from './options.js'
import { SessionRegistry, type HubContext, type HubCounters, type RegistryStats } from './registry.js'

/** What `getStats()` returns. */
export interface HubStats extends HubCounters {
  conversations: RegistryStats
  debates: RegistryStats
  /** Open streams, both kinds. */
  clients: number
  /** Milliseconds since the hub started. */
  uptimeMs: number
  /** The backplane's state: `type` `'memory'` for the in-memory hub, else connection, lag and error numbers. */
  backplane: BackplaneStats
}

/** Options of {@link SseHub.stream}. */
export interface StreamRouteOptions {
  /** The route parameter holding the session id. Default `'id'`. */
  param?: string
}

/** Route options (with handler) for a stream endpoint; pass to `fastify.get(url, …)`. */
export type StreamRoute = RouteShorthandOptions & { handler: RouteHandlerMethod }

/**
 * The hub behind `fastify.sse`: one {@link SessionRegistry} per session kind, one
 * heartbeat timer and one cleanup timer for all of them, and shared counters.
 * The `…Conversation…` / `…Debate…` methods are the design's names for the two registries.
 */
export class SseHub<C extends EventMap<C> = ConversationEvents, D extends EventMap<D> = DebateEvents> {
  /** Conversation sessions. */
  readonly conversations: SessionRegistry<C>
  /** Debate sessions. */
  readonly debates: SessionRegistry<D>
  readonly #ctx: HubContext
  readonly #startedAt: number
  #heartbeatTimer: NodeJS.Timeout | undefined
  #cleanupTimer: NodeJS.Timeout | undefined

  constructor (options: ResolvedOptions, log: FastifyBaseLogger) {
    // A per-start epoch in every id: an id from before a restart is recognised as unknown, never misread.
    const epoch = Date.now().toString(36) + randomBytes(2).toString('hex')
    const prefix = epoch + '-'
    let seq = 0
    this.#ctx = {
      options,
      log,
      counters: {
        broadcasts: 0,
        eventsSent: 0,
        bytesSent: 0,
        clientsDroppedSlow: 0,
        clientsExpired: 0,
        replaysServed: 0,
        resyncsSent: 0,
        clientsConnected: 0,
        clientsRejected: 0
      },
      totalClients: 0,
      clientsPerIp: new Map(),
      closing: false,
      nextSeq: () => ++seq,
      formatEventId: (n) => prefix + n,
      parseEventId: (id) => {
        if (!id.startsWith(prefix)) return undefined
        const digits = id.slice(prefix.length)
        return /^[1-9][0-9]{0,15}$/.test(digits) ? Number(digits) : undefined
      },
      now: () => Date.now(),
      backplane: options.backplane === 'memory' ? undefined : options.backplane
    }
    this.#startedAt = Date.now()
    this.conversations = new SessionRegistry<C>('conversation', this.#ctx)
    this.debates = new SessionRegistry<D>('debate', this.#ctx)
  }

  /** The registry of a kind. */
  registry (kind: 'conversation'): SessionRegistry<C>
  registry (kind: 'debate'): SessionRegistry<D>
  registry (kind: SessionKind): SessionRegistry<C> | SessionRegistry<D>
  registry (kind: SessionKind): SessionRegistry<C> | SessionRegistry<D> {
    return kind === 'conversation' ? this.conversations : this.debates
  }

  /**
   * Route options for a stream endpoint of `kind`, session id from the `:id` parameter:
   * `fastify.get('/api/conversations/sessions/:id/stream', fastify.sse.stream('conversation'))`.
   * Registered on your own instance, so prefixes, hooks and encapsulation apply as usual.
   * A client whose `Accept` header refuses `text/event-stream` gets 406 (`FST_ERR_SSE_HUB_NOT_ACCEPTABLE`).
   */
  stream (kind: SessionKind, options: StreamRouteOptions = {}): StreamRoute {
    const param = options.param ?? 'id'
    const registry = this.registry(kind)
    return {
      // No `sse` route option: @fastify/sse's per-reply context (its own close listeners, heartbeat timer and
      // header commit) would duplicate what the hub does once for all clients; `bench/` measured it at
      // about 1.3 KB of heap and 20 µs of CPU per connection. The hub commits the response itself.
      // A HEAD request would hold a stream that can carry no body.
      exposeHeadRoute: false,
      // Not async: Fastify sends what a handler throws as the error reply, and waits only for a returned
      // promise, which needs one only with `authorize` or a backplane.
      handler: function sseHubStream (request, reply) {
        if (!acceptsEventStream(request)) throw new FST_ERR_SSE_HUB_NOT_ACCEPTABLE()
        const params = request.params as Record<string, string | undefined>
        const opened = registry.open(params[param] as string, reply)
        // Resolving with undefined: Fastify would send a value as the reply.
        if (typeof opened !== 'string') return opened.then(nothing)
      }
    }
  }

  /** Opens a conversation stream on `reply`; see {@link SessionRegistry.add}. */
  addConversationClient (sessionId: string, reply: FastifyReply): Promise<string> {
    return this.conversations.add(sessionId, reply)
  }

  /** Ends and removes one conversation client; false when it was not connected. */
  removeConversationClient (sessionId: string, clientId: string): boolean {
    return this.conversations.remove(sessionId, clientId)
  }

  /** Sends a typed event to every client of a conversation; see {@link SessionRegistry.broadcast}. */
  broadcastToConversation<K extends keyof C & string>(sessionId: string, type: K, payload: C[K]): Promise<string> {
    return this.conversations.broadcast(sessionId, type, payload)
  }

  /** Open streams of a conversation. */
  getConversationClientCount (sessionId: string): number {
    return this.conversations.count(sessionId)
  }

  /** Whether a conversation has any open stream. */
  hasConversationClients (sessionId: string): boolean {
    return this.conversations.count(sessionId) > 0
  }

  /** Writes a heartbeat comment (not an event) to every client of a conversation now. */
  sendConversationHeartbeat (sessionId: string): void {
    this.conversations.heartbeat(sessionId)
  }

  /** Opens a debate stream on `reply`; see {@link SessionRegistry.add}. */
  addDebateClient (debateId: string, reply: FastifyReply): Promise<string> {
    return this.debates.add(debateId, reply)
  }

  /** Ends and removes one debate client; false when it was not connected. */
  removeDebateClient (debateId: string, clientId: string): boolean {
    return this.debates.remove(debateId, clientId)
  }

  /** Sends a typed event to every client of a debate; see {@link SessionRegistry.broadcast}. */
  broadcastToDebate<K extends keyof D & string>(debateId: string, type: K, payload: D[K]): Promise<string> {
    return this.debates.broadcast(debateId, type, payload)
  }

  /** Open streams of a debate. */
  getDebateClientCount (debateId: string): number {
    return this.debates.count(debateId)
  }

  /** Whether a debate has any open stream. */
  hasDebateClients (debateId: string): boolean {
    return this.debates.count(debateId) > 0
  }

  /** Writes a heartbeat comment (not an event) to every client of a debate now. */
  sendDebateHeartbeat (debateId: string): void {
    this.debates.heartbeat(debateId)
  }

  /** Sessions and clients per kind, and the hub's counters. */
  getStats (): HubStats {
    const conversations = this.conversations.stats()
    const debates = this.debates.stats()
    return {
      conversations,
      debates,
      clients: conversations.clients + debates.clients,
      uptimeMs: Date.now() - this.#startedAt,
      ...this.#ctx.counters,
      backplane: this.#ctx.backplane?.stats() ?? initialBackplaneStats('memory', true)
    }
  }

  /**
   * Removes clients whose connection is gone and ends clients connected for `maxAgeMs` or longer
   * (default: the `maxConnectionAge` option) so they reconnect and resume. Runs by
   * itself every `cleanupInterval`. Returns the number of clients removed.
   */
  cleanupStaleConnections (maxAgeMs: number = this.#ctx.options.maxConnectionAge): number {
    const now = this.#ctx.now()
    return this.conversations.cleanup(maxAgeMs, now) + this.debates.cleanup(maxAgeMs, now)
  }

  /**
   * Connects the backplane, if any (the plugin awaits this during `register`); rejects
   * with `FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE` when it cannot be reached in time.
   */
  async connect (): Promise<void> {
    await this.#ctx.backplane?.start({
      deliver: (kind, sessionId, event) => { this.registry(kind).deliver(sessionId, event) },
      resync: (kind, sessionId, newestId) => { this.registry(kind).resync(sessionId, newestId) },
      log: this.#ctx.log
    })
  }

  /** Releases the backplane's connections (the plugin calls this in `onClose`). */
  async disconnect (): Promise<void> {
    await this.#ctx.backplane?.close()
  }

  /** Starts the heartbeat and cleanup timers (the plugin calls this in `onReady`). */
  start (): void {
    const { heartbeatInterval, cleanupInterval } = this.#ctx.options
    if (heartbeatInterval > 0 && this.#heartbeatTimer === undefined) {
      // Every half interval, to the sessions idle since the last tick: silence never exceeds the interval.
      this.#heartbeatTimer = setInterval(() => {
        this.conversations.heartbeatIdle()
        this.debates.heartbeatIdle()
      }, heartbeatInterval / 2).unref()
    }
    if (cleanupInterval > 0 && this.#cleanupTimer === undefined) {
      this.#cleanupTimer = setInterval(() => {
        const removed = this.cleanupStaleConnections()
        if (removed > 0) this.#ctx.log.debug({ removed }, 'sse cleanup removed clients')
      }, cleanupInterval).unref()
    }
  }

  /** Refuses new clients and ends every stream (the plugin calls this in `preClose`). */
  endAll (): void {
    this.#ctx.closing = true
    this.conversations.endAll()
    this.debates.endAll()
  }

  /** Stops the timers (the plugin calls this in `onClose`). */
  stop (): void {
    clearInterval(this.#heartbeatTimer)
    clearInterval(this.#cleanupTimer)
    this.#heartbeatTimer = undefined
    this.#cleanupTimer = undefined
  }
}

function nothing (): void {}

// SSE is always UTF-8, so a client asking for that charset explicitly is served too.
const EVENT_STREAM = ['text/event-stream', 'text/event-stream;charset=utf-8']

/**
 * Whether the request's `Accept` header admits `text/event-stream` (RFC 9110 §12.5.1, via `negotiator`).
 * No header, or the values EventSource and curl send, need no parsing.
 */
function acceptsEventStream (request: FastifyRequest): boolean {
  const accept = request.headers.accept
  if (accept === undefined || accept === '' || accept === 'text/event-stream' || accept === '*/*') return true
  return new Negotiator(request).mediaType(EVENT_STREAM) !== undefined
}
