/*
 * Event maps: one interface per session kind, event type -> payload.
 * Applications add their own events by declaration merging:
 *
 *   declare module 'fastify-sse-hub' {
 *     interface ConversationEvents { poll_opened: { question: string } }
 *   }
 *
 * On the wire every event's data is `{ type, ...payload, timestamp }`.
 */

/**
 * Every session kind with its event map. The hub serves `conversation` and `debate`; an application that
 * adds kinds with the `kinds` option types them here by declaration merging:
 *
 *   declare module 'fastify-sse-hub' {
 *     interface SessionKinds { chat: ChatEvents }
 *   }
 */
export interface SessionKinds {
  conversation: ConversationEvents
  debate: DebateEvents
}

/** The name of a session kind. */
export type SessionKind = keyof SessionKinds & string

/** Sent by the hub to each new client, first thing, without an `id:` (it is not part of the session's history). */
export interface ConnectionEstablishedEvent {
  clientId: string
  sessionId: string
  kind: SessionKind
}

/**
 * Sent by the hub instead of a replay when the client's `Last-Event-ID` is unknown
 * (another server start, another session, garbage) or older than the retained history.
 * The client should reload the session's state, then keep listening: live events follow.
 */
export interface ResyncEvent {
  sessionId: string
  reason: 'unknown_event_id' | 'history_trimmed'
}

/**
 * Sent by the hub to a client that joins without `Last-Event-ID`, or whose id is unknown or older than the
 * history, when the `snapshot` option answers for the session: the application's state of the session, with the
 * SSE `id:` of the newest event that state includes. Every event after that id follows, then live events.
 */
export interface SnapshotEvent<S = unknown> {
  sessionId: string
  reason: 'join' | 'unknown_event_id' | 'history_trimmed'
  /** What the `snapshot` option returned as `state`. */
  state: S
}

/**
 * Sent by the hub after a closed session's final event, without an `id:`; then the response ends. A client
 * should stop for good: reconnecting with the final event's id is answered 204 No Content.
 */
export interface ClosedEvent {
  sessionId: string
  /** The id of the session's final event, `''` when it has none. */
  lastEventId: string
}

/**
 * The final event of a session whose producer (`pipe`) did not end by itself, with an `id:` like any event:
 * its source threw or an append failed (`source_error`), it ignored a `stop` (`stopped`), or, with a backplane,
 * its process stopped renewing its lease (`lease_lapsed`). `closed` follows.
 */
export interface PipeFailedEvent {
  sessionId: string
  reason: 'source_error' | 'stopped' | 'lease_lapsed'
}

/** Events the hub itself sends; they cannot be broadcast by the application. */
export interface HubEvents {
  connection_established: ConnectionEstablishedEvent
  resync: ResyncEvent
  snapshot: SnapshotEvent
  closed: ClosedEvent
  pipe_failed: PipeFailedEvent
}

/** Event types reserved by the hub. */
export const RESERVED_EVENT_TYPES: ReadonlySet<string> = new Set<keyof HubEvents>(['connection_established', 'resync', 'snapshot', 'closed', 'pipe_failed'])

/** A persona taking part in a conversation. */
export interface ConversationParticipant {
  participantId: string
  personaSlug: string
  personaName: string
  isHost: boolean
}

/** `conversation_started` */
export interface ConversationStartedEvent {
  sessionId: string
  topic: string
  participants: ConversationParticipant[]
}

/** `conversation_utterance`: one complete turn of a speaker. */
export interface ConversationUtteranceEvent {
  sessionId: string
  speakerName: string
  personaSlug: string
  content: string
  isHost: boolean
  turnCount: number
  timestamp: number
}

/** `conversation_token`: one streamed token of the current speaker. */
export interface ConversationTokenEvent {
  participantId: string
  personaSlug: string
  personaName: string
  segment: string
  token: string
}

