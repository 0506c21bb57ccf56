/* Hostile `Last-Event-ID` values (8 KB, non-ASCII, another session's, kind's or hub's id, malformed ids of ours) are unknown: one `resync`, never a 500, never another session's data; odd `lastEventId` query values too. */
import t from 'tap'
import fc from 'fast-check'
import { SseClient, buildApp, connect, listen, token } from './helper.js'

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
