/*
 * The package's entry: the plugin wrapped by fastify-plugin, the `fastify.sse` type, and what an application uses
 * (test/package.test.ts lists its runtime exports: an addition is a decision). Tests import internals from src/.
 */
import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import type { SseHub } from './hub.js'
import type { SseHubOptions } from './options.js'
import { sseHubPlugin } from './plugin.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The SSE hub of fastify-sse-hub. */
    sse: SseHub
  }
}

/** fastify-sse-hub: `await fastify.register(sseHub, options)` decorates `fastify.sse`. */
const sseHub: FastifyPluginAsync<SseHubOptions> = fp(sseHubPlugin, { name: 'fastify-sse-hub', fastify: '5.x' })

export default sseHub
export { sseHub, sseHub as fastifySseHub }
export * from './errors.js'
export type * from './events.js'
export type { SseHub, HubStats } from './hub.js'
export type { SessionRegistry } from './registry.js'
export type { StreamRoute, StreamRouteOptions } from './route.js'
export type { HubCounters, RegistryStats, RejectReason, Rejections } from './counters.js'
export type { MetricsOptions, MetricsRegistry } from './metrics/types.js'
export type { AuthorizeContext, AuthorizeHook, SessionSnapshot, SnapshotHook, SseHubOptions } from './options.js'
export { redisBackplane, backplaneFromEnv } from './backplane/redis.js'
export type { IoredisClient, RedisBackplaneOptions, RedisClusterNode } from './backplane/redis-options.js'
export type { Backplane, BackplaneEvent, BackplaneRead, BackplaneSink, BackplaneStats, LeaseOp, LeaseState, ProducerNotice, ReplayBounds } from './backplane/types.js'
