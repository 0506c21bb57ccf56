/*
 * `fastify-sse-hub/ai` across instances on one Redis, to the SDK's own chat client: an answer resumed on another
 * instance, stopped from another instance, its producing process SIGKILLed (its viewers elsewhere end with an
 * `error` chunk within leaseMs + 2 s, and the chat is free again), and a Redis restart mid-answer.
 */
import t from 'tap'
import { ERROR_TEXTS } from '../../src/ai/wire-format.js'
import { waitFor } from '../helper.js'
import { redisOrSkip } from '../redis/helper.js'
import { chatInstance, gate, mockModel, producerProcess, sendAndResume, TestChat, text, userMessage } from './helper.js'

const WORDS = ['Any ', 'instance ', 'serves ', 'the ', 'whole ', 'answer.']

t.test('one Redis, two instances', async (t) => {
  const redis = await redisOrSkip(t, true)
  if (redis === undefined) return

  t.test('a fresh Chat resumes on the other instance; a stop there ends every viewer, the producer aborted', async (t) => {
    const g = gate()
    const a = await chatInstance(t, redis, () => mockModel(WORDS, (i) => i === 4 ? g.wait : undefined))
    const b = await chatInstance(t, redis, () => mockModel(WORDS))
    const { sender, viewer, ended } = await sendAndResume(a.url, b.url, 'i1', userMessage('hello'))
    g.open()
    await ended
    t.equal(text(viewer.answer), WORDS.join(''))
    t.same(viewer.messages, a.saved.get('i1'), 'the other instance served what onFinish saved')
    t.same(sender.messages, viewer.messages)
    t.equal((await fetch(`${b.url}/api/chat/i1/stream`)).status, 204, 'after the end: 204 on either instance')

    const stuck = gate()
    const c = await chatInstance(t, redis, () => mockModel(WORDS, (i) => i === 3 ? stuck.wait : undefined))
    t.teardown(stuck.open)
    const { sender: second, viewer: watching, ended: stopped } = await sendAndResume(c.url, b.url, 'i2', userMessage('stop it'))
    const refused = await fetch(`${b.url}/api/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'i2', messages: [userMessage('again')] }) })
    t.equal(refused.status, 409, 'a second start on another instance: 409')
    t.same(await (await fetch(`${b.url}/api/chat/i2/stop`, { method: 'POST' })).json(), { stopped: true }, 'stopped from the other instance')
    t.equal(c.signals.get('i2')?.aborted, true, "the producer's signal was aborted where it runs")
    await stopped
    const said = text(second.answer)
    t.equal(text(watching.answer), said, 'both viewers end with the same answer')
    t.equal(said, WORDS[0], 'nothing was appended after the stop')
    t.same(await (await fetch(`${c.url}/api/chat/i2/stop`, { method: 'POST' })).json(), { stopped: false }, 'nothing runs any more')
    t.equal((await fetch(`${b.url}/api/chat/i2/stream`)).status, 204)
  })

  t.test('the producing process SIGKILLed: its viewers elsewhere end with an error chunk within leaseMs + 2 s, then 204', async (t) => {
    const leaseMs = 1000
    const { child, url: producer } = await producerProcess(t, redis, leaseMs, 3000)
    const b = await chatInstance(t, redis, () => mockModel(WORDS), { leaseMs })
    const question = userMessage('then die')
    const sending = fetch(`${producer}/api/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'k1', messages: [question] }) })
    const res = await sending
    t.equal(res.status, 200)
    const viewer = new TestChat(b.url, 'k1', [question])
    const viewing = viewer.resumeStream()
    await waitFor(() => text(viewer.answer).length > 20, 'the answer is streaming')
    child.kill('SIGKILL')
    const killed = Date.now()
    res.body?.cancel().catch(() => {})
    await viewing
    const took = Date.now() - killed
    t.equal(viewer.status, 'error')
    t.equal(viewer.error?.message, ERROR_TEXTS.lease_lapsed, 'the error chunk says the answer was interrupted')
    t.ok(took <= leaseMs + 2000, `ended ${took} ms after the kill (leaseMs ${leaseMs})`)
    t.ok(text(viewer.answer).startsWith('w0 w1 w2 '), 'what was said before stays')
    t.equal((await fetch(`${b.url}/api/chat/k1/stream`)).status, 204, 'the chat has no answer in progress any more')
    const again = new TestChat(b.url, 'k1', [question])
    await again.sendMessage(userMessage('once more'))
    t.equal(text(again.answer), WORDS.join(''), 'and takes a new one')
  })

  t.test('Redis restarted mid-answer: the answer completes, the same for every viewer', async (t) => {
    const g = gate()
    const a = await chatInstance(t, redis, () => mockModel(WORDS, (i) => i === 4 ? g.wait : undefined))
    const b = await chatInstance(t, redis, () => mockModel(WORDS))
    const { sender, viewer, ended } = await sendAndResume(a.url, b.url, 'r1', userMessage('hold on'))
    await redis.kill()
    // The rest is produced while Redis is down: it waits for it, in order.
    g.open()
    await redis.restart()
    await ended
    t.equal(sender.status, 'ready')
    t.equal(viewer.status, 'ready')
    t.equal(text(viewer.answer), WORDS.join(''))
    t.same(viewer.answer, sender.answer, 'the same answer for both viewers')
    t.same(viewer.messages, a.saved.get('r1'), 'what onFinish saved')
  })
})
