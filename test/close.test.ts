/* Closing a session (in memory): the final event, `closed`, the end; 204 at the end; refusals; the TTL. */
import t from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { EventSource } from 'eventsource'
import { Registry } from 'prom-client'
import { FST_ERR_SSE_HUB_SESSION_CLOSED, FST_ERR_SSE_HUB_INVALID_EVENT_TYPE } from '../src/index.js'
import { buildApp, connect, eventually, ids, listen, SseClient, token, waitFor } from './helper.js'

const done = (sessionId: string): { sessionId: string, turnCount: number } => ({ sessionId, turnCount: 2 })

t.test('live clients get every event up to the final one, then closed, then their response ends', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const a = await connect(`${url}/conversations/s/stream`)
  const b = await connect(`${url}/conversations/s/stream`)
  const first = await app.sse.broadcastToConversation('s', 'conversation_token', token('one'))
  const final = await app.sse.closeConversation('s', 'conversation_completed', done('s'))
  for (const c of [a, b]) {
    await c.end()
    t.same(c.received.map((e) => e.event), ['conversation_token', 'conversation_completed', 'closed'])
    t.same(ids(c), [first, final, undefined], 'closed carries no id: the client keeps the final one')
    t.match(c.received[2]?.json, { type: 'closed', sessionId: 's', lastEventId: final })
    t.equal(c.res?.complete, true, 'the response ended cleanly')
  }
  t.equal(app.sse.getConversationClientCount('s'), 0)
  t.match(app.sse.getStats().conversations, { closed: 1, clients: 0, sessions: 1 })
})

t.test('the closed sessions per kind are a metric', async (t) => {
  const registry = new Registry()
  const app = await buildApp({ metrics: { registry } })
  await app.ready()
  t.teardown(() => app.close())
  await app.sse.closeConversation('a')
  await app.sse.closeConversation('b', 'conversation_completed', done('b'))
  const gauge = (await registry.getMetricsAsJSON()).find((m) => m.name === 'sse_hub_closed_sessions')
  t.same(gauge?.values.map((v) => [v.labels.kind, v.value]).sort(), [['conversation', 2], ['debate', 0]])
})

t.test('close is idempotent; without a final event it resolves with the newest id', async (t) => {
  const app = await buildApp()
  await app.ready()
  t.teardown(() => app.close())
  const last = await app.sse.broadcastToDebate('d', 'debate_started', { debateId: 'd', topic: 'x', participants: [] } as never)
  t.equal(await app.sse.closeDebate('d'), last)
  t.equal(await app.sse.closeDebate('d', 'debate_completed', {} as never), last, 'closed already: nothing more is sent')
  t.equal(await app.sse.kind('conversation').close('empty'), '', 'a session without events closes with the empty id')
  t.equal(await app.sse.kind('conversation').close('empty'), '')
  t.equal(app.sse.getStats().debates.historyEvents, 1)
})

t.test('a broadcast to a closed session throws SESSION_CLOSED before anything is sent', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  await app.sse.closeConversation('s', 'conversation_completed', done('s'))
  const before = app.sse.getStats()
  t.throws(() => app.sse.broadcastToConversation('s', 'conversation_token', token('late')), FST_ERR_SSE_HUB_SESSION_CLOSED)
  const err = (() => { try { void app.sse.broadcastToConversation('s', 'conversation_token', token('late')) } catch (e) { return e } })() as { statusCode: number, code: string }
  t.equal(err.statusCode, 409)
  t.equal(err.code, 'FST_ERR_SSE_HUB_SESSION_CLOSED')
  t.equal(app.sse.getStats().broadcasts, before.broadcasts)
  t.equal(app.sse.getStats().conversations.historyEvents, 1)
  // The final event is checked like a broadcast's, before anything is closed.
  t.throws(() => app.sse.closeConversation('t', 'closed' as never, {} as never), FST_ERR_SSE_HUB_INVALID_EVENT_TYPE)
  await app.sse.broadcastToConversation('t', 'conversation_token', token('still open'))
  const c = await connect(`${url}/conversations/s/stream`)
  await c.end()
  t.same(c.received.map((e) => e.event), ['conversation_completed', 'closed'], 'a new client reads the finished session')
})

