/*
 * The hub's side of the backplane contract, with a scripted in-process backplane:
 * the seams between a joining client's replay and live events depend on which of
 * two Redis connections answers first, so here the test decides the order. The
 * Redis backplane itself is tested against a real redis-server (redis-*.test.ts).
 */
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import {
  FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE,
  backplaneFromEnv,
  redisBackplane,
  type Backplane,
  type LeaseState,
  type BackplaneEvent,
  type BackplaneRead,
  type BackplaneSink,
  type BackplaneStats,
  type SessionKind
} from '../src/index.js'
import { compareStreamIds } from '../src/backplane/redis-stream.js'
import { SseClient, buildApp, connect, listen, rawResponses, token, tokens, waitFor } from './helper.js'

/** A gate a test opens when it wants the backplane's pending call to finish. */
class Gate {
  open!: () => void
  readonly promise = new Promise<void>((resolve) => { this.open = resolve })
}

/** A backplane whose log is an array; `subscribeGate`/`readGate` hold those calls until the test opens them. */
class ScriptedBackplane implements Backplane {
  readonly type = 'scripted'
  sink!: BackplaneSink
  readonly log: BackplaneEvent[] = []
  readonly refs = new Map<string, number>()
  subscribeGate: Gate | undefined
  readGate: Gate | undefined
  failSubscribe = false
  failRead = false
  /** Read the log before waiting at `readGate`, as an XRANGE answered before a later close would be. */
  readFirst = false
  /** The closed marker `closedSession` answers (set by a test that closes the session in the log). */
  closedMarker: string | undefined
  readonly calls: string[] = []
  #n = 0

  async start (sink: BackplaneSink): Promise<void> { this.sink = sink }
  async stop (): Promise<void> {}

  async publish (kind: SessionKind, sessionId: string, type: string, data: string): Promise<string> {
    const event = { id: `${++this.#n}-0`, type, data }
    this.log.push(event)
    return event.id
  }

  /** Delivers a logged event (by its number) to the hub, as a live message would arrive. */
  deliver (sessionId: string, n: number): void {
    this.sink.deliver('conversation', sessionId, this.log[n - 1] as BackplaneEvent)
  }

  async subscribe (kind: SessionKind, sessionId: string): Promise<void> {
    this.calls.push(`subscribe ${sessionId}`)
    this.refs.set(sessionId, (this.refs.get(sessionId) ?? 0) + 1)
    await this.subscribeGate?.promise
    if (this.failSubscribe) {
      this.unsubscribe(kind, sessionId)
      throw new FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE('scripted')
    }
  }

  unsubscribe (kind: SessionKind, sessionId: string): void {
    this.calls.push(`unsubscribe ${sessionId}`)
    this.refs.set(sessionId, (this.refs.get(sessionId) as number) - 1)
  }

  async read (kind: SessionKind, sessionId: string, afterId: string | undefined): Promise<BackplaneRead> {
    this.calls.push(`read ${sessionId}`)
    const log = [...this.log]
    if (!this.readFirst) await this.readGate?.promise
    const answer = this.#answer(this.readFirst ? log : this.log, afterId)
    if (this.readFirst) await this.readGate?.promise
    if (this.failRead) throw new FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE('scripted')
    return answer
  }

  #answer (log: BackplaneEvent[], afterId: string | undefined): BackplaneRead {
    if (afterId === undefined) return { found: true, events: log }
    const at = log.findIndex((e) => e.id === afterId)
    if (at < 0) return { found: false, reason: 'unknown_event_id', newestId: log[log.length - 1]?.id ?? '' }
    return { found: true, events: log.slice(at + 1) }
  }

  compareIds (a: string, b: string): number { return compareStreamIds(a, b) }
  async closeSession (): Promise<string> { throw new Error('not scripted') }
  keepFrames (): void {}
  async closedSession (): Promise<string | undefined> { return this.closedMarker }
  // No producers here (leases are tested on Redis).
  async lease (): Promise<string> { return 'none' }
  async leaseState (): Promise<LeaseState> { return { state: 'none' } }
  async stopProducer (): Promise<boolean> { return false }
  async readValue (): Promise<undefined> { return undefined }
  async swapValue (): Promise<boolean> { return false }

  stats (): BackplaneStats {
    return { type: this.type, connected: true, subscriptions: 0, published: 0, publishFailures: 0, received: 0, lagMs: 0, maxLagMs: 0, errors: 0, reconnects: 0, catchUps: 0, resyncs: 0 }
  }
}

