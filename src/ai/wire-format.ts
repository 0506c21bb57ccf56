/*
 * The AI SDK's UI message stream as a kind's wire format: every event's data is one `UIMessageChunk` as the
 * application gave it, no greeting, `data: [DONE]` at a closed answer's end, `error`/`abort` chunks where the hub
 * would say `resync` or `pipe_failed`, and an answer replayed from its start for a client without `Last-Event-ID`.
 */
import type { FastifyRequest } from 'fastify'
import { FST_ERR_SSE_HUB_INVALID_EVENT_TYPE, FST_ERR_SSE_HUB_INVALID_PAYLOAD } from '../errors.js'
import { FROM_START, Welcome, type EventLog } from '../event-log/types.js'
import { eventTypeProblem } from '../frame.js'
import type { Session } from '../session.js'
import { readLastEventId } from '../stream.js'
import type { PipeFailure, WireFormat } from '../wire-format.js'

/** What the SDK's `JsonToSseTransformStream` ends a stream with. */
const DONE = Buffer.from('data: [DONE]\n\n')

/** The `errorText` of the `error` chunk that ends an answer on each failure. */
export const ERROR_TEXTS = Object.freeze({
  source_error: 'The answer failed.',
  lease_lapsed: 'The answer was interrupted: the server generating it stopped.',
  lost: 'Part of the answer was lost; reload the chat.',
  too_long: 'The answer is too long to be resumed.'
})

/** The JSON of an `error` chunk. */
export function errorChunkJson (errorText: string): string {
  return JSON.stringify({ type: 'error', errorText })
}

/** A chunk the hub itself sends (no `id:`: the client does not read ids on this wire). */
function chunkFrame (json: string): Buffer {
  return Buffer.from('data: ' + json + '\n\n')
}

/** An event's data: the chunk itself, its `type` the event's. */
function chunkJson (type: unknown, payload: unknown): string {
  const problem = eventTypeProblem(type)
  if (problem !== undefined) throw new FST_ERR_SSE_HUB_INVALID_EVENT_TYPE(`${JSON.stringify(String(type)).slice(0, 80)}: ${problem}`)
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) throw new FST_ERR_SSE_HUB_INVALID_PAYLOAD('a chunk must be a plain object')
  // The type first, as the SDK writes chunks; an own toJSON would replace the chunk, as in the hub's format.
  const body: Record<string, unknown> = { type, ...payload }
  body.type = type
  if (typeof body.toJSON === 'function') body.toJSON = undefined
  try {
    return JSON.stringify(body)
  } catch (err) {
    throw new FST_ERR_SSE_HUB_INVALID_PAYLOAD(`JSON cannot encode it (${(err as Error).message})`, { cause: err })
  }
}

function failed (sessionId: string, reason: PipeFailure): { type: string, json: string } {
  if (reason === 'stopped') return { type: 'abort', json: '{"type":"abort"}' }
  return { type: 'error', json: errorChunkJson(ERROR_TEXTS[reason]) }
}

/** The event log's welcome as this wire says it: a `resync` becomes an `error` chunk. */
function spoken (welcome: Welcome): Welcome {
  if (welcome.outcome !== 'resync') return welcome
  return new Welcome('resync', [chunkFrame(errorChunkJson(ERROR_TEXTS.lost))], 0, welcome.covered, welcome.join, welcome.reason)
}

/** The UI message stream (`x-vercel-ai-ui-message-stream: v1`), for a kind whose sessions are answers. */
export const UI_MESSAGE_STREAM_FORMAT: WireFormat = Object.freeze({
  namedEvents: false,
  replaysFromStart: true,
  eventJson: chunkJson,
  greeting: () => '',
  end: () => DONE,
  resync: () => chunkFrame(errorChunkJson(ERROR_TEXTS.lost)),
  failed,
  welcome (s: Session, request: FastifyRequest, welcomer: unknown, eventLog: EventLog): Welcome | Promise<Welcome> {
    // Without Last-Event-ID, the answer from its start: the SDK client replaces the message it has with it.
    const welcome = eventLog.welcome(s, readLastEventId(request) ?? FROM_START)
    return welcome instanceof Welcome ? spoken(welcome) : welcome.then(spoken)
  }
})