/** `conversation_speaker_changed` */
export interface ConversationSpeakerChangedEvent {
  sessionId: string
  speakerId: string
  speakerName: string
  personaSlug?: string
}

/** `conversation_context_updated` */
export interface ConversationContextUpdateEvent {
  sessionId: string
  summary: string
  turnCount: number
}

/** `conversation_paused` */
export interface ConversationPausedEvent {
  sessionId: string
  turnCount: number
  reason?: string
}

/** `conversation_resumed` */
export interface ConversationResumedEvent {
  sessionId: string
  turnCount: number
}

/** `conversation_completed` */
export interface ConversationCompletedEvent {
  sessionId: string
  turnCount: number
  reason?: string
}

/** `conversation_error` */
export interface ConversationErrorEvent {
  sessionId: string
  error: string
  code?: string
  recoverable?: boolean
}

/** Events an application broadcasts to conversation sessions. Extend by declaration merging. */
export interface ConversationEvents {
  conversation_started: ConversationStartedEvent
  conversation_utterance: ConversationUtteranceEvent
  conversation_token: ConversationTokenEvent
  conversation_speaker_changed: ConversationSpeakerChangedEvent
  conversation_context_updated: ConversationContextUpdateEvent
  conversation_paused: ConversationPausedEvent
  conversation_resumed: ConversationResumedEvent
  conversation_completed: ConversationCompletedEvent
  conversation_error: ConversationErrorEvent
}

/** Every event type a conversation client can receive (the design's union). */
export type ConversationSSEEventType = 'connection_established' | keyof ConversationEvents

/** The payload of any conversation event. */
export type ConversationSSEEventPayload = ConversationEvents[keyof ConversationEvents]

/** A debater. */
export interface DebateParticipant {
  participantId: string
  personaSlug: string
  personaName: string
  position: 'for' | 'against' | 'moderator'
}

/** The phases of a debate. */
export type DebatePhase = 'opening' | 'rebuttal' | 'crossfire' | 'closing'

/** `debate_started` */
export interface DebateStartedEvent {
  debateId: string
  motion: string
  participants: DebateParticipant[]
  phase: DebatePhase
}

/** `debate_utterance`: one complete turn. */
export interface DebateUtteranceEvent {
  debateId: string
  participantId: string
  speakerName: string
  personaSlug: string
  position: DebateParticipant['position']
  phase: DebatePhase
  content: string
  turnCount: number
}

/** `debate_token`: one streamed token of the current turn. */
export interface DebateTokenEvent {
  debateId: string
  participantId: string
  personaSlug: string
  turnCount: number
  token: string
}

/** `debate_phase_changed` */
export interface DebatePhaseChangedEvent {
  debateId: string
  from: DebatePhase | null
  to: DebatePhase
}

/** `debate_paused` */
export interface DebatePausedEvent {
  debateId: string
  turnCount: number
  reason?: string
}

/** `debate_resumed` */
export interface DebateResumedEvent {
  debateId: string
  turnCount: number
}

/** `debate_completed` */
export interface DebateCompletedEvent {
  debateId: string
  turnCount: number
  winner?: 'for' | 'against' | 'draw'
}

/** `debate_error` */
export interface DebateErrorEvent {
  debateId: string
  error: string
  code?: string
  recoverable?: boolean
}

/** Events an application broadcasts to debate sessions. Extend by declaration merging. */
export interface DebateEvents {
  debate_started: DebateStartedEvent
  debate_utterance: DebateUtteranceEvent
  debate_token: DebateTokenEvent
  debate_phase_changed: DebatePhaseChangedEvent
  debate_paused: DebatePausedEvent
  debate_resumed: DebateResumedEvent
  debate_completed: DebateCompletedEvent
  debate_error: DebateErrorEvent
}

/** Every event type a debate client can receive. */
export type DebateSSEEventType = 'connection_established' | keyof DebateEvents

/** The constraint every event map satisfies: an interface from event type to payload. */
export type EventMap<E> = { [K in keyof E]: unknown }
