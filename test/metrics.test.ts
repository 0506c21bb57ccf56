/*
 * The `metrics` option (src/metrics/): after scripted traffic over real sockets, the application's prom-client
 * registry reads what happened, the same numbers as `getStats()`, per kind (an added kind included); fan-out
 * histograms count one observation per broadcast; label values stay within the kinds, the reject reasons and
 * the bucket bounds; a bad option fails `register`.
 */
import t, { type Test } from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import sseHub, {
  FST_ERR_SSE_HUB_INVALID_OPTION,
  FST_ERR_SSE_HUB_UNAUTHORIZED,
  redisBackplane,
  type Backplane,
  type LeaseState,
  type BackplaneSink,
  type BackplaneStats,
  type SseHubOptions
} from '../src/index.js'
import { REJECT_REASONS } from '../src/counters.js'
import { HEARTBEAT } from '../src/batch.js'
import { FANOUT_BUCKETS } from '../src/metrics/histogram.js'
import { buildApp, connect, listen, SseClient, token } from './helper.js'
import { redisOrSkip } from './redis/helper.js'

declare module '../src/index.js' {
  interface SessionKinds {
    chat: { message: { from: string, text: string } }
  }
}

interface Value { value: number, labels: Record<string, string | number>, metricName?: string }

/** Every metric of the registry by name: its values. */
async function read (registry: Registry): Promise<Map<string, Value[]>> {
  const metrics = await registry.getMetricsAsJSON()
  return new Map(metrics.map((m) => [m.name, m.values as unknown as Value[]]))
}

/** `metric`'s values by `kind` label (`metricName` when given, e.g. `…_count` of a histogram). */
function byKind (metrics: Map<string, Value[]>, name: string, metricName = name, extra: Record<string, string> = {}): Record<string, number> {
  const out: Record<string, number> = {}
  for (const v of metrics.get(name) ?? []) {
    if ((v.metricName ?? name) !== metricName) continue
    if (!Object.entries(extra).every(([k, x]) => v.labels[k] === x)) continue
    out[v.labels.kind as string] = v.value
  }
  return out
}

const sum = (o: Record<string, number>): number => Object.values(o).reduce((a, b) => a + b, 0)

