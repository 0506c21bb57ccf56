/*
 * `fastify-sse-hub/ai` driven by the AI SDK's own client (`AbstractChat`, `DefaultChatTransport`) over real sockets,
 * its answers made by the SDK's mock model through `streamText(…).toUIMessageStream()`.
 */
import t from 'tap'
import { FST_ERR_SSE_HUB_FORBIDDEN } from '../../src/index.js'
import { chatStreams } from '../../src/ai/index.js'
import { ERROR_TEXTS } from '../../src/ai/wire-format.js'
import { buildApp, listen } from '../helper.js'
import { chatApp, gate, mockModel, TestChat, text, userMessage, waitStreaming } from './helper.js'

const WORDS = ['The ', 'hub ', 'keeps ', 'every ', 'answer ', 'whole.']

/** The SSE events of a body: each `data:` value, in order. */
function dataOf (body: string): string[] {
  return body.split('\n\n').filter((e) => e !== '').map((e) => e.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n'))
}

t.test('an uninterrupted send: the chat ends ready with the whole answer, the one onFinish saved', async (t) => {
  const { app, saved } = await chatApp(() => mockModel(WORDS))
  const url = await listen(app, t)
  let headers: Headers | undefined
  const chat = new TestChat(url, 'c1', [], async (input, init) => {
    const res = await fetch(input, init)
    headers = res.headers
    return res
  })
  await chat.sendMessage(userMessage('hello'))
  t.equal(chat.status, 'ready')
  t.equal(text(chat.answer), WORDS.join(''))
  t.same(chat.messages, saved.get('c1'), 'the chat holds what onFinish saved')
  t.equal(headers?.get('x-vercel-ai-ui-message-stream'), 'v1')
  t.equal(headers?.get('content-type'), 'text/event-stream')
  t.equal(headers?.get('x-accel-buffering'), 'no')
  t.match(headers?.get('cache-control'), /^no-cache/)
})

t.test('the wire: chunks only, from the start, then data: [DONE] and the end; nothing else', async (t) => {
  const g = gate()
  const { app } = await chatApp(() => mockModel(WORDS, (i) => i === 4 ? g.wait : undefined))
  const url = await listen(app, t)
  const sender = new TestChat(url, 'c2')
  const sending = sender.sendMessage(userMessage('hello'))
  // Once the answer has started, a GET gets it from its start, then live.
  await waitStreaming(sender)
  const res = await fetch(`${url}/api/chat/c2/stream`)
  t.equal(res.status, 200)
  g.open()
  const body = await res.text()
  await sending
  const data = dataOf(body)
  t.equal(data.at(-1), '[DONE]')
  const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as { type: string })
  t.equal(chunks[0]?.type, 'start', 'replayed from the answer start')
  t.equal(chunks.at(-1)?.type, 'finish')
  t.notMatch(body, /connection_established|"closed"|resync|snapshot|retry:/)
})

t.test('a POST cut mid-answer, then a fresh Chat resumes: the same message as an uninterrupted viewer and as onFinish saved', async (t) => {
  const g = gate()
  const { app, saved } = await chatApp(() => mockModel(WORDS, (i) => i === 4 ? g.wait : undefined))
  const url = await listen(app, t)
  const question = userMessage('hello')
  const cut = new AbortController()
  const sender = new TestChat(url, 'c3', [], async (input, init) => await fetch(input, { ...init, signal: AbortSignal.any([cut.signal, init?.signal ?? new AbortController().signal]) }))
  const sending = sender.sendMessage(question)
  await waitStreaming(sender)
  // A viewer from early on, that nothing interrupts.
  const viewer = new TestChat(url, 'c3', [question])
  const viewing = viewer.resumeStream()
  await waitStreaming(viewer)
  cut.abort()
  await sending
  t.not(text(sender.answer), WORDS.join(''), 'the sender got part of the answer')
  // A fresh page: what the app persisted (the question), then resume.
  const fresh = new TestChat(url, 'c3', [question])
  const resuming = fresh.resumeStream()
  await waitStreaming(fresh)
  g.open()
  await Promise.all([viewing, resuming])
  t.equal(text(fresh.answer), WORDS.join(''))
  t.same(fresh.messages, saved.get('c3'), 'the resumed chat holds what onFinish saved')
  t.same(viewer.messages, fresh.messages, 'and what the uninterrupted viewer holds')
  t.equal(fresh.status, 'ready')

  // Resume after the end: 204, nothing changes.
  const later = new TestChat(url, 'c3', fresh.messages)
  await later.resumeStream()
  t.same(later.messages, saved.get('c3'))
  t.equal(later.status, 'ready')
  t.equal((await fetch(`${url}/api/chat/c3/stream`)).status, 204)
  t.equal((await fetch(`${url}/api/chat/never/stream`)).status, 204, 'a chat without answers: 204')
})

