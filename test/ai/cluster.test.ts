/*
 * `fastify-sse-hub/ai` on a local Redis Cluster (sharded pub/sub), two instances, to the SDK's own chat client: an
 * answer resumed on the other instance, a stop from the other instance, the producing instance closed, and its
 * process SIGKILLed (its lease lapses).
 */
import t from 'tap'
import { clusterOrSkip } from '../redis/helper.js'
import { ERROR_TEXTS } from '../../src/ai/wire-format.js'
import { chatInstance, gate, mockModel, producerProcess, sendAndResume, TestChat, text, userMessage, waitStreaming } from './helper.js'

const WORDS = ['Every ', 'shard ', 'sees ', 'the ', 'same ', 'answer.']
const cluster = await clusterOrSkip(t)

if (cluster !== undefined) {
  t.test('resumed and stopped on the other instance; its instance closed: abort; its process killed: an error chunk', async (t) => {
    const g = gate()
    const a = await chatInstance(t, cluster, () => mockModel(WORDS, (i) => i === 4 ? g.wait : undefined), { leaseMs: 600 })
    const b = await chatInstance(t, cluster, () => mockModel(WORDS), { leaseMs: 600 })
    const { sender, viewer, ended } = await sendAndResume(a.url, b.url, 'c1', userMessage('hello'))
    g.open()
    await ended
    t.same(viewer.messages, a.saved.get('c1'), 'the other instance served what onFinish saved')
    t.same(viewer.answer, sender.answer)

    const stuck = gate()
    t.teardown(stuck.open)
    const c = await chatInstance(t, cluster, () => mockModel(WORDS, (i) => i === 3 ? stuck.wait : undefined), { leaseMs: 600 })
    const { viewer: watching, ended: stopped } = await sendAndResume(c.url, b.url, 'c2', userMessage('stop it'))
    t.same(await (await fetch(`${b.url}/api/chat/c2/stop`, { method: 'POST' })).json(), { stopped: true })
    t.equal(c.signals.get('c2')?.aborted, true)
    await stopped
    t.equal(text(watching.answer), WORDS[0])
    t.equal((await fetch(`${b.url}/api/chat/c2/stream`)).status, 204)

    // Its producing instance closed: the answer ends at once for the viewers elsewhere (its producer stopped).
    const d = await chatInstance(t, cluster, () => mockModel(WORDS, (i) => i === 3 ? stuck.wait : undefined), { leaseMs: 600 })
    const { viewer: watcher, ended: closed } = await sendAndResume(d.url, b.url, 'c3', userMessage('then close'))
    await d.app.close()
    await closed
    t.equal(d.signals.get('c3')?.aborted, true, 'the closing instance stopped its producer')
    t.equal(text(watcher.answer), WORDS[0])
    t.equal((await fetch(`${b.url}/api/chat/c3/stream`)).status, 204)

    // Its producing process SIGKILLed: the viewers elsewhere get the error chunk.
    const { child, url } = await producerProcess(t, cluster, 600, 3000)
    const dying = userMessage('then die')
    const res = await fetch(`${url}/api/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'c4', messages: [dying] }) })
    const last = new TestChat(b.url, 'c4', [dying])
    const lasting = last.resumeStream()
    await waitStreaming(last)
    child.kill('SIGKILL')
    res.body?.cancel().catch(() => {})
    await lasting
    t.equal(last.status, 'error')
    t.equal(last.error?.message, ERROR_TEXTS.lease_lapsed)
    t.equal((await fetch(`${b.url}/api/chat/c4/stream`)).status, 204)
  })
}
