/*
 * The subscriber (`fastify-sse-hub/client`) reading the hub's protocol, frame by frame: a Fastify server of the
 * test's own writes the exact SSE bytes (events with ids, `snapshot`, `resync`, `closed`, a 204, malformed data),
 * and the real `eventsource` package is the EventSource. Each step waits for what it expects, never for a time.
 */
import t from 'tap'
import { EventSource } from 'eventsource'
import { subscribe, type SubscribeOptions, type Subscription, type SubscriptionStatus } from '../../src/browser/index.js'
import { scriptedSseServer, waitFor } from '../helper.js'

interface TestEvents {
  note: { text: string }
  other: { n: number }
}

/** The `eventsource` package's EventSource, keeping every instance made, to check how each one ended. */
class TrackedEventSource extends EventSource {
  static made: TrackedEventSource[] = []
  constructor (url: string, init?: { withCredentials?: boolean }) {
    super(url, init)
    TrackedEventSource.made.push(this)
  }
}

/** A subscription whose notes, statuses, errors and callbacks are logged, in order, as strings. */
function recorded (url: string, options: SubscribeOptions<TestEvents> = {}): { sub: Subscription, notes: string[], statuses: SubscriptionStatus[], errors: Error[] } {
  const notes: string[] = []
  const statuses: SubscriptionStatus[] = []
  const errors: Error[] = []
  const sub = subscribe<TestEvents>(url, {
    on: { note (e, meta) { notes.push(`${meta.id}:${e.text}`) } },
    onStatus (s) { statuses.push(s) },
    onError (err) { errors.push(err) },
    EventSource: TrackedEventSource,
    ...options
  })
  return { sub, notes, statuses, errors }
}

const note = (text: string): { type: string, text: string, timestamp: number } => ({ type: 'note', text, timestamp: 1 })

t.test('events are applied in order, each with its payload and id; status goes connecting, open', async (t) => {
  const server = await scriptedSseServer(t)
  const seen: unknown[] = []
  const { sub, notes, statuses } = recorded(server.url, {
    on: {
      note (e, meta) { notes.push(`${meta.id}:${e.text}`) },
      other (e, meta) { seen.push({ ...e, id: meta.id }) }
    }
  })
  t.equal(sub.status, 'connecting')
  t.equal(sub.lastEventId, undefined)
  const s = await server.stream(1)
  t.equal(s.lastEventId, undefined, 'no Last-Event-ID on the first request')
  s.open()
  s.event('connection_established', { type: 'connection_established', clientId: 'c', sessionId: 's', kind: 'conversation', timestamp: 1 })
  s.event('note', note('a'), 'e-1')
  s.event('other', { type: 'other', n: 7, timestamp: 2 }, 'e-2')
  s.event('unlistened', { x: 1 }, 'e-3')
  s.event('note', note('b'), 'e-4')
  await waitFor(() => notes.length === 2, 'two notes')
  t.same(notes, ['e-1:a', 'e-4:b'])
  t.same(seen, [{ type: 'other', n: 7, timestamp: 2, id: 'e-2' }])
  t.same(statuses, ['connecting', 'open'])
  t.equal(sub.status, 'open')
  t.equal(sub.lastEventId, 'e-4')
  t.equal(sub.duplicates, 0)
  sub.close()
  t.equal(sub.status, 'closed')
  await s.closed
})

t.test('an event whose id is not newer than the last applied one is never applied twice', async (t) => {
  const server = await scriptedSseServer(t)
  const { sub, notes } = recorded(server.url)
  const s = await server.stream(1)
  s.open()
  s.event('note', note('a'), 'e-1')
  s.event('note', note('b'), 'e-2')
  s.event('note', note('b again'), 'e-2')
  s.event('note', note('a again'), 'e-1')
  s.event('note', note('c'), 'e-3')
  await waitFor(() => notes.length === 3 && sub.duplicates === 2, 'three notes, two duplicates')
  t.same(notes, ['e-1:a', 'e-2:b', 'e-3:c'])
  sub.close()
})

