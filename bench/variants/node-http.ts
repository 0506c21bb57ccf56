// The baseline: plain node:http, each broadcast encoded once to a Buffer and written to every response.
import http, { type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { EVENT, eventData, type BenchPayload } from '../common.js'
import type { Variant } from './types.js'

/** Open responses per session, each broadcast encoded once and written to all of them (shared with fastify-raw). */
export function responseSets (): {
  open: (session: string, res: ServerResponse) => void
  broadcast: (session: string, p: BenchPayload) => void
  clients: () => number
  endAll: () => void
} {
  const sessions = new Map<string, Set<ServerResponse>>()
  const epoch = Date.now().toString(36)
  let seq = 0
  let clients = 0
  return {
    open: (id, res) => {
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
    },
    broadcast: (session, p) => {
      const set = sessions.get(session)
      const id = epoch + '-' + (++seq)
      const frame = Buffer.from('id: ' + id + '\nevent: ' + EVENT + '\ndata: ' + JSON.stringify(eventData(p)) + '\n\n')
      if (set !== undefined) for (const res of set) res.write(frame)
    },
    clients: () => clients,
    endAll: () => { for (const set of sessions.values()) for (const res of set) res.end() }
  }
}

export async function create (): Promise<Variant> {
  const sets = responseSets()
  const server = http.createServer((req, res) => {
    const m = /^\/s\/([A-Za-z0-9_-]+)/.exec(req.url ?? '')
    if (m === null) { res.writeHead(404).end(); return }
    sets.open(m[1] as string, res)
  })
  return {
    listen: async () => {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      return (server.address() as AddressInfo).port
    },
    broadcast: sets.broadcast,
    clients: sets.clients,
    close: async () => {
      sets.endAll()
      await new Promise((resolve) => server.close(resolve))
    }
  }
}