async function setup (t: Test, options = {}): Promise<{ app: FastifyInstance, url: string, bp: ScriptedBackplane }> {
  const bp = new ScriptedBackplane()
  const app = await buildApp({ ...options, backplane: bp })
  const url = await listen(app, t)
  return { app, url, bp }
}

async function publish (app: FastifyInstance, bp: ScriptedBackplane, n: number): Promise<void> {
  for (let i = 1; i <= n; i++) await app.sse.broadcastToConversation('s', 'conversation_token', token(String(bp.log.length + 1)))
}

t.test('events arriving while a replay is read are held; only those after the replay are written', async (t) => {
  const { app, url, bp } = await setup(t)
  await publish(app, bp, 3)
  bp.readGate = new Gate()
  const c = new SseClient(`${url}/conversations/s/stream`, { 'last-event-id': '2-0' })
  await waitFor(() => bp.calls.includes('subscribe s'), 'subscribed')
  await publish(app, bp, 1)
  // Live: 3 (already in the replay) and 4 (not), while the read is pending.
  bp.deliver('s', 3)
  bp.deliver('s', 4)
  bp.readGate.open()
  await c.receive(2)
  t.same(tokens(c), ['3', '4'])
  bp.deliver('s', 4) // a duplicate from the backplane would be its bug, yet it is not written twice…
  await publish(app, bp, 1)
  bp.deliver('s', 5)
  await c.receive(3)
  t.same(tokens(c), ['3', '4', '5'], '…nothing older than the client\'s position is')
})

t.test('live events still behind a replay are skipped by that client only', async (t) => {
  const { app, url, bp } = await setup(t)
  await publish(app, bp, 3)
  const plain = await connect(`${url}/conversations/s/stream`)
  const c = await connect(`${url}/conversations/s/stream`, { 'last-event-id': '1-0' })
  await c.receive(2)
  t.same(tokens(c), ['2', '3'], 'replayed')
  // The live copies of 2 and 3 arrive after the replay read them.
  bp.deliver('s', 2)
  bp.deliver('s', 3)
  await publish(app, bp, 1)
  bp.deliver('s', 4)
  await c.receive(3)
  await plain.receive(3)
  t.same(tokens(c), ['2', '3', '4'])
  t.same(tokens(plain), ['2', '3', '4'], 'a client without replay gets every live event')
})

t.test('a resync reaches every client, joining ones included, whatever their replay covered', async (t) => {
  const { app, url, bp } = await setup(t)
  await publish(app, bp, 2)
  const c = await connect(`${url}/conversations/s/stream`, { 'last-event-id': '1-0' })
  bp.readGate = new Gate()
  const joining = new SseClient(`${url}/conversations/s/stream`, { 'last-event-id': '1-0' })
  await waitFor(() => bp.calls.filter((x) => x === 'subscribe s').length === 2, 'second join pending')
  bp.sink.resync('conversation', 's', '2-0')
  bp.readGate.open()
  await c.receive(2)
  await joining.receive(2)
  t.same(tokens(c), ['2', 'RESYNC'])
  t.same(tokens(joining), ['2', 'RESYNC'])
  t.equal(c.received[1]?.id, '2-0')
  t.equal(c.received[1]?.json.reason, 'history_trimmed')
  // Deliveries for sessions without clients here are ignored.
  bp.sink.resync('conversation', 'nobody', '1-0')
  bp.sink.deliver('conversation', 'nobody', bp.log[0] as BackplaneEvent)
  t.equal(app.sse.getStats().conversations.sessions, 1)
})

t.test('an unknown id from the backplane: resync with its newest id, or none', async (t) => {
  const { app, url, bp } = await setup(t)
  const empty = await connect(`${url}/conversations/s/stream`, { 'last-event-id': '9-0' })
  await empty.receive(1)
  t.equal(empty.received[0]?.json.reason, 'unknown_event_id')
  t.equal(empty.received[0]?.id, '')
  await publish(app, bp, 1)
  const c = await connect(`${url}/conversations/s/stream`, { 'last-event-id': '9-0' })
  await c.receive(1)
  t.equal(c.received[0]?.id, '1-0')
})

