/* Fastify wiring: decorates `fastify.sse` and ties the hub's life to the server's hooks. */
import fastifySseModule from '@fastify/sse'
import type { FastifyPluginAsync } from 'fastify'
import { SseHub } from './hub.js'
import { resolveOptions, type SseHubOptions } from './options.js'

// A CommonJS module: its default import is the fastify-plugin-wrapped function, whatever its types say.
const fastifySse = fastifySseModule as unknown as FastifyPluginAsync

/** Decorates `fastify.sse` and ties the hub's life to the server's. */
export const sseHubPlugin: FastifyPluginAsync<SseHubOptions> = async (fastify, options) => {
  const resolved = resolveOptions(options)
  // For the application's own SSE routes (a reply of one can be handed to add…Client); keep a user's own registration.
  if (!fastify.hasPlugin('@fastify/sse')) await fastify.register(fastifySse)

  const hub = new SseHub(resolved, fastify.log.child({ plugin: 'fastify-sse-hub' }))
  // With a backplane, `register` fails here (FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE) when it cannot be reached.
  await hub.connect()
  fastify.decorate('sse', hub)
  fastify.addHook('onReady', async () => { hub.start() })
  // Open SSE responses would keep server.close() waiting forever: end them first.
  fastify.addHook('preClose', async () => { hub.endAll() })
  fastify.addHook('onClose', async () => {
    hub.stop()
    await hub.disconnect()
  })
}
