/*
 * The backplane contract: what the hub needs from a shared event log so that
 * several processes serve one set of sessions. The default, in-memory hub
 * needs none; `redisBackplane()` (./redis.ts) implements it on Redis Streams.
 */
import type { FastifyBaseLogger } from 'fastify'

/** One event as the backplane stores and delivers it; the frame is encoded from it once per process. */
export interface BackplaneEvent {
  /** The event's global id, sent as the SSE `id:`. */
  readonly id: string
  /** The event type (already validated by the hub). */
  readonly type: string
  /** The event's data (the hub's JSON, already validated). */
  readonly data: string
}

/** What {@link Backplane.read} answers. */
export type BackplaneRead =
  /** `afterId` is retained: the events after it, oldest first. */
  | { readonly found: true, readonly events: readonly BackplaneEvent[] }
  /**
   * Every event, as the frames kept for it ({@link Backplane.keepFrames}): `count` events, each `id:`, `event:`
   * (when named), `data:` lines (data split on CR, LF and CRLF) and a blank line, as the hub encodes them; `newestId`
   * the last one's id.
   */
  | { readonly found: true, readonly frames: Buffer, readonly count: number, readonly newestId: string }
  /** `afterId` is not (or no longer) retained; `newestId` is the session's newest id, '' when it has none. */
  | { readonly found: false, readonly reason: 'unknown_event_id' | 'history_trimmed', readonly newestId: string }

/** The most events and bytes one replay may send (the hub's `historySize` and `historyBytes`). */
export interface ReplayBounds { readonly events: number, readonly bytes: number }

/** How a backplane reaches the hub it serves. */
export interface BackplaneSink {
  /**
   * One event of a followed session. For each session, ids strictly increase and
   * none is skipped: after an outage the backplane first delivers what was missed.
   */
  deliver (kind: string, sessionId: string, event: BackplaneEvent): void
  /**
   * Events of a followed session were lost and cannot be recovered (history
   * trimmed, or the backplane lost its data): clients must reload the session.
   * Deliveries then continue after `newestId`.
   */
  resync (kind: string, sessionId: string, newestId: string): void
  /** A followed session was closed (by any process), after its event `lastEventId` ('' when it had none), delivered before. */
  closed (kind: string, sessionId: string, lastEventId: string): void
  /**
   * News of a followed session's producer: `'leased'`, a producer took its lease; `'stop'`, a process asked it
   * to stop ({@link Backplane.stopProducer}).
   */
  producer (kind: string, sessionId: string, notice: ProducerNotice): void
  /** Where the backplane logs (the hub's logger). */
  readonly logger: FastifyBaseLogger
}

/** What {@link BackplaneSink.producer} is told. */
export type ProducerNotice = 'leased' | 'stop'

/**
 * A session's producer lease ({@link Backplane.lease}), as one process sees it now: `'none'` (no producer, or
 * it ended), `'held'` (for `remainingMs` more unless renewed), `'lapsed'` (its holder stopped renewing it: its
 * process is gone or stalled), `'closed'` (the session is closed).
 */
export type LeaseState =
  | { readonly state: 'none' | 'lapsed' | 'closed' }
  | { readonly state: 'held', readonly remainingMs: number }

/** What {@link Backplane.lease} does to a session's lease, for the holder it names. */
export type LeaseOp =
  /** Takes it for `ttlMs` unless another holder's is still held (`'leased'` to the followers): `'taken'`, `'held'` or `'closed'`. */
  | 'take'
  /** Extends it by `ttlMs` (takes it again if it was lost with Redis's data): `'renewed'`, `'stop'` (a stop was asked), `'lost'` or `'closed'`. */
  | 'renew'
  /** Gives it up: `'released'`. */
  | 'release'
  /**
   * Ends a lapsed lease so that the session can be closed for it: `'lapsed'` (close it now), `'held <remaining ms>'`,
   * `'none'` or `'closed'`. With holder `'grace'` (the asker could not reach the backplane before: nor, perhaps,
   * could the holder renew), a lease that lapsed is extended by `ttlMs` instead, once until its next renewal.
   */
  | 'lapse'

/** Numbers reported under `getStats().backplane`. */
export interface BackplaneStats {
  /** `'memory'` or `'redis'`. */
  type: string
  /** Whether the backplane can publish and deliver right now. */
  connected: boolean
  /** Sessions this process follows (has clients of). */
  subscriptions: number
  /** Broadcasts this process persisted. */
  published: number
  /** Broadcasts that were rejected because the backplane could not persist them. */
  publishFailures: number
  /** Events received from the backplane (once per event per process, whatever the number of clients). */
  received: number
  /** Milliseconds from the newest received event's creation to its arrival here. */
  lagMs: number
  /** The largest `lagMs` seen. */
  maxLagMs: number
  /** Connection losses and errors seen (each failed reconnection attempt counts). */
  errors: number
  /** Times the connection was re-established after a loss. */
  reconnects: number
  /** Sessions caught up from history after an outage. */
  catchUps: number
  /** Sessions sent a `resync` because history no longer covered an outage. */
  resyncs: number
}