t.test('a backplane that cannot subscribe or read: 503 with Retry-After, nothing left behind', async (t) => {
  const { app, url, bp } = await setup(t)
  bp.failSubscribe = true
  const a = new SseClient(`${url}/conversations/s/stream`)
  t.equal((await a.errorBody()).code, 'FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE')
  t.equal(a.statusCode, 503)
  t.equal(a.headers['retry-after'], '5')
  bp.failSubscribe = false
  bp.failRead = true
  const b = new SseClient(`${url}/conversations/s/stream`, { 'last-event-id': '1-0' })
  t.equal((await b.errorBody()).code, 'FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE')
  t.equal(bp.refs.get('s'), 0, 'every subscribe undone')
  const stats = app.sse.getStats()
  t.equal(stats.clients, 0)
  t.equal(stats.conversations.sessions, 0)
  // And once it works again, the same client gets in.
  bp.failRead = false
  const ok = await connect(`${url}/conversations/s/stream`)
  t.equal(app.sse.getConversationClientCount('s'), 1)
  ok.close()
  await waitFor(() => bp.refs.get('s') === 0, 'unsubscribed on leave')
  t.equal(app.sse.getStats().conversations.sessions, 0, 'forgotten with its last client')
})

t.test('joins waiting on the backplane count against the limits', async (t) => {
  const { url, bp } = await setup(t, { maxClientsPerSession: 1 })
  bp.subscribeGate = new Gate()
  const first = new SseClient(`${url}/conversations/s/stream`)
  await waitFor(() => bp.calls.includes('subscribe s'), 'first join pending')
  const second = new SseClient(`${url}/conversations/s/stream`)
  t.equal((await second.errorBody()).code, 'FST_ERR_SSE_HUB_TOO_MANY_CLIENTS')
  bp.subscribeGate.open()
  await first.connected()
  t.pass('the first one got in')
})

t.test('a client that leaves while its join waits leaves nothing behind', async (t) => {
  const bp = new ScriptedBackplane()
  const app = await buildApp({ backplane: bp })
  const responses = rawResponses(app)
  const url = await listen(app, t)
  bp.subscribeGate = new Gate()
  const c = new SseClient(`${url}/conversations/s/stream`)
  await waitFor(() => bp.calls.includes('subscribe s'), 'join pending')
  c.close()
  await waitFor(() => responses[0]?.destroyed === true, 'server saw the close')
  bp.subscribeGate.open()
  await waitFor(() => bp.refs.get('s') === 0, 'unsubscribed')
  t.equal(app.sse.getStats().clients, 0)
  t.equal(app.sse.getStats().conversations.sessions, 0)
})

t.test('a client that leaves during authorize is not joined', async (t) => {
  const bp = new ScriptedBackplane()
  const gate = new Gate()
  const app = await buildApp({ backplane: bp, authorize: async () => { await gate.promise } })
  let raw: import('node:http').ServerResponse | undefined
  let handled: Promise<unknown> | undefined
  const route = app.sse.stream('conversation')
  app.get('/watched/:id', {
    ...route,
    handler: async function (request, reply) {
      raw = reply.raw
      handled = (route.handler as (this: unknown, ...args: unknown[]) => Promise<unknown>).call(this, request, reply)
      await handled
    }
  })
  const url = await listen(app, t)
  const c = new SseClient(`${url}/watched/s`)
  await waitFor(() => raw !== undefined, 'request in')
  c.close()
  await waitFor(() => raw?.destroyed === true, 'server saw the close')
  gate.open()
  await handled
  t.same(bp.calls, [], 'never subscribed')
  t.equal(app.sse.getStats().clients, 0)
  t.equal(app.sse.getStats().conversations.sessions, 0)
})

t.test('a join that finishes after close() began is refused', async (t) => {
  const bp = new ScriptedBackplane()
  const app = await buildApp({ backplane: bp })
  // Runs after the hub's own preClose, which refuses new clients.
  app.addHook('preClose', async () => { bp.subscribeGate?.open() })
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  bp.subscribeGate = new Gate()
  const c = new SseClient(`${url}/conversations/s/stream`)
  await waitFor(() => bp.calls.includes('subscribe s'), 'join pending')
  const closing = app.close()
  t.equal((await c.errorBody()).code, 'FST_ERR_SSE_HUB_SHUTTING_DOWN')
  await closing
  t.equal(bp.refs.get('s'), 0)
})

