/*
 * Where sessions are held: each kind's map, and `maxSessions`, the bound every kind shares. A session
 * without clients stays only while it retains events for replay, least recently active evicted first;
 * a closed one stays `closedSessionTtl`.
 */
import type { Counters, RegistryStats } from './counters.js'
import type { Session } from './session.js'
import { HUB_FORMAT, type WireFormat } from './wire-format.js'

/** The sessions held in memory, every kind together, and those without clients in order of last activity. */
export class SessionBudget {
  #held = 0
  /** Sessions without clients or joins, least recently active first, with the map holding each. */
  readonly #idle = new Map<Session, Sessions>()
  /** Closed sessions, first closed first, with the map holding each. */
  readonly #closed = new Map<Session, Sessions>()

  constructor (readonly maxSessions: number, readonly idleTtl: number, readonly closedTtl: number) {}

  /** Whether one more session may be held, after evicting the least recently active idle one if need be. */
  makeRoom (): boolean {
    if (this.#held < this.maxSessions) return true
    // The least recently active idle session, else the first closed.
    for (const held of [this.#idle, this.#closed]) {
      for (const [s, sessions] of held) {
        sessions.forget(s)
        sessions.counters.evicted()
        return true
      }
    }
    return false
  }

  added (): void { this.#held++ }

  removed (s: Session): void {
    this.#held--
    this.#idle.delete(s)
    this.#closed.delete(s)
  }

  /** `s` was closed: it is kept `closedSessionTtl` from now, clients or not. */
  closed (s: Session, sessions: Sessions): void {
    this.#idle.delete(s)
    this.#closed.set(s, sessions)
  }

  /** `s` has no client and was just active: it goes last in the eviction order. */
  idle (s: Session, sessions: Sessions): void {
    this.#idle.delete(s)
    this.#idle.set(s, sessions)
  }

  /** A client is joining `s`: it cannot be evicted until {@link Sessions.settle} finds it without any. */
  busy (s: Session): void {
    this.#idle.delete(s)
  }

  /** Forgets the sessions idle for longer than `idleSessionTtl`, and those closed longer than `closedSessionTtl`, at `now`. */
  expire (now: number): void {
    for (const [s, sessions] of this.#idle) {
      if (now - s.lastActivity <= this.idleTtl) break
      sessions.forget(s)
    }
    for (const [s, sessions] of this.#closed) {
      if (now - s.closedAt <= this.closedTtl) break
      sessions.forget(s)
    }
  }
}

/** The sessions of one kind, and that kind's counters (the event log and the budget count there too). */
export class Sessions {
  readonly #map = new Map<string, Session>()
  /** What this kind's streams say besides events (`SessionRegistry.useWireFormat`). */
  format: WireFormat = HUB_FORMAT

  /**
   * `create` makes a session; `ended` is called once when one is closed (`close`), to end its clients.
   */
  constructor (
    readonly kind: string,
    readonly counters: Counters,
    private readonly budget: SessionBudget,
    private readonly create: (id: string) => Session,
    private readonly ended: (s: Session) => void
  ) {}

  get size (): number { return this.#map.size }

  get (id: string): Session | undefined {
    return this.#map.get(id)
  }

  values (): IterableIterator<Session> {
    return this.#map.values()
  }

  /** The numbers of `SessionRegistry.stats()`: sessions, clients and retained history of this kind. */
  stats (): RegistryStats {
    const stats: RegistryStats = { activeSessions: 0, clients: 0, sessions: this.#map.size, closed: 0, historyEvents: 0, historyBytes: 0 }
    for (const s of this.#map.values()) {
      if (s.clients.size > 0) stats.activeSessions++
      if (s.closed !== undefined) stats.closed++
      stats.clients += s.clients.size
      stats.historyEvents += s.retained.length
      stats.historyBytes += s.retained.bytes
    }
    return stats
  }

  /**
   * The session `id`, made when missing. Undefined when it is missing and `maxSessions` sessions are held,
   * every one with clients, unless `always` (an application's broadcast is never refused for room).
   */
  obtain (id: string, always: boolean): Session | undefined {
    let s = this.#map.get(id)
    if (s !== undefined) return s
    if (!this.budget.makeRoom() && !always) return undefined
    s = this.create(id)
    this.#map.set(id, s)
    this.budget.added()
    return s
  }

  /**
   * Call when `s` may have lost its last client or join, or had an event without clients: it is forgotten
   * when it retains nothing for replay, else it waits, idle, for `idleSessionTtl` or eviction.
   */
  settle (s: Session): void {
    if (s.streams > 0 || s.closed !== undefined) return
    if (s.retained.length === 0) this.forget(s)
    else this.budget.idle(s, this)
  }

  /**
   * Closes `s` after its event `lastEventId` ('' when none) at `now`: it is kept `closedSessionTtl`, and its
   * clients are ended. Closing a closed session changes nothing.
   */
  close (s: Session, lastEventId: string, now: number): void {
    if (s.closed !== undefined) return
    s.closed = lastEventId
    s.closedAt = now
    if (this.#map.get(s.id) === s) this.budget.closed(s, this)
    this.ended(s)
  }

  /** A client is joining `s`: it stays held, not evictable, until settled. */
  busy (s: Session): void {
    this.budget.busy(s)
  }

  /** Forgets `s` and what it retains. */
  forget (s: Session): void {
    if (this.#map.get(s.id) !== s) return
    this.#map.delete(s.id)
    this.budget.removed(s)
    s.retained.clear()
  }
}
