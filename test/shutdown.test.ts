/*
 * Shutdown: `fastify.close()` with 1,000 open streams resolves; every client sees a
 * clean end of its response (complete, no error) after the last event broadcast
 * before the close; no timer the app started is left pending; and the clients were
 * told a jittered `retry:` so they do not all come back at once. A stuck peer, or
 * broadcasts going on through close(), do not hold it open; a stream opened after
 * close began is refused.
 *
 * The close time is printed, not asserted (the figure goes in the docs); the only
 * bound is a generous failure guard.
 */
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildApp, connect, connectionCount, listen, rawResponses, stalledPeer, token, type SseClient } from './helper.js'

const STREAMS = 1000
const SESSIONS = 50
const RETRY = 3000
const JITTER = 1000

/** Records every interval and timeout created through the globals until restored. Real timers still run. */
function trackTimers (): { pending: () => number, created: () => number, restore: () => void } {
  const real = { setInterval, clearInterval, setTimeout, clearTimeout }
  const pending = new Set<unknown>()
  let created = 0
  globalThis.setInterval = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const h = real.setInterval(fn, ms, ...args)
    pending.add(h)
    created++
    return h
  }) as typeof setInterval
  globalThis.clearInterval = ((h: Parameters<typeof clearInterval>[0]) => { pending.delete(h); real.clearInterval(h) }) as typeof clearInterval
  globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const h: NodeJS.Timeout = real.setTimeout((...a: unknown[]) => { pending.delete(h); fn(...a) }, ms, ...args)
    pending.add(h)
    created++
    return h
  }) as typeof setTimeout
  globalThis.clearTimeout = ((h: Parameters<typeof clearTimeout>[0]) => { pending.delete(h); real.clearTimeout(h) }) as typeof clearTimeout
  return { pending: () => pending.size, created: () => created, restore: () => { Object.assign(globalThis, real) } }
}

/** app.close(), failing the test if it has not resolved within 30 s (a guard against hanging, not a timing assertion). */
async function closeWithin30s (app: FastifyInstance): Promise<void> {
  let guard: NodeJS.Timeout | undefined
  await Promise.race([
    app.close(),
    new Promise((_resolve, reject) => { guard = setTimeout(() => { reject(new Error('close() did not resolve within 30 s')) }, 30_000) })
  ])
  clearTimeout(guard)
}

t.test(`close() with ${STREAMS} open streams: resolves, clean ends, no timer left, jittered retry`, async (t) => {
  const timers = trackTimers()
  t.teardown(timers.restore)
  const app = await buildApp({ retry: RETRY, retryJitter: JITTER, heartbeatInterval: 100, cleanupInterval: 1000 })
  const url = await listen(app, t)
  t.ok(timers.pending() >= 2, `${timers.pending()} timers pending while running (the hub's heartbeat and cleanup among them)`)

  const clients: SseClient[] = []
  for (let batch = 0; batch < STREAMS; batch += 100) {
    clients.push(...await Promise.all(Array.from({ length: 100 }, (_, i) => {
      const n = batch + i
      return connect(`${url}/${n % 2 === 0 ? 'conversations' : 'debates'}/s${n % SESSIONS}/stream`)
    })))
  }
  t.equal(app.sse.getStats().clients, STREAMS)
  const outcome = clients.map((c) => {
    const o = { end: false, error: undefined as unknown, aborted: false }
    c.res?.on('end', () => { o.end = true })
    c.res?.on('error', (err) => { o.error = err })
    c.res?.on('aborted', () => { o.aborted = true })
    return o
  })

  // One last event to every session, broadcast right before close(): it must not be lost.
  for (let s = 0; s < SESSIONS; s++) {
    await app.sse.broadcastToConversation(`s${s}`, 'conversation_token', token('last'))
    await app.sse.broadcastToDebate(`s${s}`, 'debate_token', { debateId: `s${s}`, participantId: 'p', personaSlug: 'x', turnCount: 1, token: 'last' })
  }
  const started = performance.now()
  await closeWithin30s(app)
  const closeMs = performance.now() - started
  t.pass(`close() resolved in ${closeMs.toFixed(0)} ms`)
  await Promise.all(clients.map((c) => c.end()))

  t.equal(outcome.filter((o) => o.end).length, STREAMS, 'every response emitted end')
  t.equal(clients.filter((c) => c.res?.complete === true).length, STREAMS, 'every response is complete (terminating chunk received)')
  t.equal(outcome.filter((o) => o.error !== undefined || o.aborted).length, 0, 'no response error or abort')
  t.equal(clients.filter((c) => c.received.at(-1)?.json.token !== 'last').length, 0, 'every client got the last event before the end')
  t.equal(clients.filter((c) => c.parseErrors.length > 0).length, 0, 'no parse error')
  t.equal(app.sse.getStats().clients, 0, 'no client left in the hub')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(timers.pending(), 0, `of ${timers.created()} timers created by the app, none is left pending`)

  const retries = clients.map((c) => c.retries[0] as number)
  const min = Math.min(...retries)
  const max = Math.max(...retries)
  const distinct = new Set(retries).size
  const mean = retries.reduce((a, b) => a + b, 0) / retries.length
  const sd = Math.sqrt(retries.reduce((a, b) => a + (b - mean) ** 2, 0) / retries.length)
  t.ok(retries.every((r) => Number.isInteger(r)), 'every client got a retry: field')
  t.ok(min >= RETRY && max <= RETRY + JITTER, `retry within [${RETRY}, ${RETRY + JITTER}]: ${min}..${max}`)
  // Uniform over 1,001 values: ~632 distinct of 1,000, sd ~289. These bounds fail with negligible probability.
  t.ok(distinct >= 400, `${distinct} distinct retry values`)
  t.ok(sd >= 200, `retry standard deviation ${sd.toFixed(0)} ms`)
  t.ok(max - min >= JITTER * 0.9, `spread ${max - min} ms`)
  t.comment(JSON.stringify({ streams: STREAMS, closeMs: +closeMs.toFixed(1), retry: { min, max, mean: Math.round(mean), sd: Math.round(sd), distinct } }))
})

