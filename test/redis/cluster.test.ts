/*
 * The Redis backplane on a real, private Redis Cluster (three masters, three replicas): sessions on
 * every shard through two instances, replay and a snapshot from either, a slot moved while a session
 * is live, a session closed (also while its slot moves), the WAIT of `waitReplicas` on the session's
 * master, nodes reached only through ioredis's natMap, and a master killed -9 while broadcasts flow
 * (with and without `waitReplicas`).
 */
import t, { type Test } from 'tap'
import { Cluster } from 'ioredis'
import { backplaneFromEnv, FST_ERR_SSE_HUB_SESSION_CLOSED, redisBackplane, type SseHubOptions } from '../../src/index.js'
import { keySlot } from '../../src/backplane/redis-cluster.js'
import { streamKey } from '../../src/backplane/redis-stream.js'
import { buildApp, connect, ids, listen, SseClient, token, tokens, waitFor } from '../helper.js'
import { clusterOrSkip, infoCount, instance, storedEvents, waits, withClient, type RedisCluster, type RedisServer } from './helper.js'

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

/** A conversation id (prefixed `prefix`) whose keys are in `slot`. */
function inSlot (prefix: string, slot: number): string {
  for (let i = 0; ; i++) if (slotOf(`${prefix}${i}`) === slot) return `${prefix}${i}`
}

const done = (sessionId: string): { sessionId: string, turnCount: number } => ({ sessionId, turnCount: 1 })

/** How many WAIT commands `server` has run. */
const waitsOn = (server: RedisServer): Promise<number> => withClient(server, waits)

/** How many TRYAGAIN errors `server` has answered. */
const tryAgains = (server: RedisServer): Promise<number> => withClient(server, (r) => infoCount(r, 'errorstats', /errorstat_TRYAGAIN:count=(\d+)/))

