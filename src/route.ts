/*
 * The route options of a stream endpoint (`fastify.sse.stream(kind)`): content negotiation, then the
 * kind's registry opens the stream.
 */
import type { FastifyRequest, RouteHandlerMethod, RouteShorthandOptions } from 'fastify'
import Negotiator from 'negotiator'
import type { Counters } from './counters.js'
import { FST_ERR_SSE_HUB_NOT_ACCEPTABLE } from './errors.js'
import type { SessionRegistry } from './registry.js'

/** Options of `fastify.sse.stream()`. */
export interface StreamRouteOptions {
  /** The route parameter holding the session id. Default `'id'`. */
  param?: string
}

/** Route options (with handler) for a stream endpoint; pass to `fastify.get(url, …)`. */
export type StreamRoute = RouteShorthandOptions & { handler: RouteHandlerMethod }

/** The route options of a stream endpoint of `registry`'s kind; a 406 is counted in the kind's `counters`. */
export function streamRoute (registry: Pick<SessionRegistry<object>, 'open'>, options: StreamRouteOptions, counters: Counters): StreamRoute {
  const param = options.param ?? 'id'
  return {
    // perf note 1: no `sse` route option; the hub commits the response itself.
    // A HEAD request would hold a stream that can carry no body.
    exposeHeadRoute: false,
    // Not async (perf note 2): Fastify sends what a handler throws as the error reply, and waits only for a
    // returned promise, which it gets only with `authorize`, a backplane, or a `snapshot` hook (a join without
    // Last-Event-ID).
    handler: function sseHubStream (request, reply) {
      if (!acceptsEventStream(request)) {
        counters.rejected('not_acceptable')
        throw new FST_ERR_SSE_HUB_NOT_ACCEPTABLE()
      }
      const params = request.params as Record<string, string | undefined>
      const opened = registry.open(params[param] as string, reply)
      // Resolving with undefined: Fastify would send a value as the reply.
      if (typeof opened !== 'string') return opened.then(nothing)
    }
  }
}

function nothing (): void {}

// SSE is always UTF-8, so a client asking for that charset explicitly is served too.
const EVENT_STREAM = ['text/event-stream', 'text/event-stream;charset=utf-8']

/**
 * Whether the request's `Accept` header admits `text/event-stream` (RFC 9110 §12.5.1, via `negotiator`).
 * No header, or the values EventSource and curl send, need no parsing (perf note 10).
 */
function acceptsEventStream (request: FastifyRequest): boolean {
  const accept = request.headers.accept
  if (accept === undefined || accept === '' || accept === 'text/event-stream' || accept === '*/*') return true
  return new Negotiator(request).mediaType(EVENT_STREAM) !== undefined
}
