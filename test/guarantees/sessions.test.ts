/*
 * Guarantee: an anonymous client cannot make the hub hold memory without bound. A session nobody broadcast
 * to is forgotten with its last client; `maxSessions` bounds the rest, least recently active first.
 */
import t from 'tap'
import { once } from 'node:events'
import net from 'node:net'
import { Redis } from 'ioredis'
import { buildApp, connect, listen, noConnections, SseClient, token, waitFor } from '../helper.js'
import { instance, redisOrSkip } from '../redis/helper.js'

const gc = (globalThis as { gc?: () => void }).gc as () => void
/** The heap after collections, the smallest of several: a closed socket's handle and its objects go over a few turns. */
async function heapAfterGc (): Promise<number> {
  let least = Infinity
  for (let i = 0; i < 6; i++) {
    gc()
    least = Math.min(least, process.memoryUsage().heapUsed)
    await new Promise((resolve) => setImmediate(resolve))
  }
  return least
}

/** One connection that reads the stream's first bytes and leaves. */
async function oneShot (port: number, path: string): Promise<void> {
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`)
  await once(socket, 'data')
  socket.destroy()
  await once(socket, 'close')
}

/** `n` one-shot connections, `concurrency` at a time, the i-th to `path(i)`. */
async function flood (url: string, n: number, concurrency: number, path: (i: number) => string): Promise<void> {
  const port = Number(new URL(url).port)
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) await oneShot(port, path(next++))
  }))
}

t.test('20,000 one-shot connections to distinct ids leave no session behind, and little heap', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const kept = await app.sse.broadcastToConversation('kept', 'conversation_token', token('before the flood'))
  // A warm-up first: what Node, Fastify and V8 allocate once (code, pools) is not what the flood holds.
  await flood(url, 4000, 64, (i) => `/conversations/warm${i}/stream`)
  await waitFor(() => app.sse.getStats().clients === 0, 'warm-up clients gone')
  await noConnections(app.server)
  const before = await heapAfterGc()

  await flood(url, 20_000, 64, (i) => `/conversations/flood${i}/stream`)
  await waitFor(() => app.sse.getStats().clients === 0, 'flood clients gone')
  // Node's own objects of a connection go with its socket: measured once every socket is gone.
  await noConnections(app.server)
  const grown = await heapAfterGc() - before
  const stats = app.sse.getStats()
  t.equal(stats.conversations.sessions, 1, 'only the session with history is held')
  t.ok(grown < 2 * 1024 * 1024, `heap grew ${(grown / 1024).toFixed(0)} KB after GC (< 2 MB)`)
  t.equal(stats.clientsConnected, 24_000)
  t.equal(stats.sessionsEvicted, 0)

  const c = await connect(`${url}/conversations/kept/stream?lastEventId=${encodeURIComponent(kept)}`)
  const id = await app.sse.broadcastToConversation('kept', 'conversation_token', token('after'))
  t.same((await c.receive(1)).map((e) => e.id), [id], 'the session with history still replays from its id')
  t.equal(app.sse.getStats().replaysServed, 1)
  c.close()
  await waitFor(() => app.sse.getStats().clients === 0, 'client gone')
  t.equal(app.sse.getStats().conversations.sessions, 1, 'its history keeps it after its last client')
})

t.test('maxSessions: the least recently active session without clients goes first; 503 when all have clients', async (t) => {
  const app = await buildApp({ maxSessions: 3, heartbeatInterval: 0 })
  const url = await listen(app, t)
  const say = (s: string): Promise<string> => app.sse.broadcastToConversation(s, 'conversation_token', token(s))
  const first = await say('s1')
  await say('s2')
  await say('s3')
  await say('s1') // s1 is now the most recently active: s2 goes first
  const a = await connect(`${url}/conversations/s4/stream`)
  t.match(app.sse.getStats(), { sessionsEvicted: 1, conversations: { sessions: 3 } })
  const back = await connect(`${url}/debates/s2/stream`)
  t.match(app.sse.getStats(), { sessionsEvicted: 2, debates: { sessions: 1 }, conversations: { sessions: 2 } }, 'every kind counts in one bound: s3 went')
  const late = await connect(`${url}/conversations/s1/stream`, { 'last-event-id': first })
  t.same(late.received.map((e) => e.json.token), ['s1'], 's1, kept, still replays')

  // Every held session has a client now: a connection that would open a fourth is refused, nothing is evicted.
  const refused = new SseClient(`${url}/conversations/s5/stream`)
  t.equal((await refused.opened()).statusCode, 503)
  t.equal(refused.headers['retry-after'], '5')
  t.match(await refused.errorBody(), { code: 'FST_ERR_SSE_HUB_TOO_MANY_CLIENTS', message: /maxSessions/ })
  t.match(app.sse.getStats(), { clientsRejected: 1, sessionsEvicted: 2 })
  t.equal(app.sse.getConversationClientCount('s4'), 1)
  // An existing session still takes clients; an application's broadcast is never refused for room.
  const more = await connect(`${url}/conversations/s4/stream`)
  await say('s6')
  t.equal(app.sse.getStats().conversations.sessions, 3, 'held beyond the bound until room is made')

  for (const c of [a, back, late, more]) c.close()
  await waitFor(() => app.sse.getStats().clients === 0, 'clients gone')
  t.match(app.sse.getStats(), { conversations: { sessions: 2 }, debates: { sessions: 0 } }, 's4 and debate s2 had no history: forgotten with their last client')
})

const redis = await redisOrSkip(t)
if (redis !== undefined) {
  t.test('with Redis, a flood to distinct unused sessions creates no key and leaves no subscription', async (t) => {
    const { app, url } = await instance(t, redis, { keyPrefix: 'flood:' })
    await flood(url, 300, 16, (i) => `/conversations/flood${i}/stream`)
    await waitFor(() => app.sse.getStats().clients === 0, 'flood clients gone')
    await waitFor(() => app.sse.getStats().backplane.subscriptions === 0, 'subscriptions released')
    t.equal(app.sse.getStats().conversations.sessions, 0)
    const cmd = new Redis(redis.url)
    t.teardown(() => cmd.disconnect())
    t.same(await cmd.keys('flood:*'), [])
  })
}
