/*
 * One session: its clients, the clients still joining (with the live frames held for them), its fan-out,
 * and what the event log retains of it here.
 */
import type { Outgoing } from './batch.js'
import type { Client } from './client-writer.js'
import { FanOut, type FanOutHost } from './fanout.js'

/** A client being admitted while its welcome is prepared: the live frames sent meanwhile are held for it. */
export class Join {
  readonly held: Outgoing[] = []
}

/** What the event log keeps of one session in this process. */
export interface RetainedEvents {
  /** Events kept. */
  readonly length: number
  /** Bytes kept. */
  readonly bytes: number
  /** Forgets them. */
  clear (): void
}

export class Session {
  readonly clients = new Map<string, Client>()
  readonly joins = new Set<Join>()
  readonly fanOut: FanOut
  /** The sequence number of this session's newest event here. */
  lastSeq = 0
  /** With a backplane: the newest backplane id of the session broadcast or received here. */
  lastId: string | undefined = undefined
  /** Once closed: the id of its final event ('' when it closed without any); undefined while open. */
  closed: string | undefined = undefined
  /** When it was closed. */
  closedAt = 0
  /** When the session last had an event, or lost its last client. */
  lastActivity: number

  constructor (
    readonly id: string,
    readonly kind: string,
    /** What the event log keeps of this session in this process (the in-memory history; nothing with a backplane). */
    readonly retained: RetainedEvents,
    host: FanOutHost,
    now: number
  ) {
    this.fanOut = new FanOut(this.clients, host)
    this.lastActivity = now
  }

  /** Streams open or being opened. */
  get streams (): number {
    return this.clients.size + this.joins.size
  }

  /**
   * A new frame of the session: held for the clients joining, queued for the clients connected.
   * `done` runs once every client has been written to (at once when there is none).
   */
  send (o: Outgoing, now: number, done?: () => void): void {
    this.lastActivity = now
    if (o.seq > 0) this.lastSeq = o.seq
    if (this.joins.size > 0) for (const join of this.joins) join.held.push(o)
    if (this.clients.size > 0) this.fanOut.send(o, done)
    else done?.()
  }
}
