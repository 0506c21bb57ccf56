/*
 * The Redis backplane when Redis fails: down at start, silent, killed -9 mid-stream,
 * its subscriber connection dropped; and what `fastify.close()` releases.
 */
import t from 'tap'
import net from 'node:net'
import { Redis } from 'ioredis'
import { redisBackplane } from '../../src/index.js'
import { SseClient, buildApp, connect, listen, token, tokens, waitFor } from '../helper.js'
import { connected, freePort, instance, redisOrSkip } from './helper.js'

const redis = await redisOrSkip(t)

async function clientCount (r: Redis): Promise<number> {
  const list = await r.client('LIST') as string
  return list.trim().split('\n').length
}

if (redis !== undefined) {
  t.test('Redis killed -9 mid-stream: clients stay, broadcasts fail loudly, then everything resumes by itself', async (t) => {
    // Fail-fast broadcasts (waiting for Redis is test/redis-retry.test.ts).
    const a = await instance(t, redis, { publishRetryMs: 0 })
    const b = await instance(t, redis)
    const idle = await instance(t, redis) // follows no session
    const ca = await connect(`${a.url}/conversations/k1/stream`)
    const cb = await connect(`${b.url}/conversations/k1/stream`)
    const quiet = await connect(`${b.url}/conversations/k2/stream`) // followed, never broadcast to
    for (let i = 0; i < 3; i++) await a.app.sse.broadcastToConversation('k1', 'conversation_token', token(`t${i}`))
    await ca.receive(3)
    await cb.receive(3)

    await redis.kill()
    await waitFor(() => !connected(a.app) && !connected(b.app) && !connected(idle.app), 'hubs notice the loss')
    // Let them fail to reconnect a few times.
    await waitFor(() => a.app.sse.getStats().backplane.errors >= 6, 'failed reconnection attempts')
    await t.rejects(a.app.sse.broadcastToConversation('k1', 'conversation_token', token('lost')), { code: 'FST_ERR_SSE_HUB_BROADCAST_FAILED' })
    // A stream of a session not followed here, or one asking for a replay, cannot be served without Redis:
    // 503 before any SSE byte, with Retry-After.
    for (const [path, headers] of [['k3', {}], ['k1', { 'last-event-id': ca.received[0]?.id as string }]] as const) {
      const refused = new SseClient(`${a.url}/conversations/${path}/stream`, headers)
      const body = await refused.errorBody()
      t.equal(refused.statusCode, 503)
      t.equal(body.code, 'FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE')
      t.equal(refused.headers['retry-after'], '5')
    }
    t.equal(a.app.sse.getStats().conversations.clients, 1, 'the refused clients left nothing behind')
    t.equal(a.app.sse.getStats().conversations.sessions, 1)
    // A live-only client of a session already followed here can join: it continues with the others.
    const late = await connect(`${a.url}/conversations/k1/stream`)
    t.notOk(ca.ended || cb.ended || quiet.ended, 'existing clients stay connected')
    a.app.sse.sendConversationHeartbeat('k1')
    await ca.until((c) => c.comments.length > 0, 'a heartbeat during the outage')

    await redis.restart()
    await waitFor(() => connected(a.app) && connected(b.app) && connected(idle.app), 'hubs reconnect by themselves')
    // Redis came back empty: the history that covered the outage is gone, so each client is told to reload.
    await ca.until((c) => c.received.length >= 4, 'resync')
    await cb.until((c) => c.received.length >= 4, 'resync')
    await idle.app.sse.broadcastToConversation('k1', 'conversation_token', token('after'))
    await b.app.sse.broadcastToConversation('k2', 'conversation_token', token('quiet'))
    await ca.receive(5)
    await cb.receive(5)
    await quiet.receive(1)
    t.same(tokens(ca), ['t0', 't1', 't2', 'RESYNC', 'after'])
    t.same(tokens(cb), ['t0', 't1', 't2', 'RESYNC', 'after'])
    await late.receive(2)
    t.same(tokens(late), ['RESYNC', 'after'])
    t.same(tokens(quiet), ['quiet'], 'a session that had no events needs no resync')
    const stats = a.app.sse.getStats().backplane
    t.ok(stats.errors > 0, 'errors counted')
    t.ok(stats.reconnects >= 2, 'both connections came back')
    t.equal(stats.resyncs, 1)
    t.ok(b.app.sse.getStats().backplane.catchUps >= 1)
  })

  t.test('a dropped subscriber catches up from the stream: missed events once, in order', async (t) => {
    const a = await instance(t, redis)
    const b = await instance(t, redis)
    const c = await connect(`${a.url}/conversations/c1/stream`)
    await b.app.sse.broadcastToConversation('c1', 'conversation_token', token('0'))
    await c.receive(1)
    const r = redis.client()
    t.teardown(() => r.quit())
    const catchUps = a.app.sse.getStats().backplane.catchUps
    await r.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
    // Published while A's subscriber is away: only the stream has these.
    for (let i = 1; i <= 5; i++) await b.app.sse.broadcastToConversation('c1', 'conversation_token', token(String(i)))
    await waitFor(() => a.app.sse.getStats().backplane.catchUps > catchUps, 'catch-up')
    await b.app.sse.broadcastToConversation('c1', 'conversation_token', token('6'))
    await c.receive(7)
    t.same(tokens(c), ['0', '1', '2', '3', '4', '5', '6'])
  })

  t.test('a catch-up that fails is retried; events held meanwhile are not doubled', async (t) => {
    let logged = ''
    const stream = { write: (line: string) => { logged += line } }
    const app = await buildApp({ backplane: redisBackplane({ url: redis.url }) }, { logger: { level: 'warn', stream } })
    const url = await listen(app, t)
    const c = await connect(`${url}/conversations/f1/stream`)
    const healthy = await connect(`${url}/conversations/f2/stream`)
    await app.sse.broadcastToConversation('f1', 'conversation_token', token('0'))
    await c.receive(1)
    const r = redis.client()
    t.teardown(() => r.quit())
    // The session's stream is replaced by something XRANGE refuses, then the subscriber drops.
    await r.set('sse-hub:{conversation:f1}', 'not a stream')
    await r.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
    await waitFor(() => logged.includes('WRONGTYPE'), 'the failed catch-up')
    t.equal(connected(app), false, 'not connected while behind')
    // The other session is not held back by the broken one.
    await app.sse.broadcastToConversation('f2', 'conversation_token', token('fine'))
    await healthy.receive(1)
    t.same(tokens(healthy), ['fine'])
    await r.del('sse-hub:{conversation:f1}')
    // Published while the retry is pending: held, and also read by the retry.
    await app.sse.broadcastToConversation('f1', 'conversation_token', token('1'))
    await waitFor(() => connected(app), 'the retry succeeds')
    await c.receive(2)
    // The stream it was reading is gone: resync (its id is that of '1', which the client will reload with).
    t.same(tokens(c), ['0', 'RESYNC'])
    await app.sse.broadcastToConversation('f1', 'conversation_token', token('2'))
    await c.receive(3)
    t.same(tokens(c), ['0', 'RESYNC', '2'])
  })

  t.test('close() releases the connections the hub opened', async (t) => {
    const r = redis.client()
    t.teardown(() => r.quit())
    await r.ping()
    const before = await clientCount(r)
    const app = await buildApp({ backplane: redisBackplane({ url: redis.url }) })
    const url = await listen(app)
    const c = await connect(`${url}/conversations/x/stream`)
    t.equal(await clientCount(r), before + 2, 'two connections: commands and subscriptions')
    await app.close()
    await c.end()
    await waitFor(async () => await clientCount(r) === before, 'both closed')
    t.pass('both closed')
  })

  t.test('a caller-supplied client is used and left open, whatever state it comes in', async (t) => {
    const r = redis.client()
    t.teardown(() => r.quit())
    await r.ping()
    const clients = {
      ready: () => r,
      connecting: () => new Redis(redis.url),
      lazy: () => new Redis(redis.url, { lazyConnect: true }),
      // ioredis prefixes keys, not channels: the hub must still find its events.
      prefixed: () => new Redis(redis.url, { keyPrefix: 'tenant1:' })
    }
    for (const [state, make] of Object.entries(clients)) {
      const before = await clientCount(r)
      const client = make()
      const app = await buildApp({ backplane: redisBackplane({ client }) })
      const url = await listen(app)
      const c = await connect(`${url}/conversations/own/stream`)
      await app.sse.broadcastToConversation('own', 'conversation_token', token(state))
      await c.receive(1)
      t.equal(c.received[0]?.json.token, state)
      await app.close()
      t.equal(client.status, 'ready', `${state}: still open after close()`)
      t.equal(await client.ping(), 'PONG')
      t.equal(client.listenerCount('error'), 0, `${state}: no listener of ours left`)
      await waitFor(async () => await clientCount(r) <= before + (client === r ? 0 : 1), `${state}: the hub's own connection closed`)
      if (client !== r) await client.quit()
    }
  })

  t.test('one redisBackplane() serves one hub', async (t) => {
    const backplane = redisBackplane({ url: redis.url })
    const app = await buildApp({ backplane })
    t.teardown(() => app.close())
    await t.rejects(buildApp({ backplane }), { code: 'FST_ERR_SSE_HUB_INVALID_OPTION', message: /one per hub/ })
  })
}

