/*
 * The event log on a backplane (e.g. Redis) shared by several processes: appends go to the backplane,
 * which delivers them to every process following the session, this one included. What a joining client
 * gets before live events is read from the backplane while the live events that arrive meanwhile are held,
 * and only those the read does not cover are added: the seam between the two has no gap and no duplicate.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { Backplane, BackplaneEvent, BackplaneStats } from '../backplane/types.js'
import { Outgoing } from '../batch.js'
import { FST_ERR_SSE_HUB_EVENT_TOO_LARGE } from '../errors.js'
import type { EventIds } from '../event-ids.js'
import { BackplaneLeases } from '../leases/backplane.js'
import { encodeEvent, encodeJsonEvent, resyncFrame } from '../frame.js'
import type { BackplaneTimer } from '../metrics/types.js'
import type { ResolvedOptions } from '../options.js'
import { Join, type RetainedEvents, type Session } from '../session.js'
import type { Sessions } from '../sessions.js'
import { FROM_START, Welcome, type EventLog, type ResyncReason } from './types.js'

// A session's history is in the backplane: a process keeps none, so a session without clients is forgotten.
const NOTHING: RetainedEvents = Object.freeze({ length: 0, bytes: 0, clear () {} })

/** A backplane's answer to a `Last-Event-ID`, before the held live events are added. */
interface Read {
  readonly welcome: Welcome
  /** The newest backplane id it covers; undefined when none. */
  readonly coveredId: string | undefined
}

export class BackplaneLog implements EventLog {
  readonly #kinds = new Map<string, Sessions>()
  /** Joins that found no closed marker: if the session closed after, their read may lack the final event. */
  readonly #unaware = new WeakSet<Join>()
  readonly leases: BackplaneLeases
  readonly retainedEvents: number

  constructor (
    private readonly backplane: Backplane,
    private readonly ids: EventIds,
    private readonly options: ResolvedOptions,
    private readonly timer: BackplaneTimer,
    private readonly logger: FastifyBaseLogger,
    private readonly now: () => number
  ) {
    this.retainedEvents = backplane.retainedEvents ?? Infinity
    this.leases = new BackplaneLeases(backplane, options.leaseMs, (kind, sessionId) => {
      const sessions = this.#kinds.get(kind) as Sessions
      const { type, json } = sessions.format.failed(sessionId, 'lease_lapsed', now())
      return this.closeSession(sessions, sessionId, type, json)
    }, logger, now)
  }

