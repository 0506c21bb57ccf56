// This project through the design's call path: the application's own route hands its reply to
// addConversationClient() (no stream() route options), everything else as in the hub variant.
import Fastify from 'fastify'
import sseHub from '../../src/index.js'
import { hubOptions, serve } from './hub.js'
import type { Variant } from './types.js'

export async function create (): Promise<Variant> {
  const app = Fastify({ logger: false })
  await app.register(sseHub, hubOptions())
  app.get<{ Params: { id: string } }>('/s/:id', (request, reply) => {
    void app.sse.addConversationClient(request.params.id, reply)
  })
  return serve(app, app.sse)
}
