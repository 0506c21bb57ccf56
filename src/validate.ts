/*
 * Checks of what an application or a request hands the hub — session ids, event types, payloads —
 * throwing the `FST_ERR_SSE_HUB_*` error before anything is stored or sent.
 */
import { FST_ERR_SSE_HUB_INVALID_EVENT_TYPE, FST_ERR_SSE_HUB_INVALID_PAYLOAD, FST_ERR_SSE_HUB_INVALID_SESSION_ID } from './errors.js'
import { RESERVED_EVENT_TYPES } from './events.js'
import { eventJson, eventTypeProblem } from './frame.js'

/** Throws `FST_ERR_SSE_HUB_INVALID_SESSION_ID` (400) unless `sessionId` is a string matching `pattern`. */
export function checkSessionId (pattern: RegExp, sessionId: unknown): asserts sessionId is string {
  if (typeof sessionId !== 'string' || !pattern.test(sessionId)) {
    const shown = typeof sessionId === 'string' ? JSON.stringify(sessionId.slice(0, 64)) : typeof sessionId
    throw new FST_ERR_SSE_HUB_INVALID_SESSION_ID(`${shown}: it must match ${String(pattern)}`)
  }
}

/** The JSON of a broadcast event, or the error for an invalid or reserved type or a payload JSON cannot carry. */
export function broadcastJson (type: unknown, payload: unknown, timestamp: number): string {
  const problem = eventTypeProblem(type) ?? (RESERVED_EVENT_TYPES.has(type as string) ? 'it is reserved by the hub' : undefined)
  if (problem !== undefined) throw new FST_ERR_SSE_HUB_INVALID_EVENT_TYPE(`${JSON.stringify(String(type)).slice(0, 80)}: ${problem}`)
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    throw new FST_ERR_SSE_HUB_INVALID_PAYLOAD('it must be a plain object')
  }
  try {
    return eventJson(type as string, payload, timestamp)
  } catch (err) {
    throw new FST_ERR_SSE_HUB_INVALID_PAYLOAD(`JSON cannot encode it (${(err as Error).message})`, { cause: err })
  }
}
