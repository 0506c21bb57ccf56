import t from 'tap'
import type { Socket } from 'node:net'
import { EventSource } from 'eventsource'
import { buildApp, connect, eventually, listen, token } from './helper.js'

async function broadcastN (app: Awaited<ReturnType<typeof buildApp>>, session: string, from: number, n: number): Promise<string[]> {
  const ids: string[] = []
  for (let i = from; i < from + n; i++) ids.push(await app.sse.broadcastToConversation(session, 'conversation_token', token(`t${i}`, i)))
  return ids
}

t.test('Last-Event-ID replays exactly the events after it, then live ones, no gap, no duplicate', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const ids = await broadcastN(app, 's', 0, 10)
  const c = await connect(`${url}/conversations/s/stream`, { 'last-event-id': ids[3]! })
  await broadcastN(app, 's', 10, 2)
  const got = await c.receive(8)
  t.same(got.map((e) => e.json.token), ['t4', 't5', 't6', 't7', 't8', 't9', 't10', 't11'])
  t.equal(new Set(got.map((e) => e.id)).size, 8)
  t.match(app.sse.getStats(), { replaysServed: 1, resyncsSent: 0 })
})

t.test('the lastEventId query parameter works for the first connect; the header wins over it', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const ids = await broadcastN(app, 's', 0, 5)
  const q = await connect(`${url}/conversations/s/stream?lastEventId=${ids[2]}`)
  t.same((await q.receive(2)).map((e) => e.json.token), ['t3', 't4'])
  const h = await connect(`${url}/conversations/s/stream?lastEventId=${ids[0]}`, { 'last-event-id': ids[3]! })
  t.same((await h.receive(1)).map((e) => e.json.token), ['t4'])
  const upToDate = await connect(`${url}/conversations/s/stream`, { 'last-event-id': ids[4]! })
  await app.sse.broadcastToConversation('s', 'conversation_token', token('live'))
  t.same((await upToDate.receive(1)).map((e) => e.json.token), ['live'], 'nothing to replay, no resync')
})

t.test('an unknown id gets one resync event carrying the newest id, then live events', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const ids = await broadcastN(app, 's', 0, 3)
  const other = await app.sse.broadcastToConversation('other', 'conversation_token', token('elsewhere'))
  const hostile = ['garbage', 'x'.repeat(8000), 'ünïcödé', other, `${ids[0]!.split('-')[0]}-999999`, 'zzz-1', `${ids[0]!.split('-')[0]}-01`]
  for (const lastEventId of hostile) {
    const c = await connect(`${url}/conversations/s/stream`, { 'last-event-id': encodeURIComponent(lastEventId) === lastEventId ? lastEventId : Buffer.from(lastEventId).toString('latin1') })
    const [resync] = await c.receive(1)
    t.equal(resync?.event, 'resync', lastEventId.slice(0, 20))
    t.match(resync?.json, { type: 'resync', sessionId: 's', reason: 'unknown_event_id' })
    t.equal(resync?.id, ids[2], 'the resync moves the client to the newest id')
    t.notMatch(JSON.stringify(resync?.json), /elsewhere/)
    c.close()
  }
  t.equal(app.sse.getStats().resyncsSent, hostile.length)
})

t.test('an id older than the kept history (by count) gets resync with reason history_trimmed', async (t) => {
  const app = await buildApp({ historySize: 5 })
  const url = await listen(app, t)
  const ids = await broadcastN(app, 's', 0, 20)
  t.equal(app.sse.getStats().conversations.historyEvents, 5)
  const old = await connect(`${url}/conversations/s/stream`, { 'last-event-id': ids[10]! })
  const [resync] = await old.receive(1)
  t.match(resync, { event: 'resync', id: ids[19], json: { reason: 'history_trimmed' } })
  const edge = await connect(`${url}/conversations/s/stream`, { 'last-event-id': ids[15]! })
  t.same((await edge.receive(4)).map((e) => e.json.token), ['t16', 't17', 't18', 't19'], 'oldest kept id still replays')
})

t.test('history is bounded by bytes too', async (t) => {
  const app = await buildApp({ historyBytes: 2048 })
  const url = await listen(app, t)
  const ids = await broadcastN(app, 's', 0, 100)
  const { historyBytes, historyEvents } = app.sse.getStats().conversations
  t.ok(historyBytes <= 2048, `${historyBytes} bytes kept`)
  t.ok(historyEvents > 1 && historyEvents < 100)
  const c = await connect(`${url}/conversations/s/stream`, { 'last-event-id': ids[100 - historyEvents]! })
  const got = await c.receive(historyEvents - 1)
  t.same(got.map((e) => e.json.token), ids.slice(101 - historyEvents).map((_, i) => `t${101 - historyEvents + i}`))
})

t.test('historySize 0 keeps nothing: any id resyncs with an empty id', async (t) => {
  const app = await buildApp({ historySize: 0 })
  const url = await listen(app, t)
  const [id] = await broadcastN(app, 's', 0, 1)
  const c = await connect(`${url}/conversations/s/stream`, { 'last-event-id': id! })
  const [resync] = await c.receive(1)
  t.match(resync, { event: 'resync', id: '', json: { reason: 'history_trimmed' } })
})

t.test('a session never seen resyncs any id', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const known = await app.sse.broadcastToConversation('a', 'conversation_token', token('x'))
  const c = await connect(`${url}/conversations/fresh/stream`, { 'last-event-id': known })
  t.match((await c.receive(1))[0], { event: 'resync', id: '', json: { reason: 'history_trimmed' } })
})

t.test('long history is compacted without losing order', async (t) => {
  const app = await buildApp({ historySize: 10 })
  const url = await listen(app, t)
  const ids = await broadcastN(app, 's', 0, 300)
  const c = await connect(`${url}/conversations/s/stream`, { 'last-event-id': ids[292]! })
  t.same((await c.receive(7)).map((e) => e.json.token), ['t293', 't294', 't295', 't296', 't297', 't298', 't299'])
})

t.test('a real eventsource client that is dropped reconnects and sees every event exactly once, in order', async (t) => {
  const app = await buildApp({ retry: 20, retryJitter: 0 })
  const sockets: Socket[] = []
  app.addHook('onRequest', async (request) => { sockets.push(request.raw.socket) })
  const url = await listen(app, t)
  const es = new EventSource(`${url}/conversations/live/stream`)
  t.teardown(() => es.close())
  const seen: Array<{ id: string, token: string }> = []
  let opens = 0
  es.addEventListener('open', () => { opens++ })
  es.addEventListener('conversation_token', (e) => { seen.push({ id: e.lastEventId, token: JSON.parse(e.data).token }) })
  await eventually(() => app.sse.getConversationClientCount('live') === 1, 'connected')
  await broadcastN(app, 'live', 0, 5)
  await eventually(() => seen.length === 5, 'first five')

  sockets.at(-1)!.destroy() // the network drops
  await eventually(() => app.sse.getConversationClientCount('live') === 0, 'server saw the drop')
  await broadcastN(app, 'live', 5, 5) // missed while away
  await eventually(() => app.sse.getConversationClientCount('live') === 1, 'reconnected')
  await broadcastN(app, 'live', 10, 5)
  await eventually(() => seen.length >= 15, 'all fifteen')

  t.equal(opens, 2)
  t.same(seen.map((e) => e.token), Array.from({ length: 15 }, (_, i) => `t${i}`), 'every event once, in order')
  t.match(app.sse.getStats(), { replaysServed: 1, resyncsSent: 0 })
})