t.test('reconnecting to a closed session: at the end 204, behind it the rest, without an id the history from its start', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const one = await app.sse.broadcastToConversation('s', 'conversation_token', token('one'))
  const two = await app.sse.broadcastToConversation('s', 'conversation_token', token('two'))
  const final = await app.sse.closeConversation('s', 'conversation_completed', done('s'))

  const atEnd = new SseClient(`${url}/conversations/s/stream`, { 'last-event-id': final })
  await atEnd.end()
  t.equal(atEnd.statusCode, 204)
  t.equal(atEnd.body, '')

  const behind = new SseClient(`${url}/conversations/s/stream`, { 'last-event-id': one })
  await behind.end()
  t.equal(behind.statusCode, 200)
  t.same(ids(behind), [two, final, undefined])
  t.equal(behind.received[2]?.event, 'closed')

  const fresh = new SseClient(`${url}/conversations/s/stream`)
  await fresh.end()
  t.same(ids(fresh), [one, two, final, undefined], 'the retained history from its start, then closed')

  const unknown = new SseClient(`${url}/conversations/s/stream`, { 'last-event-id': 'nonsense' })
  await unknown.end()
  t.same(unknown.received.map((e) => [e.event, e.id]), [['resync', final], ['closed', undefined]], 'resync moves it to the final id')
  t.match(app.sse.getStats(), { replaysServed: 1, resyncsSent: 1 }, 'a 204 is no replay')
})

t.test('a closed session without any event answers 204 to everyone, also without Last-Event-ID', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  await app.sse.closeConversation('nothing')
  const c = new SseClient(`${url}/conversations/nothing/stream`)
  await c.end()
  t.equal(c.statusCode, 204)
})

t.test('a real EventSource stops for good at a closed session: one request after the end, never another', async (t) => {
  const app = await buildApp({ retry: 10, retryJitter: 0 })
  let requests = 0
  app.addHook('onRequest', async () => { requests++ })
  const url = await listen(app, t)
  const es = new EventSource(`${url}/conversations/s/stream`)
  t.teardown(() => { es.close() })
  const got: string[] = []
  for (const type of ['conversation_token', 'conversation_completed', 'closed']) es.addEventListener(type, () => { got.push(type) })
  await waitFor(() => app.sse.getConversationClientCount('s') === 1, 'connected')
  await app.sse.broadcastToConversation('s', 'conversation_token', token('one'))
  await app.sse.closeConversation('s', 'conversation_completed', done('s'))
  // Closed ends the response; EventSource reconnects once with the final id, and 204 stops it for good
  // (CLOSED: the spec's EventSource never reconnects from there).
  await waitFor(() => es.readyState === EventSource.CLOSED, 'the EventSource stopped')
  t.same(got, ['conversation_token', 'conversation_completed', 'closed'])
  t.equal(requests, 2, 'the stream and the one reconnect that got 204')
})

t.test('a closed session is forgotten after closedSessionTtl by the cleanup, not before', async (t) => {
  const app = await buildApp({ closedSessionTtl: 200, cleanupInterval: 0 })
  await app.ready()
  t.teardown(() => app.close())
  // Taken before the close: the hub stamps the close at or after it (a stamp taken after could be a millisecond late).
  const before = Date.now()
  await app.sse.closeConversation('s', 'conversation_completed', done('s'))
  app.sse.cleanupStaleConnections()
  const kept = app.sse.getStats().conversations.closed
  // Within 200 ms of `before` the session is certainly within its TTL (a machine that slow checks only the rest).
  if (Date.now() - before <= 200) t.equal(kept, 1, 'kept while within its TTL')
  await eventually(() => { app.sse.cleanupStaleConnections(); return app.sse.getStats().conversations.sessions === 0 }, 'forgotten', 1e7)
  t.ok(Date.now() - before > 200, 'not before its TTL')
  await app.sse.broadcastToConversation('s', 'conversation_token', token('a new life'))
  t.equal(app.sse.getStats().conversations.closed, 0)
})

t.test('closed sessions are evicted for room after the idle ones, first closed first', async (t) => {
  const app = await buildApp({ maxSessions: 2 })
  const url = await listen(app, t)
  await app.sse.closeConversation('a', 'conversation_completed', done('a'))
  await app.sse.closeConversation('b', 'conversation_completed', done('b'))
  const c = await connect(`${url}/conversations/c/stream`)
  t.equal(app.sse.getStats().sessionsEvicted, 1)
  const a = new SseClient(`${url}/conversations/a/stream`)
  t.equal(app.sse.getStats().conversations.closed, 1)
  c.close()
  await a.connected()
  t.same(a.received, [], 'a was forgotten: a new, open session')
})

t.test('a client ending while closed: the peer that had closed its side, and a failing write', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const { port } = app.server.address() as AddressInfo
  // A client that has ended its side of the connection already.
  const req = http.get({ port, host: '127.0.0.1', path: '/conversations/s/stream', headers: { accept: 'text/event-stream' } })
  const res = await new Promise<http.IncomingMessage>((resolve) => req.on('response', resolve))
  await eventually(() => app.sse.getConversationClientCount('s') === 1, 'connected')
  res.resume()
  await app.sse.closeConversation('s', 'conversation_completed', done('s'))
  await eventually(() => app.sse.getConversationClientCount('s') === 0, 'ended')
  t.ok(url)
})
