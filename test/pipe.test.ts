/* Producing into a session (in memory): `pipe` appends a source's events in order and closes; `stop`; failures. */
import t from 'tap'
import { FST_ERR_SSE_HUB_ALREADY_PIPED, FST_ERR_SSE_HUB_INVALID_EVENT_TYPE, FST_ERR_SSE_HUB_INVALID_SESSION_ID, FST_ERR_SSE_HUB_SESSION_CLOSED, FST_ERR_SSE_HUB_WIRE_FORMAT } from '../src/index.js'
import type { PipedEvent } from '../src/pipe.js'
import type { ConversationEvents } from '../src/events.js'
import { HUB_FORMAT, type WireFormat } from '../src/wire-format.js'
import { buildApp, connect, listen, token } from './helper.js'

type Item = PipedEvent<ConversationEvents>
const item = (text: string): Item => ({ type: 'conversation_token', payload: token(text) })

/** A source that yields `texts` and then waits until `signal` aborts (forever without one). */
async function * slow (texts: string[], waiting: (s: 'waiting') => void = () => {}): AsyncGenerator<Item> {
  for (const text of texts) yield item(text)
  waiting('waiting')
  await new Promise(() => {})
}

t.test('each item is appended in order, then the session closes: its last item is the final event', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const c = await connect(`${url}/conversations/s/stream`)
  async function * source (): AsyncGenerator<Item> {
    for (const text of ['a', 'b', 'c']) yield item(text)
  }
  const final = await app.sse.kind('conversation').pipe('s', source())
  await c.end()
  t.same(c.received.map((e) => e.event === 'closed' ? 'closed' : e.json.token), ['a', 'b', 'c', 'closed'])
  t.equal(c.received[2]?.id, final, 'resolves with the final event id')
  t.equal(c.received[3]?.json.lastEventId, final)
  t.equal(await app.sse.kind('conversation').stop('s'), false, 'nothing runs once it ended')
})

t.test('a web ReadableStream is a source too', async (t) => {
  const app = await buildApp()
  await app.ready()
  t.teardown(() => app.close())
  const stream = new ReadableStream<Item>({
    start (controller) {
      controller.enqueue(item('x'))
      controller.close()
    }
  })
  const final = await app.sse.kind('conversation').pipe('r', stream)
  t.equal(app.sse.conversations.lastEventId('r'), final)
})

t.test('a source that throws: pipe_failed (source_error), closed, and pipe rejects with its error', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const c = await connect(`${url}/conversations/f/stream`)
  const boom = new Error('boom')
  async function * source (): AsyncGenerator<Item> {
    yield item('a')
    throw boom
  }
  await t.rejects(app.sse.kind('conversation').pipe('f', source()), boom)
  await c.end()
  t.same(c.received.map((e) => e.event), ['conversation_token', 'pipe_failed', 'closed'])
  t.match(c.received[1]?.json, { type: 'pipe_failed', sessionId: 'f', reason: 'source_error' })
  t.throws(() => { void app.sse.broadcastToConversation('g', 'pipe_failed' as 'conversation_token', token('x')) }, FST_ERR_SSE_HUB_INVALID_EVENT_TYPE, 'the hub reserves pipe_failed')
})

t.test('a producer function that throws at once, and an event a broadcast would refuse, fail the same way', async (t) => {
  const app = await buildApp()
  await app.ready()
  t.teardown(() => app.close())
  const registry = app.sse.kind('conversation')
  const boom = new Error('no source')
  await t.rejects(registry.pipe('p', () => { throw boom }), boom)
  async function * bad (): AsyncGenerator<Item> {
    yield { type: 'closed', payload: {} } as unknown as Item
  }
  await t.rejects(registry.pipe('q', bad()), FST_ERR_SSE_HUB_INVALID_EVENT_TYPE)
  // An iterator without return(): nothing to release.
  const bare: AsyncIterable<Item> = { [Symbol.asyncIterator]: () => ({ next: async () => { throw boom } }) }
  await t.rejects(registry.pipe('b', bare), boom)
  for (const id of ['p', 'q', 'b']) t.ok(app.sse.conversations.lastEventId(id), `${id} ended with its failure event`)
})

t.test('a closed session refuses a producer: pipe rejects with FST_ERR_SSE_HUB_SESSION_CLOSED', async (t) => {
  const app = await buildApp()
  await app.ready()
  t.teardown(() => app.close())
  await app.sse.closeConversation('c')
  await t.rejects(app.sse.kind('conversation').pipe('c', slow(['a'])), FST_ERR_SSE_HUB_SESSION_CLOSED)
})

