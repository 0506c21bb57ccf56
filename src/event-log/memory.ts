/*
 * The in-memory event log: each session's history in this process, ids from the hub's sequence.
 * Everything here answers synchronously.
 */
import type { BackplaneStats } from '../backplane/types.js'
import { initialBackplaneStats } from '../backplane/types.js'
import { Outgoing } from '../batch.js'
import { FST_ERR_SSE_HUB_EVENT_TOO_LARGE, FST_ERR_SSE_HUB_SESSION_CLOSED } from '../errors.js'
import type { EventIds } from '../event-ids.js'
import { encodeJsonEvent, isSafeEventId, resyncFrame } from '../frame.js'
import { History } from '../history.js'
import { MemoryLeases } from '../leases/memory.js'
import type { ResolvedOptions } from '../options.js'
import type { Session } from '../session.js'
import type { Sessions } from '../sessions.js'
import { FROM_START, LIVE_ONLY, Welcome, type EventLog } from './types.js'

export class MemoryLog implements EventLog {
  readonly #maxEventBytes: number
  readonly leases: MemoryLeases
  readonly retainedEvents = Infinity

  constructor (
    private readonly ids: EventIds,
    private readonly options: ResolvedOptions,
    private readonly now: () => number
  ) {
    this.#maxEventBytes = options.maxEventBytes
    this.leases = new MemoryLeases(now)
  }

  async start (): Promise<void> {}
  async stop (): Promise<void> {}
  stats (): BackplaneStats { return initialBackplaneStats('memory', true) }
  serve (): void {}
  // Its history is frames already.
  keepFrames (): void {}
  release (): void {}

  retained (): History {
    return new History(this.options.historySize, this.options.historyBytes)
  }

  append (sessions: Sessions, sessionId: string, type: string, json: string): Promise<string> {
    return this.#append(sessions, sessionId, type, json, true).sent
  }

  /**
   * Appends; a session without streams is settled when `settle` (a close keeps it). `id` is the event's,
   * `sent` resolves with it once every client has it.
   */
  #append (sessions: Sessions, sessionId: string, type: string, json: string, settle: boolean): { s: Session, id: string, sent: Promise<string> } {
    const seq = this.ids.next()
    const id = this.ids.format(seq)
    const frame = encodeJsonEvent(id, type, json, sessions.format.namedEvents)
    if (frame.length > this.#maxEventBytes) throw new FST_ERR_SSE_HUB_EVENT_TOO_LARGE(frame.length, this.#maxEventBytes)
    const s = sessions.obtain(sessionId, true) as Session
    if (s.closed !== undefined) throw new FST_ERR_SSE_HUB_SESSION_CLOSED(`${sessions.kind}:${sessionId}`)
    ;(s.retained as History).push(seq, frame)
    sessions.counters.broadcast()
    const now = this.now()
    if (s.streams === 0) {
      // perf note 25: no Outgoing to make for a session nobody watches.
      s.lastActivity = now
      s.lastSeq = seq
      if (settle) sessions.settle(s)
      return { s, id, sent: Promise.resolve(id) }
    }
    return { s, id, sent: new Promise((resolve) => { s.send(new Outgoing(seq, frame), now, () => { resolve(id) }) }) }
  }

  closeSession (sessions: Sessions, sessionId: string, type: string | undefined, json: string | undefined): Promise<string> {
    const found = sessions.get(sessionId)
    if (found?.closed !== undefined) return Promise.resolve(found.closed)
    // The final event is queued for the clients before they are ended, which writes what is queued first.
    // Its id is the append's: a session that keeps nothing of it (historySize 0) is kept all the same.
    let s: Session
    let id: string
    if (type !== undefined) ({ s, id } = this.#append(sessions, sessionId, type, json as string, false))
    else {
      s = sessions.obtain(sessionId, true) as Session
      id = s.lastSeq === 0 ? '' : this.ids.format(s.lastSeq)
    }
    sessions.close(s, id, this.now())
    return Promise.resolve(id)
  }

  lastEventId (s: Session): string | undefined {
    return s.lastSeq === 0 ? undefined : this.ids.format(s.lastSeq)
  }

  welcome (s: Session, lastEventId: string | undefined | typeof FROM_START): Welcome {
    if (lastEventId === undefined) return s.closed === undefined ? LIVE_ONLY : this.#everything(s)
    if (lastEventId === FROM_START) return this.#everything(s)
    const history = s.retained as History
    const seq = isSafeEventId(lastEventId) ? this.ids.parse(lastEventId) : undefined
    const lookup = seq === undefined ? undefined : history.framesAfter(seq)
    if (lookup?.found === true) return new Welcome('replayed', lookup.events > 0 ? [lookup.frames] : [], lookup.events, undefined)
    const newest = history.newestSeq
    const reason = lookup?.reason ?? 'unknown_event_id'
    const frame = resyncFrame(s.id, newest === undefined ? '' : this.ids.format(newest), reason, this.now())
    return new Welcome('resync', [frame], 0, undefined, undefined, reason)
  }

  /** A closed session's retained history from its start. */
  #everything (s: Session): Welcome {
    const all = (s.retained as History).frames()
    return new Welcome('none', all.events > 0 ? [all.frames] : [], all.events, undefined)
  }
}
