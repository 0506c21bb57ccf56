import t from 'tap'
import { FST_ERR_SSE_HUB_UNAUTHORIZED } from '../src/index.js'
import { SseClient, buildApp, connect, eventually, listen, token } from './helper.js'

t.test('maxClientsPerSession answers 503 JSON with Retry-After', async (t) => {
  const app = await buildApp({ maxClientsPerSession: 2, retryAfter: 7 })
  const url = await listen(app, t)
  const a = await connect(`${url}/conversations/s/stream`)
  await connect(`${url}/conversations/s/stream`)
  const third = new SseClient(`${url}/conversations/s/stream`)
  const body = await third.errorBody()
  t.equal(third.statusCode, 503)
  t.equal(third.headers['retry-after'], '7')
  t.match(third.headers['content-type'], /application\/json/)
  t.match(body, { code: 'FST_ERR_SSE_HUB_TOO_MANY_CLIENTS', message: /maxClientsPerSession/ })
  await connect(`${url}/conversations/other/stream`)
  a.close()
  await eventually(() => app.sse.getConversationClientCount('s') === 1, 'a slot frees up')
  await connect(`${url}/conversations/s/stream`)
  t.equal(app.sse.getStats().clientsRejected, 1)
})

t.test('maxClients counts both kinds', async (t) => {
  const app = await buildApp({ maxClients: 2 })
  const url = await listen(app, t)
  await connect(`${url}/conversations/a/stream`)
  await connect(`${url}/debates/b/stream`)
  const c = new SseClient(`${url}/debates/c/stream`)
  t.match(await c.errorBody(), { statusCode: 503, message: /maxClients\b/ })
  t.equal(c.headers['retry-after'], '5')
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

t.test('a client of one session never receives another session\'s events', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const a = await connect(`${url}/conversations/a/stream`)
  const b = await connect(`${url}/conversations/b/stream`)
  for (let i = 0; i < 10; i++) {
    await app.sse.broadcastToConversation(i % 2 === 0 ? 'a' : 'b', 'conversation_token', token(`${i % 2 === 0 ? 'a' : 'b'}${i}`))
  }
  t.same((await a.receive(5)).map((e) => e.json.token), ['a0', 'a2', 'a4', 'a6', 'a8'])
  t.same((await b.receive(5)).map((e) => e.json.token), ['b1', 'b3', 'b5', 'b7', 'b9'])
})
