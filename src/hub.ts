/*
 * The hub behind `fastify.sse`: one SessionRegistry (with its counters) per kind, the design's `…Conversation…` /
 * `…Debate…` methods, one heartbeat timer and one cleanup timer for every kind, the hub's stats and metrics.
 */
import type { FastifyBaseLogger, FastifyReply } from 'fastify'
import type { BackplaneStats } from './backplane/types.js'
import { Counters, sumCounters, type HubCounters, type RegistryStats } from './counters.js'
import { FST_ERR_SSE_HUB_UNKNOWN_KIND } from './errors.js'
import { EventIds } from './event-ids.js'
import { BackplaneLog } from './event-log/backplane.js'
import { MemoryLog } from './event-log/memory.js'
import type { EventLog } from './event-log/types.js'
import type { ConversationEvents, DebateEvents, EventMap, SessionKind, SessionKinds } from './events.js'
import type { HubParts } from './hub-parts.js'
import { ClientLimits } from './limits.js'
import type { ResolvedOptions } from './options.js'
import { SessionRegistry } from './registry.js'
import { streamRoute, type StreamRoute, type StreamRouteOptions } from './route.js'
import { SessionBudget } from './sessions.js'
import { logWelcomer, SnapshotWelcomer } from './snapshot.js'
import { PrometheusMetrics } from './metrics/prometheus.js'
import { NO_METRICS, type HubMetrics } from './metrics/types.js'

/** What `getStats()` returns. */
export interface HubStats extends HubCounters {
  conversations: RegistryStats
  debates: RegistryStats
  /** Every kind's numbers, the two above included. */
  kinds: Record<string, RegistryStats>
  /** Open streams, every kind. */
  clients: number
  /** Milliseconds since the hub started. */
  uptimeMs: number
  /** The backplane's state: `type` `'memory'` for the in-memory hub, else connection, lag and error numbers. */
  backplane: BackplaneStats
}

/**
 * The hub behind `fastify.sse`. `C` and `D` are the conversation and debate event maps; every kind's map
 * is in {@link SessionKinds}.
 */
export class SseHub<C extends EventMap<C> = ConversationEvents, D extends EventMap<D> = DebateEvents> {
  /** Conversation sessions. */
  readonly conversations: SessionRegistry<C>
  /** Debate sessions. */
  readonly debates: SessionRegistry<D>
  readonly #registries = new Map<string, SessionRegistry<object>>()
  readonly #counters = new Map<string, Counters>()
  readonly #metrics: HubMetrics
  readonly #parts: HubParts
  readonly #startedAt = Date.now()
  #heartbeatTimer: NodeJS.Timeout | undefined
  #cleanupTimer: NodeJS.Timeout | undefined