t.test('the registry reads what happened, per kind, the same numbers as getStats()', async (t) => {
  const registry = new Registry()
  const app = await buildApp({
    metrics: { registry },
    kinds: ['chat'],
    heartbeatInterval: 0,
    maxClientsPerSession: 2,
    authorize: (request) => {
      if (request.headers['x-test'] === 'deny') return false
      if (request.headers['x-test'] === 'anon') throw new FST_ERR_SSE_HUB_UNAUTHORIZED()
      if (request.headers['x-test'] === 'crash') throw new Error('authorize failed')
      return true
    }
  })
  app.get('/chats/:id/stream', app.sse.stream('chat'))
  const url = await listen(app, t)
  const a = await connect(`${url}/conversations/s/stream`)
  const b = await connect(`${url}/conversations/s/stream`)
  const d = await connect(`${url}/debates/d/stream`)
  const p = await connect(`${url}/chats/p/stream`)

  // Refusals: 503 (maxClientsPerSession), 403, 401, 406; a crashing authorize (500) is not a refusal.
  const refused = [
    [`${url}/conversations/s/stream`, {}],
    [`${url}/conversations/x/stream`, { 'x-test': 'deny' }],
    [`${url}/conversations/x/stream`, { 'x-test': 'anon' }],
    [`${url}/conversations/x/stream`, { 'x-test': 'crash' }],
    [`${url}/chats/p/stream`, { accept: 'application/json' }]
  ] as const
  const statuses = await Promise.all(refused.map(async ([u, h]) => (await new SseClient(u, h).opened()).statusCode))
  t.same(statuses, [503, 403, 401, 500, 406])

  await Promise.all([1, 2, 3].map((n) => app.sse.broadcastToConversation('s', 'conversation_token', token(`t${n}`, n))))
  await app.sse.broadcastToConversation('nobody', 'conversation_token', token('alone'))
  const debateId = await app.sse.broadcastToDebate('d', 'debate_token', { debateId: 'd', participantId: 'p', personaSlug: 'x', turnCount: 1, token: 'hi' })
  await app.sse.kind('chat').broadcast('p', 'message', { from: 'a', text: 'a' })
  await app.sse.kind('chat').broadcast('p', 'message', { from: 'b', text: 'b' })
  await Promise.all([a.receive(3), b.receive(3), d.receive(1), p.receive(2)])
  app.sse.sendConversationHeartbeat('s')
  await Promise.all([a, b].map(async (c) => { await c.until((x) => x.comments.length === 1, 'heartbeat') }))
  // A replay (known id) and a resync (unknown id) on the chat kind, and a replay (of nothing) on the debate.
  const replayed = await connect(`${url}/conversations/s/stream`.replace('conversations/s', 'chats/p'), { 'last-event-id': 'nope' })
  await replayed.receive(1)
  const c = await connect(`${url}/debates/d/stream`, { 'last-event-id': debateId })

  const stats = app.sse.getStats()
  let m = await read(registry)
  t.same(byKind(m, 'sse_hub_clients'), { conversation: 2, debate: 2, chat: 2 })
  t.same(byKind(m, 'sse_hub_sessions'), { conversation: 2, debate: 1, chat: 1 })
  t.same(byKind(m, 'sse_hub_history_events'), { conversation: 4, debate: 1, chat: 2 })
  t.equal(sum(byKind(m, 'sse_hub_history_bytes')), stats.conversations.historyBytes + stats.debates.historyBytes + (stats.kinds.chat?.historyBytes as number))
  t.same(byKind(m, 'sse_hub_broadcasts_total'), { conversation: 4, debate: 1, chat: 2 })
  t.same(byKind(m, 'sse_hub_events_delivered_total'), { conversation: 6, debate: 1, chat: 2 })
  t.same(byKind(m, 'sse_hub_heartbeats_total'), { conversation: 2, debate: 0, chat: 0 })
  t.same(byKind(m, 'sse_hub_clients_connected_total'), { conversation: 2, debate: 2, chat: 2 })
  t.same(byKind(m, 'sse_hub_replays_total'), { conversation: 0, debate: 1, chat: 0 }, 'a replay, of nothing')
  t.same(byKind(m, 'sse_hub_resyncs_total'), { conversation: 0, debate: 0, chat: 1 })
  t.same(byKind(m, 'sse_hub_clients_rejected_total', undefined, { reason: 'max_per_session' }), { conversation: 1, debate: 0, chat: 0 })
  t.same(byKind(m, 'sse_hub_clients_rejected_total', undefined, { reason: 'forbidden' }), { conversation: 1, debate: 0, chat: 0 })
  t.same(byKind(m, 'sse_hub_clients_rejected_total', undefined, { reason: 'unauthorized' }), { conversation: 1, debate: 0, chat: 0 })
  t.same(byKind(m, 'sse_hub_clients_rejected_total', undefined, { reason: 'not_acceptable' }), { conversation: 0, debate: 0, chat: 1 })
  t.equal((m.get('sse_hub_clients_rejected_total') as Value[]).reduce((n, v) => n + v.value, 0), 4, '500 is not counted')
  // The same numbers as getStats().
  t.equal(sum(byKind(m, 'sse_hub_clients')), stats.clients)
  t.equal(sum(byKind(m, 'sse_hub_events_delivered_total')), stats.eventsSent)
  t.equal(sum(byKind(m, 'sse_hub_written_bytes_total')), stats.bytesSent)
  t.equal(sum(byKind(m, 'sse_hub_broadcasts_total')), stats.broadcasts)
  t.equal(sum(byKind(m, 'sse_hub_heartbeats_total')), stats.heartbeatsSent)
  t.equal(sum(byKind(m, 'sse_hub_clients_connected_total')), stats.clientsConnected)
  t.equal(stats.clientsRejected, 1, 'clientsRejected: the 503/429 ones')
  t.same(stats.rejections, { max_clients: 0, max_per_session: 1, max_per_ip: 0, max_sessions: 0, forbidden: 1, unauthorized: 1, not_acceptable: 1 })

  // One fan-out observation per broadcast to a session with clients (not per client, not heartbeats).
  t.same(byKind(m, 'sse_hub_fanout_seconds', 'sse_hub_fanout_seconds_count'), { conversation: 3, debate: 1, chat: 2 })
  t.same(byKind(m, 'sse_hub_fanout_seconds', 'sse_hub_fanout_seconds_bucket', { le: '+Inf' }), { conversation: 3, debate: 1, chat: 2 })
  const buckets = (m.get('sse_hub_fanout_seconds') as Value[]).filter((v) => v.labels.kind === 'conversation' && v.metricName === 'sse_hub_fanout_seconds_bucket')
  t.same(buckets.map((v) => v.labels.le), [...FANOUT_BUCKETS, '+Inf'])
  t.ok(buckets.every((v, i) => i === 0 || v.value >= (buckets[i - 1] as Value).value), 'cumulative')
  t.ok((byKind(m, 'sse_hub_fanout_seconds', 'sse_hub_fanout_seconds_sum').conversation as number) > 0)
  t.equal(HEARTBEAT.queuedAt, 0, 'the shared heartbeat frame is never stamped')

  // Bounded labels: kinds, reasons, bucket bounds; never a session id.
  const allowed: Record<string, Set<unknown>> = {
    kind: new Set(['conversation', 'debate', 'chat']),
    reason: new Set(REJECT_REASONS),
    le: new Set([...FANOUT_BUCKETS, '+Inf'])
  }
  for (const [name, values] of m) {
    t.ok(name.startsWith('sse_hub_'), name)
    for (const v of values) {
      for (const [label, value] of Object.entries(v.labels)) {
        if (!(allowed[label]?.has(value) ?? false)) t.fail(`${name}: label ${label}=${String(value)}`)
      }
    }
  }
  const text = await registry.metrics()
  t.match(text, /\nsse_hub_clients\{kind="conversation"\} 2\n/)
  t.match(text, /\nsse_hub_fanout_seconds_bucket\{kind="chat",le="\+Inf"\} 2\n/)
  t.notMatch(text, /"(s|d|p|nobody)"/, 'no session id in any label')

  // Cleanup ends every client at maxConnectionAge: expired, and the gauge is back to 0.
  const ended = [a, b, d, p, replayed, c]
  app.sse.cleanupStaleConnections(0)
  await Promise.all(ended.map(async (x) => { await x.end() }))
  m = await read(registry)
  t.same(byKind(m, 'sse_hub_clients_expired_total'), { conversation: 2, debate: 2, chat: 2 })
  t.same(byKind(m, 'sse_hub_clients'), { conversation: 0, debate: 0, chat: 0 })
  t.equal(sum(byKind(m, 'sse_hub_clients_expired_total')), app.sse.getStats().clientsExpired)
})

