/*
 * Producer leases on a real Redis, two instances: one producer per session across instances, a stop from the other
 * instance (its notice, or the lease's mark when the notice is missed), a lease taken over, a lapsed lease closing
 * the session for the clients of another instance (a watch woken by the `leased` notice), Redis unreachable meanwhile.
 */
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { redisBackplane } from '../../src/index.js'
import type { PipedEvent } from '../../src/pipe.js'
import type { ConversationEvents } from '../../src/events.js'
import { buildApp, connect, lines, listen, token, waitFor } from '../helper.js'
import { redisOrSkip, withClient } from './helper.js'

type Item = PipedEvent<ConversationEvents>
const LEASE_MS = 300
const redis = await redisOrSkip(t, true)

/** An instance on the file's Redis with `leaseMs` 300, logging at debug into `logged`. */
async function hub (t: { teardown: (fn: () => unknown) => void }): Promise<{ app: FastifyInstance, url: string, logged: Array<Record<string, unknown>> }> {
  const { stream, logged } = lines()
  const app = await buildApp({ leaseMs: LEASE_MS, backplane: redisBackplane({ url: (redis as { url: string }).url, connectTimeout: 2000 }) }, { logger: { level: 'debug', stream } })
  return { app, url: await listen(app, t), logged }
}

/** A producer that says one token, then waits for its signal and ends. */
function untilStopped (said: string): (signal: AbortSignal) => AsyncGenerator<Item> {
  return async function * (signal) {
    yield { type: 'conversation_token', payload: token(said) }
    await new Promise((resolve) => { signal.addEventListener('abort', resolve, { once: true }) })
  }
}

const producers = (id: string): string => `sse-hub:{conversation:${id}}:producers`

if (redis !== undefined) {
  t.test('one producer per session across instances; a stop from the other; a closed session takes none', async (t) => {
    const a = await hub(t)
    const b = await hub(t)
    const piping = a.app.sse.conversations.pipe('p1', untilStopped('one'))
    await waitFor(() => b.app.sse.conversations.producing('p1'), 'the lease is taken')
    t.equal(await a.app.sse.conversations.producing('p1'), true)
    await t.rejects(b.app.sse.conversations.pipe('p1', untilStopped('two')), { code: 'FST_ERR_SSE_HUB_ALREADY_PIPED' })
    t.equal(await b.app.sse.conversations.stop('p1'), true, 'stopped from the other instance, once closed')
    await piping
    t.equal(await b.app.sse.conversations.producing('p1'), false)
    t.equal(await b.app.sse.conversations.stop('p1'), false, 'nothing runs any more')
    await a.app.sse.conversations.close('p2')
    await t.rejects(b.app.sse.conversations.pipe('p2', untilStopped('late')), { code: 'FST_ERR_SSE_HUB_SESSION_CLOSED' })
    // A script Redis runs and fails (the session's hash is not a hash) is an unavailable backplane, not a hang.
    await withClient(redis, async (r) => await r.set(producers('bad'), 'not a hash'))
    await t.rejects(b.app.sse.conversations.producing('bad'), { code: 'FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE' })
  })

  t.test('a stop whose notice is missed is seen at the next renewal; a lease taken over stops its producer', async (t) => {
    const a = await hub(t)
    const marked = a.app.sse.conversations.pipe('p3', untilStopped('one'))
    await waitFor(async () => await withClient(redis, async (r) => await r.hget(producers('p3'), 'lease')) !== null, 'the lease is taken')
    await withClient(redis, async (r) => await r.hset(producers('p3'), 'lease:stop', '1'))
    await marked
    t.pass('the renewal told the producer to stop')

    const taken = a.app.sse.conversations.pipe('p4', untilStopped('one'))
    await waitFor(async () => await withClient(redis, async (r) => await r.hget(producers('p4'), 'lease')) !== null, 'the lease is taken')
    await withClient(redis, async (r) => await r.hset(producers('p4'), 'lease', 'someone else'))
    await taken
    t.match(a.logged.find((l) => String(l.msg).includes('lease was lost')), { level: 40, sessionId: 'p4' }, 'a warning names the session')
  })

  t.test('a lapsed lease closes the session for the clients of another instance; Redis unreachable meanwhile', async (t) => {
    const a = await hub(t)
    const b = await hub(t)
    // A client first: its session has no producer yet, so its watch sleeps until the `leased` notice.
    const client = await connect(`${b.url}/conversations/p5/stream`)
    await waitFor(() => b.app.sse.getStats().backplane.subscriptions === 1, 'followed')
    const stalled = a.app.sse.conversations.pipe('p5', async function * () {
      yield { type: 'conversation_token', payload: token('before') }
      await new Promise(() => {})
    })
    await client.receive(1)
    // The producer's process stops renewing (its hub is gone), Redis goes away and comes back meanwhile.
    await a.app.close()
    await redis.kill()
    await waitFor(() => b.logged.some((l) => String(l.msg).includes('could not be looked at')), 'a look at the lease failed')
    await redis.restart()
    await client.receive(2)
    t.match(client.received[1], { event: 'pipe_failed', json: { sessionId: 'p5', reason: 'lease_lapsed' } })
    await client.until((c) => c.ended, 'the stream ends after closed')
    t.ok(b.logged.some((l) => l.level === 40 && String(l.msg).includes('stopped renewing its lease')), 'the lapse is logged')
    stalled.catch(() => {})
  })

  t.test('a stop waiting for its close when the hub closes resolves', async (t) => {
    const a = await hub(t)
    const b = await hub(t)
    // A producer that ignores its signal: the session stays open.
    a.app.sse.conversations.pipe('p6', async function * () {
      yield { type: 'conversation_token', payload: token('deaf') }
      await new Promise(() => {})
    }).catch(() => {})
    await waitFor(() => b.app.sse.conversations.producing('p6'), 'the lease is taken')
    const stopping = b.app.sse.conversations.stop('p6')
    await waitFor(() => withClient(redis, async (r) => await r.hget(producers('p6'), 'lease:stop') === '1'), 'the stop is asked')
    await b.app.close()
    t.equal(await stopping, true)
    await a.app.close()
  })
}
