/*
 * `fastify-sse-hub/ai` on a local Redis Cluster (sharded pub/sub), two instances, to the SDK's own chat client: an
 * answer resumed on the other instance, a stop from the other instance, and a producer whose lease lapses.
 */
import t from 'tap'
import { clusterOrSkip } from '../redis/helper.js'
import { ERROR_TEXTS } from '../../src/ai/wire-format.js'
import { chatInstance, gate, mockModel, TestChat, text, userMessage, waitStreaming } from './helper.js'

const WORDS = ['Every ', 'shard ', 'sees ', 'the ', 'same ', 'answer.']
const cluster = await clusterOrSkip(t)

if (cluster !== undefined) {
  t.test('resumed and stopped on the other instance; a lapsed lease ends it with an error chunk', async (t) => {
    const g = gate()
    const a = await chatInstance(t, cluster, () => mockModel(WORDS, (i) => i === 4 ? g.wait : undefined), { leaseMs: 600 })
    const b = await chatInstance(t, cluster, () => mockModel(WORDS), { leaseMs: 600 })
    const question = userMessage('hello')
    const sender = new TestChat(a.url, 'c1')
    const sending = sender.sendMessage(question)
    await waitStreaming(sender)
    const viewer = new TestChat(b.url, 'c1', [question])
    const viewing = viewer.resumeStream()
    await waitStreaming(viewer)
    g.open()
    await Promise.all([sending, viewing])
    t.same(viewer.messages, a.saved.get('c1'), 'the other instance served what onFinish saved')
    t.same(viewer.answer, sender.answer)

    const stuck = gate()
    t.teardown(stuck.open)
    const c = await chatInstance(t, cluster, () => mockModel(WORDS, (i) => i === 3 ? stuck.wait : undefined), { leaseMs: 600 })
    const second = new TestChat(c.url, 'c2')
    const producing = second.sendMessage(userMessage('stop it'))
    await waitStreaming(second)
    const watching = new TestChat(b.url, 'c2', [userMessage('stop it')])
    const watched = watching.resumeStream()
    await waitStreaming(watching)
    t.same(await (await fetch(`${b.url}/api/chat/c2/stop`, { method: 'POST' })).json(), { stopped: true })
    t.equal(c.signals.get('c2')?.aborted, true)
    await Promise.all([producing, watched])
    t.equal(text(watching.answer), WORDS[0])
    t.equal((await fetch(`${b.url}/api/chat/c2/stream`)).status, 204)

    // A producer whose process stalls (its hub closed under it: no more renewals) lets its lease lapse.
    const d = await chatInstance(t, cluster, () => mockModel(WORDS, (i) => i === 3 ? stuck.wait : undefined), { leaseMs: 600 })
    const third = new TestChat(d.url, 'c3')
    const dying = third.sendMessage(userMessage('then stall'))
    await waitStreaming(third)
    const last = new TestChat(b.url, 'c3', [userMessage('then stall')])
    const lasting = last.resumeStream()
    await waitStreaming(last)
    await d.app.close()
    await Promise.all([lasting, dying])
    t.equal(last.status, 'error')
    t.equal(last.error?.message, ERROR_TEXTS.lease_lapsed)
    t.equal((await fetch(`${b.url}/api/chat/c3/stream`)).status, 204)
  })
}