t.test('evictions and slow-client drops are counted in the kind of the session', async (t) => {
  const registry = new Registry()
  const app = await buildApp({ metrics: { registry }, maxSessions: 1, heartbeatInterval: 0 })
  await app.sse.broadcastToDebate('old', 'debate_token', { debateId: 'old', participantId: 'p', personaSlug: 'x', turnCount: 1, token: 't' })
  await app.sse.broadcastToConversation('new', 'conversation_token', token('t'))
  const m = await read(registry)
  t.same(byKind(m, 'sse_hub_sessions_evicted_total'), { conversation: 0, debate: 1 })
  t.same(byKind(m, 'sse_hub_clients_dropped_slow_total'), { conversation: 0, debate: 0 })
  await app.close()
})

t.test('snapshots sent are counted in the kind of the session, the same number as getStats()', async (t) => {
  const registry = new Registry()
  const app = await buildApp({ metrics: { registry }, heartbeatInterval: 0, snapshot: (kind) => kind === 'debate' ? { state: {}, lastEventId: '' } : undefined })
  const url = await listen(app, t)
  const d = await connect(`${url}/debates/d/stream`)
  const c = await connect(`${url}/conversations/c/stream`)
  t.same((await d.receive(1)).map((e) => e.event), ['snapshot'])
  const m = await read(registry)
  t.same(byKind(m, 'sse_hub_snapshots_total'), { conversation: 0, debate: 1 })
  t.equal(app.sse.getStats().snapshotsSent, 1)
})