t.test('a reconnect sends Last-Event-ID; what the server sends again is skipped; status goes reconnecting, open', async (t) => {
  const server = await scriptedSseServer(t)
  const { sub, notes, statuses } = recorded(server.url)
  const first = await server.stream(1)
  first.open()
  first.event('note', note('a'), '1700000000000-0')
  first.event('note', note('b'), '1700000000000-1')
  await waitFor(() => notes.length === 2, 'two notes')
  first.end()
  const second = await server.stream(2)
  t.equal(second.lastEventId, '1700000000000-1', 'the EventSource resumes after the last id')
  t.equal(sub.status, 'reconnecting')
  // A socket that fails before any answer: still reconnecting.
  second.raw.destroy()
  const third = await server.stream(3)
  third.open()
  third.event('note', note('b'), '1700000000000-1')
  third.event('note', note('c'), '1700000000001-0')
  await waitFor(() => notes.length === 3, 'the third note')
  t.same(notes, ['1700000000000-0:a', '1700000000000-1:b', '1700000000001-0:c'])
  t.equal(sub.duplicates, 1)
  t.same(statuses, ['connecting', 'open', 'reconnecting', 'open'])
  sub.close()
})

t.test('a snapshot replaces the state before what follows it; older events are skipped', async (t) => {
  const server = await scriptedSseServer(t)
  const order: string[] = []
  const { sub, notes } = recorded(server.url, {
    onSnapshot (state, event) { order.push(`snapshot ${event.id} ${JSON.stringify(state)} ${event.reason} ${event.sessionId}`) }
  })
  const s = await server.stream(1)
  s.open()
  s.event('snapshot', { type: 'snapshot', sessionId: 's', reason: 'join', state: { text: 'ab' }, timestamp: 1 }, 'ep-5')
  s.event('note', note('old'), 'ep-4')
  s.event('note', note('c'), 'ep-6')
  await waitFor(() => notes.length === 1, 'the note after the snapshot')
  t.same(order, ['snapshot ep-5 {"text":"ab"} join s'])
  t.same(notes, ['ep-6:c'])
  t.equal(sub.duplicates, 1)
  // A snapshot from another start of the hub (another epoch) starts a new history: its id is the place now.
  s.event('snapshot', { type: 'snapshot', sessionId: 's', reason: 'unknown_event_id', state: {}, timestamp: 2 }, 'eq-2')
  s.event('note', note('d'), 'eq-3')
  await waitFor(() => notes.length === 2, 'the note after the second snapshot')
  t.same(notes, ['ep-6:c', 'eq-3:d'])
  t.equal(sub.lastEventId, 'eq-3')
  sub.close()
})

t.test('an async snapshot handler holds the events after it until it settles, then they are applied in order', async (t) => {
  const server = await scriptedSseServer(t)
  let settle!: () => void
  const order: string[] = []
  TrackedEventSource.made = []
  const { sub, notes } = recorded(server.url, {
    on: { note (e, meta) { order.push(`${meta.id}:${e.text}`); notes.push(meta.id) } },
    onSnapshot: async () => { order.push('snapshot'); await new Promise<void>((resolve) => { settle = resolve }); order.push('snapshot applied') }
  })
  // What reached the EventSource itself, applied or not.
  let arrived = 0
  TrackedEventSource.made[0]!.addEventListener('note', () => { arrived++ })
  const s = await server.stream(1)
  s.open()
  s.event('snapshot', { type: 'snapshot', sessionId: 's', reason: 'join', state: null, timestamp: 1 }, 'e-2')
  s.event('note', note('c'), 'e-3')
  s.event('note', note('d'), 'e-4')
  await waitFor(() => arrived === 2, 'the notes reached the EventSource')
  t.same(order, ['snapshot'], 'nothing applied while the snapshot is pending')
  s.event('note', note('e'), 'e-5')
  await waitFor(() => arrived === 3, 'a third note reached the EventSource')
  t.same(order, ['snapshot'], 'nothing applied while the snapshot is pending')
  settle()
  await waitFor(() => notes.length === 3, 'the held notes')
  t.same(order, ['snapshot', 'snapshot applied', 'e-3:c', 'e-4:d', 'e-5:e'])
  sub.close()
})

t.test('resync: onResync is called; its id (or the resolved one) is the place to go on from', async (t) => {
  const server = await scriptedSseServer(t)
  const resyncs: string[] = []
  const answers: Array<string | undefined> = ['e-12', undefined, '']
  const { sub, notes } = recorded(server.url, {
    onResync: async (e) => { resyncs.push(`${e.id} ${e.reason} ${e.sessionId}`); return answers.shift() }
  })
  const s = await server.stream(1)
  s.open()
  s.event('note', note('a'), 'e-1')
  // The reloaded state includes up to e-12: e-11 and e-12 are in it already.
  s.event('resync', { type: 'resync', sessionId: 's', reason: 'history_trimmed', timestamp: 1 }, 'e-10')
  s.event('note', note('in the state'), 'e-11')
  s.event('note', note('in the state too'), 'e-12')
  s.event('note', note('b'), 'e-13')
  // Resolved with nothing: the resync's own id is the place.
  s.event('resync', { type: 'resync', sessionId: 's', reason: 'unknown_event_id', timestamp: 2 }, 'e-20')
  s.event('note', note('older'), 'e-19')
  s.event('note', note('c'), 'e-21')
  // Resolved with '': the same.
  s.event('resync', { type: 'resync', sessionId: 's', reason: 'unknown_event_id', timestamp: 3 }, 'e-30')
  s.event('note', note('d'), 'e-31')
  await waitFor(() => notes.length === 4, 'four notes')
  t.same(notes, ['e-1:a', 'e-13:b', 'e-21:c', 'e-31:d'])
  t.same(resyncs, ['e-10 history_trimmed s', 'e-20 unknown_event_id s', 'e-30 unknown_event_id s'])
  t.equal(sub.duplicates, 3)
  sub.close()
})

