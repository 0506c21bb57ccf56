/*
 * Pure Server-Sent Events encoding (WHATWG HTML §9.2). No I/O here: every
 * function returns bytes, so a broadcast is encoded once and the same Buffer
 * is written to every client.
 */

const LINE_BREAK = /\r\n|\r|\n/
const HAS_LINE_BREAK = /[\r\n]/
const FIELD_UNSAFE = /[\r\n\0]/
// UTF-8 cannot carry half a surrogate pair: the client would see U+FFFD, another name.
const LONE_SURROGATE = /\p{Surrogate}/u
const ID_SAFE = /^[\x20-\x7e]*$/

/** The longest event type the hub accepts. */
export const MAX_EVENT_TYPE_LENGTH = 128
/** The longest event id the hub accepts or sends. */
export const MAX_EVENT_ID_LENGTH = 256

/** A heartbeat: one comment line. EventSource ignores it; proxies see traffic. */
export const HEARTBEAT_FRAME: Buffer = Buffer.from(':\n\n')

/**
 * Why an event type cannot go on the wire, or `undefined` when it can.
 * A CR, LF or NUL would end the `event:` field and let the rest start a new one.
 */
export function eventTypeProblem (type: unknown): string | undefined {
  if (typeof type !== 'string') return 'it is not a string'
  if (type.length === 0) return 'it is empty'
  if (type.length > MAX_EVENT_TYPE_LENGTH) return `it is longer than ${MAX_EVENT_TYPE_LENGTH} characters`
  if (FIELD_UNSAFE.test(type)) return 'it contains CR, LF or NUL'
  if (LONE_SURROGATE.test(type)) return 'it contains a lone surrogate (not valid Unicode)'
  return undefined
}

/** True when `id` is a printable-ASCII string that can be sent as (and read back from) an `id:` field. */
export function isSafeEventId (id: unknown): id is string {
  return typeof id === 'string' && id.length <= MAX_EVENT_ID_LENGTH && ID_SAFE.test(id)
}

/**
 * `data:` lines for a string. The spec splits fields on CR, LF and CRLF, so each
 * becomes its own `data:` line and the parser joins them back with LF.
 */
export function dataLines (data: string): string {
  // JSON.stringify never emits raw CR or LF, so the common case is one line.
  if (!HAS_LINE_BREAK.test(data)) return 'data: ' + data + '\n'
  let out = ''
  for (const line of data.split(LINE_BREAK)) out += 'data: ' + line + '\n'
  return out
}

/**
 * One complete event. `id` undefined sends no `id:` field (the client keeps its
 * last id); an empty string sends `id:` alone, which resets it. `named` false leaves out the `event:` line
 * (a kind whose wire format does not name its events, `WireFormat.namedEvents`).
 * The caller validates `type` and `id`; see {@link eventTypeProblem} and {@link isSafeEventId}.
 */
export function encodeEvent (id: string | undefined, type: string, data: string, named = true): Buffer {
  return Buffer.from(eventFrame(id, named ? type : undefined, dataLines(data)), 'utf8')
}

/**
 * {@link encodeEvent} for data made by JSON.stringify, which never emits a raw CR or LF (it escapes them):
 * one `data:` line, without looking for line breaks.
 */
export function encodeJsonEvent (id: string | undefined, type: string, json: string, named = true): Buffer {
  return Buffer.from(eventFrame(id, named ? type : undefined, 'data: ' + json + '\n'), 'utf8')
}

/** {@link encodeJsonEvent}'s text. */
export function jsonEventText (id: string | undefined, type: string, json: string): string {
  return eventFrame(id, type, 'data: ' + json + '\n')
}

/** The one layout of an event: `id:` (see {@link encodeEvent}), `event:` (when it has a type), the `data:` lines, a blank line. */
function eventFrame (id: string | undefined, type: string | undefined, data: string): string {
  return (id === undefined ? '' : (id === '' ? 'id:\n' : 'id: ' + id + '\n')) + (type === undefined ? '' : 'event: ' + type + '\n') + data + '\n'
}

/** A `retry:` field on its own: the reconnection delay, in milliseconds, for this client. */
export function retryField (ms: number): string {
  return 'retry: ' + Math.floor(ms) + '\n\n'
}

/**
 * The JSON of an event: `{ type, ...payload, timestamp }`, with `type` and `timestamp`
 * always the hub's (a payload cannot override them, not even with an own `toJSON` method,
 * which is left out like any function). Throws what JSON.stringify throws.
 */
export function eventJson (type: string, payload: object, timestamp: number): string {
  const body: Record<string, unknown> = { type, ...payload, timestamp }
  body.type = type
  // An own toJSON would replace the whole envelope (type and timestamp with it); a function is not data anyway.
  if (typeof body.toJSON === 'function') body.toJSON = undefined
  return JSON.stringify(body)
}

/**
 * {@link eventJson} of `connection_established`, sent once per connection: one object literal of a fixed
 * shape, which JSON.stringify encodes on its fast path, instead of a spread of a payload.
 */
export function establishedJson (clientId: string, sessionId: string, kind: string, timestamp: number): string {
  return JSON.stringify({ type: 'connection_established', clientId, sessionId, kind, timestamp })
}

/**
 * A `resync` event: its `id:` is the session's newest id, so a client that reloads the session's state
 * resumes from now.
 */
export function resyncFrame (sessionId: string, newestId: string, reason: 'unknown_event_id' | 'history_trimmed', timestamp: number): Buffer {
  return encodeJsonEvent(newestId, 'resync', eventJson('resync', { sessionId, reason }, timestamp))
}

/**
 * A `closed` event: without an `id:`, so the client keeps the final event's id (a reconnect with it gets 204).
 */
export function closedFrame (sessionId: string, lastEventId: string, timestamp: number): Buffer {
  return encodeJsonEvent(undefined, 'closed', eventJson('closed', { sessionId, lastEventId }, timestamp))
}

/**
 * A `snapshot` event: the `snapshot` option's state of a session, its `id:` the newest event the state includes
 * (empty: none). Throws what JSON.stringify throws.
 */
export function snapshotFrame (lastEventId: string, sessionId: string, reason: 'join' | 'unknown_event_id' | 'history_trimmed', state: unknown, timestamp: number): Buffer {
  return encodeJsonEvent(lastEventId, 'snapshot', eventJson('snapshot', { sessionId, reason, state }, timestamp))
}
