/*
 * Why an EventSource gave up for good: the HTTP status of the answer that ended it, so that a refused stream
 * (401, 403, 429, 503, …) is told apart from a finished session (204).
 */
import type { StreamRefusedError } from './types.js'

/**
 * The status that ended a stream: the error event's `code` where the EventSource gives one (the `eventsource`
 * package does), else, as a browser's EventSource tells nothing, the status of one more request of the same
 * stream (with the subscription's `Last-Event-ID` and credentials), whose body is not read. Undefined when
 * neither can tell (no `fetch`, a network error).
 */
export async function endingStatus (event: unknown, url: string, lastEventId: string | undefined, withCredentials: boolean): Promise<number | undefined> {
  const code = (event as { code?: unknown } | undefined)?.code
  if (typeof code === 'number') return code
  if (typeof fetch !== 'function') return undefined
  const controller = new AbortController()
  const headers: Record<string, string> = { accept: 'text/event-stream' }
  if (lastEventId !== undefined) headers['last-event-id'] = lastEventId
  let status: number | undefined
  try {
    status = (await fetch(url, { headers, credentials: withCredentials ? 'include' : 'same-origin', cache: 'no-store', signal: controller.signal })).status
  } catch {
    // A network error: nothing tells.
  }
  // A stream that opens this time is not wanted: only its status was.
  controller.abort()
  return status
}

/** The error `onError` gets for a stream the server refused with `status`. */
export function streamRefused (url: string, status: number): StreamRefusedError {
  const error = new Error(`fastify-sse-hub/client: the stream ${url} was refused: HTTP ${status}`) as Error & { status: number }
  error.name = 'StreamRefusedError'
  error.status = status
  return error as StreamRefusedError
}