t.test('two viewers of one answer get the same bytes', async (t) => {
  const g = gate()
  const { app } = await chatApp(() => mockModel(WORDS, (i) => i === 3 ? g.wait : undefined))
  const url = await listen(app, t)
  const sender = new TestChat(url, 'c4')
  const sending = sender.sendMessage(userMessage('hello'))
  await waitStreaming(sender)
  const [a, b] = await Promise.all([fetch(`${url}/api/chat/c4/stream`), fetch(`${url}/api/chat/c4/stream`)])
  g.open()
  const [bodyA, bodyB] = await Promise.all([a.text(), b.text()])
  await sending
  t.equal(bodyA, bodyB)
  t.equal(dataOf(bodyA).at(-1), '[DONE]')
})

t.test('stop: every viewer ends with the abort chunk, the producer signal is aborted, nothing comes after', async (t) => {
  const g = gate()
  const { app, signals } = await chatApp(() => mockModel(WORDS, (i) => i === 4 ? g.wait : undefined))
  const url = await listen(app, t)
  const sender = new TestChat(url, 'c5')
  const sending = sender.sendMessage(userMessage('hello'))
  await waitStreaming(sender)
  const viewer = await fetch(`${url}/api/chat/c5/stream`)
  // A second start while it runs: 409.
  const again = await fetch(`${url}/api/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'c5', messages: [userMessage('again')] }) })
  t.equal(again.status, 409)
  t.match(await again.json(), { code: 'FST_ERR_SSE_HUB_ANSWER_IN_PROGRESS', statusCode: 409 })
  const stopped = await fetch(`${url}/api/chat/c5/stop`, { method: 'POST' })
  t.same(await stopped.json(), { stopped: true })
  t.equal(signals.get('c5')?.aborted, true)
  const data = dataOf(await viewer.text())
  t.same(data.slice(-2).map((d) => d === '[DONE]' ? d : (JSON.parse(d) as { type: string }).type), ['abort', '[DONE]'])
  await sending
  t.not(sender.status, 'streaming')
  g.open()
  t.same(await (await fetch(`${url}/api/chat/c5/stop`, { method: 'POST' })).json(), { stopped: false }, 'nothing runs any more')
  t.equal((await fetch(`${url}/api/chat/c5/stream`)).status, 204)
})

t.test('with Last-Event-ID, only what follows it; an id the answer lacks gets an error chunk', async (t) => {
  const g = gate()
  const { app } = await chatApp(() => mockModel(WORDS, (i) => i === 4 ? g.wait : undefined))
  const url = await listen(app, t)
  const sender = new TestChat(url, 'c6')
  const sending = sender.sendMessage(userMessage('hello'))
  await waitStreaming(sender)
  const all = await readEvents(await fetch(`${url}/api/chat/c6/stream`), 4)
  const third = /^id: (.+)$/m.exec(all[2] as string)?.[1] as string
  const after = await readEvents(await fetch(`${url}/api/chat/c6/stream`, { headers: { 'last-event-id': third } }), 1)
  t.equal(after[0], all[3], 'the event after it comes first')
  const unknown = await readEvents(await fetch(`${url}/api/chat/c6/stream`, { headers: { 'last-event-id': 'nope' } }), 1)
  t.same(dataOf(unknown[0] as string).map((d) => JSON.parse(d)), [{ type: 'error', errorText: ERROR_TEXTS.lost }])
  g.open()
  await sending
  await Promise.all(reading)
})

t.test('an answer longer than maxAnswerChunks or maxAnswerBytes ends with an error chunk', async (t) => {
  for (const limit of [{ maxAnswerChunks: 5 }, { maxAnswerBytes: 1024 }]) {
    const words = limit.maxAnswerBytes === undefined ? WORDS : WORDS.map((w) => w.repeat(40))
    const { app, saved } = await chatApp(() => mockModel(words), {}, limit)
    const url = await listen(app, t)
    const chat = new TestChat(url, 'c7')
    await chat.sendMessage(userMessage('hello'))
    t.equal(chat.status, 'error', Object.keys(limit).join())
    t.equal(chat.error?.message, ERROR_TEXTS.too_long)
    t.not(text(chat.answer), words.join(''))
    await app.close()
  }
})

t.test("a producer that throws: the answer ends with an error chunk, the error is logged, and the chat's next start works", async (t) => {
  const logged: unknown[] = []
  const { app, chats } = await chatApp(() => mockModel(WORDS))
  app.post('/api/broken', async (request, reply) => {
    reply.log.error = (o: unknown) => { logged.push(o) }
    await chats.start('c8', () => { throw new Error('no model') }, reply)
  })
  const url = await listen(app, t)
  const chat = new TestChat(url, 'c8', [], async (input, init) => await fetch(`${url}/api/broken`, init))
  await chat.sendMessage(userMessage('hello'))
  t.equal(chat.status, 'error')
  t.equal(chat.error?.message, ERROR_TEXTS.source_error)
  t.match(logged, [{ chatId: 'c8', err: { message: 'no model' } }])
  const next = new TestChat(url, 'c8')
  await next.sendMessage(userMessage('again'))
  t.equal(text(next.answer), WORDS.join(''))
})

t.test('a refused stream (authorize) answers its error and keeps no answer in progress; a bad chat id is a 400', async (t) => {
  const { app } = await chatApp(() => mockModel(WORDS), { authorize: () => false })
  const url = await listen(app, t)
  const post = async (): Promise<Response> => await fetch(`${url}/api/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'c9', messages: [userMessage('x')] }) })
  for (let i = 0; i < 2; i++) t.match(await (await post()).json(), { code: new FST_ERR_SSE_HUB_FORBIDDEN().code }, 'not 409: no answer was left claimed')
  const bad = await fetch(`${url}/api/chat/${encodeURIComponent('a b')}/stream`)
  t.equal(bad.status, 400)
  t.match(await bad.json(), { code: 'FST_ERR_SSE_HUB_INVALID_SESSION_ID' })
})

