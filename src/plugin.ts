/* Fastify wiring: decorates `fastify.sse` and ties the hub's life to the server's hooks. */
import type { FastifyPluginAsync } from 'fastify'
import { SseHub } from './hub.js'
import { resolveOptions, type SseHubOptions } from './options.js'

/**
 * Decorates `fastify.sse` and ties the hub's life to the server's. It registers no other plugin: a reply of any
 * route can be handed to `add…Client`, with or without @fastify/sse's `sse` route option (src/stream.ts).
 */
export const sseHubPlugin: FastifyPluginAsync<SseHubOptions> = async (fastify, options) => {
  const resolved = resolveOptions(options)
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