/**
 * A shared, ordered, bounded event log per session with live delivery to every
 * process. Create one per hub (e.g. with `redisBackplane()`) and pass it as the
 * `backplane` option; the hub starts it during `register` and stops it in `onClose`.
 */
export interface Backplane {
  /** Short name for stats and logs, e.g. `'redis'`. */
  readonly type: string
  /** The fewest of a session's newest events it keeps (Redis: `maxLen`); a replay never spans more. Unbounded when absent. */
  readonly retainedEvents?: number
  /** Connects. Rejects with `FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE` within a bounded time. */
  start (sink: BackplaneSink): Promise<void>
  /** Releases what `start` opened. */
  stop (): Promise<void>
  /**
   * Appends one event to a session's log and delivers it to every process
   * following the session. Resolves with its id once persisted; rejects with
   * `FST_ERR_SSE_HUB_BROADCAST_FAILED` when it could not be.
   */
  publish (kind: string, sessionId: string, type: string, data: string): Promise<string>
  /** Starts (reference-counted) delivery of a session's events to the sink. Rejects when unavailable. */
  subscribe (kind: string, sessionId: string): Promise<void>
  /** Undoes one `subscribe`. */
  unsubscribe (kind: string, sessionId: string): void
  /**
   * Appends the final event (none when `type` is undefined) to a session's log and marks the session closed
   * for `ttlMs` ms (Infinity: for good), in one step and after this process's earlier broadcasts to it; every
   * process following the session is told ({@link BackplaneSink.closed}). Resolves with the final event's id
   * (without one: the newest id, '' when none); a closed session resolves with that id again. From then on
   * {@link publish} to it rejects with `FST_ERR_SSE_HUB_SESSION_CLOSED`.
   */
  closeSession (kind: string, sessionId: string, type: string | undefined, data: string | undefined, ttlMs: number): Promise<string>
  /** A closed session's final id ('' when it had no event); undefined while open (or forgotten). Rejects when unavailable. */
  closedSession (kind: string, sessionId: string): Promise<string | undefined>
  /**
   * The retained events after `afterId` (undefined: every retained event), for a joining client. Every retained
   * event of a session whose frames are kept ({@link keepFrames}) may come as those frames when `whole` is given
   * and they are within it. Rejects when unavailable.
   */
  read (kind: string, sessionId: string, afterId: string | undefined, whole?: ReplayBounds): Promise<BackplaneRead>
  /**
   * Keep, beside the events of `kind`'s sessions, their frames as the hub writes them (`event:` lines when
   * `named`), for the clients that read a session from its start (the AI SDK's UI message stream): such a read
   * then costs a copy, not an encoding per event. Called before the kind has sessions; a backplane may keep
   * nothing (its reads answer events).
   */
  keepFrames (kind: string, named: boolean): void
  /**
   * A session's producer lease (`pipe` on a backplane; its holder renews it, every `leaseMs` / 3): one step,
   * as {@link LeaseOp} says, answered with its outcome. `ttlMs` is ignored by `release` and `lapse`. Rejects when unavailable.
   */
  lease (op: LeaseOp, kind: string, sessionId: string, holder: string, ttlMs: number): Promise<string>
  /** The session's lease as it stands (its expiry by the backplane's clock). Rejects when unavailable. */
  leaseState (kind: string, sessionId: string): Promise<LeaseState>
  /**
   * Asks the holder of the session's lease to stop its producer: marks the lease (its next renewal answers
   * `'stop'`) and tells every process following the session ({@link BackplaneSink.producer} with `'stop'`). Resolves
   * false when no lease is held. Rejects when unavailable.
   */
  stopProducer (kind: string, sessionId: string): Promise<boolean>
  /** A small value every process shares (`fastify-sse-hub/ai`: a chat's answer in progress); undefined when none. Rejects when unavailable. */
  readValue (name: string): Promise<string | undefined>
  /**
   * Sets the shared value `name` to `value` (undefined: deletes it), kept `ttlMs`, if it holds `expected`
   * (undefined: none) now, in one step; resolves whether it did. Rejects when unavailable.
   */
  swapValue (name: string, expected: string | undefined, value: string | undefined, ttlMs: number): Promise<boolean>
  /** Orders two ids of this backplane: negative, zero or positive. */
  compareIds (a: string, b: string): number
  /** When the event `id` was appended (ms since the epoch), if its id tells; for the `backplane_lag_seconds` metric. */
  eventTime?: (id: string) => number | undefined
  stats (): BackplaneStats
}

/** Stats of a backplane that has done nothing yet; `connected` as given (the in-memory hub is always connected). */
export function initialBackplaneStats (type: BackplaneStats['type'], connected: boolean): BackplaneStats {
  return { type, connected, subscriptions: 0, published: 0, publishFailures: 0, received: 0, lagMs: 0, maxLagMs: 0, errors: 0, reconnects: 0, catchUps: 0, resyncs: 0 }
}
