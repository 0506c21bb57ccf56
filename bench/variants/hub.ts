// This project: fastify + fastify-sse-hub, everything on (ids, history, backpressure checks, heartbeats).
import Fastify, { type FastifyInstance } from 'fastify'
import type { AddressInfo } from 'node:net'
import sseHub, { type SseHub } from '../../src/index.js'
import type { Variant } from './types.js'

/** The options every hub variant registers with: no client cap, and BENCH_HUB_OPTIONS (JSON) to try others. */
export function hubOptions (): Record<string, unknown> {
  return { maxClients: 1_000_000, maxClientsPerSession: 1_000_000, ...JSON.parse(process.env.BENCH_HUB_OPTIONS ?? '{}') as Record<string, unknown> }
}

/** A hub variant of `app`, whose hub is `sse`, with its stream route already added at `/s/:id`. */
export function serve (app: FastifyInstance, sse: SseHub): Variant {
  return {
    listen: async () => {
      await app.listen({ port: 0, host: '127.0.0.1' })
      return (app.server.address() as AddressInfo).port
    },
    broadcast: (session, p) => sse.broadcastToConversation(session, 'conversation_token', p),
    clients: () => sse.getStats().clients,
    close: () => app.close()
  }
}

export async function create (): Promise<Variant> {
  const app = Fastify({ logger: false })
  await app.register(sseHub, hubOptions())
  app.get('/s/:id', app.sse.stream('conversation'))
  return serve(app, app.sse)
}
