/*
 * The example server's AI chat (example/chat.ts) driven by the AI SDK's own client (`AbstractChat` +
 * `DefaultChatTransport`) over real sockets: a send answered from the corpus, GET /api/chat/:id holding exactly the
 * client's messages, a second client resuming mid-answer, 409 while an answer runs, stop, 204 after the end, 400 JSON
 * for bad input (no stream opened), 404 for an unknown chat; and the same on a Redis backplane (one instance).
 */
import t from 'tap'
import type { UIMessage } from 'ai'
import { build } from '../example-server.js'
import { simulatedModel } from '../example/chat-model.js'
import { answerText } from '../example/corpus.js'
import { redisBackplane } from '../src/index.js'
import { listen, waitFor } from './helper.js'
import { gate, heldAt, TestChat, text, userMessage } from './ai/helper.js'
import { redisOrSkip } from './redis/helper.js'

/** `GET /api/chat/:id`: its status and JSON. */
async function saved (url: string, id: string): Promise<{ status: number, json: { messages?: UIMessage[], statusCode?: number, message?: string } }> {
  const res = await fetch(`${url}/api/chat/${encodeURIComponent(id)}`)
  return { status: res.status, json: await res.json() }
}

async function postJson (url: string, body: unknown): Promise<Response> {
  return await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
}

/** Messages as JSON carries them (the client's fields set to undefined are absent on the wire). */
const plain = (messages: UIMessage[]): UIMessage[] => JSON.parse(JSON.stringify(messages))

/** The example's model, its answers held after their third word until `g` opens. */
const held = (g: { wait: Promise<void> }) => (tokenDelayMs: number) => heldAt(simulatedModel(tokenDelayMs), 4, g.wait)

const started = async (chat: TestChat): Promise<void> => { await waitFor(() => text(chat.answer) !== '', 'the answer started') }

t.test('a send: the answer from the corpus, word by word; GET /api/chat/:id is the client\'s messages; a second turn too', async (t) => {
  const app = await build()
  const url = await listen(app, t)
  const chat = new TestChat(url, 'chat-1')
  await chat.sendMessage(userMessage('What is an engine?'), { body: { tokenDelayMs: 0 } })
  t.equal(chat.status, 'ready')
  t.equal(text(chat.answer), answerText('What is an engine?'))
  t.match(chat.answer?.parts, [{ type: 'step-start' }, { type: 'text', state: 'done' }])
  const first = await saved(url, 'chat-1')
  t.equal(first.status, 200)
  t.same(first.json, { id: 'chat-1', messages: plain(chat.messages) }, 'the saved messages are the client\'s')

  await chat.sendMessage(userMessage('And a loom?'), { body: { tokenDelayMs: 0 } })
  t.equal(chat.messages.length, 4)
  t.equal(text(chat.answer), answerText('And a loom?'))
  t.same((await saved(url, 'chat-1')).json.messages, plain(chat.messages), 'after the second turn too')
  t.equal((await fetch(`${url}/api/chat/chat-1/stream`)).status, 204, 'no answer in progress: 204')
})

t.test('a second client mid-answer: the answer from its start, then live; both end as saved; 409 for a send meanwhile', async (t) => {
  const g = gate()
  const app = await build({ chatModel: held(g) })
  const url = await listen(app, t)
  const question = userMessage('Tell me about stars')
  const sender = new TestChat(url, 'chat-2')
  const sending = sender.sendMessage(question, { body: { tokenDelayMs: 5 } })
  await started(sender)

  // What a page loads first: the saved messages, the question among them while the answer runs.
  const loaded = await saved(url, 'chat-2')
  t.same(loaded.json.messages, [question], 'mid-answer, the question is saved')
  const again = await postJson(`${url}/api/chat`, { id: 'chat-2', messages: [question, userMessage('more')] })
  t.equal(again.status, 409)
  t.match(await again.json(), { statusCode: 409, code: 'FST_ERR_SSE_HUB_ANSWER_IN_PROGRESS' })

  const viewer = new TestChat(url, 'chat-2', loaded.json.messages)
  const viewing = viewer.resumeStream()
  await started(viewer)
  t.equal(viewer.status, 'streaming', 'the viewer joined mid-answer')
  g.open()
  await Promise.all([sending, viewing])
  t.equal(text(viewer.answer), answerText('Tell me about stars'))
  t.same(plain(viewer.messages), plain(sender.messages), 'both clients hold the same messages')
  t.same((await saved(url, 'chat-2')).json.messages, plain(sender.messages), 'and what onFinish saved')
  t.equal((await fetch(`${url}/api/chat/chat-2/stream`)).status, 204, 'after the end: 204')
})

