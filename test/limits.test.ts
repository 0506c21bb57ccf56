/*
 * Limits — who may open a stream: `maxClientsPerSession` and `maxClients` (503) and
 * `maxClientsPerIp` (429) hold under a flood of concurrent connections, answer JSON with
 * `Retry-After`, free a slot when a stream ends, and their counters return to exactly
 * zero after churn. (`authorize`: test/authorize.test.ts; hostile `Last-Event-ID`:
 * test/last-event-id.test.ts.)
 */
import t from 'tap'
import http from 'node:http'
import {
  FST_ERR_SSE_HUB_INVALID_OPTION,
  FST_ERR_SSE_HUB_TOO_MANY_CLIENTS,
  FST_ERR_SSE_HUB_TOO_MANY_CLIENTS_PER_IP
} from '../src/index.js'
import { resolveOptions } from '../src/options.js'
import { buildApp, eventually, listen, SseClient, noConnections } from './helper.js'

/** Opens a stream on a connection of its own from `localAddress`; resolves at the response head (200) or with the whole error body. */
async function open (url: string, localAddress = '127.0.0.1'): Promise<SseClient> {
  const c = new SseClient(url, {}, { localAddress, agent: false })
  await c.opened()
  if (c.statusCode !== 200) await c.errorBody()
  return c
}

const count = (all: SseClient[], status: number): number => all.filter((o) => o.statusCode === status).length
const closeAll = (all: SseClient[]): void => { for (const o of all) o.close() }
/** The JSON body of the first of `all` refused with `status`. */
const refusal = (all: SseClient[], status: number): { headers: http.IncomingHttpHeaders, body: Record<string, unknown> } => {
  const refused = all.find((o) => o.statusCode === status) as SseClient
  return { headers: refused.headers, body: JSON.parse(refused.body) }
}

t.test('maxClientsPerSession holds under a flood: 503 JSON with Retry-After', async (t) => {
  const app = await buildApp({ maxClientsPerSession: 10, retryAfter: 7 })
  const url = await listen(app, t)
  const flood = await Promise.all(Array.from({ length: 50 }, () => open(`${url}/conversations/a/stream`)))
  t.teardown(() => { closeAll(flood) })
  t.equal(count(flood, 200), 10, 'exactly the cap got a stream')
  t.equal(count(flood, 503), 40, 'every other one got 503')
  const refused = refusal(flood, 503)
  t.equal(refused.headers['retry-after'], '7')
  t.match(refused.headers['content-type'], /^application\/json/)
  t.match(refused.body, { statusCode: 503, code: 'FST_ERR_SSE_HUB_TOO_MANY_CLIENTS', error: 'Service Unavailable', message: /maxClientsPerSession/ })
  t.equal(new FST_ERR_SSE_HUB_TOO_MANY_CLIENTS('x').code, refused.body.code)
  t.equal(app.sse.getConversationClientCount('a'), 10)
  t.equal(app.sse.getStats().clientsRejected, 40)
  const other = await open(`${url}/conversations/b/stream`)
  t.equal(other.statusCode, 200, 'another session is not affected')
  other.close()

  // One stream of the session ends: its slot frees up, for exactly one more.
  const mine = flood.find((o) => o.statusCode === 200) as SseClient
  mine.close()
  await eventually(() => app.sse.getConversationClientCount('a') === 9, 'a slot frees up')
  const again = await Promise.all([open(`${url}/conversations/a/stream`), open(`${url}/conversations/a/stream`)])
  t.teardown(() => { closeAll(again) })
  t.same(again.map((o) => o.statusCode).sort(), [200, 503])
  t.equal(app.sse.getStats().clientsRejected, 41)
})

t.test('maxClients holds under a flood across sessions and kinds', async (t) => {
  const app = await buildApp({ maxClients: 20 })
  const url = await listen(app, t)
  const flood = await Promise.all(Array.from({ length: 60 }, (_, i) => open(`${url}/${i % 2 === 0 ? 'conversations' : 'debates'}/s${i % 30}/stream`)))
  t.teardown(() => { closeAll(flood) })
  t.equal(count(flood, 200), 20)
  t.equal(count(flood, 503), 40)
  const refused = refusal(flood, 503)
  t.equal(refused.headers['retry-after'], '5')
  t.match(refused.body, { statusCode: 503, code: 'FST_ERR_SSE_HUB_TOO_MANY_CLIENTS', message: /maxClients\b/ })
  t.equal(app.sse.getStats().clients, 20)
})