  constructor (options: ResolvedOptions, logger: FastifyBaseLogger) {
    const now = (): number => Date.now()
    const ids = new EventIds()
    // The one place that picks the metrics: none, or in the application's registry.
    const metrics = this.#metrics = options.metrics === undefined ? NO_METRICS : new PrometheusMetrics(options.metrics)
    // The one place that picks the event log: in memory, or on the backplane the options name.
    const eventLog: EventLog = options.backplane === 'memory'
      ? new MemoryLog(ids, options, now)
      : new BackplaneLog(options.backplane, ids, options, metrics.backplaneTimer(options.backplane), logger, now)
    this.#parts = {
      options,
      logger,
      limits: new ClientLimits(options),
      budget: new SessionBudget(options.maxSessions, options.idleSessionTtl, options.closedSessionTtl),
      eventLog,
      // The one place that picks what a new client gets first.
      welcomer: options.snapshot === undefined ? logWelcomer(eventLog) : new SnapshotWelcomer(eventLog, options.snapshot, logger, now),
      tuning: options.fanOutSlice,
      now
    }
    for (const kind of ['conversation', 'debate', ...options.kinds]) {
      const counters = new Counters()
      this.#counters.set(kind, counters)
      this.#registries.set(kind, new SessionRegistry(kind as SessionKind, this.#parts, counters, metrics.fanOutTimer(kind)))
    }
    this.conversations = this.#registries.get('conversation') as SessionRegistry<C>
    this.debates = this.#registries.get('debate') as SessionRegistry<D>
  }

  /**
   * The registry of a kind: `conversation`, `debate`, or one of the `kinds` option.
   * Throws `FST_ERR_SSE_HUB_UNKNOWN_KIND` for any other name.
   */
  kind<K extends SessionKind>(name: K): SessionRegistry<SessionKinds[K]> {
    const registry = this.#registries.get(name)
    if (registry === undefined) throw new FST_ERR_SSE_HUB_UNKNOWN_KIND(JSON.stringify(String(name)).slice(0, 80))
    return registry as SessionRegistry<SessionKinds[K]>
  }

  /**
   * Route options for a stream endpoint of `kind`, session id from the `:id` parameter:
   * `fastify.get('/api/conversations/sessions/:id/stream', fastify.sse.stream('conversation'))`.
   * Registered on your own instance, so prefixes, hooks and encapsulation apply as usual.
   * A client whose `Accept` header refuses `text/event-stream` gets 406 (`FST_ERR_SSE_HUB_NOT_ACCEPTABLE`).
   * Throws `FST_ERR_SSE_HUB_UNKNOWN_KIND` for an undeclared kind.
   */
  stream (kind: SessionKind, options: StreamRouteOptions = {}): StreamRoute {
    return streamRoute(this.kind(kind), options, this.#counters.get(kind) as Counters)
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

  /** Sends the final event of a conversation (if given) and closes it; see {@link SessionRegistry.close}. */
  closeConversation<K extends keyof C & string>(sessionId: string, ...final: [] | [type: K, payload: C[K]]): Promise<string> {
    return this.conversations.close(sessionId, ...final)
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

  /** Sends the final event of a debate (if given) and closes it; see {@link SessionRegistry.close}. */
  closeDebate<K extends keyof D & string>(debateId: string, ...final: [] | [type: K, payload: D[K]]): Promise<string> {
    return this.debates.close(debateId, ...final)
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
    const kinds: Record<string, RegistryStats> = {}
    let clients = 0
    for (const [kind, registry] of this.#registries) {
      const stats = kinds[kind] = registry.stats()
      clients += stats.clients
    }
    return {
      conversations: kinds.conversation as RegistryStats,
      debates: kinds.debate as RegistryStats,
      kinds,
      clients,
      uptimeMs: Date.now() - this.#startedAt,
      ...sumCounters(this.#counters.values()),
      backplane: this.#parts.eventLog.stats()
    }
  }

  /**
   * Removes clients whose connection is gone, ends clients connected for `maxAgeMs` or longer
   * (default: the `maxConnectionAge` option) so they reconnect and resume, and forgets sessions idle for
   * longer than `idleSessionTtl`. Runs by itself every `cleanupInterval`. Returns the number of clients removed.
   */
  cleanupStaleConnections (maxAgeMs: number = this.#parts.options.maxConnectionAge): number {
    const now = this.#parts.now()
    let removed = 0
    for (const registry of this.#registries.values()) removed += registry.cleanup(maxAgeMs, now)
    this.#parts.budget.expire(now)
    return removed
  }

  /**
   * Connects the event log (the plugin awaits this during `register`); with a backplane, rejects
   * with `FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE` when it cannot be reached in time.
   */
  async connect (): Promise<void> {
    const { eventLog, options } = this.#parts
    await eventLog.start()
    const kinds = [...this.#registries.values()].map((r) => ({ kind: r.kind, counters: this.#counters.get(r.kind) as Counters, stats: () => r.stats() }))
    try {
      this.#metrics.register({ kinds, backplane: options.backplane === 'memory' ? undefined : () => eventLog.stats() })
    } catch (err) {
      await eventLog.stop()
      throw err
    }
  }

  /** Stops the producers running here, removes the metrics, releases the backplane's connections (the plugin calls this in `onClose`). */
  async disconnect (): Promise<void> {
    await Promise.all([...this.#registries.values()].map((registry) => registry.stopProducers()))
    this.#metrics.unregister()
    await this.#parts.eventLog.stop()
  }

  /** Starts the heartbeat and cleanup timers (the plugin calls this in `onReady`). */
  start (): void {
    const { heartbeatInterval, cleanupInterval } = this.#parts.options
    if (heartbeatInterval > 0 && this.#heartbeatTimer === undefined) {
      // Every half interval, to the sessions idle since the last tick: silence never exceeds the interval.
      this.#heartbeatTimer = setInterval(() => {
        for (const registry of this.#registries.values()) registry.heartbeatIdle()
      }, heartbeatInterval / 2).unref()
    }
    if (cleanupInterval > 0 && this.#cleanupTimer === undefined) {
      this.#cleanupTimer = setInterval(() => {
        const removed = this.cleanupStaleConnections()
        if (removed > 0) this.#parts.logger.debug({ removed }, 'sse cleanup removed clients')
      }, cleanupInterval).unref()
    }
  }

  /** Refuses new clients and ends every stream (the plugin calls this in `preClose`). */
  endAll (): void {
    this.#parts.limits.shutDown()
    for (const registry of this.#registries.values()) registry.endAll()
  }

  /** Stops the timers (the plugin calls this in `onClose`). */
  stop (): void {
    clearInterval(this.#heartbeatTimer)
    clearInterval(this.#cleanupTimer)
    this.#heartbeatTimer = undefined
    this.#cleanupTimer = undefined
  }
}