t.test('chatStreams options: the answer limits within the history, the kind taken once', async (t) => {
  const app = await buildApp({ kinds: ['chat', 'tiny'], historySize: 1 })
  t.teardown(() => app.close())
  const chat = 'chat' as 'conversation'
  t.throws(() => chatStreams(app.sse, { kind: 'tiny' as 'conversation' }), { code: 'FST_ERR_SSE_HUB_INVALID_OPTION', message: /maxAnswerChunks/ })
  const big = await buildApp({ kinds: ['chat'] })
  t.teardown(() => big.close())
  t.throws(() => chatStreams(big.sse, { kind: chat, maxAnswerBytes: 10 ** 9 }), { code: 'FST_ERR_SSE_HUB_INVALID_OPTION', message: /maxAnswerBytes/ })
  t.throws(() => chatStreams(big.sse, { kind: chat, maxAnswerChunks: 1.5 }), { code: 'FST_ERR_SSE_HUB_INVALID_OPTION' })
  chatStreams(big.sse, { kind: chat, maxAnswerChunks: 10, param: 'chat' })
  await big.sse.kind('conversation').broadcast('s', 'conversation_token', { participantId: 'p', personaSlug: 'a', personaName: 'A', segment: 's', token: 't' })
  t.throws(() => chatStreams(big.sse, { kind: 'conversation' }), { code: 'FST_ERR_SSE_HUB_WIRE_FORMAT' })
  await t.rejects(chatStreams(big.sse, { kind: chat }).stop('bad id'), { code: 'FST_ERR_SSE_HUB_INVALID_SESSION_ID' })
})

/** The bodies {@link readEvents} reads on: a test awaits them, so no connection is busy when the server closes. */
const reading: Array<Promise<unknown>> = []

/** Reads `res`'s body until it holds `n` events and returns them; the rest is read on (see {@link reading}). */
async function readEvents (res: Response, n: number): Promise<string[]> {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  const decoder = new TextDecoder()
  let body = ''
  while (body.split('\n\n').length <= n) {
    const { value } = await reader.read()
    body += decoder.decode(value, { stream: true })
  }
  reading.push((async () => { while (!(await reader.read()).done);})())
  return body.split('\n\n').slice(0, n)
}
