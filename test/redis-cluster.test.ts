/*
 * The Redis backplane on a real, private Redis Cluster (three masters, three replicas): sessions on
 * every shard through two instances, replay from either, a slot moved while a session is live, and
 * a master killed -9 while broadcasts flow.
 */
import t, { type Test } from 'tap'
import { Cluster } from 'ioredis'
import { backplaneFromEnv, redisBackplane } from '../src/index.js'
import { keySlot } from '../src/backplane/redis-cluster.js'
import { streamKey } from '../src/backplane/redis-stream.js'
import { buildApp, connect, ids, listen, token, tokens, waitFor, type SseClient } from './helper.js'
import { clusterOrSkip, instance, type RedisCluster, type RedisServer } from './redis-helper.js'

// Starting the cluster and a failover take seconds each.
t.setTimeout(120_000)
const cluster = await clusterOrSkip(t)

/** The slot of a conversation's keys. */
const slotOf = (sessionId: string): number => keySlot(streamKey('sse-hub:', 'conversation', sessionId))

/** `perShard` conversation ids on each master, and the master of each. */
async function spread (c: RedisCluster, prefix: string, perShard: number): Promise<Map<string, RedisServer>> {
  const masters = await c.masters()
  const chosen = new Map<string, RedisServer>()
  for (let i = 0; chosen.size < perShard * masters.length; i++) {
    const id = `${prefix}${i}`
    const m = await c.master(slotOf(id))
    if ([...chosen.values()].filter((x) => x === m).length < perShard) chosen.set(id, m)
  }
  return chosen
}

/** A client's events are in id order, each id once; the tokens between resyncs. */
function checkOrder (t: Test, c: SseClient, what: string): void {
  const seen = ids(c).filter((id) => id !== undefined && id !== '')
  t.equal(new Set(seen).size, seen.length, `${what}: no id twice`)
  const events = c.received.filter((e) => e.event !== 'resync')
  const sorted = [...events].sort((x, y) => {
    const [a1, a2] = (x.id as string).split('-').map(Number) as [number, number]
    const [b1, b2] = (y.id as string).split('-').map(Number) as [number, number]
    return a1 - b1 || a2 - b2
  })
  t.same(events.map((e) => e.id), sorted.map((e) => e.id), `${what}: in id order`)
}

