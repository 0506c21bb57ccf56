/*
 * Committing an HTTP response as an SSE stream: the head, the greeting (`retry:` and
 * `connection_established`), and the `Last-Event-ID` the client resumes from.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { establishedJson, jsonEventText, retryField } from './frame.js'

const SSE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no'
})

/** The id a client resumes after: the `Last-Event-ID` header, else the `lastEventId` query parameter. */
export function readLastEventId (request: FastifyRequest): string | undefined {
  // The header wins: EventSource sends it on every reconnect, with the URL (and its query) unchanged.
  const header = request.headers['last-event-id']
  if (typeof header === 'string') return header
  // Object(): a custom querystring parser may answer null or a primitive, which has no such parameter.
  const param: unknown = Object(request.query).lastEventId
  if (typeof param === 'string') return param
  // Repeated, it is joined as Node joins a repeated header: an id no log knows, so the client is told (resync).
  if (Array.isArray(param)) return param.join(', ')
  return undefined
}

/** What the hub uses of @fastify/sse's per-reply context (`reply.sse`), which the hub does not depend on. */
interface FastifySseContext {
  keepAlive (): void
  sendHeaders (statusCode?: number): void
}

/**
 * Commits the response as an SSE stream, with any header already set on the reply (by a hook, CORS, …).
 * On a route of the application registered with @fastify/sse's `sse` option (the application registered
 * @fastify/sse), through its context, so it knows.
 */
export function commitHeaders (reply: FastifyReply): void {
  // Only on routes registered with @fastify/sse's `sse` option.
  const sse = (reply as { sse?: FastifySseContext }).sse
  // @fastify/sse's sendHeaders adds `Connection: keep-alive`, a header HTTP/2 forbids
  // (Node drops it with an UnsupportedWarning): on HTTP/2 the head is written here.
  if (sse !== undefined && reply.request.raw.httpVersionMajor < 2) {
    reply.headers(SSE_HEADERS)
    sse.keepAlive()
    sse.sendHeaders(200)
    return
  }
  sse?.keepAlive()
  const set = reply.getHeaders()
  // perf note 11: Node reads (never keeps or changes) the object it is given.
  reply.raw.writeHead(200, hasKeys(set) ? { ...set, ...SSE_HEADERS } as Record<string, string> : SSE_HEADERS)
}

/**
 * What every new stream starts with: its reconnection delay (`retry` plus up to `retryJitter` ms at random,
 * so a restart causes no reconnect storm) and a `connection_established` event without an id.
 */
export function greeting (retry: number, retryJitter: number, clientId: string, sessionId: string, kind: string, now: number): string {
  return retryField(retry + Math.floor(Math.random() * (retryJitter + 1))) +
    jsonEventText(undefined, 'connection_established', establishedJson(clientId, sessionId, kind, now))
}

function hasKeys (o: object): boolean {
  for (const _ in o) return true
  return false
}
