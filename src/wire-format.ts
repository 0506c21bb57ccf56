/*
 * A kind's wire format: what its events' data is, and what its streams carry besides events (the greeting,
 * the end of a closed session, a resync, a producer's failure), and what a new client gets first. Chosen once
 * per kind. Two implementations: the hub's own ({@link HUB_FORMAT}) and the AI SDK's UI message stream
 * (src/ai/wire-format.ts).
 */
import type { FastifyRequest } from 'fastify'
import type { EventLog, ResyncReason, Welcome } from './event-log/types.js'
import type { PipeFailedEvent } from './events.js'
import { closedFrame, eventJson, resyncFrame } from './frame.js'
import type { ResolvedOptions } from './options.js'
import type { Welcomer } from './snapshot.js'
import type { Session } from './session.js'
import { greeting } from './stream.js'
import { broadcastJson } from './validate.js'

/** Why a producer's session ends with a failure event; see {@link PipeFailedEvent}. */
export type PipeFailure = PipeFailedEvent['reason']

/** What the streams of one kind say, besides the events' frames (`id:`, `event:` when named, `data:`). */
export interface WireFormat {
  /** Its events' frames carry an `event:` line, the event's type (the UI message stream's do not, as the AI SDK writes them). */
  readonly namedEvents: boolean
  /** Its clients without `Last-Event-ID` get a session from its start (the event log may keep its frames for them). */
  readonly replaysFromStart: boolean
  /** The data of an application's event (`broadcast`, `close`, `pipe`); throws the `FST_ERR_SSE_HUB_*` error for a bad type or payload. */
  eventJson (type: unknown, payload: unknown, now: number): string
  /** The first bytes of a new stream, after its head. */
  greeting (options: ResolvedOptions, clientId: string, sessionId: string, kind: string, now: number): string
  /** The last bytes of a stream of a closed session, before the response ends. */
  end (sessionId: string, lastEventId: string, now: number): Buffer
  /** Told to every client of a session whose events were lost (with a backplane). */
  resync (sessionId: string, newestId: string, reason: ResyncReason, now: number): Buffer
  /** The final event of a session whose producer failed: its type and data, appended as any event. */
  failed (sessionId: string, reason: PipeFailure, now: number): { type: string, json: string }
  /** What a new client of `s` gets before live events; as {@link Welcomer.welcome}. */
  welcome (s: Session, request: FastifyRequest, welcomer: Welcomer, eventLog: EventLog): Welcome | Promise<Welcome>
}

/** The hub's own format: `{ type, ...payload, timestamp }` data, `connection_established`, `closed`, `resync`, `pipe_failed`. */
export const HUB_FORMAT: WireFormat = Object.freeze({
  namedEvents: true,
  replaysFromStart: false,
  eventJson: broadcastJson,
  greeting: (o: ResolvedOptions, clientId: string, sessionId: string, kind: string, now: number) => greeting(o.retry, o.retryJitter, clientId, sessionId, kind, now),
  end: closedFrame,
  resync: resyncFrame,
  failed: (sessionId: string, reason: PipeFailure, now: number) => ({ type: 'pipe_failed', json: eventJson('pipe_failed', { sessionId, reason }, now) }),
  welcome: (s: Session, request: FastifyRequest, welcomer: Welcomer) => welcomer.welcome(s, request)
})