t.test('a bad metrics option fails register with FST_ERR_SSE_HUB_INVALID_OPTION', async (t) => {
  const registry = new Registry()
  const bad: unknown[] = [
    1,
    null,
    {},
    { registry: {} },
    { registry: null },
    { registry, prefix: '1bad' },
    { registry, prefix: '' },
    { registry, prefix: 5 },
    { registry, extra: true }
  ]
  for (const metrics of bad) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(sseHub, { metrics } as unknown as SseHubOptions) }, FST_ERR_SSE_HUB_INVALID_OPTION, JSON.stringify(metrics))
    await app.close()
  }
  t.same(await registry.getMetricsAsJSON(), [], 'nothing registered')
})

t.test('two hubs in one registry need their own prefixes; a closed hub removes its metrics', async (t) => {
  const registry = new Registry()
  const one = await buildApp({ metrics: { registry } })
  const two = Fastify()
  await t.rejects(async () => { await two.register(sseHub, { metrics: { registry } }) }, { code: 'FST_ERR_SSE_HUB_INVALID_OPTION', message: /already been registered/ })
  await two.close()
  const names = (await registry.getMetricsAsJSON()).map((m) => m.name)
  t.ok(names.includes('sse_hub_clients'), "the first hub's metrics stay")
  const three = await buildApp({ metrics: { registry, prefix: 'other_' } })
  t.ok((await registry.getMetricsAsJSON()).some((m) => m.name === 'other_clients'))
  await one.close()
  await three.close()
  t.same(await registry.getMetricsAsJSON(), [], 'both removed theirs')
  const again = await buildApp({ metrics: { registry } })
  t.ok((await registry.getMetricsAsJSON()).length > 0, 'registered again after close')
  await again.close()
})

t.test('any registry with registerMetric works, and an OpenMetrics registry renders counters', async (t) => {
  const registered: Array<{ name: string }> = []
  const app = await buildApp({ metrics: { registry: { registerMetric: (m: never) => { registered.push(m) } } } })
  t.ok(registered.some((m) => m.name === 'sse_hub_fanout_seconds'))
  await app.close()

  const open = new Registry()
  open.setContentType(Registry.OPENMETRICS_CONTENT_TYPE as never)
  const app2 = await buildApp({ metrics: { registry: open }, heartbeatInterval: 0 })
  await app2.sse.broadcastToConversation('s', 'conversation_token', token('t'))
  t.match(await open.metrics(), /\nsse_hub_broadcasts_total\{kind="conversation"\} 1\n/)
  open.resetMetrics()
  t.match(await open.metrics(), /\nsse_hub_broadcasts_total\{kind="conversation"\} 1\n/, "a registry's reset leaves the hub's counters alone")
  await app2.close()
})

