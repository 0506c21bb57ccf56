/*
 * Broadcasts that ride out a Redis outage: idempotent (producer, sequence number) appends, a reply
 * lost after the script ran, redis-server killed -9 and restarted, and the bounds (publishRetryMs,
 * publishRetryBytes) of what waits.
 */
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import { PUBLISH_SCRIPT } from '../../src/backplane/redis-stream.js'
import { redisBackplane } from '../../src/index.js'
import { buildApp, connect, ids, token, tokens, waitFor } from '../helper.js'
import { connected, instance, redisOrSkip, ReplyCutter, storedEvents, type RedisServer } from './helper.js'

// Persistent: a kill -9 loses nothing, so a restart is an outage, not a loss of history.
const redis = await redisOrSkip(t, true)

const errors = (app: FastifyInstance): number => app.sse.getStats().backplane.errors

/** The tokens stored in a conversation's stream, in order, with their ids. */
async function stored (r: Redis, sessionId: string): Promise<Array<[id: string, token: string]>> {
  return (await storedEvents(r, sessionId)).map((e) => [e.id, (JSON.parse(e.data) as { token: string }).token])
}

function client (t: { teardown: (fn: () => unknown) => void }, server: RedisServer): Redis {
  const r = server.client()
  t.teardown(() => r.disconnect())
  return r
}