t.test('maxClientsPerIp: 429 JSON with Retry-After per address, both kinds counted, other addresses unaffected', async (t) => {
  const app = await buildApp({ maxClientsPerIp: 5 })
  const url = await listen(app, t)
  const flood = await Promise.all(Array.from({ length: 20 }, (_, i) => open(`${url}/${i % 2 === 0 ? 'conversations' : 'debates'}/s${i}/stream`, '127.0.0.1')))
  t.teardown(() => { closeAll(flood) })
  t.equal(count(flood, 200), 5, 'five streams from 127.0.0.1')
  t.equal(count(flood, 429), 15, 'the rest refused with 429')
  const refused = refusal(flood, 429)
  t.equal(refused.headers['retry-after'], '5')
  t.match(refused.headers['content-type'], /^application\/json/)
  t.match(refused.body, { statusCode: 429, code: 'FST_ERR_SSE_HUB_TOO_MANY_CLIENTS_PER_IP', error: 'Too Many Requests' })
  t.equal(new FST_ERR_SSE_HUB_TOO_MANY_CLIENTS_PER_IP().code, 'FST_ERR_SSE_HUB_TOO_MANY_CLIENTS_PER_IP')
  t.equal(app.sse.getStats().clientsRejected, 15)

  const second = await Promise.all(Array.from({ length: 6 }, (_, i) => open(`${url}/conversations/s${i}/stream`, '127.0.0.2')))
  t.teardown(() => { closeAll(second) })
  t.equal(count(second, 200), 5, 'another address has its own five')
  t.equal(count(second, 429), 1)

  // One stream from 127.0.0.1 ends: that address may open exactly one more.
  const mine = flood.find((o) => o.statusCode === 200) as SseClient
  mine.close()
  await eventually(() => app.sse.getStats().clients === 9, 'the closed stream is gone')
  const again = await Promise.all([open(`${url}/debates/z/stream`), open(`${url}/debates/z/stream`)])
  t.teardown(() => { closeAll(again) })
  t.same(again.map((o) => o.statusCode).sort(), [200, 429])
})

t.test('maxClientsPerIp: default Infinity (off), validated like the other caps', async (t) => {
  t.equal(resolveOptions({}).maxClientsPerIp, Infinity)
  t.equal(resolveOptions({ maxClientsPerIp: 3 }).maxClientsPerIp, 3)
  for (const bad of [0, -1, 1.5, NaN, '3']) {
    t.throws(() => resolveOptions({ maxClientsPerIp: bad }), FST_ERR_SSE_HUB_INVALID_OPTION, `refuses ${String(bad)}`)
  }
})

t.test('the caps\' counters return to exactly zero after churn', async (t) => {
  const LIMITS = { maxClients: 30, maxClientsPerSession: 10, maxClientsPerIp: 20 }
  const app = await buildApp({ ...LIMITS, heartbeatInterval: 0 })
  const url = await listen(app, t)
  let next = 0
  const CYCLES = 1000
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < CYCLES) {
      const i = next++
      const path = `${url}/${i % 2 === 0 ? 'conversations' : 'debates'}/s${i % 4}/stream`
      const from = i % 3 === 0 ? '127.0.0.2' : '127.0.0.1'
      if (i % 5 === 0) {
        // Abort before the response.
        const req = http.get(path, { headers: { accept: 'text/event-stream' }, localAddress: from, agent: false })
        req.on('error', () => {})
        await new Promise((resolve) => { req.once('close', resolve); req.destroy() })
      } else {
        const o = await open(path, from)
        if (i % 50 === 1) app.sse.cleanupStaleConnections(0) // server-side ends too
        o.close()
      }
    }
  }))
  await noConnections(app.server)
  await eventually(() => app.sse.getStats().clients === 0, 'all churned streams closed', 1_000_000)

  // Exactly the caps again: anything left over (or below zero) would show here.
  const session = await Promise.all(Array.from({ length: 11 }, () => open(`${url}/conversations/x/stream`, '127.0.0.1')))
  t.teardown(() => { closeAll(session) })
  t.same([count(session, 200), count(session, 503)], [10, 1], 'per session: 10, then 503')
  const ip = await Promise.all(Array.from({ length: 11 }, (_, i) => open(`${url}/debates/y${i}/stream`, '127.0.0.1')))
  t.teardown(() => { closeAll(ip) })
  t.same([count(ip, 200), count(ip, 429)], [10, 1], 'per address: 20 in all, then 429')
  const total = await Promise.all(Array.from({ length: 11 }, (_, i) => open(`${url}/debates/z${i}/stream`, '127.0.0.3')))
  t.teardown(() => { closeAll(total) })
  t.same([count(total, 200), count(total, 503)], [10, 1], 'in total: 30, then 503')
  t.equal(app.sse.getStats().clients, 30)
})
