// @fastify/sse on fastify: one reply.sse.send() per client per broadcast (its documented way to send).
import fastifySseModule from '@fastify/sse'
import Fastify, { type FastifyPluginAsync, type FastifyReply } from 'fastify'
import type { AddressInfo } from 'node:net'
import { EVENT, eventData } from '../common.js'
import type { Variant } from './types.js'

// A CommonJS module: its default import is the plugin function, whatever its types say.
const fastifySse = fastifySseModule as unknown as FastifyPluginAsync

export async function create (): Promise<Variant> {
  const app = Fastify({ logger: false })
  await app.register(fastifySse)
  const sessions = new Map<string, Set<FastifyReply>>()
  const epoch = Date.now().toString(36)
  let seq = 0
  let clients = 0
  const ignore = (): void => {}
  app.get('/s/:id', { sse: true }, async (request, reply) => {
    const id = (request.params as { id: string }).id
    reply.sse.keepAlive()
    let set = sessions.get(id)
    if (set === undefined) sessions.set(id, set = new Set())
    set.add(reply)
    clients++
    reply.sse.onClose(() => {
      clients--
      set.delete(reply)
      if (set.size === 0) sessions.delete(id)
    })
    await reply.sse.send({ event: 'connected', data: {} })
  })
  return {
    listen: async () => {
      await app.listen({ port: 0, host: '127.0.0.1' })
      return (app.server.address() as AddressInfo).port
    },
    broadcast: (session, p) => {
      const set = sessions.get(session)
      if (set === undefined) return
      const message = { id: epoch + '-' + (++seq), event: EVENT, data: eventData(p) }
      for (const reply of set) reply.sse.send(message).catch(ignore)
    },
    clients: () => clients,
    close: () => app.close()
  }
}
