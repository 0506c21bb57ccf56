/*
 * `fastify-sse-hub/ai` on the Redis backplane, one instance: an answer is stored in Redis and replayed from it (the
 * wire format's asynchronous replay), to the SDK's own chat client.
 */
import t from 'tap'
import { redisBackplane } from '../../src/index.js'
import { chatStreams } from '../../src/ai/index.js'
import { ERROR_TEXTS } from '../../src/ai/wire-format.js'
import { listen, waitFor } from '../helper.js'
import { redisOrSkip } from '../redis/helper.js'
import { chatApp, gate, mockModel, TestChat, text, userMessage } from './helper.js'

const WORDS = ['Stored ', 'in ', 'Redis, ', 'replayed ', 'from ', 'it.']

t.test('a cut POST, a fresh Chat resuming from Redis, 204 after the end, an uninterrupted send', async (t) => {
  const redis = await redisOrSkip(t)
  if (redis === undefined) return
  const g = gate()
  let gated = true
  const { app, saved } = await chatApp(() => mockModel(WORDS, (i) => gated && i === 4 ? g.wait : undefined), { backplane: redisBackplane({ url: redis.url, connectTimeout: 2000 }) })
  const url = await listen(app, t)

  const question = userMessage('hello')
  const cut = new AbortController()
  const sender = new TestChat(url, 'r1', [], async (input, init) => await fetch(input, { ...init, signal: cut.signal }))
  const sending = sender.sendMessage(question)
  await waitFor(() => text(sender.answer) !== '', 'the answer started')
  cut.abort()
  await sending
  const fresh = new TestChat(url, 'r1', [question])
  const resuming = fresh.resumeStream()
  await waitFor(() => text(fresh.answer) !== '', 'the replay arrived')
  g.open()
  await resuming
  t.equal(text(fresh.answer), WORDS.join(''))
  t.same(fresh.messages, saved.get('r1'), 'the resumed chat holds what onFinish saved')
  t.equal((await fetch(`${url}/api/chat/r1/stream`)).status, 204, 'after the end: 204')

  gated = false
  const chat = new TestChat(url, 'r2')
  await chat.sendMessage(userMessage('again'))
  t.same(chat.messages, saved.get('r2'), 'an uninterrupted send')
})

t.test("an answer is bounded by the Redis stream's maxLen too: never replayed with its start trimmed away", async (t) => {
  const redis = await redisOrSkip(t)
  if (redis === undefined) return
  const many = Array.from({ length: 30 }, (_, i) => `w${i} `)
  const { app } = await chatApp(() => mockModel(many), { backplane: redisBackplane({ url: redis.url, maxLen: 20, connectTimeout: 2000 }) })
  t.throws(() => chatStreams(app.sse, { kind: 'chat' as 'conversation', maxAnswerChunks: 21 }), { code: 'FST_ERR_SSE_HUB_INVALID_OPTION' })
  const url = await listen(app, t)
  const chat = new TestChat(url, 'long')
  await chat.sendMessage(userMessage('talk'))
  t.equal(chat.status, 'error')
  t.equal(chat.error?.message, ERROR_TEXTS.too_long)
})