/** The tokens of a conversation's stream, read from the master of its slot now. */
async function stored (c: RedisCluster, sessionId: string): Promise<string[]> {
  const events = await withClient(await c.master(slotOf(sessionId)), (r) => storedEvents(r, sessionId))
  return events.map((e) => (JSON.parse(e.data) as { token?: string }).token as string)
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

  t.test('a slot moved (MIGRATING/IMPORTING, MIGRATE, SETSLOT NODE) while its session is live: nothing lost, nothing doubled, also with waitReplicas', async (t) => {
    const a = await instance(t, cluster)
    // b's script and WAIT go in one pipeline, whose redirections (ASK, MOVED) ioredis does not follow.
    const b = await instance(t, cluster, { waitReplicas: 1 })
    const id = 'moving'
    const slot = slotOf(id)
    const clients = [await connect(`${a.url}/conversations/${id}/stream`), await connect(`${b.url}/conversations/${id}/stream`)]
    let i = 0
    /** Each instance's tokens, in the order it broadcast them. */
    const sentBy = new Map<typeof a, string[]>([[a, []], [b, []]])
    const send = async (app: typeof a, k: number): Promise<string[]> => {
      const sent: string[] = []
      for (let j = 0; j < k; j++) {
        const text = `m${i++}`
        ;(sentBy.get(app) as string[]).push(text)
        sent.push(await app.app.sse.broadcastToConversation(id, 'conversation_token', token(text)))
      }
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
      // b's broadcasts wait while the slot is half-moved (ASK): a's may pass them, each instance's keep their order.
      t.same([...tokens(c)].sort(), Array.from({ length: i }, (_, k) => `m${k}`).sort(), 'every event, once')
      for (const [app, sent] of sentBy) t.same(tokens(c).filter((x) => sent.includes(x)), sent, `${app === a ? 'a' : 'b'}'s in its order`)
      t.same(tokens(c), tokens(clients[0] as SseClient), 'both clients in one order')
      checkOrder(t, c, 'moved')
    }
    await waitFor(() => a.app.sse.getStats().backplane.catchUps > catchUps, 'a resubscribed on the new master and caught up')
    t.equal(a.app.sse.getStats().backplane.resyncs, 0, 'no resync: nothing was lost')
  })

  t.test('a session closed through one instance: both instances\' clients get the final event, closed and the end; 204 and SESSION_CLOSED on the other', async (t) => {
    const a = await instance(t, cluster)
    const b = await instance(t, cluster)
    const id = 'closing'
    const clients = [await connect(`${a.url}/conversations/${id}/stream`), await connect(`${b.url}/conversations/${id}/stream`)]
    const one = await b.app.sse.broadcastToConversation(id, 'conversation_token', token('one'))
    const final = await a.app.sse.closeConversation(id, 'conversation_completed', done(id))
    for (const c of clients) {
      await c.end()
      t.same(ids(c), [one, final, undefined], 'the events, the final one, then closed')
      t.match(c.received[2]?.json, { type: 'closed', sessionId: id, lastEventId: final })
    }
    const atEnd = new SseClient(`${b.url}/conversations/${id}/stream`, { 'last-event-id': final })
    await atEnd.end()
    t.equal(atEnd.statusCode, 204, 'a reconnect at the end: 204 from the other instance')
    await t.rejects(b.app.sse.broadcastToConversation(id, 'conversation_token', token('late')), FST_ERR_SSE_HUB_SESSION_CLOSED)
    await t.rejects(a.app.sse.broadcastToConversation(id, 'conversation_token', token('late')), FST_ERR_SSE_HUB_SESSION_CLOSED)
    t.equal(await b.app.sse.closeConversation(id), final, 'closing again, from the other instance: the same id')
    t.same(await stored(cluster, id), ['one', undefined], 'the stream: the event and the final one, nothing refused')
  })

  t.test('a session closed while its slot migrates: no TRYAGAIN, the close holds on the new master; a fresh session in the slot closes too', async (t) => {
    const a = await instance(t, cluster)
    const b = await instance(t, cluster)
    const id = 'closing-moving'
    const slot = slotOf(id)
    const fresh = inSlot('fresh', slot)
    const clients = [await connect(`${a.url}/conversations/${id}/stream`), await connect(`${b.url}/conversations/${id}/stream`)]
    const sent = [await a.app.sse.broadcastToConversation(id, 'conversation_token', token('one'))]
    const from = await cluster.master(slot)
    const target = (await cluster.masters()).find((m) => m !== from) as RedisServer
    let final = ''
    let freshClose: Promise<string> | undefined
    await cluster.migrate(slot, target, async () => {
      // Half-moved: the session's keys (both) are still on the old master, which runs the script.
      const tries = await Promise.all([from, target].map(tryAgains))
      sent.push(await b.app.sse.broadcastToConversation(id, 'conversation_token', token('two')))
      final = await a.app.sse.closeConversation(id, 'conversation_completed', done(id))
      await t.rejects(b.app.sse.broadcastToConversation(id, 'conversation_token', token('late')), FST_ERR_SSE_HUB_SESSION_CLOSED, 'refused while migrating')
      t.equal(await b.app.sse.closeConversation(id), final, 'closed again while migrating: the same id')
      t.same(await Promise.all([from, target].map(tryAgains)), tries, 'not one TRYAGAIN for them (the closed marker is a field of a key that exists)')
      // A session with no keys yet: the old master answers ASK and the new one TRYAGAIN (Redis serves no
      // multi-key command on keys it lacks in an importing slot), so its close waits in the retry window.
      const before = await tryAgains(target)
      freshClose = b.app.sse.closeConversation(fresh)
      await waitFor(async () => await tryAgains(target) > before, 'the new master answered TRYAGAIN')
    })
    t.equal(await cluster.master(slot), target, 'the slot moved')
    t.equal(await freshClose, '', 'the fresh session\'s close, held while its slot migrated, is stored once it moved')
    for (const c of clients) {
      await c.end()
      t.same(ids(c), [...sent, final, undefined], 'every event, the final one, closed, the end')
    }
    for (const app of [a, b]) {
      const atEnd = new SseClient(`${app.url}/conversations/${id}/stream`, { 'last-event-id': final })
      await atEnd.end()
      t.equal(atEnd.statusCode, 204, 'the close moved with the slot: 204')
      const none = new SseClient(`${app.url}/conversations/${fresh}/stream`)
      await none.end()
      t.equal(none.statusCode, 204, 'the fresh session is closed on the new master')
    }
    await t.rejects(a.app.sse.broadcastToConversation(id, 'conversation_token', token('later')), FST_ERR_SSE_HUB_SESSION_CLOSED)
    await t.rejects(a.app.sse.broadcastToConversation(fresh, 'conversation_token', token('later')), FST_ERR_SSE_HUB_SESSION_CLOSED)
    t.same(await stored(cluster, id), ['one', 'two', undefined], 'the new master has the events, the final one, nothing refused')
  })

  t.test('a snapshot from either instance: a late joiner on b gets the snapshot, then exactly the events after it', async (t) => {
    const id = 'snap'
    /** The application's state, kept beside the broadcasts through a: every token whose broadcast resolved, and its id. */
    const said: Array<{ text: string, id: string }> = []
    let a: Awaited<ReturnType<typeof instance>> | undefined
    const say = async (text: string): Promise<void> => {
      said.push({ text, id: await (a as NonNullable<typeof a>).app.sse.broadcastToConversation(id, 'conversation_token', token(text)) })
    }
    let racing = 0
    const snapshot: SseHubOptions['snapshot'] = async () => {
      const state = { state: { tokens: said.map((x) => x.text) }, lastEventId: said.at(-1)?.id ?? '' }
      // Events broadcast while the hook runs are held for the joiner, not lost, not doubled.
      await say(`race${racing++}`)
      return state
    }
    a = await instance(t, cluster, {}, { snapshot })
    const b = await instance(t, cluster, {}, { snapshot })
    for (let i = 0; i < 5; i++) await say(`t${i}`)
    for (const url of [b.url, a.url]) {
      const c = await connect(`${url}/conversations/${id}/stream`)
      await say('after')
      await c.until((x) => x.received.some((e) => e.json.token === 'after'), 'the event after the join')
      const snap = c.received[0]
      t.equal(snap?.event, 'snapshot', 'the snapshot first')
      const upTo = (snap?.json.state as { tokens: string[] }).tokens
      t.equal(snap?.id, said[upTo.length - 1]?.id, 'its id: the newest event it includes')
      t.same([...upTo, ...tokens(c).slice(1)], said.map((x) => x.text), 'the snapshot, then exactly the events after it')
      t.same(ids(c).slice(1), said.slice(upTo.length).map((x) => x.id))
      c.close()
    }
  })

  t.test('waitReplicas on a cluster: each WAIT goes to the session\'s master with its script, and the replica has the event when the broadcast resolves', async (t) => {
    const sessions = await spread(cluster, 'w', 1)
    const w = await instance(t, cluster, { waitReplicas: 1 })
    const masters = await cluster.masters()
    for (const [id, master] of sessions) {
      const before = await Promise.all(masters.map(waitsOn))
      const m = master.client()
      const replication = await m.info('replication').finally(() => m.disconnect())
      const replica = cluster.servers.find((s) => s.port === Number(/slave0:ip=[^,]+,port=(\d+)/.exec(replication)?.[1]))
      for (let i = 0; i < 3; i++) {
        const sent = await w.app.sse.broadcastToConversation(id, 'conversation_token', token(`w${i}`))
        const r = (replica as RedisServer).client()
        await r.readonly()
        const newest = await r.xrevrange(streamKey('sse-hub:', 'conversation', id), '+', '-', 'COUNT', 1).finally(() => r.disconnect())
        t.equal(newest[0]?.[0], sent, `${id}: on the replica once resolved`)
      }
      const after = await Promise.all(masters.map(waitsOn))
      t.same(after.map((n, k) => n - (before[k] as number)), masters.map((m) => m === master ? 3 : 0), `${id}: 3 WAITs, all on its master`)
    }
  })

  t.test('nodes that announce names only their peers resolve: a caller\'s Cluster with natMap (object or function) reaches every shard, also after a MOVED', async (t) => {
    // Every node announces a name under .invalid (never resolves): this process reaches a node only through natMap.
    const named = (port: number): string => `node-${port}.sse-hub.invalid`
    const configure = async (hostname: string | undefined): Promise<void> => {
      for (const s of cluster.servers.filter((x) => x.running)) {
        const r = s.client()
        await r.config('SET', 'cluster-announce-hostname', hostname === undefined ? '' : named(s.port), 'cluster-preferred-endpoint-type', hostname === undefined ? 'ip' : 'hostname').finally(() => r.disconnect())
      }
    }
    await configure('named')
    t.teardown(() => configure(undefined))
    // Gossip spreads the names: every node must name every master and replica before a client asks any of them.
    await waitFor(async () => {
      const views = await Promise.all(cluster.servers.filter((x) => x.running).map(async (x) => {
        const r = x.client()
        return await r.cluster('SLOTS').finally(() => r.disconnect())
      }))
      return views.every((slots) => slots.every(([, , ...nodes]) => nodes.every(([host, port]) => host === named(port))))
    }, 'the nodes\' names known to each other')
    const natMap = Object.fromEntries(cluster.servers.map((s) => [`${named(s.port)}:${s.port}`, { host: '127.0.0.1', port: s.port }]))
    const clients = [new Cluster(cluster.nodes, { natMap }), new Cluster(cluster.nodes, { natMap: (key: string) => natMap[key] ?? null })]
    t.teardown(() => { for (const c of clients) c.disconnect() })
    const a = await buildApp({ backplane: redisBackplane({ client: clients[0] as Cluster }) })
    const b = await buildApp({ backplane: redisBackplane({ client: clients[1] as Cluster }) })
    const [aUrl, bUrl] = [await listen(a, t), await listen(b, t)]
    /** A client on each instance: both get one event broadcast through `a`. */
    const reaches = async (id: string, what: string): Promise<void> => {
      const cs = [await connect(`${aUrl}/conversations/${id}/stream`), await connect(`${bUrl}/conversations/${id}/stream`)]
      const sent = await a.sse.broadcastToConversation(id, 'conversation_token', token(id))
      for (const c of cs) {
        await c.receive(1)
        t.same(ids(c), [sent], `${id}: ${what}`)
        c.close()
      }
    }
    for (const id of (await spread(cluster, 'nat', 1)).keys()) await reaches(id, 'a session on each shard')
    // A slot moved behind the instances' backs: their slot maps are stale, and Redis answers with MOVED <name>:<port>.
    const id = inSlot('moved-nat', slotOf('nat0'))
    const from = await cluster.master(slotOf(id))
    await cluster.migrate(slotOf(id), (await cluster.masters()).find((m) => m !== from) as RedisServer)
    await reaches(id, 'after its slot moved')
  })

  t.test('a master killed -9 while broadcasts flow: after the failover every resolved broadcast was delivered once, no rejected one, no gap without a resync; with waitReplicas 1, every resolved one is on the new master', async (t) => {
    const sessions = await spread(cluster, 'f', 1)
    // Every event stays in the streams (read at the end).
    const a = await instance(t, cluster, { publishRetryMs: 20_000, maxLen: 1_000_000 })
    // b holds no more than one broadcast while a master is away: its others reject at once, never sent.
    const b = await instance(t, cluster, { publishRetryMs: 20_000, publishRetryBytes: 1, maxLen: 1_000_000 })
    // c waits for a replica's acknowledgement. The promoted replica has none of its own: c's broadcasts
    // to that shard then reject once publishRetryMs is over (stored and announced, maybe delivered).
    const c = await instance(t, cluster, { waitReplicas: 1, publishRetryMs: 2000, maxLen: 1_000_000 })
    const clients = new Map<string, SseClient[]>()
    for (const id of sessions.keys()) {
      clients.set(id, await Promise.all([connect(`${a.url}/conversations/${id}/stream`), connect(`${b.url}/conversations/${id}/stream`)]))
    }
    const victimSession = [...sessions.keys()][0] as string
    const victim = sessions.get(victimSession) as RedisServer
    const resolved = new Map<string, Set<string>>()
    const rejected = new Map<string, Set<string>>()
    /** c's broadcasts that resolved before the kill, and those that rejected (not replicated in time: maybe delivered). */
    const replicatedBeforeKill = new Map<string, Set<string>>()
    const notReplicated = new Map<string, Set<string>>()
    let stop = false
    let afterKill = 0
    let killed = false
    const producers = [...sessions.keys()].flatMap((id) => [a, b, c].map(async (x, which) => {
      for (let i = 0; !stop; i++) {
        const text = `${which}-${i}`
        try {
          await x.app.sse.broadcastToConversation(id, 'conversation_token', token(text))
          ;(resolved.get(id) ?? resolved.set(id, new Set()).get(id) as Set<string>).add(text)
          if (x === c && !killed) (replicatedBeforeKill.get(id) ?? replicatedBeforeKill.set(id, new Set()).get(id) as Set<string>).add(text)
          if (killed && id === victimSession && x !== c) afterKill++
        } catch {
          if (x === c) {
            ;(notReplicated.get(id) ?? notReplicated.set(id, new Set()).get(id) as Set<string>).add(text)
            await new Promise((resolve) => setImmediate(resolve))
            continue
          }
          ;(rejected.get(id) ?? rejected.set(id, new Set()).get(id) as Set<string>).add(text)
          await new Promise((resolve) => setImmediate(resolve)) // a rejection is immediate: let I/O run
        }
      }
    }))
    await waitFor(() => (resolved.get(victimSession)?.size ?? 0) >= 20 && (replicatedBeforeKill.get(victimSession)?.size ?? 0) >= 5, 'broadcasts flow, c\'s too')
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
          t.same(got.filter((x) => !want.has(x) && notReplicated.get(id)?.has(x) !== true), [], `${id}: only resolved broadcasts (and c's not replicated in time)`)
          t.equal(got.filter((x) => notReplicated.get(id)?.has(x) !== true).length, want.size, `${id}: every resolved broadcast, once`)
        } else {
          t.comment(`${id}: a resync was announced (writes the old master had not replicated were lost)`)
        }
        // Each producer's own order is kept.
        for (const w of ['0', '1', '2']) {
          const mine = got.filter((x) => x.startsWith(`${w}-`)).map((x) => Number(x.slice(2)))
          t.same(mine, [...mine].sort((x, y) => x - y), `${id}: producer ${w}'s order`)
        }
      }
    }
    // waitReplicas 1: what resolved was on the replica, now the master: nothing lost, nothing twice.
    for (const id of sessions.keys()) {
      const inStream = await stored(cluster, id)
      const mine = [...resolved.get(id) as Set<string>].filter((x) => x.startsWith('2-'))
      t.same(mine.filter((x) => inStream.filter((y) => y === x).length !== 1), [], `${id}: each of c's ${mine.length} resolved broadcasts once in the stream on the new master`)
    }
    t.ok((replicatedBeforeKill.get(victimSession)?.size ?? 0) >= 5, 'c\'s broadcasts to the failed shard resolved before the kill')
    t.comment(`c: ${[...notReplicated.values()].reduce((n, x) => n + x.size, 0)} broadcasts not replicated within publishRetryMs after the failover`)
    const refused = [...rejected.values()].flatMap((s) => [...s])
    t.same(refused.filter((x) => x.startsWith('0-')), [], 'a (publishRetryMs 20 s, 1 MiB): no broadcast rejected')
    t.comment(`b: ${refused.length} broadcasts rejected at once while the master was away (publishRetryBytes), none delivered`)
    t.ok(a.app.sse.getStats().backplane.catchUps > 0, 'the feeds caught up after losing the shard')
  })
}
