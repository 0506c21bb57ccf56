/*
 * The hub on `fastify({ http2: true })`: cleartext (h2c) and TLS (ALPN h2), no
 * connection-specific header on the wire, many streams multiplexed on one
 * HTTP/2 session, and a clean close.
 */
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import http2 from 'node:http2'
import { once } from 'node:events'
import sseHub, { type SseHubOptions } from '../src/index.js'
import { H2SseStream, fastifySse, isToolingWarning, selfSignedCert, token } from './helper.js'

// Node warns (once per process) when a connection-specific header is set on an HTTP/2 response.
// Warnings from the test runner's loaders (not the hub) are left out: see isToolingWarning in helper.ts.
const warnings: Error[] = []
process.on('warning', (w) => { if (!isToolingWarning(w)) warnings.push(w) })

type TestLike = { teardown: (fn: () => unknown) => void }

async function h2App (t: TestLike, opts: { tls?: boolean, hub?: SseHubOptions } = {}): Promise<{ app: FastifyInstance, url: string }> {
  // Before Node 24, only forceCloseConnections: true makes close() end idle HTTP/2 sessions (else it waits
  // for http2SessionTimeout, 72 s). The sessions close with GOAWAY, after the hub has ended the streams.
  const serverOptions: Record<string, unknown> = { http2: true, logger: false, forceCloseConnections: true }
  if (opts.tls === true) serverOptions.https = { ...(await selfSignedCert()), allowHTTP1: true }
  const app = Fastify(serverOptions) as unknown as FastifyInstance
  // For the route with @fastify/sse's `sse` option below.
  await app.register(fastifySse)
  await app.register(sseHub, opts.hub ?? {})
  app.get('/conversations/:id/stream', app.sse.stream('conversation'))
  app.get('/debates/:id/stream', app.sse.stream('debate'))
  // A stream opened by hand from a plain route (no `sse` route option).
  app.get<{ Params: { id: string } }>('/manual/:id', async (request, reply) => {
    await app.sse.addConversationClient(request.params.id, reply)
    return reply
  })
  // The same from a route that carries @fastify/sse's per-reply context.
  app.get<{ Params: { id: string } }>('/with-sse/:id', { sse: { kind: 'only', heartbeat: false } }, async (request, reply) => {
    await app.sse.addConversationClient(request.params.id, reply)
  })
  t.teardown(() => app.close())
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url }
}

function h2Connect (t: TestLike, url: string): http2.ClientHttp2Session {
  const session = http2.connect(url, { rejectUnauthorized: false })
  session.on('error', () => {})
  t.teardown(() => { session.destroy() })
  return session
}

t.test('h2c: a stream route commits without a Connection header or a warning', async (t) => {
  const { app, url } = await h2App(t)
  const session = h2Connect(t, url)
  const s = await new H2SseStream(session, '/conversations/a/stream').connected()
  t.equal(s.headers[':status'], 200)
  t.equal(s.headers['content-type'], 'text/event-stream')
  t.equal(s.headers['cache-control'], 'no-cache, no-transform')
  t.equal(s.headers['x-accel-buffering'], 'no')
  t.equal(s.headers.connection, undefined, 'no connection-specific header')
  await app.sse.broadcastToConversation('a', 'conversation_token', token('hi'))
  await s.until((x) => x.received.length === 1, 'one event')
  t.equal(s.received[0]?.json.token, 'hi')
  t.same(warnings.map((w) => w.message), [], 'Node emitted no warning')
})

t.test('h2c: addConversationClient from a plain route and from one with @fastify/sse\'s `sse` option', async (t) => {
  const { app, url } = await h2App(t)
  const session = h2Connect(t, url)
  // /with-sse: the hub writes the head itself (no Connection header), and @fastify/sse keeps the stream open.
  for (const [path, id] of [['/manual/m', 'm'], ['/with-sse/w', 'w']] as const) {
    const s = await new H2SseStream(session, path).connected()
    t.equal(s.headers['content-type'], 'text/event-stream', path)
    t.equal(s.headers.connection, undefined, path)
    await app.sse.broadcastToConversation(id, 'conversation_token', token('x'))
    await s.until((x) => x.received.length === 1, `one event on ${path} after its handler returned`)
  }
  t.same(warnings.map((w) => w.message), [])
})

