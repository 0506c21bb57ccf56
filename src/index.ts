/* The package's entry: the plugin wrapped by fastify-plugin, the `fastify.sse` type, and every export. */
import fp from 'fastify-plugin'
import type { SseHub } from './hub.js'
import { sseHubPlugin } from './plugin.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The SSE hub of fastify-sse-hub. */
    sse: SseHub
  }
}

/** fastify-sse-hub: `await fastify.register(sseHub, options)` decorates `fastify.sse`. */
const sseHub = fp(sseHubPlugin, { name: 'fastify-sse-hub', fastify: '5.x' })

export default sseHub
export { sseHub }
export * from './errors.js'
export * from './events.js'
export { SseHub, type HubStats } from './hub.js'
export type { StreamRoute, StreamRouteOptions } from './route.js'
export { REJECT_REASONS, type HubCounters, type RegistryStats, type RejectReason, type Rejections } from './counters.js'
export type { MetricsOptions, MetricsRegistry } from './metrics/types.js'
export { resolveOptions, type AuthorizeContext, type AuthorizeHook, type SessionSnapshot, type SnapshotHook, type SseHubOptions, type ResolvedOptions } from './options.js'
export { SessionRegistry } from './registry.js'
export type { RawResponse } from './client.js'
export { redisBackplane, backplaneFromEnv } from './backplane/redis.js'
export type { IoredisClient, RedisBackplaneOptions, RedisClusterNode } from './backplane/redis-options.js'
export { compareStreamIds } from './backplane/redis-stream.js'
export type { Backplane, BackplaneEvent, BackplaneRead, BackplaneSink, BackplaneStats } from './backplane/types.js'
export { encodeEvent, dataLines, eventTypeProblem, isSafeEventId, HEARTBEAT_FRAME, MAX_EVENT_ID_LENGTH, MAX_EVENT_TYPE_LENGTH } from './frame.js'