t.test('a second pipe of a session with a producer, and a bad session id, throw at once', async (t) => {
  const app = await buildApp()
  await app.ready()
  t.teardown(() => app.close())
  const registry = app.sse.kind('conversation')
  const running = registry.pipe('d', slow([]))
  t.throws(() => registry.pipe('d', slow([])), FST_ERR_SSE_HUB_ALREADY_PIPED)
  t.equal(new FST_ERR_SSE_HUB_ALREADY_PIPED('x').statusCode, 409)
  t.throws(() => registry.pipe('bad id', slow([])), FST_ERR_SSE_HUB_INVALID_SESSION_ID)
  t.throws(() => registry.stop('bad id'), FST_ERR_SSE_HUB_INVALID_SESSION_ID)
  t.equal(await registry.stop('d'), true)
  await running
})

t.test('stop: a producer told of it ends by itself, its last items appended; stop resolves once closed', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const registry = app.sse.kind('conversation')
  const c = await connect(`${url}/conversations/t/stream`)
  let told: AbortSignal | undefined
  let started!: () => void
  const waiting = new Promise<void>((resolve) => { started = resolve })
  async function * source (signal: AbortSignal): AsyncGenerator<Item> {
    told = signal
    yield item('a')
    started()
    await new Promise((resolve) => signal.addEventListener('abort', resolve))
    yield item('bye')
  }
  const piped = registry.pipe('t', source)
  await waiting
  t.equal(await registry.stop('t'), true)
  t.equal(told?.aborted, true, 'the producer signal is aborted')
  await c.end()
  t.same(c.received.map((e) => e.event === 'closed' ? 'closed' : e.json.token), ['a', 'bye', 'closed'], 'no failure event: it ended by itself')
  t.equal(await piped, c.received[1]?.id)
})

t.test('stop: a producer told of it that throws ends with pipe_failed (stopped), and pipe resolves', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const registry = app.sse.kind('conversation')
  const c = await connect(`${url}/conversations/u/stream`)
  let started!: () => void
  const waiting = new Promise<void>((resolve) => { started = resolve })
  async function * source (signal: AbortSignal): AsyncGenerator<Item> {
    started()
    await new Promise((resolve, reject) => signal.addEventListener('abort', () => { reject(signal.reason) }))
    yield item('never')
  }
  const piped = registry.pipe('u', source)
  await waiting
  await registry.stop('u')
  await c.end()
  t.match(c.received.map((e) => e.json), [{ type: 'pipe_failed', reason: 'stopped' }, { type: 'closed' }])
  t.equal(await piped, c.received[0]?.id)
})

t.test('stop: a source given as is is no longer read, even while it waits: pipe_failed (stopped)', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const registry = app.sse.kind('conversation')
  const c = await connect(`${url}/conversations/v/stream`)
  let started!: () => void
  const waiting = new Promise<void>((resolve) => { started = resolve })
  const piped = registry.pipe('v', slow(['a'], () => { started() }))
  await waiting
  await registry.stop('v')
  await piped
  await c.end()
  t.match(c.received.map((e) => e.json), [{ token: 'a' }, { type: 'pipe_failed', reason: 'stopped' }, { type: 'closed' }])
})

t.test("the options' signal stops the producer as stop does, even when aborted before", async (t) => {
  const app = await buildApp()
  await app.ready()
  t.teardown(() => app.close())
  const registry = app.sse.kind('conversation')
  const controller = new AbortController()
  let started!: () => void
  const waiting = new Promise<void>((resolve) => { started = resolve })
  const piped = registry.pipe('w', slow([], () => { started() }), { signal: controller.signal })
  await waiting
  controller.abort()
  await piped
  await registry.pipe('x', slow(['never']), { signal: AbortSignal.abort() })
  t.equal(app.sse.getStats().conversations.closed, 2)
})

t.test('a kind speaks one wire format, given before it holds sessions', async (t) => {
  const app = await buildApp({ kinds: ['chat'] })
  await app.ready()
  t.teardown(() => app.close())
  const other: WireFormat = { ...HUB_FORMAT }
  const chat = app.sse.kind('chat' as 'conversation')
  chat.useWireFormat(HUB_FORMAT)
  chat.useWireFormat(other)
  chat.useWireFormat(other)
  t.throws(() => { chat.useWireFormat(HUB_FORMAT) }, FST_ERR_SSE_HUB_WIRE_FORMAT)
  await app.sse.broadcastToConversation('s', 'conversation_token', token('a'))
  t.throws(() => { app.sse.conversations.useWireFormat(other) }, { code: 'FST_ERR_SSE_HUB_WIRE_FORMAT', message: /holds sessions/ })
})