t.test('resync and snapshot without their handlers still set the place; without an id they start a new history', async (t) => {
  const server = await scriptedSseServer(t)
  const { sub, notes } = recorded(server.url)
  const s = await server.stream(1)
  s.open()
  s.event('resync', { type: 'resync', sessionId: 's', reason: 'unknown_event_id', timestamp: 1 }, '5-0')
  s.event('note', note('old'), '5-0')
  s.event('note', note('a'), '5-1')
  s.event('snapshot', { type: 'snapshot', sessionId: 's', reason: 'join', state: 1, timestamp: 1 }, '8-0')
  s.event('note', note('old'), '7-0')
  s.event('note', note('b'), '9-0')
  // A snapshot of a session without events yet: `id:` empty, every event after it is new.
  s.event('snapshot', { type: 'snapshot', sessionId: 's', reason: 'join', state: 1, timestamp: 1 }, '')
  s.event('note', note('c'), '1-0')
  // A resync of a session without events (Redis was emptied): the same.
  s.event('resync', { type: 'resync', sessionId: 's', reason: 'unknown_event_id', timestamp: 1 }, '')
  s.event('note', note('d'), '1-0')
  await waitFor(() => notes.length === 4, 'four notes')
  t.same(notes, ['5-1:a', '9-0:b', '1-0:c', '1-0:d'])
  t.equal(sub.duplicates, 2)
  sub.close()
})

t.test('closed: onClosed, status closed, the stream is closed at once and never requested again', async (t) => {
  const server = await scriptedSseServer(t)
  const closed: unknown[] = []
  TrackedEventSource.made = []
  const { sub, notes, statuses } = recorded(server.url, { onClosed (e) { closed.push(e) } })
  const s = await server.stream(1)
  s.open()
  s.event('note', note('last'), 'e-9')
  s.event('closed', { type: 'closed', sessionId: 's', lastEventId: 'e-9', timestamp: 1 })
  // The server keeps the response open: the client is the one that closes it.
  await s.closed
  t.same(notes, ['e-9:last'])
  t.same(closed, [{ type: 'closed', sessionId: 's', lastEventId: 'e-9', timestamp: 1 }])
  t.same(statuses, ['connecting', 'open', 'closed'])
  t.equal(sub.status, 'closed')
  t.equal(sub.lastEventId, 'e-9')
  t.equal(TrackedEventSource.made.length, 1)
  t.equal(TrackedEventSource.made[0]!.readyState, EventSource.CLOSED, 'the EventSource is closed: by the spec it never reconnects')
  t.equal(server.streams.length, 1)
  sub.close()
  t.same(statuses, ['connecting', 'open', 'closed'], 'close() after the end changes nothing')
})

t.test('closed while a resync is pending: the stream closes at once, the held events and onClosed follow in order', async (t) => {
  const server = await scriptedSseServer(t)
  let settle!: () => void
  const order: string[] = []
  const { sub } = recorded(server.url, {
    on: { note (e) { order.push(e.text) } },
    onResync: async () => { await new Promise<void>((resolve) => { settle = resolve }) },
    onClosed () { order.push('closed') }
  })
  const s = await server.stream(1)
  s.open()
  s.event('resync', { type: 'resync', sessionId: 's', reason: 'history_trimmed', timestamp: 1 }, 'e-1')
  s.event('note', note('after'), 'e-2')
  s.event('closed', { type: 'closed', sessionId: 's', lastEventId: 'e-2', timestamp: 1 })
  await s.closed
  t.equal(sub.status, 'open', 'the stream is closed, the subscription ends once what it holds is applied')
  t.same(order, [])
  settle()
  await waitFor(() => sub.status === 'closed', 'the end')
  t.same(order, ['after', 'closed'])
  t.equal(server.streams.length, 1)
})