t.test('stop: the answer ends with its abort, the client and the saved messages agree; stop again: false', async (t) => {
  const g = gate()
  const app = await build({ chatModel: held(g) })
  const url = await listen(app, t)
  const chat = new TestChat(url, 'chat-3')
  const sending = chat.sendMessage(userMessage('A long answer, please'), { body: { tokenDelayMs: 0 } })
  await started(chat)
  const stop = await fetch(`${url}/api/chat/chat-3/stop`, { method: 'POST' })
  t.same(await stop.json(), { stopped: true })
  await sending
  t.equal(chat.status, 'ready')
  const answer = text(chat.answer)
  t.ok(answer !== '' && answer.length < answerText('A long answer, please').length, 'a part of the answer')
  t.same((await saved(url, 'chat-3')).json.messages, plain(chat.messages), 'the saved messages are the client\'s')
  t.same(await (await fetch(`${url}/api/chat/chat-3/stop`, { method: 'POST' })).json(), { stopped: false })
  t.same(await (await fetch(`${url}/api/chat/never/stop`, { method: 'POST' })).json(), { stopped: false }, 'a chat without answers')
  t.equal((await fetch(`${url}/api/chat/chat-3/stream`)).status, 204)

  // The chat goes on after a stop.
  g.open()
  await chat.sendMessage(userMessage('Go on'), { body: { tokenDelayMs: 0 } })
  t.equal(text(chat.answer), answerText('Go on'))
  t.same((await saved(url, 'chat-3')).json.messages, plain(chat.messages))
})

t.test('bad input: 400 JSON and no answer started; an unknown chat: 404 JSON', async (t) => {
  const app = await build()
  const url = await listen(app, t)
  const question = userMessage('hi')
  const bodies: Array<[string, unknown]> = [
    ['no body', undefined],
    ['no messages', { id: 'bad' }],
    ['no id', { messages: [question] }],
    ['an id the hub refuses', { id: 'a b', messages: [question] }],
    ['no message', { id: 'bad', messages: [] }],
    ['a message without parts', { id: 'bad', messages: [{ id: 'm', role: 'user' }] }],
    ['an unknown role', { id: 'bad', messages: [{ ...question, role: 'robot' }] }],
    ['a text part without text (the SDK\'s validation)', { id: 'bad', messages: [{ ...question, parts: [{ type: 'text' }] }] }],
    ['an assistant message last', { id: 'bad', messages: [{ ...question, role: 'assistant' }] }],
    ['a negative tokenDelayMs', { id: 'bad', messages: [question], tokenDelayMs: -1 }],
    ['a tokenDelayMs too long', { id: 'bad', messages: [question], tokenDelayMs: 10_001 }],
    ['an unknown field', { id: 'bad', messages: [question], model: 'gpt' }],
    ['an unknown trigger', { id: 'bad', messages: [question], trigger: 'resume-stream' }]
  ]
  for (const [what, body] of bodies) {
    const res = body === undefined
      ? await fetch(`${url}/api/chat`, { method: 'POST' })
      : await postJson(`${url}/api/chat`, body)
    t.equal(res.status, 400, what)
    t.match(res.headers.get('content-type'), /^application\/json/, `${what}: JSON`)
    t.match(await res.json(), { statusCode: 400, message: String }, what)
  }
  t.equal((await fetch(`${url}/api/chat/bad/stream`)).status, 204, 'no answer was started')

  const unknown = await saved(url, 'bad')
  t.equal(unknown.status, 404)
  t.same(unknown.json, { statusCode: 404, error: 'Not Found', message: 'no chat bad' })
  for (const [method, path] of [['GET', '/api/chat/a%20b'], ['GET', '/api/chat/a%20b/stream'], ['POST', '/api/chat/a%20b/stop']] as const) {
    const res = await fetch(`${url}${path}`, { method })
    t.equal(res.status, 400, `${method} ${path}`)
    t.match(await res.json(), { statusCode: 400 }, `${method} ${path}: JSON`)
  }
})

t.test('on a Redis backplane (one instance): a send, a resume mid-answer from Redis, 204 after the end', async (t) => {
  const redis = await redisOrSkip(t)
  if (redis === undefined) return
  const g = gate()
  const app = await build({ hub: { backplane: redisBackplane({ url: redis.url, connectTimeout: 2000 }) }, chatModel: held(g) })
  const url = await listen(app, t)
  const question = userMessage('Is the sky a map?')
  const sender = new TestChat(url, 'redis-1')
  const sending = sender.sendMessage(question, { body: { tokenDelayMs: 5 } })
  await started(sender)
  const viewer = new TestChat(url, 'redis-1', (await saved(url, 'redis-1')).json.messages)
  const viewing = viewer.resumeStream()
  await started(viewer)
  t.equal(viewer.status, 'streaming', 'the viewer joined mid-answer, replayed from Redis')
  g.open()
  await Promise.all([sending, viewing])
  t.equal(text(viewer.answer), answerText('Is the sky a map?'))
  t.same(plain(viewer.messages), plain(sender.messages))
  t.same((await saved(url, 'redis-1')).json.messages, plain(sender.messages))
  t.equal((await fetch(`${url}/api/chat/redis-1/stream`)).status, 204)
})
