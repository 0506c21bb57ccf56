import t from 'tap'
import http from 'node:http'
import net from 'node:net'
import Fastify from 'fastify'
import sseHub from '../src/index.js'
import { SseClient, buildApp, connect, eventually, fastifySse, listen, rawResponses, token } from './helper.js'

t.test('a stream is committed at once with SSE headers, a retry and connection_established', async (t) => {
  const app = await buildApp({ retry: 2000, retryJitter: 0 })
  const url = await listen(app, t)
  const c = await connect(`${url}/conversations/room-1/stream`)
  t.equal(c.statusCode, 200)
  t.equal(c.headers['content-type'], 'text/event-stream')
  t.equal(c.headers['cache-control'], 'no-cache, no-transform')
  t.equal(c.headers['x-accel-buffering'], 'no')
  t.same(c.retries, [2000])
  const [hello] = c.events
  t.equal(hello?.event, 'connection_established')
  t.equal(hello?.id, undefined, 'connection_established is not part of the history')
  t.match(hello?.json, { type: 'connection_established', sessionId: 'room-1', kind: 'conversation', clientId: /^[0-9a-f-]{36}$/ })
  t.type(hello?.json.timestamp, 'number')
  t.equal(app.sse.getConversationClientCount('room-1'), 1)
  t.equal(app.sse.hasConversationClients('room-1'), true)
  t.equal(app.sse.hasDebateClients('room-1'), false)
})

t.test('open() is synchronous unless authorize or a backplane has to be awaited; add() always returns a promise', async (t) => {
  const seen: string[] = []
  for (const authorize of [undefined, async () => true]) {
    const app = Fastify()
    await app.register(sseHub, authorize === undefined ? {} : { authorize })
    app.get('/open/:id', (request, reply) => {
      const opened = app.sse.kind('conversation').open((request.params as { id: string }).id, reply)
      seen.push(typeof opened === 'string' ? 'string' : opened instanceof Promise ? 'promise' : 'other')
      if (typeof opened !== 'string') return opened.then(() => undefined)
    })
    app.get('/bad', (request, reply) => {
      // A bad session id throws at once (the route's handler lets Fastify answer it); add() rejects instead.
      t.throws(() => app.sse.kind('conversation').open('', reply), { code: 'FST_ERR_SSE_HUB_INVALID_SESSION_ID' })
      const added = app.sse.addConversationClient('', reply)
      t.type(added, Promise)
      return added
    })
    const url = await listen(app, t)
    const c = await connect(`${url}/open/s1`)
    t.equal(c.events[0]?.event, 'connection_established')
    t.equal(app.sse.getConversationClientCount('s1'), 1)
    const bad = await app.inject('/bad')
    t.equal(bad.statusCode, 400)
    t.equal(bad.json().code, 'FST_ERR_SSE_HUB_INVALID_SESSION_ID')
    c.close()
    await eventually(() => app.sse.getConversationClientCount('s1') === 0, 'the client is removed')
  }
  t.same(seen, ['string', 'promise'])
})

t.test('the design style works too: addConversationClient from a plain route', async (t) => {
  const app = Fastify()
  await app.register(sseHub)
  let id = ''
  app.get('/plain/:id', async (request, reply) => {
    id = await app.sse.addConversationClient((request.params as { id: string }).id, reply)
  })
  app.get('/plain-debate/:id', (request, reply) => {
    void app.sse.addDebateClient((request.params as { id: string }).id, reply)
  })
  const url = await listen(app, t)
  const c = await connect(`${url}/plain/s`)
  t.equal(c.headers['content-type'], 'text/event-stream')
  t.equal(c.clientId, id)
  const d = await connect(`${url}/plain-debate/s`)
  t.equal(app.sse.getDebateClientCount('s'), 1)
  void app.sse.broadcastToDebate('s', 'debate_paused', { debateId: 's', turnCount: 1 })
  const [e] = await d.receive(1)
  t.equal(e?.event, 'debate_paused')
})

t.test('the hub registers no @fastify/sse of its own', async (t) => {
  const app = Fastify()
  await app.register(sseHub)
  t.notOk(app.hasPlugin('@fastify/sse'))
  t.notOk(app.hasReplyDecorator('sse'), 'no reply.sse appears on the application')
  await app.close()
})

