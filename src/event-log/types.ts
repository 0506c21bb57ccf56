/*
 * The event log seam: where a session's events are appended and replayed from. Two implementations:
 * in memory (./memory.ts, this process only) and on a backplane shared by several processes (./backplane.ts).
 */
import type { ResyncEvent } from '../events.js'
import type { BackplaneStats } from '../backplane/types.js'
import type { Covered } from '../client-writer.js'
import type { Join, RetainedEvents, Session } from '../session.js'
import type { Sessions } from '../sessions.js'
import type { Leases } from '../leases/types.js'

/** How a log answered a client's `Last-Event-ID`; `'snapshot'`: the `snapshot` option's state, then the events after it. */
export type WelcomeOutcome = 'none' | 'replayed' | 'resync' | 'snapshot'

/** For {@link EventLog.welcome}: every retained event (a snapshot that includes none), not a client's id. */
export const FROM_START: unique symbol = Symbol('from the start')

/** What a new client gets before live events. A class, not a literal (perf note 6). */
export class Welcome {
  constructor (
    /** `'none'` without a `Last-Event-ID`; `'replayed'` (possibly nothing); `'resync'`, the id was unknown or too old. */
    readonly outcome: WelcomeOutcome,
    /** The frames to write after the greeting: the events after the id, or one `resync` event. */
    readonly frames: Buffer[],
    /** Events among `frames` (a `resync` is not counted). */
    readonly events: number,
    /** Live events this welcome already covers (see `Client.covered`); undefined when none can be. */
    readonly covered: Covered | undefined,
    /** An asynchronous welcome's join: the live frames held for the client until {@link endJoin}. */
    readonly join: Join | undefined = undefined,
    /** A `resync`'s reason. */
    readonly reason: ResyncReason | undefined = undefined
  ) {}

  /**
   * Ends the join: the frames held meanwhile that the welcome does not cover go after it. Call it in the same
   * synchronous step that attaches the client (or gives up on it), so no live frame falls between the two.
   */
  endJoin (session: Session): void {
    const join = this.join
    if (join === undefined) return
    session.joins.delete(join)
    const covered = this.covered
    for (const held of join.held) {
      if (covered === undefined || held.id === undefined || !covered(held.id)) this.frames.push(held.frame)
    }
  }
}

/** The answer to a client without `Last-Event-ID` on the in-memory log: nothing before live events. */
export const LIVE_ONLY = new Welcome('none', [], 0, undefined)

/** The resync event's reason. */
export type ResyncReason = ResyncEvent['reason']

export interface EventLog {
  /** The producers' leases, as far as this log's sessions are shared. */
  readonly leases: Leases
  /** The fewest of a session's newest events the log keeps besides the `historySize` bound (a backplane's own bound); Infinity when none. */
  readonly retainedEvents: number
  /** Connects (the plugin awaits this during `register`). */
  start (): Promise<void>
  /** Releases what `start` opened. */
  stop (): Promise<void>
  /** Numbers under `getStats().backplane`. */
  stats (): BackplaneStats
  /** Lets the log reach one kind's sessions (to deliver events that come from elsewhere). */
  serve (kind: string, sessions: Sessions): void
  /** `kind`'s clients read its sessions from the start (its wire format's `replaysFromStart`): the log may keep their frames for them. */
  keepFrames (kind: string): void
  /** What the log will keep of a new session here. */
  retained (): RetainedEvents
  /**
   * Appends an event (type and JSON validated) to a session, and sends it to the session's clients (with a backplane: through it, to every process).
   * Throws `FST_ERR_SSE_HUB_EVENT_TOO_LARGE` before anything is stored; resolves with the event's id.
   */
  append (sessions: Sessions, sessionId: string, type: string, json: string): Promise<string>
  /**
   * Closes a session: appends its final event (`type` and JSON validated) when `type` is given, then marks
   * it closed (with a backplane: in the backplane, for every process) and has its clients ended
   * ({@link Sessions.close}). Resolves with the final event's id (without one: the session's newest id, ''
   * when it has none); closing a closed session resolves with that id again. Throws as {@link append}.
   */
  closeSession (sessions: Sessions, sessionId: string, type: string | undefined, json: string | undefined): Promise<string>
  /**
   * What a new client of `session` gets first, given its `Last-Event-ID`: synchronous when the log can
   * answer at once (a connection then costs no promise). An asynchronous answer holds the live frames
   * sent meanwhile in a {@link Session.joins} entry, which stays there until the caller calls
   * {@link Welcome.endJoin} (a rejected answer removes it itself). Until {@link release}d, the client holds
   * the session's feed. For a closed session (the log marks it so, {@link Sessions.close}, when it learns it
   * here), a client without `Last-Event-ID` gets the retained history from its start.
   */
  welcome (session: Session, lastEventId: string | undefined | typeof FROM_START): Welcome | Promise<Welcome>
  /** The newest id of `session` broadcast or received here; undefined when none (or it is not held here). */
  lastEventId (session: Session): string | undefined
  /** A client that held the session's feed is gone. */
  release (session: Session): void
}
