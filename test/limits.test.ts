/*
 * Limits — who may open a stream: `maxClientsPerSession` and `maxClients` (503) and
 * `maxClientsPerIp` (429) hold under a flood of concurrent connections, answer JSON with
 * `Retry-After`, free a slot when a stream ends, and their counters return to exactly
 * zero after churn; `authorize` refuses (401/403) before any SSE byte. Hostile
 * `Last-Event-ID` values (8 KB, non-ASCII, another session's, kind's or hub's id,
 * malformed ids of ours) are treated as unknown: one `resync`, never a 500, never
 * another session's data.
 */
import t from 'tap'
import http from 'node:http'
import fc from 'fast-check'
import {
  FST_ERR_SSE_HUB_INVALID_OPTION,
  FST_ERR_SSE_HUB_TOO_MANY_CLIENTS,
  FST_ERR_SSE_HUB_TOO_MANY_CLIENTS_PER_IP,
  FST_ERR_SSE_HUB_UNAUTHORIZED
} from '../src/index.js'
import { resolveOptions } from '../src/options.js'
import { buildApp, connect, eventually, listen, SseClient, token, noConnections } from './helper.js'

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

t.test('authorize: false is 403, a thrown 401 passes through, true streams; no SSE byte before', async (t) => {
  const seen: unknown[] = []
  const app = await buildApp({
    authorize: async (request, ctx) => {
      seen.push(ctx)
      const key = request.headers['x-key']
      if (key === undefined) throw new FST_ERR_SSE_HUB_UNAUTHORIZED()
      return key === ctx.sessionId
    }
  })
  const url = await listen(app, t)
  const none = new SseClient(`${url}/conversations/s/stream`)
  t.match(await none.errorBody(), { statusCode: 401, code: 'FST_ERR_SSE_HUB_UNAUTHORIZED' })
  const wrong = new SseClient(`${url}/conversations/s/stream`, { 'x-key': 'other' })
  t.match(await wrong.errorBody(), { statusCode: 403, code: 'FST_ERR_SSE_HUB_FORBIDDEN' })
  t.notOk(String(wrong.headers['content-type']).includes('event-stream'))
  const ok = await connect(`${url}/debates/s/stream`, { 'x-key': 's' })
  void app.sse.broadcastToDebate('s', 'debate_resumed', { debateId: 's', turnCount: 2 })
  t.equal((await ok.receive(1))[0]?.event, 'debate_resumed')
  t.same(seen, [{ kind: 'conversation', sessionId: 's' }, { kind: 'conversation', sessionId: 's' }, { kind: 'debate', sessionId: 's' }])
  t.equal(app.sse.getStats().clients, 1)
})

t.test('a synchronous authorize that returns nothing allows', async (t) => {
  const app = await buildApp({ authorize: () => {} })
  const url = await listen(app, t)
  await connect(`${url}/conversations/s/stream`)
  t.equal(app.sse.getConversationClientCount('s'), 1)
})

