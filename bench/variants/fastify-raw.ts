// Opt-in reference (--variants=...,fastify-raw): Fastify routing, a hijacked reply and node:http's raw writes, i.e.
// what a Fastify route costs per connection before any SSE library runs.
import Fastify from 'fastify'
import type { ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { responseSets } from './node-http.js'
import type { Variant } from './types.js'

export async function create (): Promise<Variant> {
  const app = Fastify({ logger: false })
  const sets = responseSets()
  app.get('/s/:id', (request, reply) => {
    reply.hijack()
    sets.open((request.params as { id: string }).id, reply.raw as ServerResponse)
  })
  return {
    listen: async () => {
      await app.listen({ port: 0, host: '127.0.0.1' })
      return (app.server.address() as AddressInfo).port
    },
    broadcast: sets.broadcast,
    clients: sets.clients,
    close: async () => {
      sets.endAll()
      await app.close()
    }
  }
}