if (redis !== undefined) {
  t.test('the publish script stores a (producer, sequence number) once, answers a repeat with its id, and prunes what was answered', async (t) => {
    const r = client(t, redis)
    const key = 'sse-hub:{conversation:script}'
    const run = (producer: string, seq: number, base: number, ack: number, data: string): Promise<string> =>
      r.eval(PUBLISH_SCRIPT, 2, key, `${key}:producers`, 1000, 60_000, 'e', data, key, producer, seq, base, ack, 'PUBLISH', '') as Promise<string>
    const first = await run('p1', 1, 1, 1, 'a')
    t.equal(await run('p1', 1, 1, 1, 'a'), first, 'a repeat answers with the stored id')
    t.equal(await r.xlen(key), 1, 'and appends nothing')
    const other = await run('p2', 1, 1, 1, 'b')
    t.not(other, first, 'the same number from another producer is another broadcast')
    const second = await run('p1', 2, 1, 1, 'c')
    t.equal(await run('p1', 2, 1, 1, 'c'), second)
    t.equal(await r.xlen(key), 3)
    t.same((await r.hkeys(`${key}:producers`)).sort(), ['p1', 'p1:1', 'p1:2', 'p2', 'p2:1'])
    // 1 answered: its record goes with the next call.
    await run('p1', 3, 1, 2, 'd')
    t.same((await r.hkeys(`${key}:producers`)).sort(), ['p1', 'p1:2', 'p1:3', 'p2', 'p2:1'])
    t.equal(await r.hget(`${key}:producers`, 'p1'), '2 3')
    // A later run (after the producer dropped its lane) starts above: the earlier run's records go.
    await run('p1', 10, 10, 10, 'e')
    t.same((await r.hkeys(`${key}:producers`)).sort(), ['p1', 'p1:10', 'p2', 'p2:1'])
    t.equal(await r.hget(`${key}:producers`, 'p1'), '10 10')
    t.ok(await r.pttl(`${key}:producers`) > 0, 'the records expire with the stream')
  })

  t.test('a broadcast whose reply is lost after the script ran is re-sent and appended once', async (t) => {
    const cutter = await ReplyCutter.start(redis, t)
    const a = await instance(t, cutter)
    const c = await connect(`${a.url}/conversations/lost/stream`)
    const r = client(t, redis)
    const before = await a.app.sse.broadcastToConversation('lost', 'conversation_token', token('0'))
    const cut = cutter.cutAfter('evalsha')
    const resent = a.app.sse.broadcastToConversation('lost', 'conversation_token', token('1'))
    await cut
    const id = await resent
    t.ok(a.app.sse.getStats().backplane.reconnects >= 1, 'it waited for the connection to come back')
    const after = await a.app.sse.broadcastToConversation('lost', 'conversation_token', token('2'))
    t.same(await stored(r, 'lost'), [[before, '0'], [id, '1'], [after, '2']], 'once, in order, under the id it resolved with')
    await c.receive(3)
    t.same(tokens(c), ['0', '1', '2'])
    t.same(ids(c), [before, id, after])
  })

  t.test('a broadcast that times out while Redis stalls is re-sent and appended once', async (t) => {
    const a = await instance(t, redis, { commandTimeout: 100 })
    const r = client(t, redis)
    await a.app.sse.broadcastToConversation('stall', 'conversation_token', token('0'))
    await r.call('CLIENT', 'PAUSE', '400', 'WRITE')
    const resolved = await Promise.all([1, 2, 3].map((i) => a.app.sse.broadcastToConversation('stall', 'conversation_token', token(String(i)))))
    const entries = await stored(r, 'stall')
    t.same(entries.map(([, tok]) => tok), ['0', '1', '2', '3'], 'each once, in order')
    t.same(entries.slice(1).map(([id]) => id), resolved)
  })

  t.test('redis-server killed -9 and restarted: every broadcast resolves, is stored once, in order, and reaches each client once', async (t) => {
    const a = await instance(t, redis, { publishRetryMs: 20_000 })
    const b = await instance(t, redis)
    const ca = await connect(`${a.url}/conversations/k/stream`)
    const cb = await connect(`${b.url}/conversations/k/stream`)
    const r = client(t, redis)
    r.on('error', () => {})
    const sent: Array<Promise<string>> = []
    const broadcast = (i: number): void => { sent.push(a.app.sse.broadcastToConversation('k', 'conversation_token', token(String(i)))) }
    for (let i = 0; i < 5; i++) broadcast(i)
    await Promise.all(sent)
    // In flight when Redis dies: some ran, some did not, their replies are lost.
    for (let i = 5; i < 25; i++) broadcast(i)
    const before = [errors(a.app), errors(b.app)]
    await redis.kill()
    // Both of a hub's connections closed: its command connection is not ready any more, so a broadcast waits.
    await waitFor(() => !connected(a.app) && errors(a.app) >= (before[0] as number) + 2 && !connected(b.app) && errors(b.app) >= (before[1] as number) + 2, 'the hub notices the loss')
    // Made while Redis is down: they wait.
    for (let i = 25; i < 40; i++) broadcast(i)
    await redis.restart()
    const resolved = await Promise.all(sent)
    const expected = Array.from({ length: 40 }, (_, i) => String(i))
    const entries = await stored(r, 'k')
    t.same(entries.map(([, tok]) => tok), expected, 'each broadcast stored once, in order')
    t.same(entries.map(([id]) => id), resolved, 'under the ids they resolved with')
    for (const c of [ca, cb]) {
      await c.receive(40)
      t.same(tokens(c), expected, 'each event once, in order, no resync')
      t.same(ids(c), resolved)
    }
    t.equal(a.app.sse.getStats().backplane.published, 40)
    t.equal(a.app.sse.getStats().backplane.publishFailures, 0)
  })

  t.test('publishRetryMs 0: a broadcast while Redis is down fails at once', async (t) => {
    const a = await instance(t, redis, { publishRetryMs: 0 })
    const before = [errors(a.app)]
    await redis.kill()
    t.teardown(() => redis.restart())
    // Both of a hub's connections closed: its command connection is not ready any more, so a broadcast waits.
    await waitFor(() => !connected(a.app) && errors(a.app) >= (before[0] as number) + 2, 'the hub notices the loss')
    await t.rejects(a.app.sse.broadcastToConversation('ff', 'conversation_token', token('x')), { code: 'FST_ERR_SSE_HUB_BROADCAST_FAILED' })
    t.equal(a.app.sse.getStats().backplane.publishFailures, 1)
  })

  t.test('past publishRetryBytes a broadcast rejects at once; those held are stored when Redis is back', async (t) => {
    const a = await instance(t, redis, { publishRetryBytes: 300, publishRetryMs: 60_000 })
    const before = [errors(a.app)]
    await redis.kill()
    // Both of a hub's connections closed: its command connection is not ready any more, so a broadcast waits.
    await waitFor(() => !connected(a.app) && errors(a.app) >= (before[0] as number) + 2, 'the hub notices the loss')
    const held = a.app.sse.broadcastToConversation('bytes', 'conversation_token', token('held'))
    await t.rejects(a.app.sse.broadcastToConversation('bytes', 'conversation_token', token('x'.repeat(200))), { code: 'FST_ERR_SSE_HUB_BROADCAST_FAILED', message: /publishRetryBytes 300/ })
    await redis.restart()
    const id = await held
    const r = client(t, redis)
    t.same(await stored(r, 'bytes'), [[id, 'held']])
  })

  t.test('a broadcast that waits past publishRetryMs rejects and is never stored; the next ones go on', async (t) => {
    const a = await instance(t, redis, { publishRetryMs: 200 })
    const c = await connect(`${a.url}/conversations/late/stream`)
    const before = [errors(a.app)]
    await redis.kill()
    // Both of a hub's connections closed: its command connection is not ready any more, so a broadcast waits.
    await waitFor(() => !connected(a.app) && errors(a.app) >= (before[0] as number) + 2, 'the hub notices the loss')
    await t.rejects(a.app.sse.broadcastToConversation('late', 'conversation_token', token('late')), { code: 'FST_ERR_SSE_HUB_BROADCAST_FAILED', message: /not stored within publishRetryMs \(200 ms\)/ })
    await redis.restart()
    await waitFor(() => connected(a.app), 'the hub reconnects')
    const id = await a.app.sse.broadcastToConversation('late', 'conversation_token', token('next'))
    const r = client(t, redis)
    t.same(await stored(r, 'late'), [[id, 'next']])
    await c.receive(1)
    t.same(tokens(c), ['next'])
  })

  t.test('close() rejects the broadcasts still waiting', async (t) => {
    const app = await buildApp({ backplane: redisBackplane({ url: redis.url, publishRetryMs: 60_000 }) })
    const before = [errors(app)]
    await redis.kill()
    t.teardown(() => redis.restart())
    // Both of a hub's connections closed: its command connection is not ready any more, so a broadcast waits.
    await waitFor(() => !connected(app) && errors(app) >= (before[0] as number) + 2, 'the hub notices the loss')
    const waiting = app.sse.broadcastToConversation('closing', 'conversation_token', token('w'))
    await app.close()
    await t.rejects(waiting, { code: 'FST_ERR_SSE_HUB_BROADCAST_FAILED', message: /stopped/ })
  })

  t.test('close() rejects the broadcasts in flight, and a backplane stopped refuses more', async (t) => {
    const backplane = redisBackplane({ url: redis.url })
    const app = await buildApp({ backplane })
    const r = client(t, redis)
    await r.call('CLIENT', 'PAUSE', '10000', 'WRITE')
    t.teardown(() => r.call('CLIENT', 'UNPAUSE'))
    const inFlight = app.sse.broadcastToConversation('closing', 'conversation_token', token('f'))
    await app.close()
    await t.rejects(inFlight, { code: 'FST_ERR_SSE_HUB_BROADCAST_FAILED', message: /stopped/ })
    await t.rejects(backplane.publish('conversation', 'closing', 'conversation_token', '{}'), { code: 'FST_ERR_SSE_HUB_BROADCAST_FAILED', message: /stopped/ })
  })
}

t.test('publishRetryMs and publishRetryBytes are checked', async (t) => {
  for (const [name, value] of [['publishRetryMs', -1], ['publishRetryMs', 1.5], ['publishRetryMs', 2 ** 31], ['publishRetryBytes', 0], ['publishRetryBytes', '1']] as const) {
    t.throws(() => redisBackplane({ url: 'redis://127.0.0.1:1', [name]: value }), { code: 'FST_ERR_SSE_HUB_INVALID_OPTION', message: new RegExp(name) })
  }
  t.doesNotThrow(() => redisBackplane({ url: 'redis://127.0.0.1:1', publishRetryMs: 0, publishRetryBytes: 1 }))
})