  async start (): Promise<void> {
    await this.backplane.start({
      deliver: (kind, sessionId, event) => { this.#deliver(kind, sessionId, event) },
      resync: (kind, sessionId, newestId) => { this.#resync(kind, sessionId, newestId) },
      closed: (kind, sessionId, lastEventId) => { this.#closed(kind, sessionId, lastEventId) },
      producer: (kind, sessionId, notice) => { this.leases.notice(kind, sessionId, notice) },
      logger: this.logger
    })
  }

  async stop (): Promise<void> {
    this.leases.stop()
    await this.backplane.stop()
  }
  stats (): BackplaneStats { return this.backplane.stats() }
  serve (kind: string, sessions: Sessions): void { this.#kinds.set(kind, sessions) }
  keepFrames (kind: string): void { this.backplane.keepFrames(kind, (this.#kinds.get(kind) as Sessions).format.namedEvents) }
  retained (): RetainedEvents { return NOTHING }
  release (s: Session): void { this.backplane.unsubscribe(s.kind, s.id) }

  /**
   * The id, and so the size of the `id:` line, is the backplane's: the size check counts the frame
   * without it. A failure rejects the promise (and counts in `publishFailures`); it is the caller's to log, once.
   */
  append (sessions: Sessions, sessionId: string, type: string, json: string): Promise<string> {
    this.#checkSize(sessions, type, json)
    const kind = sessions.kind
    const started = this.timer.publishing()
    const persisted = this.backplane.publish(kind, sessionId, type, json)
    persisted.then((id) => {
      const s = sessions.get(sessionId)
      if (s !== undefined && (s.lastId === undefined || this.backplane.compareIds(id, s.lastId) > 0)) s.lastId = id
      sessions.counters.broadcast()
      this.timer.published(started)
    }, noop)
    return persisted
  }

  /** The backplane closes it; this process learns it, as every other, from the backplane ({@link BackplaneSink.closed}). */
  closeSession (sessions: Sessions, sessionId: string, type: string | undefined, json: string | undefined): Promise<string> {
    if (type !== undefined) this.#checkSize(sessions, type, json as string)
    const kind = sessions.kind
    const closing = this.backplane.closeSession(kind, sessionId, type, json, this.options.closedSessionTtl)
    return closing
  }

  #checkSize (sessions: Sessions, type: string, json: string): void {
    const size = encodeJsonEvent(undefined, type, json, sessions.format.namedEvents).length
    const max = this.options.maxEventBytes
    if (size > max) throw new FST_ERR_SSE_HUB_EVENT_TOO_LARGE(size, max)
  }

  lastEventId (s: Session): string | undefined { return s.lastId }

  async welcome (s: Session, lastEventId: string | undefined | typeof FROM_START): Promise<Welcome> {
    const join = new Join()
    s.joins.add(join)
    let read: Read | undefined
    try {
      await this.backplane.subscribe(s.kind, s.id)
      try {
        // Subscribed first: a close after this read comes as a notice, and the join holds what it sends.
        // Redis unreachable: a session followed here already (the only kind a live-only client can join
        // then) learns of its close from that notice; a read fails below anyway.
        const closed = await this.backplane.closedSession(s.kind, s.id).catch(() => undefined)
        // With clients here, or joins that found no marker, this process followed the session when it closed:
        // its notice is on the way, after the final event, and ends them all (this one too); closing now could
        // end them before that event.
        if (closed === undefined) {
          this.#unaware.add(join)
          // Its producer may be in a process that dies: watched while it has clients here.
          this.leases.watch(s)
        } else if (s.clients.size === 0 && !this.#followed(s)) (this.#kinds.get(s.kind) as Sessions).close(s, closed, this.now())
        // A closed session's new client gets the retained history from its start.
        const after = lastEventId ?? (closed === undefined && s.closed === undefined ? undefined : FROM_START)
        if (after !== undefined) read = await this.#read(s, after)
      } catch (err) {
        this.release(s)
        throw err
      }
    } catch (err) {
      s.joins.delete(join)
      throw err
    }
    const coveredId = read?.coveredId
    const backplane = this.backplane
    const covered = coveredId === undefined ? undefined : (id: string): boolean => backplane.compareIds(id, coveredId) <= 0
    if (read === undefined) return new Welcome('none', [], 0, covered, join)
    return new Welcome(read.welcome.outcome, read.welcome.frames, read.welcome.events, covered, join, read.welcome.reason)
  }

  /** Whether a join of `s` in flight found no closed marker (it subscribed before any close since). */
  #followed (s: Session): boolean {
    for (const join of s.joins) if (this.#unaware.has(join)) return true
    return false
  }

  /** The replay after `lastEventId`, or a `resync`; no more than `historySize` events or `historyBytes` bytes, as in memory. */
  async #read (s: Session, lastEventId: string | typeof FROM_START): Promise<Read> {
    const o = this.options
    const fromStart = lastEventId === FROM_START
    const read = await this.backplane.read(s.kind, s.id, fromStart ? undefined : lastEventId, fromStart ? { events: o.historySize, bytes: o.historyBytes } : undefined)
    let newestId: string
    let reason: ResyncReason = 'history_trimmed'
    // Kept whole and within the bounds (perf note 45).
    if ('frames' in read) return { welcome: new Welcome('none', [read.frames], read.count, undefined), coveredId: read.newestId }
    if (read.found) {
      const named = (this.#kinds.get(s.kind) as Sessions).format.namedEvents
      const frames = read.events.map((e) => encodeEvent(e.id, e.type, e.data, named))
      let bytes = frames.reduce((sum, f) => sum + f.length, 0)
      const last = read.events[read.events.length - 1]
      if (lastEventId === FROM_START) {
        // From the start: the newest events that fit, as the in-memory history keeps them.
        while (frames.length > o.historySize || bytes > o.historyBytes) bytes -= (frames.shift() as Buffer).length
        return { welcome: new Welcome('none', frames, frames.length, undefined), coveredId: last?.id }
      }
      if (frames.length <= o.historySize && bytes <= o.historyBytes) {
        return { welcome: new Welcome('replayed', frames, frames.length, undefined), coveredId: last === undefined ? lastEventId : last.id }
      }
      newestId = (last as BackplaneEvent).id
    } else {
      newestId = read.newestId
      reason = read.reason
    }
    const frame = resyncFrame(s.id, newestId, reason, this.now())
    return { welcome: new Welcome('resync', [frame], 0, undefined, undefined, reason), coveredId: newestId === '' ? undefined : newestId }
  }

  /** One event of a session this process follows, from whichever process broadcast it: encoded once here. */
  #deliver (kind: string, sessionId: string, event: BackplaneEvent): void {
    this.timer.arrived(event.id)
    const sessions = this.#kinds.get(kind) as Sessions
    const s = sessions.get(sessionId)
    if (s === undefined) return
    s.lastId = event.id
    s.send(new Outgoing(this.ids.next(), encodeEvent(event.id, event.type, event.data, sessions.format.namedEvents), event.id), this.now())
  }

  /** A session this process may follow was closed: its clients here are ended after what was delivered. */
  #closed (kind: string, sessionId: string, lastEventId: string): void {
    const sessions = this.#kinds.get(kind) as Sessions
    const s = sessions.get(sessionId)
    if (s !== undefined) sessions.close(s, lastEventId, this.now())
    this.leases.closed(kind, sessionId)
  }

  /** Events of the session were lost before reaching this process: every client here, and every one joining, gets a `resync`. */
  #resync (kind: string, sessionId: string, newestId: string): void {
    const sessions = this.#kinds.get(kind) as Sessions
    const s = sessions.get(sessionId)
    if (s === undefined) return
    sessions.counters.resynced(s.clients.size)
    for (const client of s.clients.values()) client.covered = undefined
    // seq 0: every client gets it, whatever its welcome covered.
    s.send(new Outgoing(0, sessions.format.resync(sessionId, newestId, 'history_trimmed', this.now())), this.now())
  }
}

// The rejection goes to the caller: this handler only keeps the bookkeeping branch from rejecting unheard.
function noop (): void {}