if (cluster !== undefined) {
  t.test('a key\'s slot is the one Redis Cluster computes', async (t) => {
    const r = (cluster.servers[0] as RedisServer).client()
    t.teardown(() => r.disconnect())
    for (const key of ['sse-hub:{conversation:a}', 'plain', 'a{}b{c}', '{x', 'x}{', 'sse-hub:{debate:é😀}', '']) {
      t.equal(keySlot(key), await r.cluster('KEYSLOT', key), key)
    }
  })

  t.test('backplaneFromEnv reads REDIS_CLUSTER_NODES; a cluster that cannot be reached fails register', async (t) => {
    const env = { REDIS_CLUSTER_NODES: cluster.nodes.map((n) => `${n.host}:${n.port}`).join(',') }
    const app = await buildApp({ backplane: backplaneFromEnv(env) })
    t.teardown(() => app.close())
    await app.ready()
    t.equal(app.sse.getStats().backplane.connected, true)
    t.throws(() => backplaneFromEnv({ ...env, REDIS_URL: 'redis://127.0.0.1:1' }), { code: 'FST_ERR_SSE_HUB_INVALID_OPTION' })
    t.throws(() => backplaneFromEnv({ REDIS_CLUSTER_NODES: '127.0.0.1:x' }), { code: 'FST_ERR_SSE_HUB_INVALID_OPTION' })
    t.throws(() => redisBackplane({ cluster: [] }), { code: 'FST_ERR_SSE_HUB_INVALID_OPTION' })
    t.throws(() => redisBackplane({ cluster: cluster.nodes, url: 'redis://127.0.0.1:1' }), { code: 'FST_ERR_SSE_HUB_INVALID_OPTION' })
    await t.rejects(buildApp({ backplane: redisBackplane({ cluster: [{ host: '127.0.0.1', port: 1 }], connectTimeout: 500 }) }), { code: 'FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE', message: /the cluster at 127\.0\.0\.1:1/ })
  })

  t.test('two instances, sessions on all three shards: every client gets its session\'s events in order, once; replay from either instance', async (t) => {
    const sessions = await spread(cluster, 'c', 2)
    t.equal(new Set(sessions.values()).size, 3, 'the sessions are on three masters')
    const a = await instance(t, cluster)
    // The other instance on a caller's Cluster client, which the hub leaves open.
    const client = new Cluster(cluster.nodes)
    const b = await buildApp({ backplane: redisBackplane({ client }) })
    const bUrl = await listen(b, t)
    t.teardown(() => client.disconnect())
    const clients = new Map<string, SseClient[]>()
    for (const id of sessions.keys()) {
      clients.set(id, await Promise.all([connect(`${a.url}/conversations/${id}/stream`), connect(`${bUrl}/conversations/${id}/stream`)]))
    }
    const n = 20
    const resolved = new Map<string, string[]>()
    await Promise.all([...sessions.keys()].map(async (id) => {
      const [fromA, fromB] = await Promise.all([
        Promise.all(Array.from({ length: n }, (_, i) => a.app.sse.broadcastToConversation(id, 'conversation_token', token(`a${i}`)))),
        Promise.all(Array.from({ length: n }, (_, i) => b.sse.broadcastToConversation(id, 'conversation_token', token(`b${i}`))))
      ])
      resolved.set(id, [...fromA, ...fromB].sort())
    }))
    for (const [id, cs] of clients) {
      for (const c of cs) await c.receive(2 * n)
      const [first, second] = cs as [SseClient, SseClient]
      t.equal(first.received.length, 2 * n, `${id}: none doubled`)
      t.same(ids(second), ids(first), `${id}: both instances' clients in one order`)
      t.same([...ids(first)].sort(), resolved.get(id), `${id}: the ids the broadcasts resolved with`)
      t.same(tokens(first).filter((x) => x.startsWith('a')), Array.from({ length: n }, (_, i) => `a${i}`), `${id}: a's order kept`)
      t.same(tokens(first).filter((x) => x.startsWith('b')), Array.from({ length: n }, (_, i) => `b${i}`), `${id}: b's order kept`)
      checkOrder(t, first, id)
    }
    // Replay from either instance, after the 10th event.
    for (const [id, cs] of clients) {
      const reference = cs[0] as SseClient
      const after = reference.received[9]?.id as string
      for (const url of [a.url, bUrl]) {
        const again = await connect(`${url}/conversations/${id}/stream`, { 'last-event-id': after })
        await again.receive(2 * n - 10)
        t.same(ids(again), ids(reference).slice(10), `${id}: replayed from ${url === a.url ? 'a' : 'b'}`)
        again.close()
      }
    }
    const stats = a.app.sse.getStats().backplane
    t.equal(stats.connected, true)
    t.equal(stats.published, sessions.size * n)
    t.equal(stats.subscriptions, sessions.size)
  })

  t.test('a slot moved (MIGRATING/IMPORTING, MIGRATE, SETSLOT NODE) while its session is live: nothing lost, nothing doubled', async (t) => {
    const a = await instance(t, cluster)
    const b = await instance(t, cluster)
    const id = 'moving'
    const slot = slotOf(id)
    const clients = [await connect(`${a.url}/conversations/${id}/stream`), await connect(`${b.url}/conversations/${id}/stream`)]
    let i = 0
    const send = async (app: typeof a, k: number): Promise<string[]> => {
      const sent: string[] = []
      for (let j = 0; j < k; j++) sent.push(await app.app.sse.broadcastToConversation(id, 'conversation_token', token(`m${i++}`)))
      return sent
    }
    await send(a, 5)
    const from = await cluster.master(slot)
    const to = (await cluster.masters()).find((m) => m !== from) as RedisServer
    const catchUps = a.app.sse.getStats().backplane.catchUps
    // Broadcasts go on from both instances while the slot is half-moved and while it moves.
    let stop = false
    const flowing = (async () => { while (!stop) await send(b, 1) })()
    await cluster.migrate(slot, to, () => send(a, 5).then(() => {}))
    t.equal(await cluster.master(slot), to, 'the slot moved')
    await send(a, 5)
    stop = true
    await flowing
    await send(a, 5)
    for (const c of clients) await c.receive(i)
    for (const c of clients) {
      t.same(tokens(c), Array.from({ length: i }, (_, k) => `m${k}`), 'every event, once, in order')
      checkOrder(t, c, 'moved')
    }
    await waitFor(() => a.app.sse.getStats().backplane.catchUps > catchUps, 'a resubscribed on the new master and caught up')
    t.equal(a.app.sse.getStats().backplane.resyncs, 0, 'no resync: nothing was lost')
  })

  t.test('a master killed -9 while broadcasts flow: after the failover every resolved broadcast was delivered once, no rejected one, no gap without a resync', async (t) => {
    const sessions = await spread(cluster, 'f', 1)
    const a = await instance(t, cluster, { publishRetryMs: 20_000 })
    // b holds no more than one broadcast while a master is away: its others reject at once, never sent.
    const b = await instance(t, cluster, { publishRetryMs: 20_000, publishRetryBytes: 1 })
    const clients = new Map<string, SseClient[]>()
    for (const id of sessions.keys()) {
      clients.set(id, await Promise.all([connect(`${a.url}/conversations/${id}/stream`), connect(`${b.url}/conversations/${id}/stream`)]))
    }
    const victimSession = [...sessions.keys()][0] as string
    const victim = sessions.get(victimSession) as RedisServer
    const resolved = new Map<string, Set<string>>()
    const rejected = new Map<string, Set<string>>()
    let stop = false
    let afterKill = 0
    let killed = false
    const producers = [...sessions.keys()].flatMap((id) => [a, b].map(async (x, which) => {
      for (let i = 0; !stop; i++) {
        const text = `${which}-${i}`
        try {
          await x.app.sse.broadcastToConversation(id, 'conversation_token', token(text))
          ;(resolved.get(id) ?? resolved.set(id, new Set()).get(id) as Set<string>).add(text)
          if (killed && id === victimSession) afterKill++
        } catch {
          ;(rejected.get(id) ?? rejected.set(id, new Set()).get(id) as Set<string>).add(text)
          await new Promise((resolve) => setImmediate(resolve)) // a rejection is immediate: let I/O run
        }
      }
    }))
    await waitFor(() => (resolved.get(victimSession)?.size ?? 0) >= 20, 'broadcasts flow')
    await victim.kill()
    killed = true
    // Broadcasts to the failed shard go on once a replica took over.
    await waitFor(() => afterKill >= 20, 'broadcasts to the failed shard resolve again', 30_000)
    stop = true
    await Promise.all(producers)
    await cluster.settled()
    for (const [id, cs] of clients) {
      const want = resolved.get(id) as Set<string>
      for (const c of cs) {
        await waitFor(() => want.size <= tokens(c).filter((x) => want.has(x)).length || tokens(c).includes('RESYNC'), `${id}: every resolved broadcast arrived`, 30_000)
        const got = tokens(c).filter((x) => x !== 'RESYNC')
        checkOrder(t, c, id)
        t.equal(new Set(got).size, got.length, `${id}: no broadcast twice`)
        t.same(got.filter((x) => rejected.get(id)?.has(x) === true), [], `${id}: no rejected broadcast delivered`)
        if (!tokens(c).includes('RESYNC')) {
          t.same(got.filter((x) => !want.has(x)), [], `${id}: only resolved broadcasts`)
          t.equal(got.length, want.size, `${id}: every resolved broadcast, once`)
        } else {
          t.comment(`${id}: a resync was announced (writes the old master had not replicated were lost)`)
        }
        // Each producer's own order is kept.
        for (const w of ['0', '1']) {
          const mine = got.filter((x) => x.startsWith(`${w}-`)).map((x) => Number(x.slice(2)))
          t.same(mine, [...mine].sort((x, y) => x - y), `${id}: producer ${w}'s order`)
        }
      }
    }
    const refused = [...rejected.values()].flatMap((s) => [...s])
    t.same(refused.filter((x) => x.startsWith('0-')), [], 'a (publishRetryMs 20 s, 1 MiB): no broadcast rejected')
    t.comment(`b: ${refused.length} broadcasts rejected at once while the master was away (publishRetryBytes), none delivered`)
    t.ok(a.app.sse.getStats().backplane.catchUps > 0, 'the feeds caught up after losing the shard')
  })
}
