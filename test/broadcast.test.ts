import t from 'tap'
import { buildApp, connect, listen, rawResponses, token } from './helper.js'

t.test('every client of a session gets every event, in order, with increasing ids', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const clients = await Promise.all([1, 2, 3].map(async () => connect(`${url}/conversations/s1/stream`)))
  const other = await connect(`${url}/conversations/s2/stream`)
  const debate = await connect(`${url}/debates/s1/stream`)
  const ids: string[] = []
  for (let i = 0; i < 20; i++) ids.push(await app.sse.broadcastToConversation('s1', 'conversation_token', token(`t${i}`, i)))
  for (const c of clients) {
    const got = await c.receive(20)
    t.same(got.map((e) => e.json.token), Array.from({ length: 20 }, (_, i) => `t${i}`))
    t.same(got.map((e) => e.id), ids)
  }
  const seqs = ids.map((id) => Number(id.split('-')[1]))
  t.ok(seqs.every((n, i) => i === 0 || n > (seqs[i - 1] as number)), 'ids increase')
  t.equal(new Set(ids.map((id) => id.split('-')[0])).size, 1, 'one epoch per hub')
  t.same(other.received, [], 'another session gets nothing')
  t.same(debate.received, [], 'the same id of the other kind gets nothing')
})

t.test('the data keeps the design shape { type, ...payload, timestamp }', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const c = await connect(`${url}/conversations/s/stream`)
  const before = Date.now()
  await app.sse.broadcastToConversation('s', 'conversation_utterance', {
    sessionId: 's', speakerName: 'Ada', personaSlug: 'ada', content: 'Hello', isHost: true, turnCount: 1, timestamp: 1
  })
  const [e] = await c.receive(1)
  t.equal(e?.event, 'conversation_utterance')
  t.match(e?.json, { type: 'conversation_utterance', sessionId: 's', speakerName: 'Ada', content: 'Hello', isHost: true, turnCount: 1 })
  t.ok((e?.json.timestamp as number) >= before, "the hub's timestamp")
  t.equal(Object.keys(e!.json)[0], 'type')
})

t.test('each broadcast is encoded once: the same Buffer goes to every client', async (t) => {
  const app = await buildApp()
  const raws = rawResponses(app)
  const url = await listen(app, t)
  await connect(`${url}/conversations/s/stream`)
  await connect(`${url}/conversations/s/stream`)
  const written: unknown[][] = raws.map(() => [])
  raws.forEach((res, i) => {
    const write = res.write.bind(res) as (chunk: unknown) => boolean
    res.write = ((chunk: unknown) => { written[i]!.push(chunk); return write(chunk) }) as typeof res.write
  })
  const stringify = JSON.stringify
  let calls = 0
  JSON.stringify = ((...args: Parameters<typeof stringify>) => { calls++; return stringify(...args) }) as typeof JSON.stringify
  try {
    await app.sse.broadcastToConversation('s', 'conversation_token', token('x'))
  } finally {
    JSON.stringify = stringify
  }
  t.equal(calls, 1, 'JSON once')
  t.equal(written[0]!.length, 1)
  t.ok(Buffer.isBuffer(written[0]![0]))
  t.equal(written[0]![0], written[1]![0], 'one Buffer, shared')
})

t.test('data with CR, LF, CRLF, U+2028, NUL, emoji arrives intact', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const c = await connect(`${url}/conversations/s/stream`)
  const nasty = 'a\rb\nc\r\nd\u2028e\u2029f\0g\uFEFF😀\ud800'
  await app.sse.broadcastToConversation('s', 'conversation_token', token(nasty))
  const [e] = await c.receive(1)
  t.equal(e?.json.token, nasty)
  t.same(c.parseErrors, [])
})

t.test('bad input throws a clear error before any byte, and the hub keeps working', async (t) => {
  const app = await buildApp({ maxEventBytes: 1024 })
  const url = await listen(app, t)
  const c = await connect(`${url}/conversations/s/stream`)
  const hub = app.sse
  const circular: Record<string, unknown> = { participantId: 'p' }
  circular.self = circular
  const cases: Array<[() => unknown, string, RegExp]> = [
    // @ts-expect-error unknown event type
    [() => hub.broadcastToConversation('s', 'nope\ndata: injected', {}), 'FST_ERR_SSE_HUB_INVALID_EVENT_TYPE', /contains CR, LF or NUL/],
    // @ts-expect-error unknown event type
    [() => hub.broadcastToConversation('s', '', {}), 'FST_ERR_SSE_HUB_INVALID_EVENT_TYPE', /empty/],
    // @ts-expect-error reserved for the hub
    [() => hub.broadcastToConversation('s', 'connection_established', {}), 'FST_ERR_SSE_HUB_INVALID_EVENT_TYPE', /reserved/],
    // @ts-expect-error reserved for the hub
    [() => hub.broadcastToDebate('s', 'resync', {}), 'FST_ERR_SSE_HUB_INVALID_EVENT_TYPE', /reserved/],
    // @ts-expect-error not an object
    [() => hub.broadcastToConversation('s', 'conversation_token', 'x'), 'FST_ERR_SSE_HUB_INVALID_PAYLOAD', /plain object/],
    // @ts-expect-error not an object
    [() => hub.broadcastToConversation('s', 'conversation_token', null), 'FST_ERR_SSE_HUB_INVALID_PAYLOAD', /plain object/],
    // @ts-expect-error not an object
    [() => hub.broadcastToConversation('s', 'conversation_token', [1]), 'FST_ERR_SSE_HUB_INVALID_PAYLOAD', /plain object/],
    [() => hub.broadcastToConversation('s', 'conversation_token', circular as never), 'FST_ERR_SSE_HUB_INVALID_PAYLOAD', /JSON cannot encode it/],
    [() => hub.broadcastToConversation('s', 'conversation_token', { ...token('x'), n: 1n } as never), 'FST_ERR_SSE_HUB_INVALID_PAYLOAD', /BigInt/],
    [() => hub.broadcastToConversation('s', 'conversation_token', token('x'.repeat(2000))), 'FST_ERR_SSE_HUB_EVENT_TOO_LARGE', /exceeds maxEventBytes \(1024\)/]
  ]
  for (const [fn, code, message] of cases) t.throws(fn, { code, message }, code)
  const stats = hub.getStats()
  t.equal(stats.broadcasts, 0)
  t.equal(stats.conversations.historyEvents, 0, 'nothing kept')
  await hub.broadcastToConversation('s', 'conversation_token', token('still fine'))
  const got = await c.receive(1)
  t.same(got.map((e) => e.json.token), ['still fine'], 'nothing else reached the client')
})

t.test('broadcasting to a session without clients keeps the event for replay', async (t) => {
  const app = await buildApp()
  t.teardown(() => app.close())
  await app.ready()
  const id = await app.sse.broadcastToDebate('d', 'debate_phase_changed', { debateId: 'd', from: null, to: 'opening' })
  t.match(id, /^[0-9a-z]+-1$/)
  t.match(app.sse.getStats(), { broadcasts: 1, eventsSent: 0, debates: { activeSessions: 0, clients: 0, sessions: 1, historyEvents: 1 } })
})

t.test('the registries are reachable as generic objects too', async (t) => {
  const app = await buildApp()
  t.teardown(() => app.close())
  await app.ready()
  t.equal(app.sse.kind('conversation'), app.sse.conversations)
  t.equal(app.sse.kind('debate'), app.sse.debates)
  t.equal(app.sse.conversations.kind, 'conversation')
})
