// This project: fastify + fastify-sse-hub, everything on (ids, history, backpressure checks, heartbeats).
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import sseHub from '../../src/index.js'
import type { Variant } from './types.js'

export async function create (): Promise<Variant> {
  const app = Fastify({ logger: false })
  // BENCH_HUB_OPTIONS='{"historySize":0}' tries other options (JSON); the defaults are what the table shows.
  const extra = JSON.parse(process.env.BENCH_HUB_OPTIONS ?? '{}') as Record<string, unknown>
  await app.register(sseHub, { maxClients: 1_000_000, maxClientsPerSession: 1_000_000, ...extra })
  app.get('/s/:id', app.sse.stream('conversation'))
  return {
    listen: async () => {
      await app.listen({ port: 0, host: '127.0.0.1' })
      return (app.server.address() as AddressInfo).port
    },
    broadcast: (session, p) => app.sse.broadcastToConversation(session, 'conversation_token', p),
    clients: () => app.sse.getStats().clients,
    close: () => app.close()
  }
}