t.test('an application that registered @fastify/sse keeps it; the hub\'s routes skip its context', async (t) => {
  const app = Fastify()
  await app.register(fastifySse, { heartbeatInterval: 1 })
  await app.register(sseHub, { heartbeatInterval: 0 })
  t.ok(app.hasPlugin('@fastify/sse'))
  app.get('/s/:id', app.sse.stream('conversation'))
  const url = await listen(app, t)
  const c = await connect(`${url}/s/a`)
  void app.sse.broadcastToConversation('a', 'conversation_token', token('x'))
  await c.receive(1)
  t.same(c.comments, [], 'the route has no per-connection heartbeat of @fastify/sse')
})

t.test('addConversationClient from an app route with @fastify/sse\'s `sse` option commits through its context', async (t) => {
  const app = Fastify()
  await app.register(fastifySse)
  await app.register(sseHub, { heartbeatInterval: 0 })
  app.addHook('onRequest', async (_request, reply) => { reply.header('x-request-header', 'kept') })
  app.get('/with-sse/:id', { sse: { kind: 'only', heartbeat: false } }, async (request, reply) => {
    await app.sse.addConversationClient((request.params as { id: string }).id, reply)
    // @fastify/sse must know the head is out, or it would close the stream when the handler returns.
    t.equal(reply.sse.shouldKeepAlive, true)
    t.equal(reply.sse.isConnected, true)
  })
  const url = await listen(app, t)
  const c = await connect(`${url}/with-sse/w`)
  t.equal(c.headers['content-type'], 'text/event-stream')
  t.equal(c.headers['cache-control'], 'no-cache, no-transform', "the hub's value wins over @fastify/sse's")
  t.equal(c.headers['x-accel-buffering'], 'no')
  t.equal(c.headers['x-request-header'], 'kept', 'a header set before the handler goes out too')
  void app.sse.broadcastToConversation('w', 'conversation_token', token('after the handler returned'))
  const [e] = await c.receive(1)
  t.equal(e?.json.token, 'after the handler returned')
})

t.test('a header set on the reply before the stream opens goes out with the SSE head', async (t) => {
  const app = await buildApp()
  app.addHook('onRequest', async (_request, reply) => { reply.header('access-control-allow-origin', '*').header('cache-control', 'private') })
  const url = await listen(app, t)
  const c = await connect(`${url}/conversations/h/stream`)
  t.equal(c.headers['access-control-allow-origin'], '*')
  t.equal(c.headers['cache-control'], 'no-cache, no-transform', 'the SSE headers win')
  t.equal(c.headers['content-type'], 'text/event-stream')
})

t.test('an invalid session id is a 400 JSON error, not a stream', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  for (const bad of ['has%20space', '%0Aevil', 'a.b', '%E2%80%A8']) {
    const c = new SseClient(`${url}/conversations/${bad}/stream`)
    const body = await c.errorBody()
    t.equal(c.statusCode, 400, bad)
    t.match(c.headers['content-type'], /application\/json/)
    t.equal(body.code, 'FST_ERR_SSE_HUB_INVALID_SESSION_ID')
  }
  // Longer than Fastify's maxParamLength (100): Fastify's own 414 JSON, still no stream.
  const long = new SseClient(`${url}/conversations/${'x'.repeat(129)}/stream`)
  t.equal((await long.errorBody()).statusCode, 414)
  t.equal(app.sse.getStats().clients, 0)
  t.throws(() => app.sse.broadcastToConversation('x'.repeat(129), 'conversation_token', token('x')), { code: 'FST_ERR_SSE_HUB_INVALID_SESSION_ID' })
  // @ts-expect-error a session id must be a string
  t.throws(() => app.sse.broadcastToConversation(7, 'conversation_token', token('x')), { message: /invalid session id number/ })
})

t.test('a configurable session id pattern', async (t) => {
  const app = await buildApp({ sessionIdPattern: /^[0-9]+$/ })
  const url = await listen(app, t)
  await connect(`${url}/conversations/123/stream`)
  const c = new SseClient(`${url}/conversations/abc/stream`)
  t.equal((await c.errorBody()).code, 'FST_ERR_SSE_HUB_INVALID_SESSION_ID')
})