t.test('the hub never imports prom-client', async (t) => {
  for (const file of readdirSync('dist', { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.js'))) {
    t.notMatch(readFileSync(`dist/${file}`, 'utf8'), /(from|import\()\s*['"]prom-client['"]/, file)
  }
})

/** A backplane in this process, without `eventTime`: no lag is observed. */
class LocalBackplane implements Backplane {
  readonly type = 'local'
  #sink!: BackplaneSink
  #n = 0
  async start (sink: BackplaneSink): Promise<void> { this.#sink = sink }
  async stop (): Promise<void> {}
  async publish (kind: string, sessionId: string, type: string, data: string): Promise<string> {
    const id = `${++this.#n}-0`
    setImmediate(() => { this.#sink.deliver(kind, sessionId, { id, type, data }) })
    return id
  }

  async subscribe (): Promise<void> {}
  unsubscribe (): void {}
  async read (): Promise<never> { throw new Error('no replay here') }
  keepFrames (): void {}
  async closeSession (): Promise<never> { throw new Error('no closing here') }
  async closedSession (): Promise<undefined> { return undefined }
  // No producers here (leases are tested on Redis).
  async lease (): Promise<string> { return 'none' }
  async leaseState (): Promise<LeaseState> { return { state: 'none' } }
  async stopProducer (): Promise<boolean> { return false }
  async readValue (): Promise<undefined> { return undefined }
  async swapValue (): Promise<boolean> { return false }
  compareIds (a: string, b: string): number { return Number.parseInt(a) - Number.parseInt(b) }
  stats (): BackplaneStats {
    return { type: 'local', connected: true, subscriptions: 0, published: this.#n, publishFailures: 0, received: 0, lagMs: 0, maxLagMs: 0, errors: 0, reconnects: 0, catchUps: 0, resyncs: 0 }
  }
}

/** Scripted traffic on a backplane hub: one client, two broadcasts; returns the metrics once it got them. */
async function backplaneTraffic (t: Test, backplane: Backplane): Promise<Map<string, Value[]>> {
  const registry = new Registry()
  const app = await buildApp({ metrics: { registry }, backplane, heartbeatInterval: 0 })
  const url = await listen(app, t)
  const client = await connect(`${url}/conversations/s/stream`)
  await app.sse.broadcastToConversation('s', 'conversation_token', token('1'))
  await app.sse.broadcastToConversation('s', 'conversation_token', token('2'))
  await client.receive(2)
  const m = await read(registry)
  t.same(byKind(m, 'sse_hub_fanout_seconds', 'sse_hub_fanout_seconds_count'), { conversation: 2, debate: 0 }, 'from arrival here to the last client')
  return m
}

const one = (m: Map<string, Value[]>, name: string, metricName = name): number | undefined =>
  m.get(name)?.find((v) => (v.metricName ?? name) === metricName)?.value

t.test('with a backplane: its state and publish latency; no lag without eventTime', async (t) => {
  const m = await backplaneTraffic(t, new LocalBackplane())
  t.equal(one(m, 'sse_hub_backplane_connected'), 1)
  t.equal(one(m, 'sse_hub_backplane_reconnects_total'), 0)
  t.equal(one(m, 'sse_hub_backplane_catch_ups_total'), 0)
  t.equal(one(m, 'sse_hub_backplane_publish_seconds', 'sse_hub_backplane_publish_seconds_count'), 2)
  t.equal(one(m, 'sse_hub_backplane_lag_seconds', 'sse_hub_backplane_lag_seconds_count'), 0)
})

t.test('with Redis: lag from the stream id, one observation per event received', async (t) => {
  const redis = await redisOrSkip(t)
  if (redis === undefined) return
  const m = await backplaneTraffic(t, redisBackplane({ url: redis.url }))
  t.equal(one(m, 'sse_hub_backplane_connected'), 1)
  t.equal(one(m, 'sse_hub_backplane_publish_seconds', 'sse_hub_backplane_publish_seconds_count'), 2)
  t.equal(one(m, 'sse_hub_backplane_lag_seconds', 'sse_hub_backplane_lag_seconds_count'), 2)
  t.equal(one(m, 'sse_hub_backplane_errors_total'), 0)
  t.equal(one(m, 'sse_hub_backplane_publish_failures_total'), 0)
})
