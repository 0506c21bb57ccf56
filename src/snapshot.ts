/*
 * The `snapshot` option: what a new client gets first when the application keeps a state of its sessions —
 * for a client without `Last-Event-ID`, or whose id the history does not cover, the `snapshot` event and the
 * events after the id the state includes. Without the option, the joiner uses {@link logWelcomer}.
 */
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { FROM_START, Welcome, type EventLog, type ResyncReason } from './event-log/types.js'
import type { SessionKind } from './events.js'
import { snapshotFrame } from './frame.js'
import { FST_ERR_SSE_HUB_INVALID_PAYLOAD } from './errors.js'
import type { SessionSnapshot, SnapshotHook } from './options.js'
import { Join, type Session } from './session.js'
import { readLastEventId } from './stream.js'

/**
 * What a new client of `s` gets before live events: the event log's answer to its `Last-Event-ID`, with or
 * without a snapshot. As {@link EventLog.welcome}: an asynchronous answer's join stays until the caller ends it.
 */
export interface Welcomer {
  welcome (s: Session, request: FastifyRequest): Welcome | Promise<Welcome>
}

/** Without the `snapshot` option: the log's answer to the request's `Last-Event-ID`, nothing else (perf note 40). */
export function logWelcomer (eventLog: EventLog): Welcomer {
  return { welcome: (s, request) => eventLog.welcome(s, readLastEventId(request)) }
}

/** With the `snapshot` option. */
export class SnapshotWelcomer implements Welcomer {
  constructor (
    private readonly eventLog: EventLog,
    private readonly hook: SnapshotHook,
    private readonly logger: FastifyBaseLogger,
    private readonly now: () => number
  ) {}

  welcome (s: Session, request: FastifyRequest): Welcome | Promise<Welcome> {
    const lastEventId = readLastEventId(request)
    if (lastEventId === undefined) return this.#snapshot(s, request, 'join', place(s))
    const answer = this.eventLog.welcome(s, lastEventId)
    if (answer instanceof Welcome) return answer.outcome === 'resync' ? this.#snapshot(s, request, answer.reason as ResyncReason, hold(s, answer) as Welcome) : answer
    return answer.then((r) => r.outcome === 'resync' ? this.#snapshot(s, request, r.reason as ResyncReason, r) : r)
  }

  /**
   * Asks the hook, then reads the events after its id: every event the state does not include is in the read,
   * or came later and is held by the read's join. `instead` is the answer without a snapshot, or (a {@link Join})
   * the client's place while the hook runs, and then the log's answer to no `Last-Event-ID`; either holds the
   * session meanwhile, so it is not forgotten if its other clients leave, and is ended when it is not used.
   */
  async #snapshot (s: Session, request: FastifyRequest, reason: 'join' | ResyncReason, instead: Welcome | Join): Promise<Welcome> {
    let snap: SessionSnapshot | undefined
    try {
      snap = await this.hook(s.kind as SessionKind, s.id, request)
    } catch (err) {
      drop(this.eventLog, s, instead)
      throw err
    }
    if (snap !== undefined && !isSnapshot(snap)) {
      drop(this.eventLog, s, instead)
      throw new FST_ERR_SSE_HUB_INVALID_PAYLOAD('snapshot: the hook must answer undefined or { state, lastEventId } with lastEventId a string')
    }
    if (snap === undefined) return instead instanceof Welcome ? instead : await hold(s, this.eventLog.welcome(s, undefined), instead)
    // The log's read takes the place (a join of its own) before the one held here is given up.
    const reading = hold(s, this.eventLog.welcome(s, snap.lastEventId === '' ? FROM_START : snap.lastEventId))
    drop(this.eventLog, s, instead)
    const after = await reading
    if (after.outcome === 'resync') {
      this.logger.warn({ kind: s.kind, sessionId: s.id, snapshotLastEventId: snap.lastEventId }, 'sse snapshot older than the history: resync instead')
      return after
    }
    let frame: Buffer
    try {
      frame = snapshotFrame(snap.lastEventId, s.id, reason, snap.state, this.now())
    } catch (err) {
      drop(this.eventLog, s, after)
      throw new FST_ERR_SSE_HUB_INVALID_PAYLOAD(`snapshot state: JSON cannot encode it (${(err as Error).message})`, { cause: err })
    }
    return new Welcome('snapshot', [frame, ...after.frames], after.events, after.covered, after.join)
  }
}

/** Whether the hook's answer (not undefined) is a snapshot: an object whose `lastEventId` is a string. */
function isSnapshot (snap: unknown): snap is SessionSnapshot {
  return typeof snap === 'object' && snap !== null && typeof (snap as { lastEventId?: unknown }).lastEventId === 'string'
}

/**
 * A welcome, with a join of its own when it was answered at once: this client is attached a few turns later,
 * and the frames sent meanwhile must follow it.
 */
function hold (s: Session, answer: Welcome | Promise<Welcome>, place?: Join): Welcome | Promise<Welcome> {
  let held = answer
  if (answer instanceof Welcome && answer.join === undefined) {
    const join = new Join()
    s.joins.add(join)
    held = new Welcome(answer.outcome, [...answer.frames], answer.events, answer.covered, join, answer.reason)
  }
  // The answer holds the client's place now (an asynchronous read, a join of its own from its first step).
  if (place !== undefined) s.joins.delete(place)
  return held
}

/** A client's place in `s` while nothing else holds it (a hook runs): it counts in `s.streams`. */
function place (s: Session): Join {
  const join = new Join()
  s.joins.add(join)
  return join
}

/** Gives up an answer not used (its held frames and the session's feed it holds), or a place. */
function drop (eventLog: EventLog, s: Session, instead: Welcome | Join): void {
  if (instead instanceof Join) {
    s.joins.delete(instead)
    return
  }
  instead.endJoin(s)
  eventLog.release(s)
}