t.test('204 No Content on a reconnect: status closed for good, no onClosed, no further request', async (t) => {
  const server = await scriptedSseServer(t)
  const closed: unknown[] = []
  TrackedEventSource.made = []
  const { sub, statuses } = recorded(server.url, { onClosed (e) { closed.push(e) } })
  const first = await server.stream(1)
  first.open()
  first.event('note', note('a'), 'e-1')
  first.end()
  const second = await server.stream(2)
  t.equal(second.lastEventId, 'e-1')
  second.refuse(204)
  await waitFor(() => sub.status === 'closed', 'closed')
  t.same(statuses, ['connecting', 'open', 'reconnecting', 'closed'])
  t.same(closed, [])
  t.equal(TrackedEventSource.made[0]!.readyState, EventSource.CLOSED, 'the EventSource gave up: it never reconnects')
  t.equal(server.streams.length, 2)
})

t.test('a refused first request (503) closes the subscription too', async (t) => {
  const server = await scriptedSseServer(t)
  const { sub, statuses } = recorded(server.url)
  ;(await server.stream(1)).refuse(503)
  await waitFor(() => sub.status === 'closed', 'closed')
  t.same(statuses, ['connecting', 'closed'])
})

t.test('malformed data and throwing handlers are reported, and the subscription goes on', async (t) => {
  const server = await scriptedSseServer(t)
  const closed: unknown[] = []
  const { sub, notes, errors } = recorded(server.url, {
    on: {
      note (e, meta) { notes.push(`${meta.id}:${e.text}`) },
      other () { throw new Error('handler bug') }
    },
    onSnapshot () { throw new Error('snapshot bug') },
    onClosed (e) { closed.push(e) }
  })
  const s = await server.stream(1)
  s.open()
  s.event('note', 'not json', 'e-1')
  s.event('snapshot', '{"state":', 'e-2')
  s.event('resync', 'nope', 'e-3')
  s.event('other', { type: 'other', n: 1, timestamp: 1 }, 'e-4')
  s.event('snapshot', { type: 'snapshot', sessionId: 's', reason: 'join', state: 1, timestamp: 1 }, 'e-5')
  s.event('note', note('fine'), 'e-6')
  s.event('closed', '{', undefined)
  await waitFor(() => sub.status === 'closed', 'closed')
  t.same(notes, ['e-6:fine'])
  t.same(closed, [], 'onClosed is not called with data it cannot read, the subscription ends all the same')
  t.same(errors.map((e) => e.message), [
    'fastify-sse-hub/client: the data of the note event e-1 is not JSON',
    'fastify-sse-hub/client: the data of the snapshot event e-2 is not JSON',
    'fastify-sse-hub/client: the data of the resync event e-3 is not JSON',
    'fastify-sse-hub/client: the other handler threw',
    'fastify-sse-hub/client: the snapshot handler threw',
    'fastify-sse-hub/client: the data of the closed event is not JSON'
  ])
  t.type(errors[0]!.cause, SyntaxError)
  t.equal((errors[3]!.cause as Error).message, 'handler bug')
  t.equal(sub.lastEventId, 'e-6')
})

t.test('an onStatus that throws is reported, and the subscription goes on', async (t) => {
  const server = await scriptedSseServer(t)
  const errors: Error[] = []
  const seen: SubscriptionStatus[] = []
  const { sub, notes } = recorded(server.url, {
    onStatus (s) { seen.push(s); throw new Error(`status bug ${s}`) },
    onError (err) { errors.push(err) }
  })
  const s = await server.stream(1)
  s.open()
  s.event('note', note('a'), 'e-1')
  await waitFor(() => notes.length === 1, 'a note')
  sub.close()
  t.same(seen, ['connecting', 'open', 'closed'])
  t.same(errors.map((e) => [e.message, (e.cause as Error).message]), [
    ['fastify-sse-hub/client: the status handler threw', 'status bug connecting'],
    ['fastify-sse-hub/client: the status handler threw', 'status bug open'],
    ['fastify-sse-hub/client: the status handler threw', 'status bug closed']
  ])
})

t.test('a held handler that rejects is reported; the held events are applied', async (t) => {
  const server = await scriptedSseServer(t)
  const { sub, notes, errors } = recorded(server.url, { onSnapshot: async () => { throw new Error('reload failed') } })
  const s = await server.stream(1)
  s.open()
  s.event('snapshot', { type: 'snapshot', sessionId: 's', reason: 'join', state: 1, timestamp: 1 }, 'e-1')
  s.event('note', note('a'), 'e-2')
  await waitFor(() => notes.length === 1, 'the note')
  t.same(errors.map((e) => [e.message, (e.cause as Error).message]), [['fastify-sse-hub/client: a held handler rejected', 'reload failed']])
  sub.close()
})