t.test('hostile Last-Event-ID values get one resync: never a 500, never another session\'s data', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const other = await buildApp()
  await other.ready()
  t.teardown(() => other.close())
  const ids: Record<string, string[]> = { A: [], B: [], debateA: [] }
  for (let i = 0; i < 5; i++) {
    ids.A?.push(await app.sse.broadcastToConversation('A', 'conversation_token', token(`secret-A-${i}`, i)))
    ids.debateA?.push(await app.sse.broadcastToDebate('A', 'debate_token', { debateId: 'A', participantId: 'p', personaSlug: 'x', turnCount: i, token: `secret-dA-${i}` }))
  }
  ids.B?.push(await app.sse.broadcastToConversation('B', 'conversation_token', token('b-0')))
  const foreignHubId = await other.sse.broadcastToConversation('A', 'conversation_token', token('elsewhere'))
  const epoch = (ids.A?.[0] as string).split('-')[0] as string
  const utf8AsLatin1 = (s: string): string => Buffer.from(s, 'utf8').toString('latin1')

  const cases: Array<[string, string, Record<string, string>]> = [
    ['8 KB header', 'B', { 'last-event-id': 'x'.repeat(8192) }],
    ['8 KB header shaped like our ids', 'B', { 'last-event-id': `${epoch}-${'1'.repeat(8192 - epoch.length - 1)}` }],
    ['non-ASCII header (raw UTF-8 bytes)', 'B', { 'last-event-id': utf8AsLatin1(`é中😀-${ids.B?.[0] as string}`) }],
    ['Latin-1 header', 'B', { 'last-event-id': '\u00e9\u00ff' }],
    ['another session\'s id', 'B', { 'last-event-id': ids.A?.[0] as string }],
    ['another session\'s newest id', 'B', { 'last-event-id': ids.A?.[4] as string }],
    ['the same session id of the other kind', 'A', { 'last-event-id': ids.debateA?.[0] as string }],
    ['another hub\'s id', 'A', { 'last-event-id': foreignHubId }],
    ['our epoch, sequence 0', 'A', { 'last-event-id': `${epoch}-0` }],
    ['our epoch, leading zero', 'A', { 'last-event-id': `${epoch}-01` }],
    ['our epoch, future sequence', 'A', { 'last-event-id': `${epoch}-999999` }],
    ['our epoch, beyond 2^53', 'A', { 'last-event-id': `${epoch}-9999999999999999` }],
    ['our epoch, fraction', 'A', { 'last-event-id': `${epoch}-1.5` }],
    ['empty header', 'A', { 'last-event-id': '' }],
    ['prototype-ish', 'A', { 'last-event-id': '__proto__' }]
  ]
  const secrets = (s: string): boolean => /secret|elsewhere/.test(s)
  for (const [name, session, headers] of cases) {
    const c = await connect(`${url}/conversations/${session}/stream`, headers)
    const [first] = await c.receive(1)
    t.equal(c.statusCode, 200, `${name}: 200`)
    t.equal(first?.event, 'resync', `${name}: resync`)
    t.match(first?.json, { type: 'resync', sessionId: session, reason: /^(unknown_event_id|history_trimmed)$/ })
    t.equal(first?.id, ids[session === 'A' ? 'A' : 'B']?.at(-1), `${name}: the resync carries its own session's newest id`)
    // The stream works: the next live event is the session's own.
    const live = await app.sse.broadcastToConversation(session, 'conversation_token', token(`live-${session}`))
    ids[session]?.push(live)
    const got = await c.receive(2)
    t.equal(got[1]?.id, live)
    t.notOk(got.some((e) => secrets(e.data) && session === 'B'), `${name}: nothing of session A`)
    t.notOk(got.some((e) => /secret-dA|elsewhere/.test(e.data)), `${name}: nothing of another kind or hub`)
    c.close()
  }

  // The same through ?lastEventId= (URLs of 8 KB included), and generated hostile strings.
  const queryCases = ['x'.repeat(8192), 'é中😀', ids.A?.[0] as string, foreignHubId, '\u0000\r\n', `${epoch}-0`]
  const generated = fc.sample(fc.string({ unit: fc.oneof(fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), fc.constantFrom('\r', '\n', '\0', '-', epoch)), maxLength: 300 }), { numRuns: 100 })
  let resyncs = 0
  for (const value of [...queryCases, ...generated]) {
    const c = new SseClient(`${url}/conversations/B/stream?lastEventId=${encodeURIComponent(value)}`)
    await c.receive(1)
    if (c.statusCode === 200 && c.received[0]?.event === 'resync' && !c.received.some((e) => secrets(e.data))) resyncs++
    c.close()
  }
  t.equal(resyncs, queryCases.length + generated.length, 'every query value got a resync and nothing of session A')

  // Repeated: two header lines are joined by Node ("a, b": unknown, resync); a repeated query parameter the same way.
  const twoHeaders = await connect(`${url}/conversations/B/stream`, { 'last-event-id': [ids.A?.[0], ids.A?.[1]] } as unknown as Record<string, string>)
  t.equal((await twoHeaders.receive(1))[0]?.event, 'resync', 'two Last-Event-ID headers: resync')
  twoHeaders.close()
  const twoParams = await connect(`${url}/conversations/B/stream?lastEventId=${ids.B?.[0] as string}&lastEventId=${ids.B?.[0] as string}`)
  const [firstSeen] = await twoParams.receive(1)
  t.same([twoParams.statusCode, firstSeen?.event, firstSeen?.json.reason], [200, 'resync', 'unknown_event_id'], 'two lastEventId parameters (even equal ones): resync, never a silent fresh start')
  twoParams.close()
  t.equal(app.sse.getStats().replaysServed, 0, 'no replay was served to any hostile id')
})

t.test('a custom querystring parser that answers null or a string: no lastEventId, a fresh stream, no crash', async (t) => {
  for (const parsed of [null, 'lastEventId=1']) {
    const app = await buildApp({}, { routerOptions: { querystringParser: () => parsed as unknown as Record<string, string> } })
    const url = await listen(app, t)
    const c = await connect(`${url}/conversations/q/stream?lastEventId=nonsense`)
    const live = await app.sse.broadcastToConversation('q', 'conversation_token', token('live'))
    t.same((await c.receive(1)).map((e) => e.id), [live], `${String(parsed)}: live events, no resync`)
    c.close()
  }
})