t.test('close() resolves even while a stuck peer holds an unsent backlog, and leaves no connection open', async (t) => {
  const app = await buildApp({ heartbeatInterval: 0, maxBufferedBytes: 8 * 2 ** 20, historyBytes: 2 ** 18 })
  const responses = rawResponses(app)
  const url = await listen(app, t)
  const stuck = await stalledPeer(url, '/conversations/a/stream?peer=stuck')
  t.teardown(() => { stuck.destroy() })
  const stuckRes = responses[0]
  const healthy = await connect(`${url}/conversations/a/stream`)
  // Fill the stuck peer's socket buffers, then some: a backlog that stays below maxBufferedBytes.
  const backlog = (): number => stuckRes?.writableLength ?? 0
  for (let sent = 0; sent < 2000 && backlog() < 2 ** 20; sent++) {
    await app.sse.broadcastToConversation('a', 'conversation_token', token('x'.repeat(8000), sent))
    await healthy.receive(sent + 1)
  }
  t.ok(backlog() >= 2 ** 20, `the stuck peer holds ${backlog()} unsent bytes`)
  t.equal(app.sse.getStats().clientsDroppedSlow, 0, 'and was not dropped')
  await closeWithin30s(app)
  t.pass('close() resolved')
  await healthy.end()
  t.equal(healthy.res?.complete, true, 'the healthy client saw a clean end')
  t.equal(await connectionCount(app.server), 0, 'no connection left open on the server')
})

t.test('broadcasting on through close(): nothing throws, and every client got a gapless prefix ending after the last pre-close event', async (t) => {
  const app = await buildApp({ heartbeatInterval: 0 })
  const url = await listen(app, t)
  const clients = await Promise.all(Array.from({ length: 50 }, () => connect(`${url}/conversations/c/stream`)))
  const ids: string[] = []
  let beforeClose = -1
  let closed = false
  const closing = (async () => {
    // Let some traffic flow first.
    while (ids.length < 200) await new Promise((resolve) => setImmediate(resolve))
    beforeClose = ids.length
    await app.close()
    closed = true
  })()
  let afterClose = 0
  let thrown: unknown
  try {
    for (let i = 0; afterClose < 100 && i < 100_000; i++) {
      ids.push(await app.sse.broadcastToConversation('c', 'conversation_token', token(`t${i}`, i)))
      if (closed) afterClose++
      await new Promise((resolve) => setImmediate(resolve))
    }
  } catch (err) {
    thrown = err
  }
  await closing
  t.equal(thrown, undefined, 'no broadcast threw, during or after close()')
  await Promise.all(clients.map((c) => c.end()))
  const lengths = clients.map((c) => c.received.length)
  const gapless = clients.every((c) => c.received.map((e) => e.id).join() === ids.slice(0, c.received.length).join())
  t.ok(gapless, 'every client got a prefix of the events, without a gap')
  t.ok(Math.min(...lengths) >= beforeClose, `every client got at least the ${beforeClose} events broadcast before close() (min ${Math.min(...lengths)})`)
  t.ok(clients.every((c) => c.res?.complete === true), 'and a clean end')
})

t.test('a stream opened after close began is refused with 503', async (t) => {
  const app = await buildApp()
  await app.ready()
  app.sse.endAll()
  const res = await app.inject('/conversations/x/stream')
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'FST_ERR_SSE_HUB_SHUTTING_DOWN')
  await app.close()
})

t.test('a single stream does not hold close() open', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const c = await connect(`${url}/conversations/x/stream`)
  await app.close()
  await c.end()
  t.equal(c.res?.complete, true)
})