t.test('HTTP/2 over TLS (ALPN h2), and HTTP/1.1 on the same port still gets an SSE head', async (t) => {
  const { app, url } = await h2App(t, { tls: true })
  t.match(url, /^https:/)
  const session = h2Connect(t, url)
  await once(session, 'connect')
  t.equal(session.alpnProtocol, 'h2')
  const s = await new H2SseStream(session, '/debates/d/stream').connected()
  t.equal(s.headers.connection, undefined)
  await app.sse.broadcastToDebate('d', 'debate_token', { debateId: 'd', participantId: 'p', personaSlug: 'x', turnCount: 1, token: 'yes' })
  await s.until((x) => x.received.length === 1, 'one event')
  t.equal(s.received[0]?.json.token, 'yes')

  // allowHTTP1: an HTTP/1.1 client over TLS gets the HTTP/1.1 head.
  const https = await import('node:https')
  const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
    https.get(`${url}/conversations/h1/stream`, { rejectUnauthorized: false, headers: { accept: 'text/event-stream' } }, resolve).on('error', reject)
  })
  t.equal(res.httpVersion, '1.1')
  t.equal(res.headers['content-type'], 'text/event-stream')
  t.equal(res.headers.connection, 'keep-alive')
  res.destroy()
  t.same(warnings.map((w) => w.message), [])
})

t.test('20 concurrent streams over ONE HTTP/2 session each receive every event of their session, in order', async (t) => {
  const { app, url } = await h2App(t)
  let sessions = 0
  app.server.on('session', () => { sessions++ })
  const session = h2Connect(t, url)
  // 10 on conversation A, 5 on conversation B, 5 on debate C: all multiplexed on one connection.
  const plan: Array<[string, string]> = [
    ...Array.from({ length: 10 }, (): [string, string] => ['A', '/conversations/A/stream']),
    ...Array.from({ length: 5 }, (): [string, string] => ['B', '/conversations/B/stream']),
    ...Array.from({ length: 5 }, (): [string, string] => ['C', '/debates/C/stream'])
  ]
  const streams = plan.map(([, path]) => new H2SseStream(session, path))
  await Promise.all(streams.map(async (s) => await s.connected()))
  t.equal(sessions, 1, 'one HTTP/2 session on the server')
  t.equal(app.sse.getStats().clients, 20)

  const N = 200
  const sent: Record<string, string[]> = { A: [], B: [], C: [] }
  for (let i = 0; i < N; i++) {
    sent.A!.push(await app.sse.broadcastToConversation('A', 'conversation_token', token(`a${i}`, i)))
    if (i % 2 === 0) sent.B!.push(await app.sse.broadcastToConversation('B', 'conversation_token', token(`b${i}`, i)))
    if (i % 4 === 0) sent.C!.push(await app.sse.broadcastToDebate('C', 'debate_token', { debateId: 'C', participantId: 'p', personaSlug: 'x', turnCount: i, token: `c${i}` }))
  }
  await Promise.all(streams.map(async (s, i) => {
    const expected = sent[plan[i]![0]]!.length
    await s.until((x) => x.received.length >= expected, `${expected} events on stream ${i}`)
  }))
  let exact = 0
  streams.forEach((s, i) => {
    const ids = s.received.map((e) => e.id)
    if (JSON.stringify(ids) === JSON.stringify(sent[plan[i]![0]])) exact++
  })
  t.equal(exact, 20, 'all 20 streams got exactly their session\'s events, in order, nothing else')
  t.same(streams[0]!.received.slice(0, 2).map((e) => e.json.token), ['a0', 'a1'])
  t.same(streams[19]!.received.slice(0, 2).map((e) => e.json.token), ['c0', 'c4'])
})

t.test('close ends open HTTP/2 streams cleanly and resolves', async (t) => {
  const { app, url } = await h2App(t, { tls: true })
  const session = h2Connect(t, url)
  const streams = await Promise.all(Array.from({ length: 5 }, async (_, i) => await new H2SseStream(session, `/conversations/s${i}/stream`).connected()))
  await app.close()
  await Promise.all(streams.map(async (s) => { await s.end() }))
  t.ok(streams.every((s) => s.endedCleanly), 'every stream ended with END_STREAM, not a reset')
  t.equal(app.sse.getStats().clients, 0)
})
