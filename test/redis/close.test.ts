/*
 * Closing a session on the Redis backplane, against a real redis-server: the closed state is in Redis,
 * so every instance answers 204 / `closed`, ends its clients live, and a restarted instance knows it.
 */
import t from 'tap'
import { EventSource } from 'eventsource'
import { FST_ERR_SSE_HUB_SESSION_CLOSED, redisBackplane } from '../../src/index.js'
import { buildApp, connect, ids, listen, SseClient, token, waitFor } from '../helper.js'
import { instance, redisOrSkip } from './helper.js'

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
    t.equal(await r.hget('ttl:{conversation:k}:producers', 'closed'), final, 'the final id, in the producers hash')
    for (const key of ['ttl:{conversation:k}', 'ttl:{conversation:k}:producers']) {
      const ttl = await r.pttl(key)
      t.ok(ttl > 0 && ttl <= 60_000, `${key} expires with the closed TTL (${ttl})`)
    }
    const forever = await instance(t, redis, { keyPrefix: 'inf:' }, { closedSessionTtl: Infinity })
    await forever.app.sse.closeConversation('k')
    t.equal(await r.pttl('inf:{conversation:k}:producers'), -1, 'Infinity: kept for good')
    t.equal(await r.hget('inf:{conversation:k}:producers', 'closed'), '')
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

if (redis !== undefined) {
  t.test('a close while an instance\'s subscriber is away is learned by its catch-up', async (t) => {
    const a = await instance(t, redis)
    const b = await instance(t, redis)
    const c = await connect(`${a.url}/conversations/o/stream`)
    const one = await b.app.sse.broadcastToConversation('o', 'conversation_token', token('one'))
    await c.receive(1)
    const r = redis.client()
    t.teardown(() => r.quit())
    await r.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
    const final = await b.app.sse.closeConversation('o', 'conversation_completed', done('o'))
    await c.end()
    t.same(ids(c), [one, final, undefined])
    t.equal(c.received.at(-1)?.event, 'closed')
  })

  t.test('a close notice that arrives while a catch-up is held back is delivered after it', async (t) => {
    let logged = ''
    const app = await buildApp({ backplane: redisBackplane({ url: redis.url, keyPrefix: 'held:' }) }, { logger: { level: 'warn', stream: { write: (line: string) => { logged += line } } } })
    const url = await listen(app, t)
    const c = await connect(`${url}/conversations/h/stream`)
    const r = redis.client()
    t.teardown(() => r.quit())
    // The catch-up fails (the key is not a stream) and its live events stay held until the retry.
    await r.set('held:{conversation:h}', 'not a stream')
    await r.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
    await waitFor(() => logged.includes('WRONGTYPE'), 'the failed catch-up')
    // Another instance closes it meanwhile; its notice reaches the held feed.
    t.equal(await r.publish('held:{conversation:h}', 'closed\n'), 1)
    await r.del('held:{conversation:h}')
    await c.end()
    t.same(c.received.map((e) => e.event), ['closed'])
    t.match(c.received[0]?.json, { sessionId: 'h', lastEventId: '' })
  })

  t.test('snapshot with Redis: after the snapshot\'s id, from another instance\'s events; a trimmed id gets one too', async (t) => {
    let state: { tokens: string[], lastEventId: string } = { tokens: [], lastEventId: '' }
    const a = await instance(t, redis, { keyPrefix: 'snap:' }, { historySize: 3, snapshot: async () => ({ state: state.tokens, lastEventId: state.lastEventId }) })
    const b = await instance(t, redis, { keyPrefix: 'snap:' })
    const say = async (text: string): Promise<string> => {
      const id = await b.app.sse.broadcastToConversation('s', 'conversation_token', token(text))
      state = { tokens: [...state.tokens, text], lastEventId: id }
      return id
    }
    const first = await say('a')
    await say('b')
    const c = await connect(`${a.url}/conversations/s/stream`)
    await say('c')
    const got = await c.receive(2)
    t.match(got[0], { event: 'snapshot', json: { reason: 'join', state: ['a', 'b'] } })
    t.same(got[1]?.json.token, 'c')
    t.equal(a.app.sse.kind('conversation').lastEventId('s'), ids(c)[1], 'the newest id received here')
    for (const x of ['d', 'e', 'f']) await say(x)
    const trimmed = await connect(`${a.url}/conversations/s/stream`, { 'last-event-id': first })
    const [snap] = await trimmed.receive(1)
    t.match(snap?.json, { reason: 'history_trimmed', state: ['a', 'b', 'c', 'd', 'e', 'f'] })
    const known = await connect(`${a.url}/conversations/s/stream`, { 'last-event-id': ids(c)[1] as string })
    t.same((await known.receive(3)).map((e) => e.json.token), ['d', 'e', 'f'], 'an id Redis still has: the replay, no snapshot')
    state = { tokens: [], lastEventId: '' }
    const fromStart = await connect(`${a.url}/conversations/s/stream`)
    t.same((await fromStart.receive(4)).map((e) => e.event), ['snapshot', 'conversation_token', 'conversation_token', 'conversation_token'], 'from the start: the newest historySize events')
  })
}

if (redis !== undefined) {
  t.test('a join that reads the closed marker before this instance had the final event ends no client early', async (t) => {
    const a = await instance(t, redis, { keyPrefix: 'early:' })
    const x = await connect(`${a.url}/conversations/e/stream`)
    const one = await a.app.sse.broadcastToConversation('e', 'conversation_token', token('one'))
    await x.receive(1)
    const r = redis.client()
    t.teardown(() => r.quit())
    // The window between another instance's close and its notice reaching this one: the marker is stored.
    await r.hset('early:{conversation:e}:producers', 'closed', one)
    const y = await connect(`${a.url}/conversations/e/stream`)
    await y.receive(1)
    t.same(ids(y), [one], 'the history from its start')
    t.equal(a.app.sse.getConversationClientCount('e'), 2, 'both stay until the notice')
    t.notOk(x.ended)
    await r.publish('early:{conversation:e}', `closed\n${one}`)
    for (const c of [x, y]) {
      await c.end()
      t.same(c.received.map((e) => e.event), ['conversation_token', 'closed'])
    }
  })
}
