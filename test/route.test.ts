/* The stream route made by `fastify.sse.stream(kind)`: its parameter and prefixes, no HEAD, `Accept` negotiation (406 JSON before any SSE byte). */
import t from 'tap'
import http from 'node:http'
import Fastify from 'fastify'
import sseHub from '../src/index.js'
import { SseClient, buildApp, connect, listen } from './helper.js'

t.test('stream() reads another route parameter and respects prefixes', async (t) => {
  const app = Fastify()
  await app.register(sseHub)
  await app.register(async (child) => {
    child.get('/watch/:debateId', child.sse.stream('debate', { param: 'debateId' }))
  }, { prefix: '/v1' })
  const url = await listen(app, t)
  const c = await connect(`${url}/v1/watch/d-9`)
  t.match(c.events[0]?.json, { kind: 'debate', sessionId: 'd-9' })
})

t.test('stream routes answer no HEAD (it would hold a stream without a body)', async (t) => {
  const app = await buildApp()
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'HEAD', url: '/conversations/a/stream' })
  t.equal(res.statusCode, 404)
  t.equal(app.sse.getStats().clients, 0)
})

t.test('a client whose Accept refuses text/event-stream gets 406 JSON before any SSE byte', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  for (const accept of ['text/event-stream;q=0, application/json', 'application/json', 'text/html, text/*;q=0', '*/*, text/event-stream;q=0']) {
    const c = new SseClient(`${url}/conversations/a/stream`, { accept })
    const body = await c.errorBody()
    t.equal(c.statusCode, 406, accept)
    t.match(c.headers['content-type'], /^application\/json/, accept)
    t.equal(body.code, 'FST_ERR_SSE_HUB_NOT_ACCEPTABLE', accept)
  }
  t.equal(app.sse.getStats().clientsConnected, 0)
})

t.test('an Accept header that admits text/event-stream (explicitly, by a wildcard or by its absence) gets the stream', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const admitted = ['text/event-stream', '*/*', '', 'text/*', 'application/json, text/event-stream;q=0.5', 'TEXT/EVENT-STREAM; charset=utf-8', 'application/json;q=0.9, */*;q=0.1']
  for (const accept of admitted) {
    const c = await connect(`${url}/conversations/a/stream`, { accept })
    t.equal(c.statusCode, 200, JSON.stringify(accept))
    t.equal(c.headers['content-type'], 'text/event-stream', JSON.stringify(accept))
    c.close()
  }
  // No Accept header at all (Node's client sends none unless told to).
  let req: http.ClientRequest | undefined
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    req = http.get(`${url}/conversations/a/stream`, resolve).on('error', reject)
  })
  t.equal(req?.getHeader('accept'), undefined)
  t.equal(res.statusCode, 200)
  res.destroy()
})
