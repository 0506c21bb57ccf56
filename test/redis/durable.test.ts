/*
 * waitReplicas: a broadcast resolves once a replica acknowledged it (WAIT behind the publish script),
 * is re-sent while the replica lags, and rejects, stored on the master but not durable, past
 * publishRetryMs. A real master and a real replica (redis-server --replicaof).
 */
import t from 'tap'
import type { Redis } from 'ioredis'
import { redisBackplane } from '../../src/index.js'
import { connect, ids, token, tokens, waitFor } from '../helper.js'
import { instance, redisOrSkip, RedisServer, storedEvents, waits } from './helper.js'

const master = await redisOrSkip(t)

/** The ids of a conversation's events as `r`'s server holds them. */
const storedIds = async (r: Redis, sessionId: string): Promise<string[]> => (await storedEvents(r, sessionId)).map((e) => e.id)

async function replicaOf (t: { teardown: (fn: () => unknown) => void }, server: RedisServer): Promise<{ replica: RedisServer, onMaster: Redis, onReplica: Redis }> {
  const replica = await RedisServer.replica(server)
  t.teardown(() => replica.stop())
  const onMaster = server.client()
  const onReplica = replica.client()
  t.teardown(() => {
    onMaster.disconnect()
    onReplica.disconnect()
  })
  return { replica, onMaster, onReplica }
}

t.test('waitReplicas and waitTimeout are checked', async (t) => {
  const url = 'redis://127.0.0.1:1'
  for (const [name, value] of [['waitReplicas', -1], ['waitReplicas', 1.5], ['waitReplicas', 1001], ['waitReplicas', '1'], ['waitTimeout', 0], ['waitTimeout', 2 ** 31]] as const) {
    t.throws(() => redisBackplane({ url, [name]: value }), { code: 'FST_ERR_SSE_HUB_INVALID_OPTION', message: new RegExp(`'${name}'`) }, `${name}: ${String(value)}`)
  }
  t.throws(() => redisBackplane({ url, waitReplicas: 1, waitTimeout: 5000 }), { code: 'FST_ERR_SSE_HUB_INVALID_OPTION', message: /'waitTimeout': must be below commandTimeout \(5000 ms\)/ })
  t.doesNotThrow(() => redisBackplane({ url, waitReplicas: 1, waitTimeout: 4999 }))
  t.doesNotThrow(() => redisBackplane({ url, waitReplicas: 0, waitTimeout: 60_000 }), 'without waitReplicas, waitTimeout is unused')
})

if (master !== undefined) {
  t.test('with waitReplicas: 1 a resolved broadcast is on the replica; while the replica lags it waits', async (t) => {
    const { replica, onMaster, onReplica } = await replicaOf(t, master)
    const a = await instance(t, master, { waitReplicas: 1, waitTimeout: 100, publishRetryMs: 60_000 })
    const c = await connect(`${a.url}/conversations/durable/stream`)
    const first = await a.app.sse.broadcastToConversation('durable', 'conversation_token', token('0'))
    t.same(await storedIds(onReplica, 'durable'), [first], 'resolved: on the replica already')

    replica.signal('SIGSTOP')
    let settled = false
    const held = a.app.sse.broadcastToConversation('durable', 'conversation_token', token('1'))
    held.finally(() => { settled = true }).catch(() => {})
    await c.receive(2)
    const before = await waits(onMaster)
    await waitFor(async () => await waits(onMaster) >= before + 2, 'two more WAITs: the broadcast was re-sent after a short one')
    t.equal(settled, false, 'not resolved while the replica acknowledges nothing')
    replica.signal('SIGCONT')
    const second = await held
    t.same(await storedIds(onReplica, 'durable'), [first, second], 'resolved once the replica has it')
    t.same(await storedIds(onMaster, 'durable'), [first, second], 're-sent, appended once')
    t.same(ids(c), [first, second])
    t.same(tokens(c), ['0', '1'])
    t.equal(a.app.sse.getStats().backplane.publishFailures, 0)
  })

  t.test('with the replica gone, a broadcast rejects past publishRetryMs: stored on the master and announced, not durable', async (t) => {
    const { replica, onMaster, onReplica } = await replicaOf(t, master)
    // publishRetryMs covers the second or so after a replica's full sync in which Redis 7.0 may count it only on its periodic ACK.
    const a = await instance(t, master, { waitReplicas: 1, waitTimeout: 200, publishRetryMs: 3000 })
    const c = await connect(`${a.url}/conversations/gone/stream`)
    await replica.kill()
    await t.rejects(a.app.sse.broadcastToConversation('gone', 'conversation_token', token('0')), {
      code: 'FST_ERR_SSE_HUB_BROADCAST_FAILED',
      message: /stored and announced it as \d+-\d+, but 0 of 1 replicas acknowledged it within waitTimeout \(200 ms\)/
    })
    await c.receive(1)
    t.same(await storedIds(onMaster, 'gone'), ids(c), 'the clients have it, once, as the master stored it')
    t.equal(a.app.sse.getStats().backplane.publishFailures, 1)

    await replica.restart()
    await replica.synced()
    const next = await a.app.sse.broadcastToConversation('gone', 'conversation_token', token('1'))
    t.same(await storedIds(onReplica, 'gone'), [...ids(c).slice(0, 1), next], 'back in sync: the next one resolves, on the replica')
    await c.receive(2)
    t.same(tokens(c), ['0', '1'])
  })

  t.test('with waitReplicas, a flushed script cache and a reply error are handled as without', async (t) => {
    const { onMaster, onReplica } = await replicaOf(t, master)
    const a = await instance(t, master, { waitReplicas: 1, waitTimeout: 1000 })
    await onMaster.script('FLUSH')
    const id = await a.app.sse.broadcastToConversation('flushed', 'conversation_token', token('0'))
    t.same(await storedIds(onReplica, 'flushed'), [id], 'sent as the script itself, then WAIT')
    await onMaster.set('sse-hub:{conversation:wrongtype}', 'x')
    await t.rejects(a.app.sse.broadcastToConversation('wrongtype', 'conversation_token', token('0')), { code: 'FST_ERR_SSE_HUB_BROADCAST_FAILED', message: /WRONGTYPE/ })
  })
}