t.test('Redis unreachable at start: register fails with a clear error, quickly', async (t) => {
  const port = await freePort() // nothing listens there
  const started = Date.now()
  const err = await buildApp({ backplane: redisBackplane({ url: `redis://user:secret@127.0.0.1:${port}`, connectTimeout: 1000 }) }).then(() => undefined, (e: Error & { code?: string }) => e)
  t.equal(err?.code, 'FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE')
  t.match(err?.message, `cannot connect to Redis (redis://***@127.0.0.1:${port})`)
  t.notMatch(err?.message, 'secret', 'no password in the message')
  t.ok(Date.now() - started < 5000, 'within a bounded time')

  // A caller's client that cannot connect: same error, and the client is left to its owner.
  const client = new Redis(`redis://127.0.0.1:${port}`, { lazyConnect: true, retryStrategy: () => null })
  client.on('error', () => {})
  await t.rejects(buildApp({ backplane: redisBackplane({ client, connectTimeout: 1000 }) }), { code: 'FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE', message: /the given client/ })
  t.equal(client.listenerCount('error'), 1, 'only its owner\'s error listener is left')
  client.disconnect()
})

t.test('Redis that accepts but never answers: register fails after connectTimeout', async (t) => {
  const sockets: net.Socket[] = []
  const silent = net.createServer((socket) => { sockets.push(socket) })
  silent.listen(0, '127.0.0.1')
  await new Promise((resolve) => silent.once('listening', resolve))
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    silent.close()
  })
  const { port } = silent.address() as net.AddressInfo
  const started = Date.now()
  await t.rejects(buildApp({ backplane: redisBackplane({ url: `redis://127.0.0.1:${port}`, connectTimeout: 300 }) }), { code: 'FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE', message: /no connection within 300 ms/ })
  t.ok(Date.now() - started < 3000, 'bounded by connectTimeout')
})