t.test('a handler returning something other than a promise holds nothing', async (t) => {
  const server = await scriptedSseServer(t)
  const returns: unknown[] = [null, { then: 'not a function' }, 5]
  const { sub, notes } = recorded(server.url, { onSnapshot: (() => returns.shift()) as () => void })
  const s = await server.stream(1)
  s.open()
  for (let i = 1; i <= 3; i++) {
    s.event('snapshot', { type: 'snapshot', sessionId: 's', reason: 'join', state: i, timestamp: 1 }, `e-${2 * i}`)
    s.event('note', note(String(i)), `e-${2 * i + 1}`)
  }
  await waitFor(() => notes.length === 3, 'three notes')
  t.same(notes, ['e-3:1', 'e-5:2', 'e-7:3'])
  sub.close()
})

t.test('close() while a handler holds events: they are dropped, nothing is called after close', async (t) => {
  const server = await scriptedSseServer(t)
  let settle!: () => void
  const { sub, notes, statuses } = recorded(server.url, {
    onSnapshot: async () => { await new Promise<void>((resolve) => { settle = resolve }) }
  })
  const s = await server.stream(1)
  s.open()
  s.event('snapshot', { type: 'snapshot', sessionId: 's', reason: 'join', state: 1, timestamp: 1 }, 'e-1')
  s.event('note', note('held'), 'e-2')
  await waitFor(() => settle !== undefined, 'the snapshot handler')
  sub.close()
  await s.closed
  settle()
  await new Promise((resolve) => setImmediate(resolve))
  t.same(notes, [])
  t.same(statuses, ['connecting', 'open', 'closed'])
})

t.test('lastEventId option: sent as the query parameter, and the place to go on from', async (t) => {
  const server = await scriptedSseServer(t)
  const { sub, notes } = recorded(server.url, { lastEventId: 'e-4' })
  const s = await server.stream(1)
  t.equal(s.url, '/stream?lastEventId=e-4')
  t.equal(s.lastEventId, undefined)
  t.equal(sub.lastEventId, 'e-4')
  s.open()
  s.event('note', note('old'), 'e-4')
  s.event('note', note('a'), 'e-5')
  await waitFor(() => notes.length === 1, 'a note')
  t.same(notes, ['e-5:a'])
  sub.close()

  const other = recorded(server.url + '?x=1#top', { lastEventId: 'a b' })
  t.equal((await server.stream(2)).url, '/stream?x=1&lastEventId=a%20b')
  other.sub.close()
  const hash = recorded(new URL(server.url + '#top').href, { lastEventId: '' })
  t.equal((await server.stream(3)).url, '/stream')
  hash.sub.close()
  const both = recorded(server.url + '#top', { lastEventId: 'e-1' })
  t.equal((await server.stream(4)).url, '/stream?lastEventId=e-1')
  both.sub.close()
})

t.test('an event without an id is applied without moving the place; a handler left undefined is not listened to', async (t) => {
  const server = await scriptedSseServer(t)
  const { sub, notes } = recorded(server.url, {
    on: { note (e, meta) { notes.push(`${meta.id}:${e.text}`) }, other: undefined }
  })
  const s = await server.stream(1)
  s.open()
  s.event('other', { n: 1 }, 'e-1')
  s.event('note', note('no id'))
  s.event('note', note('a'), 'e-2')
  await waitFor(() => notes.length === 2, 'two notes')
  t.same(notes, [':no id', 'e-2:a'])
  sub.close()
})

t.test('defaults: globalThis.EventSource, and console.error for what goes wrong', async (t) => {
  const server = await scriptedSseServer(t)
  const g = globalThis as { EventSource?: unknown }
  const saved = g.EventSource
  t.teardown(() => { g.EventSource = saved })
  delete g.EventSource
  t.throws(() => subscribe(server.url), new TypeError('fastify-sse-hub/client: no EventSource here; pass one as options.EventSource'))
  g.EventSource = TrackedEventSource
  const printed: unknown[] = []
  const error = console.error
  t.teardown(() => { console.error = error })
  console.error = (...args: unknown[]) => { printed.push(...args) }
  const sub = subscribe(server.url)
  const s = await server.stream(1)
  s.open()
  s.event('snapshot', 'garbage', 'e-1')
  await waitFor(() => printed.length === 1, 'the error printed')
  t.match((printed[0] as Error).message, /the data of the snapshot event e-1 is not JSON/)
  t.equal(sub.lastEventId, 'e-1')
  sub.close()
})
