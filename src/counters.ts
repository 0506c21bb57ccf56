/*
 * The hub's counters and the shapes of its stats, reported by `getStats()`: each counter is incremented
 * by one method here, named after what happened, so every place that counts something can be found from here.
 */
import type { Session } from './session.js'

/** Per-kind numbers of `SessionRegistry.stats()`. */
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

/** {@link RegistryStats} of one kind's sessions. */
export function registryStats (sessions: Iterable<Session>, held: number): RegistryStats {
  const stats: RegistryStats = { count: 0, clients: 0, sessions: held, historyEvents: 0, historyBytes: 0 }
  for (const s of sessions) {
    if (s.clients.size > 0) stats.count++
    stats.clients += s.clients.size
    stats.historyEvents += s.retained.length
    stats.historyBytes += s.retained.bytes
  }
  return stats
}

/** Counters of one hub, every kind together. */
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
  /** Reconnections answered with a `resync` event, and clients sent one when the backplane lost events. */
  resyncsSent: number
  /** Streams opened since start. */
  clientsConnected: number
  /** Streams refused by `maxClients`, `maxClientsPerSession`, `maxSessions` (503) or `maxClientsPerIp` (429). */
  clientsRejected: number
  /** Sessions without clients forgotten, with their history, to stay within `maxSessions`. */
  sessionsEvicted: number
}

export class Counters implements HubCounters {
  broadcasts = 0
  eventsSent = 0
  bytesSent = 0
  clientsDroppedSlow = 0
  clientsExpired = 0
  replaysServed = 0
  resyncsSent = 0
  clientsConnected = 0
  clientsRejected = 0
  sessionsEvicted = 0

  broadcast (): void { this.broadcasts++ }
  /** `events` events (0 for comments alone) in `bytes` bytes reached one client. */
  sent (events: number, bytes: number): void {
    this.eventsSent += events
    this.bytesSent += bytes
  }

  droppedSlow (): void { this.clientsDroppedSlow++ }
  expired (): void { this.clientsExpired++ }
  replayed (): void { this.replaysServed++ }
  resynced (clients: number): void { this.resyncsSent += clients }
  connected (): void { this.clientsConnected++ }
  rejected (): void { this.clientsRejected++ }
  evicted (): void { this.sessionsEvicted++ }

  /** A plain copy, for `getStats()`. */
  snapshot (): HubCounters {
    const { broadcasts, eventsSent, bytesSent, clientsDroppedSlow, clientsExpired, replaysServed, resyncsSent, clientsConnected, clientsRejected, sessionsEvicted } = this
    return { broadcasts, eventsSent, bytesSent, clientsDroppedSlow, clientsExpired, replaysServed, resyncsSent, clientsConnected, clientsRejected, sessionsEvicted }
  }
}