t.test('options: backplane and redisBackplane() are validated', async (t) => {
  const bad: Array<[unknown, RegExp]> = [
    [undefined, /options must be an object/],
    [{ url: 'http://x' }, /'url': must be a redis/],
    [{}, /exactly one of/],
    [{ url: 'redis://127.0.0.1:1', client: {} }, /'client': must be an ioredis client/],
    [{ url: 'redis://127.0.0.1:1', maxLen: 0 }, /'maxLen'/],
    [{ url: 'redis://127.0.0.1:1', keyPrefix: 5 }, /'keyPrefix'/],
    [{ url: 'redis://127.0.0.1:1', redisOptions: null }, /'redisOptions'/],
    [{ url: 'redis://127.0.0.1:1', nope: 1 }, /'nope': unknown option/]
  ]
  for (const [options, message] of bad) {
    t.throws(() => redisBackplane(options as never), { code: 'FST_ERR_SSE_HUB_INVALID_OPTION', message }, String(message))
  }
  t.equal(redisBackplane({ url: 'redis://127.0.0.1:1', keyPrefix: undefined }).type, 'redis', 'undefined means default')
  await t.rejects(buildApp({ backplane: 'redis' as never }), { code: 'FST_ERR_SSE_HUB_INVALID_OPTION', message: /'backplane'/ })
  await t.rejects(buildApp({ backplane: { start () {} } as never }), { code: 'FST_ERR_SSE_HUB_INVALID_OPTION' })
  const memory = await buildApp({ backplane: 'memory' })
  t.teardown(() => memory.close())
  t.same(memory.sse.getStats().backplane, { type: 'memory', connected: true, subscriptions: 0, published: 0, publishFailures: 0, received: 0, lagMs: 0, maxLagMs: 0, errors: 0, reconnects: 0, catchUps: 0, resyncs: 0 })

  t.equal(backplaneFromEnv({}), 'memory')
  t.equal(backplaneFromEnv({ REDIS_URL: '' }), 'memory')
  t.equal((backplaneFromEnv({ REDIS_URL: 'redis://127.0.0.1:1' }) as Backplane).type, 'redis')
  t.equal(typeof backplaneFromEnv(), process.env.REDIS_URL === undefined ? 'string' : 'object')
})

t.test('compareStreamIds orders Redis stream ids', async (t) => {
  t.ok(compareStreamIds('2-0', '10-0') < 0)
  t.ok(compareStreamIds('5-10', '5-9') > 0)
  t.equal(compareStreamIds('7-1', '7-1'), 0)
  t.equal(compareStreamIds('', '0-0'), 0)
})

t.test('a stream ended while a resync is queued gets the resync first: the events after it would hide a gap', async (t) => {
  const { app, url, bp } = await setup(t, { heartbeatInterval: 0 })
  await publish(app, bp, 3)
  const c = await connect(`${url}/conversations/s/stream`)
  bp.deliver('s', 1)
  await c.receive(1)
  // Events 2 were lost on the way here; the backplane says so, then delivers 3. Both are queued for the next round…
  bp.sink.resync('conversation', 's', '2-0')
  bp.deliver('s', 3)
  // …when the stream is ended: what was queued is written first, the resync included.
  t.equal(app.sse.removeConversationClient('s', c.clientId), true)
  await c.end()
  t.same(tokens(c), ['1', 'RESYNC', '3'])
})

t.test('a client that leaves while its join waits does not take the session from one still joining', async (t) => {
  const bp = new ScriptedBackplane()
  const app = await buildApp({ backplane: bp, heartbeatInterval: 0 })
  const responses = rawResponses(app)
  const url = await listen(app, t)
  bp.subscribeGate = new Gate()
  const leaving = new SseClient(`${url}/conversations/s/stream`)
  await waitFor(() => bp.calls.filter((c) => c === 'subscribe s').length === 1, 'first join pending')
  const staying = new SseClient(`${url}/conversations/s/stream`)
  await waitFor(() => bp.calls.filter((c) => c === 'subscribe s').length === 2, 'second join pending')
  leaving.close()
  await waitFor(() => responses[0]?.destroyed === true, 'server saw the close')
  bp.subscribeGate.open()
  await staying.connected()
  t.equal(app.sse.getConversationClientCount('s'), 1, 'the staying client is in the session the hub holds')
  await publish(app, bp, 1)
  bp.deliver('s', 1)
  t.same(tokens(await staying.receive(1).then(() => staying)), ['1'])
  staying.close()
})

