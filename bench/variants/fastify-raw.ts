// Opt-in reference (--variants=...,fastify-raw): Fastify routing, a hijacked reply and node:http's raw writes, i.e.
// what a Fastify route costs per connection before any SSE library runs.
import Fastify from 'fastify'
import type { ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { EVENT, eventData } from '../common.js'
import type { Variant } from './types.js'

export async function create (): Promise<Variant> {
  const app = Fastify({ logger: false })
  const sessions = new Map<string, Set<ServerResponse>>()
  const epoch = Date.now().toString(36)
  let seq = 0
  let clients = 0
  app.get('/s/:id', (request, reply) => {
    const id = (request.params as { id: string }).id
    reply.hijack()
    const res = reply.raw
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    res.write(': ok\n\n')
    let set = sessions.get(id)
    if (set === undefined) sessions.set(id, set = new Set())
    set.add(res)
    clients++
    res.once('close', () => {
      clients--
      set.delete(res)
      if (set.size === 0) sessions.delete(id)
    })
  })
  return {
    listen: async () => {
      await app.listen({ port: 0, host: '127.0.0.1' })
      return (app.server.address() as AddressInfo).port
    },
    broadcast: (session, p) => {
      const set = sessions.get(session)
      const id = epoch + '-' + (++seq)
      const frame = Buffer.from('id: ' + id + '\nevent: ' + EVENT + '\ndata: ' + JSON.stringify(eventData(p)) + '\n\n')
      if (set !== undefined) for (const res of set) res.write(frame)
    },
    clients: () => clients,
    close: async () => {
      for (const set of sessions.values()) for (const res of set) res.end()
      await app.close()
    }
  }
}
