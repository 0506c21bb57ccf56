/*
 * Session kinds beyond the design's two: declared with the `kinds` option, reached with `kind()` and
 * `stream()`, and served like conversations and debates (replay, limits, authorize, stats, Redis, shutdown).
 */
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import sseHub, { redisBackplane, type SseHubOptions } from '../src/index.js'
import { connect, listen, SseClient, waitFor } from './helper.js'
import { redisOrSkip } from './redis/helper.js'

declare module '../src/index.js' {
  interface SessionKinds {
    chat: { message: { from: string, text: string } }
  }
}

async function chatApp (options: SseHubOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  await app.register(sseHub, { kinds: ['chat', 'job-progress'], heartbeatInterval: 0, ...options })
  app.get('/chat/:id/stream', app.sse.stream('chat'))
  app.get('/conversations/:id/stream', app.sse.stream('conversation'))
  return app
}

t.test('the kinds option: names that match the rule, not built in, not repeated', async (t) => {
  for (const kinds of [['Chat'], ['chat room'], [''], ['a'.repeat(33)], ['conversation'], ['debate'], ['chat', 'chat'], 'chat', [1]]) {
    await t.rejects(async () => { await Fastify().register(sseHub, { kinds: kinds as string[] }).ready() }, { code: 'FST_ERR_SSE_HUB_INVALID_OPTION' }, JSON.stringify(kinds))
  }
  const app = Fastify()
  await app.register(sseHub, { kinds: ['a', 'x9_-'.padEnd(32, 'z')] })
  t.teardown(() => app.close())
  t.ok(app.sse.kind('a' as 'chat'))
})

t.test('kind() returns each kind\'s registry; an undeclared kind throws at the call, not at request time', async (t) => {
  const app = await chatApp()
  t.teardown(() => app.close())
  t.equal(app.sse.kind('conversation'), app.sse.conversations)
  t.equal(app.sse.kind('debate'), app.sse.debates)
  t.equal(app.sse.kind('chat').kind, 'chat')
  t.not(app.sse.kind('chat'), app.sse.kind('job-progress' as 'chat'))
  t.throws(() => app.sse.kind('nope' as 'chat'), { code: 'FST_ERR_SSE_HUB_UNKNOWN_KIND', statusCode: 500 })
  t.throws(() => app.sse.stream('nope' as 'chat'), { code: 'FST_ERR_SSE_HUB_UNKNOWN_KIND', message: /"nope"/ })
  const bare = Fastify()
  await bare.register(sseHub)
  t.teardown(() => bare.close())
  t.throws(() => bare.sse.stream('chat'), { code: 'FST_ERR_SSE_HUB_UNKNOWN_KIND' }, 'declared in types, not in this hub\'s options')
})

t.test('a chat session streams, replays and counts like a conversation, in its own namespace', async (t) => {
  const app = await chatApp()
  const url = await listen(app, t)
  const chat = await connect(`${url}/chat/room1/stream`)
  t.match(chat.events[0]?.json, { type: 'connection_established', kind: 'chat', sessionId: 'room1' })
  const conv = await connect(`${url}/conversations/room1/stream`)

  const first = await app.sse.kind('chat').broadcast('room1', 'message', { from: 'ann', text: 'hi' })
  const second = await app.sse.kind('chat').broadcast('room1', 'message', { from: 'bob', text: 'yo' })
  const got = await chat.receive(2)
  t.same(got.map((e) => [e.event, e.id, e.json.text]), [['message', first, 'hi'], ['message', second, 'yo']])
  t.equal(conv.received.length, 0, 'the conversation of the same id hears nothing')

  const again = await connect(`${url}/chat/room1/stream`, { 'last-event-id': first })
  t.same((await again.receive(1)).map((e) => e.id), [second], 'replayed from the chat history')

  const stats = app.sse.getStats()
  t.match(stats.kinds.chat, { activeSessions: 1, clients: 2, sessions: 1, historyEvents: 2 })
  t.match(stats.kinds.conversation, { clients: 1, historyEvents: 0 })
  t.equal(stats.kinds.conversation, stats.conversations)
  t.equal(stats.clients, 3)
  t.match(stats.kinds['job-progress'], { clients: 0, sessions: 0 })
  t.equal(stats.replaysServed, 1)
  chat.close()
  again.close()
  conv.close()
})

t.test('limits count every kind together; authorize is told the kind', async (t) => {
  const told: string[] = []
  const app = await chatApp({ maxClients: 2, authorize: (request, { kind }) => { told.push(kind); return true } })
  const url = await listen(app, t)
  const a = await connect(`${url}/chat/r/stream`)
  const b = await connect(`${url}/conversations/r/stream`)
  const c = new SseClient(`${url}/chat/other/stream`)
  t.equal((await c.opened()).statusCode, 503)
  t.match(await c.errorBody(), { code: 'FST_ERR_SSE_HUB_TOO_MANY_CLIENTS' })
  t.same(told, ['chat', 'conversation', 'chat'])
  a.close()
  b.close()
})

t.test('shutdown ends the streams of every kind', async (t) => {
  const app = await chatApp()
  const url = await listen(app)
  const clients = [await connect(`${url}/chat/r/stream`), await connect(`${url}/conversations/r/stream`)]
  await app.close()
  await Promise.all(clients.map((c) => c.end()))
  t.ok(clients.every((c) => c.ended))
})

const redis = await redisOrSkip(t)
if (redis !== undefined) {
  t.test('with Redis, a kind\'s events live under <keyPrefix>{<kind>:<id>} and reach every instance', async (t) => {
    const make = async (): Promise<{ app: FastifyInstance, url: string }> => {
      const app = await chatApp({ backplane: redisBackplane({ url: redis.url, keyPrefix: 'k:', connectTimeout: 2000 }) })
      return { app, url: await listen(app, t) }
    }
    const [one, two] = [await make(), await make()]
    const viewer = await connect(`${two.url}/chat/lobby/stream`)
    const id = await one.app.sse.kind('chat').broadcast('lobby', 'message', { from: 'ann', text: 'hello' })
    t.same((await viewer.receive(1)).map((e) => [e.id, e.json.text]), [[id, 'hello']])
    const cmd = new Redis(redis.url)
    t.teardown(() => cmd.disconnect())
    // The stream, and beside it the record of which broadcasts it stored (test/redis-retry.test.ts).
    t.same((await cmd.keys('k:*')).sort(), ['k:{chat:lobby}', 'k:{chat:lobby}:producers'])
    viewer.close()
    await waitFor(() => two.app.sse.getStats().backplane.subscriptions === 0, 'unsubscribed')
  })
}
