/* The `authorize` option: `false` is 403, a thrown error its status, a synchronous allow; no SSE byte before, and a peer that leaves meanwhile is never registered. */
import t from 'tap'
import Fastify from 'fastify'
import sseHub, { FST_ERR_SSE_HUB_UNAUTHORIZED } from '../src/index.js'
import { SseClient, buildApp, connect, eventually, listen } from './helper.js'

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

t.test('a peer that leaves while authorize runs is never registered', async (t) => {
  let release: () => void = () => {}
  let entered: () => void = () => {}
  const inAuthorize = new Promise<void>((resolve) => { entered = resolve })
  const app = Fastify()
  await app.register(sseHub, {
    authorize: async () => {
      entered()
      await new Promise<void>((resolve) => { release = resolve })
      return true
    }
  })
  let raw: import('node:http').ServerResponse | undefined
  let added: Promise<string> | undefined
  app.get('/s/:id', (request, reply) => {
    raw = reply.raw as import('node:http').ServerResponse
    added = app.sse.addConversationClient('a', reply)
  })
  const url = await listen(app, t)
  const c = new SseClient(`${url}/s/a`)
  await inAuthorize
  const listeners = raw!.listenerCount('close')
  c.close()
  await eventually(() => raw!.destroyed, 'server side sees the close')
  release()
  t.type(await added, 'string')
  t.equal(app.sse.getConversationClientCount('a'), 0)
  t.equal(app.sse.getStats().clientsConnected, 0)
  t.equal(raw!.listenerCount('close'), listeners, 'no listener added')
  t.equal(raw!.headersSent, false, 'nothing written')
})
