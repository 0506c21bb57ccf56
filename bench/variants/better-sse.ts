// better-sse on node:http: one Channel per session, Channel.broadcast() per event.
import { createChannel, createSession, type Channel } from 'better-sse'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { EVENT, eventData } from '../common.js'
import type { Variant } from './types.js'

export async function create (): Promise<Variant> {
  const channels = new Map<string, Channel>()
  const epoch = Date.now().toString(36)
  let seq = 0
  let clients = 0
  const server = http.createServer((req, res) => {
    const m = /^\/s\/([A-Za-z0-9_-]+)/.exec(req.url ?? '')
    if (m === null) { res.writeHead(404).end(); return }
    const id = m[1] as string
    createSession(req, res).then((session) => {
      let channel = channels.get(id)
      if (channel === undefined) channels.set(id, channel = createChannel())
      channel.register(session)
      clients++
      session.once('disconnected', () => { clients-- })
    }, () => { res.destroy() })
  })
  return {
    listen: async () => {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      return (server.address() as AddressInfo).port
    },
    broadcast: (session, p) => {
      channels.get(session)?.broadcast(eventData(p), EVENT, { eventId: epoch + '-' + (++seq) })
    },
    clients: () => clients,
    close: async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  }
}
