/*
 * Closing a session on the Redis backplane, against a real redis-server: the closed state is in Redis,
 * so every instance answers 204 / `closed`, ends its clients live, and a restarted instance knows it.
 */
import t from 'tap'
import { EventSource } from 'eventsource'
import { FST_ERR_SSE_HUB_SESSION_CLOSED } from '../src/index.js'
import { connect, ids, SseClient, token, waitFor } from './helper.js'
import { instance, redisOrSkip } from './redis-helper.js'

const redis = await redisOrSkip(t)
const done = (sessionId: string): { sessionId: string, turnCount: number } => ({ sessionId, turnCount: 1 })

if (redis !== undefined) {
  t.test('closing through one instance ends the clients of both after the final event; both answer 204 at the end', async (t) => {
    const a = await instance(t, redis)
    const b = await instance(t, redis)
    const onA = await connect(`${a.url}/conversations/s/stream`)
    const onB = await connect(`${b.url}/conversations/s/stream`)
    const one = await b.app.sse.broadcastToConversation('s', 'conversation_token', token('one'))
    const final = await a.app.sse.closeConversation('s', 'conversation_completed', done('s'))
    t.match(final, /^\d+-\d+$/)
    for (const c of [onA, onB]) {
      await c.end()
      t.same(ids(c), [one, final, undefined])
      t.match(c.received[2]?.json, { type: 'closed', sessionId: 's', lastEventId: final })
    }
    t.equal(await b.app.sse.closeConversation('s'), final, 'idempotent, from the other instance too')
    t.equal(await a.app.sse.closeConversation('s', 'conversation_completed', done('s')), final)

    for (const app of [a, b]) {
      const atEnd = new SseClient(`${app.url}/conversations/s/stream`, { 'last-event-id': final })
      await atEnd.end()
      t.equal(atEnd.statusCode, 204)
      const fresh = new SseClient(`${app.url}/conversations/s/stream`)
      await fresh.end()
      t.same(ids(fresh), [one, final, undefined], 'a new client reads the finished session, then closed')
      const behind = new SseClient(`${app.url}/conversations/s/stream`, { 'last-event-id': one })
      await behind.end()
      t.same(ids(behind), [final, undefined])
    }
    await t.rejects(b.app.sse.broadcastToConversation('s', 'conversation_token', token('late')), FST_ERR_SSE_HUB_SESSION_CLOSED)
    const refused = await a.app.sse.broadcastToConversation('s', 'conversation_token', token('late')).catch((err: { statusCode: number }) => err)
    t.equal((refused as { statusCode: number }).statusCode, 409)
    const fresh = new SseClient(`${b.url}/conversations/s/stream`)
    await fresh.end()
    t.same(ids(fresh), [one, final, undefined], 'the refused broadcasts stored nothing')
  })

  t.test('a session closed on one instance answers 204 on the other to a real EventSource, which stops', async (t) => {
    const a = await instance(t, redis)
    const b = await instance(t, redis, {}, { retry: 10, retryJitter: 0 })
    let requests = 0
    b.app.server.on('request', () => { requests++ })
    const es = new EventSource(`${b.url}/conversations/e/stream`)
    t.teardown(() => { es.close() })
    const got: string[] = []
    for (const type of ['conversation_completed', 'closed']) es.addEventListener(type, () => { got.push(type) })
    await waitFor(() => b.app.sse.getConversationClientCount('e') === 1, 'connected to b')
    await a.app.sse.closeConversation('e', 'conversation_completed', done('e'))
    await waitFor(() => es.readyState === EventSource.CLOSED, 'the EventSource stopped')
    t.same(got, ['conversation_completed', 'closed'])
    t.equal(requests, 2, 'the stream, and the reconnect that got 204')
  })

  t.test('the closed state survives an instance restart, and a session closed without events answers 204', async (t) => {
    const a = await instance(t, redis)
    const id = await a.app.sse.kind('conversation').close('quiet')
    t.equal(id, '')
    const final = await a.app.sse.closeDebate('d', 'debate_completed', { debateId: 'd' } as never)
    await a.app.close()
    const b = await instance(t, redis)
    const quiet = new SseClient(`${b.url}/conversations/quiet/stream`)
    await quiet.end()
    t.equal(quiet.statusCode, 204)
    const d = new SseClient(`${b.url}/debates/d/stream`, { 'last-event-id': final })
    await d.end()
    t.equal(d.statusCode, 204)
    await t.rejects(b.app.sse.broadcastToDebate('d', 'debate_paused', { debateId: 'd', turnCount: 1 }), FST_ERR_SSE_HUB_SESSION_CLOSED)
  })

  t.test('the closed marker lives beside the stream with the closed TTL', async (t) => {
    const a = await instance(t, redis, { keyPrefix: 'ttl:' }, { closedSessionTtl: 60_000 })
    await a.app.sse.broadcastToConversation('k', 'conversation_token', token('one'))
    const final = await a.app.sse.closeConversation('k', 'conversation_completed', done('k'))
    const r = redis.client()
    t.teardown(() => r.quit())
    t.equal(await r.get('ttl:conversation:k:closed'), final)
    for (const key of ['ttl:conversation:k', 'ttl:conversation:k:closed', 'ttl:conversation:k:producers']) {
      const ttl = await r.pttl(key)
      t.ok(ttl > 0 && ttl <= 60_000, `${key} expires with the closed TTL (${ttl})`)
    }
    const forever = await instance(t, redis, { keyPrefix: 'inf:' }, { closedSessionTtl: Infinity })
    await forever.app.sse.closeConversation('k')
    t.equal(await r.pttl('inf:conversation:k:closed'), -1, 'Infinity: kept for good')
    t.equal(await r.get('inf:conversation:k:closed'), '')
  })

  t.test('a client joining while the session closes gets the final event, closed and the end', async (t) => {
    const a = await instance(t, redis)
    const b = await instance(t, redis)
    const clients = [] as SseClient[]
    const closing = (async () => {
      await b.app.sse.broadcastToConversation('j', 'conversation_token', token('one'))
      return await b.app.sse.closeConversation('j', 'conversation_completed', done('j'))
    })()
    for (let i = 0; i < 5; i++) clients.push(new SseClient(`${a.url}/conversations/j/stream`))
    const final = await closing
    for (const c of clients) {
      await c.end()
      if (c.statusCode === 204) continue
      t.equal(c.received.at(-1)?.event, 'closed')
      t.equal(c.received.at(-2)?.id, final, 'the final event just before closed')
      t.equal(new Set(ids(c)).size, ids(c).length, 'no duplicate')
    }
  })
}
