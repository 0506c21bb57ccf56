// This project through the design's call path: the application's own route hands its reply to
// addConversationClient() (no stream() route options), everything else as in the hub variant.
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import sseHub from '../../src/index.js'
import type { Variant } from './types.js'

export async function create (): Promise<Variant> {
  const app = Fastify({ logger: false })
  const extra = JSON.parse(process.env.BENCH_HUB_OPTIONS ?? '{}') as Record<string, unknown>
  await app.register(sseHub, { maxClients: 1_000_000, maxClientsPerSession: 1_000_000, ...extra })
  app.get<{ Params: { id: string } }>('/s/:id', (request, reply) => {
    void app.sse.addConversationClient(request.params.id, reply)
  })
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
