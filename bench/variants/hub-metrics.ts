// This project with the `metrics` option: the hub variant plus a prom-client registry, to compare CPU per
// event with and without metrics in one run (--variants=hub,hub-metrics; perf note 37). Nothing scrapes it.
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import { Registry } from 'prom-client'
import sseHub from '../../src/index.js'
import type { Variant } from './types.js'

export async function create (): Promise<Variant> {
  const app = Fastify({ logger: false })
  const extra = JSON.parse(process.env.BENCH_HUB_OPTIONS ?? '{}') as Record<string, unknown>
  await app.register(sseHub, { maxClients: 1_000_000, maxClientsPerSession: 1_000_000, ...extra, metrics: { registry: new Registry() } })
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