t.test('live events delivered while a join finishes reach the joining client exactly once, in order', async (t) => {
  const { app, url, bp } = await setup(t, { heartbeatInterval: 0 })
  await publish(app, bp, 8)
  bp.readGate = new Gate()
  const c = new SseClient(`${url}/conversations/s/stream`, { 'last-event-id': '2-0' })
  await waitFor(() => bp.calls.includes('subscribe s'), 'join pending')
  bp.readGate.open()
  // Events 3…8 are in the replay; 9…14 arrive live, each a microtask later than the last: some while the
  // replay is still being read, some between its answer and the attach.
  await publish(app, bp, 6)
  let chain = Promise.resolve()
  for (let n = 9; n <= 14; n++) chain = chain.then(() => { bp.deliver('s', n) })
  await chain
  await c.receive(12)
  t.same(tokens(c), ['3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14'])
  c.close()
})

t.test('a stream ended mid-round gets a queued resync once, whether or not the round reached it', async (t) => {
  const { app, url, bp } = await setup(t, { heartbeatInterval: 0, fanOutSlice: { sliceMs: 0, checkEvery: 1 } })
  const clients = [await connect(`${url}/conversations/s/stream`), await connect(`${url}/conversations/s/stream`), await connect(`${url}/conversations/s/stream`)]
  bp.sink.resync('conversation', 's', '')
  // Runs right after the round's first slice (microtasks run in order): it wrote to the first client only.
  queueMicrotask(() => {
    app.sse.removeConversationClient('s', clients[0]!.clientId)
    app.sse.removeConversationClient('s', clients[2]!.clientId)
  })
  await Promise.all([clients[0]!.end(), clients[2]!.end(), clients[1]!.receive(1)])
  for (const c of clients) t.same(tokens(c), ['RESYNC'])
  clients[1]!.close()
})

t.test('regression: a join that reads the closed marker leaves the close to the notice while another join may miss the final event', async (t) => {
  // Found on review: the second join closed the session here because it had no clients, ignoring the first
  // join, whose read ran before the close: that client got `closed` (or 204) without the final event.
  const { app, url, bp } = await setup(t, { heartbeatInterval: 0 })
  await publish(app, bp, 1)
  bp.readGate = new Gate()
  bp.readFirst = true
  const early = new SseClient(`${url}/conversations/s/stream`, { 'last-event-id': '1-0' })
  await waitFor(() => bp.calls.includes('read s'), 'the first join read the log')
  // The session closes in the log with a final event; its notice has not reached this process yet.
  await publish(app, bp, 1)
  bp.closedMarker = '2-0'
  const late = new SseClient(`${url}/conversations/s/stream`)
  await waitFor(() => bp.calls.filter((c) => c === 'read s').length === 2, 'the second join read the marker and the log')
  bp.readGate.open()
  await early.connected()
  await late.connected()
  // What the backplane delivers after the close script: the final event, then the notice.
  bp.deliver('s', 2)
  bp.sink.closed('conversation', 's', '2-0')
  await early.end()
  await late.end()
  t.same(early.received.map((e) => e.id), ['2-0', undefined], 'the first client: the final event, then closed')
  t.same(late.received.map((e) => e.id), ['1-0', '2-0', undefined], 'the second: the whole session once, then closed')
  t.equal(early.received[1]?.event, 'closed')
  t.equal(late.received[2]?.event, 'closed')
})

t.test('regression: a late joiner whose snapshot hook runs while the session\'s only client leaves is attached to the session held', async (t) => {
  // Found on review: the joiner held no place while its hook ran, and with a backplane (nothing retained
  // here) the session was forgotten as soon as its other client left: the joiner got no live events.
  let release: (() => void) | undefined
  let calls = 0
  const snapshot = async (): Promise<{ state: unknown, lastEventId: string } | undefined> => {
    if (calls++ === 0) return undefined
    await new Promise<void>((resolve) => { release = resolve })
    return { state: {}, lastEventId: '' }
  }
  const { app, url, bp } = await setup(t, { heartbeatInterval: 0, snapshot })
  const first = await connect(`${url}/conversations/s/stream`)
  const late = new SseClient(`${url}/conversations/s/stream`)
  await waitFor(() => release !== undefined, 'the second hook running')
  first.close()
  await waitFor(() => app.sse.getStats().conversations.clients === 0, 'the first client gone')
  ;(release as () => void)()
  await late.connected()
  t.equal(app.sse.getConversationClientCount('s'), 1, 'the joiner is a client of the session held')
  await publish(app, bp, 1)
  bp.deliver('s', 1)
  await late.receive(2)
  t.same(late.received.map((e) => e.event), ['snapshot', 'conversation_token'])
  late.close()
})
