/*
 * The counters of one kind and the shapes of the stats `getStats()` reports: each counter is incremented
 * by one method here, named after what happened, so every place that counts something can be found from here.
 */
/** Per-kind numbers of `SessionRegistry.stats()`. */
export interface RegistryStats {
  /** Sessions with at least one client (the design's `count`). */
  activeSessions: number
  /** Open streams. */
  clients: number
  /** Sessions held in memory, with or without clients (their history is kept for replay). */
  sessions: number
  /** Closed sessions still remembered (`closedSessionTtl`). */
  closed: number
  /** Events held for replay, all sessions together. */
  historyEvents: number
  /** Bytes held for replay, all sessions together. */
  historyBytes: number
}

/**
 * Why a stream was refused: for room (503/429: `max_clients`, `max_per_session`, `max_sessions`, `max_per_ip`),
 * by `authorize` (403 `forbidden`, 401 `unauthorized`), or by content negotiation (406 `not_acceptable`).
 */
export type RejectReason = 'max_clients' | 'max_per_session' | 'max_per_ip' | 'max_sessions' | 'forbidden' | 'unauthorized' | 'not_acceptable'

/** Every {@link RejectReason}: the only values a `reason` label takes. */
export const REJECT_REASONS: readonly RejectReason[] = Object.freeze(['max_clients', 'max_per_session', 'max_per_ip', 'max_sessions', 'forbidden', 'unauthorized', 'not_acceptable'])

/** Streams refused, by reason. */
export type Rejections = Record<RejectReason, number>

/** Counters of one hub, every kind together (or, in `Counters`, of one kind). */
export interface HubCounters {
  /** Events broadcast (each counted once, whatever the number of clients). */
  broadcasts: number
  /** Event deliveries: one per event per client, live or replayed. */
  eventsSent: number
  /** Bytes written to clients, heartbeats and replays included. */
  bytesSent: number
  /** Heartbeat comments written: one per heartbeat per client. */
  heartbeatsSent: number
  /** Clients disconnected because their unsent bytes passed `maxBufferedBytes`. */
  clientsDroppedSlow: number
  /** Clients ended by cleanup because they reached `maxConnectionAge`. */
  clientsExpired: number
  /** Reconnections answered with a replay from history (possibly empty). */
  replaysServed: number
  /** Reconnections answered with a `resync` event, and clients sent one when the backplane lost events. */
  resyncsSent: number
  /** Clients sent a `snapshot` event (the `snapshot` option): joiners, and reconnections it answered instead of `resync`. */
  snapshotsSent: number
  /** Streams opened since start. */
  clientsConnected: number
  /** Streams refused by `maxClients`, `maxClientsPerSession`, `maxSessions` (503) or `maxClientsPerIp` (429). */
  clientsRejected: number
  /** Streams refused, by reason: the four of `clientsRejected`, and 403, 401 and 406. */
  rejections: Rejections
  /** Sessions without clients forgotten, with their history, to stay within `maxSessions`. */
  sessionsEvicted: number
}

const noRejections = (): Rejections => ({ max_clients: 0, max_per_session: 0, max_per_ip: 0, max_sessions: 0, forbidden: 0, unauthorized: 0, not_acceptable: 0 })

/** The counters of one kind: each registry has its own; `getStats()` adds them up. */
export class Counters implements HubCounters {
  broadcasts = 0
  eventsSent = 0
  bytesSent = 0
  heartbeatsSent = 0
  clientsDroppedSlow = 0
  clientsExpired = 0
  replaysServed = 0
  resyncsSent = 0
  snapshotsSent = 0
  clientsConnected = 0
  readonly rejections = noRejections()
  sessionsEvicted = 0

  broadcast (): void { this.broadcasts++ }
  /** `events` events and `heartbeats` heartbeats (0 for a greeting) in `bytes` bytes reached one client. */
  sent (events: number, bytes: number, heartbeats: number): void {
    this.eventsSent += events
    this.bytesSent += bytes
    this.heartbeatsSent += heartbeats
  }

  droppedSlow (): void { this.clientsDroppedSlow++ }
  expired (): void { this.clientsExpired++ }
  resynced (clients: number): void { this.resyncsSent += clients }
  /** A new stream was answered with a replay, a `resync` or a snapshot (a `Welcome`'s outcome; `'none'` counts nothing). */
  served (outcome: 'replayed' | 'resync' | 'snapshot'): void {
    if (outcome === 'replayed') this.replaysServed++
    else if (outcome === 'resync') this.resyncsSent++
    else this.snapshotsSent++
  }
  connected (): void { this.clientsConnected++ }
  rejected (reason: RejectReason): void { this.rejections[reason]++ }
  evicted (): void { this.sessionsEvicted++ }

  /** Counts what an `authorize` hook's refusal is answered with: 403 (it returned false) or 401; other errors are not refusals. */
  authorizeFailed (err: unknown): void {
    const status = (err as { statusCode?: unknown } | null)?.statusCode
    if (status === 403) this.rejected('forbidden')
    else if (status === 401) this.rejected('unauthorized')
  }

  get clientsRejected (): number {
    const r = this.rejections
    return r.max_clients + r.max_per_session + r.max_per_ip + r.max_sessions
  }
}

/** The counters of every kind added up, for `getStats()`. */
export function sumCounters (all: Iterable<Counters>): HubCounters {
  const sum: HubCounters = { broadcasts: 0, eventsSent: 0, bytesSent: 0, heartbeatsSent: 0, clientsDroppedSlow: 0, clientsExpired: 0, replaysServed: 0, resyncsSent: 0, snapshotsSent: 0, clientsConnected: 0, clientsRejected: 0, rejections: noRejections(), sessionsEvicted: 0 }
  for (const c of all) {
    sum.broadcasts += c.broadcasts
    sum.eventsSent += c.eventsSent
    sum.bytesSent += c.bytesSent
    sum.heartbeatsSent += c.heartbeatsSent
    sum.clientsDroppedSlow += c.clientsDroppedSlow
    sum.clientsExpired += c.clientsExpired
    sum.replaysServed += c.replaysServed
    sum.resyncsSent += c.resyncsSent
    sum.snapshotsSent += c.snapshotsSent
    sum.clientsConnected += c.clientsConnected
    sum.clientsRejected += c.clientsRejected
    sum.sessionsEvicted += c.sessionsEvicted
    for (const reason of REJECT_REASONS) sum.rejections[reason] += c.rejections[reason]
  }
  return sum
}