t.test('the request close removes the client exactly once, with no listener left', async (t) => {
  const app = await buildApp()
  const responses = rawResponses(app)
  const url = await listen(app, t)
  const c = await connect(`${url}/conversations/a/stream`)
  const raw = responses[0] as http.ServerResponse
  const before = raw.listenerCount('close')
  c.close()
  await eventually(() => app.sse.getConversationClientCount('a') === 0, 'client removed')
  t.equal(raw.listenerCount('close'), before - 1, 'the hub listener is gone')
  t.equal(app.sse.getStats().clients, 0)
  t.equal(app.sse.removeConversationClient('a', c.clientId), false, 'already removed')
})

t.test('a peer that closes its side is removed at once and its response finished, not aborted', async (t) => {
  const app = await buildApp()
  const responses = rawResponses(app)
  const url = await listen(app, t)
  const { port } = new URL(url)
  const socket = net.connect(Number(port), '127.0.0.1')
  t.teardown(() => socket.destroy())
  let received = ''
  socket.on('data', (chunk: Buffer) => { received += chunk.toString('latin1') })
  const ended = new Promise<void>((resolve) => socket.once('end', resolve))
  socket.write('GET /conversations/fin/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n')
  await eventually(() => received.includes('connection_established'), 'the greeting')
  const serverSocket = responses[0]!.req.socket
  const endListeners = serverSocket.listenerCount('end')
  socket.end() // FIN: the client is done, and keeps reading what is left
  await ended
  t.equal(app.sse.getConversationClientCount('fin'), 0, 'removed')
  t.equal(responses.length, 1)
  await eventually(() => responses[0]!.req.destroyed, 'the request is released')
  t.equal(responses[0]!.writableFinished, true, 'the response finished')
  // Nothing more is written to a peer that has (nearly always) gone: no last chunk.
  t.match(received, /connection_established[^]*\n\n\r\n$/, 'the body ends after the greeting')
  t.notMatch(received, /\r\n0\r\n\r\n$/, 'no terminating chunk')
  t.equal(responses[0]!.req.errored, null, "no 'aborted' error on the request")
  t.equal(serverSocket.listenerCount('end'), endListeners - 1, "the hub's listener left the socket with the client")
})

t.test('removeConversationClient ends the stream cleanly', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const c = await connect(`${url}/conversations/a/stream`)
  const d = await connect(`${url}/debates/a/stream`)
  t.equal(app.sse.removeConversationClient('a', c.clientId), true)
  await c.end()
  t.equal(c.res?.complete, true, 'the response ended, not aborted')
  t.equal(app.sse.removeDebateClient('a', d.clientId), true)
  await d.end()
  t.equal(app.sse.removeConversationClient('nope', 'x'), false)
  t.equal(app.sse.getStats().clients, 0)
})

t.test('a reply already sent cannot become a stream', async (t) => {
  const app = Fastify()
  await app.register(sseHub)
  app.get('/late/:id', async (request, reply) => {
    await reply.send({ ok: true })
    await t.rejects(app.sse.addConversationClient('x', reply), { code: 'FST_ERR_SSE_HUB_REPLY_SENT' })
    return reply
  })
  const res = await app.inject('/late/x')
  t.same(res.json(), { ok: true })
  t.equal(app.sse.getStats().clients, 0)
})

t.test('inject works for streams (payloadAsStream + AbortSignal)', async (t) => {
  const app = await buildApp()
  t.teardown(() => app.close())
  const controller = new AbortController()
  const res = await app.inject({ url: '/conversations/inj/stream', payloadAsStream: true, signal: controller.signal })
  t.equal(res.statusCode, 200)
  const stream = res.stream()
  const first = await new Promise<string>((resolve) => stream.once('data', (b: Buffer) => resolve(b.toString())))
  t.match(first, /event: connection_established/)
  t.equal(app.sse.getConversationClientCount('inj'), 1)
  controller.abort()
  await eventually(() => app.sse.getConversationClientCount('inj') === 0, 'removed on abort')
})

t.test('a stream whose head Node refuses (a bad header set by a hook) is answered with an error and leaves no session', async (t) => {
  const app = await buildApp({ heartbeatInterval: 0 })
  app.addHook('onRequest', async (request, reply) => { reply.header('x-bad', 'line\nbreak') })
  const url = await listen(app, t)
  const res = await fetch(`${url}/conversations/s/stream`, { headers: { accept: 'text/event-stream' } })
  t.equal(res.status, 500)
  await res.body?.cancel()
  t.match(app.sse.getStats(), { clients: 0, clientsConnected: 0, conversations: { sessions: 0 } })
})
