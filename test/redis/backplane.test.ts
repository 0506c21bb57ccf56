/*
 * The Redis backplane against a real, private redis-server: two Fastify instances
 * in one process share it the way N processes behind a load balancer would.
 */
import t from 'tap'
import { Redis } from 'ioredis'
import { connect, ids, SseClient, token, tokens, waitFor } from '../helper.js'
import { instance, redisOrSkip } from './helper.js'

const redis = await redisOrSkip(t)

if (redis !== undefined) {
  t.test('a broadcast on either instance reaches every client on both, in one order, with the same ids', async (t) => {
    const a = await instance(t, redis)
    const b = await instance(t, redis)
    const clients = await Promise.all([
      connect(`${a.url}/conversations/s1/stream`),
      connect(`${a.url}/conversations/s1/stream`),
      connect(`${b.url}/conversations/s1/stream`),
      connect(`${b.url}/conversations/s1/stream`)
    ])
    const other = await connect(`${b.url}/conversations/s2/stream`)
    const n = 60
    // Two concurrent publishers, one per instance, neither waiting for the other.
    const [fromA, fromB] = await Promise.all([
      Promise.all(Array.from({ length: n }, (_, i) => a.app.sse.broadcastToConversation('s1', 'conversation_token', token(`a${i}`)))),
      Promise.all(Array.from({ length: n }, (_, i) => b.app.sse.broadcastToConversation('s1', 'conversation_token', token(`b${i}`))))
    ])
    for (const c of clients) await c.receive(2 * n)
    const reference = clients[0] as SseClient
    t.equal(reference.received.length, 2 * n, 'no duplicate')
    for (const c of clients) {
      t.same(ids(c), ids(reference), 'same ids, same order on every client of both instances')
      t.same(tokens(c), tokens(reference))
    }
    t.same([...ids(reference)].sort(), [...fromA, ...fromB].sort(), 'the ids are the ones the broadcasts resolved with')
    t.match(fromA[0], /^\d+-\d+$/, 'a Redis stream id')
    // Each publisher's own order is kept.
    t.same(tokens(reference).filter((x) => x.startsWith('a')), Array.from({ length: n }, (_, i) => `a${i}`))
    t.same(tokens(reference).filter((x) => x.startsWith('b')), Array.from({ length: n }, (_, i) => `b${i}`))
    t.equal(other.received.length, 0, 'another session gets nothing')

    // Debates are their own channel.
    const d = await connect(`${a.url}/debates/s1/stream`)
    await b.app.sse.broadcastToDebate('s1', 'debate_paused', { debateId: 's1', turnCount: 1 })
    const [e] = await d.receive(1)
    t.equal(e?.event, 'debate_paused')
    t.equal(reference.received.length, 2 * n, 'a debate is not a conversation of the same id')

    const stats = a.app.sse.getStats()
    t.equal(stats.backplane.type, 'redis')
    t.equal(stats.backplane.connected, true)
    t.equal(stats.backplane.subscriptions, 2)
    t.equal(stats.backplane.published, n)
    t.ok(stats.backplane.received >= 2 * n)
    t.ok(stats.backplane.lagMs >= 0 && stats.backplane.maxLagMs >= stats.backplane.lagMs)
    t.equal(stats.broadcasts, n)
    t.equal(stats.eventsSent, 2 * 2 * n + 1)
    t.equal(stats.conversations.clients, 2)
  })

  t.test('a client reconnecting to the other instance replays exactly what it missed, then live', async (t) => {
    const a = await instance(t, redis)
    const b = await instance(t, redis)
    const first = await connect(`${a.url}/conversations/r1/stream`)
    for (let i = 0; i < 5; i++) await a.app.sse.broadcastToConversation('r1', 'conversation_token', token(`t${i}`))
    await first.receive(5)
    const lastSeen = first.received[4]?.id as string
    first.close()
    await waitFor(() => a.app.sse.getConversationClientCount('r1') === 0, 'client gone')
    t.equal(a.app.sse.getStats().backplane.subscriptions, 0, 'unsubscribed when its last client left')
    for (let i = 5; i < 9; i++) await b.app.sse.broadcastToConversation('r1', 'conversation_token', token(`t${i}`))

    const again = await connect(`${b.url}/conversations/r1/stream`, { 'last-event-id': lastSeen })
    await again.receive(4)
    t.same(tokens(again), ['t5', 't6', 't7', 't8'], 'exactly the missed events, in order')
    await a.app.sse.broadcastToConversation('r1', 'conversation_token', token('live'))
    await again.receive(5)
    t.same(tokens(again), ['t5', 't6', 't7', 't8', 'live'])

    // The query parameter works too, and an id at the head replays nothing.
    const headId = again.received[4]?.id as string
    const q = await connect(`${a.url}/conversations/r1/stream?lastEventId=${encodeURIComponent(headId)}`)
    await a.app.sse.broadcastToConversation('r1', 'conversation_token', token('next'))
    await q.receive(1)
    t.same(tokens(q), ['next'])
    t.ok(b.app.sse.getStats().replaysServed >= 1)
  })

  t.test('no gap and no duplicate at the replay/live seam while a publisher is running', async (t) => {
    const a = await instance(t, redis)
    const b = await instance(t, redis)
    const reference = await connect(`${a.url}/conversations/seam/stream`)
    const total = 300
    let stop = false
    const publisher = (async () => {
      for (let i = 0; i < total && !stop; i++) await a.app.sse.broadcastToConversation('seam', 'conversation_token', token(String(i)))
    })()
    const joiners: Array<{ client: SseClient, from: number }> = []
    // Join on B with a Last-Event-ID taken from the reference, again and again, while events flow.
    for (let k = 0; k < 12; k++) {
      await reference.receive(10 + k * 20)
      const from = reference.received.length - 5
      const lastEventId = reference.received[from - 1]?.id as string
      joiners.push({ client: await connect(`${b.url}/conversations/seam/stream`, { 'last-event-id': lastEventId }), from })
    }
    await publisher
    stop = true
    await reference.receive(total)
    for (const { client, from } of joiners) {
      await client.receive(total - from)
      t.same(ids(client), ids(reference).slice(from), `joined after event ${from}: every later event once, in order`)
    }
  })

  t.test('an id older than the retained history gets one resync, then live events', async (t) => {
    const a = await instance(t, redis, { maxLen: 1 })
    const first = await connect(`${a.url}/conversations/trim/stream`)
    // MAXLEN ~ trims whole stream nodes (100 entries), so write a few hundred.
    for (let i = 0; i < 250; i++) await a.app.sse.broadcastToConversation('trim', 'conversation_token', token(String(i)))
    await first.receive(250)
    const oldest = first.received[0]?.id as string
    const newest = first.received[249]?.id as string
    const c = await connect(`${a.url}/conversations/trim/stream`, { 'last-event-id': oldest })
    await c.receive(1)
    t.equal(c.received[0]?.event, 'resync')
    t.same(c.received[0]?.json.reason, 'history_trimmed')
    t.equal(c.received[0]?.id, newest, 'the resync carries the newest id, to resume from')
    await a.app.sse.broadcastToConversation('trim', 'conversation_token', token('after'))
    await c.receive(2)
    t.same(c.received.map((e) => e.event), ['resync', 'conversation_token'])
  })

  t.test('a replay larger than historySize/historyBytes becomes a resync', async (t) => {
    const a = await instance(t, redis, {}, { historySize: 3 })
    const first = await connect(`${a.url}/conversations/big/stream`)
    for (let i = 0; i < 5; i++) await a.app.sse.broadcastToConversation('big', 'conversation_token', token(String(i)))
    await first.receive(5)
    const c = await connect(`${a.url}/conversations/big/stream`, { 'last-event-id': first.received[0]?.id as string })
    await c.receive(1)
    t.equal(c.received[0]?.event, 'resync')
    t.equal(c.received[0]?.json.reason, 'history_trimmed')
    t.equal(c.received[0]?.id, first.received[4]?.id)
    const ok = await connect(`${a.url}/conversations/big/stream`, { 'last-event-id': first.received[1]?.id as string })
    await ok.receive(3)
    t.same(tokens(ok), ['2', '3', '4'], 'three events fit')

    // The same with bytes: each of these frames is about 200 bytes.
    const small = await instance(t, redis, {}, { historyBytes: 500 })
    const byBytes = await connect(`${small.url}/conversations/big/stream`, { 'last-event-id': first.received[0]?.id as string })
    await byBytes.receive(1)
    t.equal(byBytes.received[0]?.event, 'resync')
    const fits = await connect(`${small.url}/conversations/big/stream`, { 'last-event-id': first.received[2]?.id as string })
    await fits.receive(2)
    t.same(tokens(fits), ['3', '4'])
  })

  t.test('unknown or garbage ids get a resync, never an error', async (t) => {
    const a = await instance(t, redis)
    const first = await connect(`${a.url}/conversations/u1/stream`)
    await a.app.sse.broadcastToConversation('u1', 'conversation_token', token('x'))
    await first.receive(1)
    const newest = first.received[0]?.id as string
    const cases: Array<[string, string]> = [
      ['garbage', 'unknown_event_id'],
      ['lz3k8abc1f2e-5', 'unknown_event_id'], // an in-memory hub's id
      ['99999999999999999999-0', 'unknown_event_id'], // too large to compare exactly
      [`${Number(newest.split('-')[0]) + 100000}-0`, 'unknown_event_id'], // well-formed, but never issued
      ['1-0', 'history_trimmed'] // older than anything retained
    ]
    for (const [id, reason] of cases) {
      const c = await connect(`${a.url}/conversations/u1/stream`, { 'last-event-id': id })
      await c.receive(1)
      t.equal(c.received[0]?.event, 'resync', id)
      t.equal(c.received[0]?.json.reason, reason, id)
      t.equal(c.received[0]?.id, newest, id)
      c.close()
    }
    // A session without any event: the resync resets the client's id.
    const empty = await connect(`${a.url}/conversations/nothing-here/stream`, { 'last-event-id': '1-0' })
    await empty.receive(1)
    t.equal(empty.received[0]?.event, 'resync')
    t.equal(empty.received[0]?.json.reason, 'history_trimmed')
    t.equal(empty.received[0]?.id, '')
  })

  t.test('a broadcast that Redis cannot persist rejects loudly; bad input still throws synchronously', async (t) => {
    const a = await instance(t, redis)
    const r = redis.client()
    t.teardown(() => r.quit())
    await a.app.sse.broadcastToConversation('w1', 'conversation_token', token('ok'))
    await r.set('sse-hub:{conversation:w1}', 'not a stream')
    await t.rejects(a.app.sse.broadcastToConversation('w1', 'conversation_token', token('no')), { code: 'FST_ERR_SSE_HUB_BROADCAST_FAILED', statusCode: 503 })
    t.equal(a.app.sse.getStats().backplane.publishFailures, 1)
    t.throws(() => a.app.sse.broadcastToConversation('bad id!', 'conversation_token', token('x')), { code: 'FST_ERR_SSE_HUB_INVALID_SESSION_ID' })
    t.throws(() => a.app.sse.broadcastToConversation('w2', 'conversation_token', { ...token('x'), token: 'y'.repeat(70_000) }), { code: 'FST_ERR_SSE_HUB_EVENT_TOO_LARGE' })
  })

  t.test('a flushed script cache is refilled by the broadcast that meets it', async (t) => {
    const a = await instance(t, redis)
    const c = await connect(`${a.url}/conversations/sf/stream`)
    const r = redis.client()
    t.teardown(() => r.quit())
    await a.app.sse.broadcastToConversation('sf', 'conversation_token', token('1'))
    await r.script('FLUSH')
    await a.app.sse.broadcastToConversation('sf', 'conversation_token', token('2'))
    await a.app.sse.broadcastToConversation('sf', 'conversation_token', token('3'))
    await c.receive(3)
    t.same(tokens(c), ['1', '2', '3'])
  })

  t.test('a replay after a flushed script cache sends the replay script itself', async (t) => {
    const a = await instance(t, redis)
    const first = await connect(`${a.url}/conversations/rf/stream`)
    for (let i = 0; i < 3; i++) await a.app.sse.broadcastToConversation('rf', 'conversation_token', token(`t${i}`))
    await first.receive(3)
    first.close()
    await waitFor(() => a.app.sse.getConversationClientCount('rf') === 0, 'client gone')
    const r = redis.client()
    t.teardown(() => r.quit())
    await r.script('FLUSH')
    const again = await connect(`${a.url}/conversations/rf/stream`, { 'last-event-id': first.received[0]?.id as string })
    await again.receive(2)
    t.same(tokens(again), ['t1', 't2'])
  })

  t.test('an entry the hub did not write (no type and data fields) makes a replay fail: 503', async (t) => {
    const a = await instance(t, redis)
    const r = redis.client()
    t.teardown(() => r.quit())
    const id = await r.xadd('sse-hub:{conversation:foreign}', '*', 'x', '1') as string
    const refused = new SseClient(`${a.url}/conversations/foreign/stream`, { 'last-event-id': id })
    const body = await refused.errorBody()
    t.equal(refused.statusCode, 503)
    t.equal(body.code, 'FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE')
  })

  t.test('messages on a channel that are not the hub\'s, or already delivered, are ignored', async (t) => {
    const a = await instance(t, redis)
    const c = await connect(`${a.url}/conversations/g1/stream`)
    const id = await a.app.sse.broadcastToConversation('g1', 'conversation_token', token('real'))
    await c.receive(1)
    const r = redis.client()
    t.teardown(() => r.quit())
    await r.publish('sse-hub:{conversation:g1}', 'no newlines')
    await r.publish('sse-hub:{conversation:g1}', 'not-an-id\nconversation_token\n{}')
    await r.publish('sse-hub:{conversation:g1}', `${id}\nconversation_token\n{"token":"again"}`)
    await a.app.sse.broadcastToConversation('g1', 'conversation_token', token('next'))
    await c.receive(2)
    t.same(tokens(c), ['real', 'next'])
  })

  t.test('keyPrefix and streamTtl shape the keys', async (t) => {
    const a = await instance(t, redis, { keyPrefix: 'app1:', streamTtl: 60_000 })
    const b = await instance(t, redis, { keyPrefix: 'app1:', streamTtl: 0 })
    const r = redis.client()
    t.teardown(() => r.quit())
    await a.app.sse.broadcastToDebate('k1', 'debate_paused', { debateId: 'k1', turnCount: 1 })
    const ttl = await r.pttl('app1:{debate:k1}')
    t.ok(ttl > 0 && ttl <= 60_000, 'expires after streamTtl')
    await b.app.sse.broadcastToDebate('k2', 'debate_paused', { debateId: 'k2', turnCount: 1 })
    t.equal(await r.pttl('app1:{debate:k2}'), -1, 'streamTtl 0: no expiry')
    t.equal(await r.xlen('app1:{debate:k1}'), 1)
  })
}
