import t from 'tap'
import FakeTimers from '@sinonjs/fake-timers'
import type { Socket } from 'node:net'
import { spareBlocks } from '../src/history.js'
import { buildApp, connect, eventually, listen, token } from './helper.js'

// Only the hub's interval timers and its clock are faked: sockets, setImmediate and nextTick stay real.
type Clock = ReturnType<typeof FakeTimers.install>
function fakeClock (t: { teardown: (fn: () => unknown) => void }): Clock {
  const clock = FakeTimers.install({ toFake: ['setInterval', 'clearInterval', 'Date'] })
  t.teardown(() => clock.uninstall())
  return clock
}

t.test('one hub-wide heartbeat: a comment (not an event) to idle clients of both kinds, none to a session with events, no client silent longer than heartbeatInterval', async (t) => {
  const clock = fakeClock(t)
  const app = await buildApp({ heartbeatInterval: 1000, cleanupInterval: 0 })
  const url = await listen(app, t)
  const a = await connect(`${url}/conversations/a/stream`)
  const b = await connect(`${url}/debates/b/stream`)
  t.equal(clock.countTimers(), 1, 'one timer for every client')
  const bytesSent = (): number => app.sse.getStats().bytesSent
  // A tick's heartbeat rounds run in microtasks right after it: once the next turn comes they are written.
  const afterTick = async (ms: number): Promise<void> => { clock.tick(ms); await new Promise((resolve) => setImmediate(resolve)) }
  /** After a write to both sessions: nothing at the next tick, a heartbeat to each at the one after (one interval on). */
  const heartbeatsOneIntervalOn = async (comments: { a: number, b: number }, after: string): Promise<void> => {
    const before = bytesSent()
    await afterTick(500)
    t.equal(bytesSent(), before, `none half an interval after ${after}`)
    await afterTick(500)
    await a.until((c) => c.comments.length === comments.a, `a, one interval after ${after}`)
    await b.until((c) => c.comments.length === comments.b, `b, one interval after ${after}`)
  }

  // The timer runs every half interval and writes to the sessions with nothing written since its last run.
  await afterTick(500)
  await a.until((c) => c.comments.length === 1, 'heartbeat a')
  await b.until((c) => c.comments.length === 1, 'heartbeat b')
  await heartbeatsOneIntervalOn({ a: 2, b: 2 }, 'the last heartbeat')

  // An event every half interval: the busy session gets no heartbeat, the idle one keeps getting them.
  for (let i = 0; i < 6; i++) {
    await app.sse.broadcastToConversation('a', 'conversation_token', token(`t${i}`))
    await afterTick(500)
  }
  await b.until((c) => c.comments.length === 5, 'b, every interval')
  // Written after any heartbeat the loop could have queued, so such a heartbeat would arrive before them.
  await app.sse.broadcastToConversation('a', 'conversation_token', token('last'))
  await app.sse.broadcastToDebate('b', 'debate_token', { debateId: 'b', participantId: 'p', personaSlug: 'x', turnCount: 1, token: 'w' })
  await a.receive(7)
  await b.receive(1)
  t.equal(a.comments.length, 2, 'no heartbeat while events flow')
  t.equal(b.comments.length, 5, 'b: one per interval, not one per tick')

  // When the events stop, the heartbeat resumes within one interval of the last write.
  await heartbeatsOneIntervalOn({ a: 3, b: 6 }, 'the last event')
  t.equal(app.sse.getStats().eventsSent, 8, 'heartbeats are not events')
  await app.close()
  t.equal(clock.countTimers(), 0, 'cleared in onClose')
})

t.test('sendConversationHeartbeat / sendDebateHeartbeat reach one session only', async (t) => {
  const app = await buildApp({ heartbeatInterval: 0 })
  const url = await listen(app, t)
  const a = await connect(`${url}/conversations/a/stream`)
  const other = await connect(`${url}/conversations/b/stream`)
  const d = await connect(`${url}/debates/a/stream`)
  app.sse.sendConversationHeartbeat('a')
  app.sse.sendDebateHeartbeat('a')
  app.sse.sendConversationHeartbeat('nobody')
  await a.until((c) => c.comments.length === 1, 'a')
  await d.until((c) => c.comments.length === 1, 'd')
  await app.sse.broadcastToConversation('b', 'conversation_token', token('x'))
  await other.receive(1)
  t.same(other.comments, [])
})

t.test('cleanup from onReady: ends clients past maxConnectionAge cleanly and forgets idle sessions', async (t) => {
  const clock = fakeClock(t)
  const app = await buildApp({ heartbeatInterval: 0, cleanupInterval: 60_000, maxConnectionAge: 3_600_000, idleSessionTtl: 2_000_000 })
  const url = await listen(app, t)
  t.equal(clock.countTimers(), 1, 'the cleanup timer started in onReady')
  await app.sse.broadcastToDebate('quiet', 'debate_paused', { debateId: 'quiet', turnCount: 0 })
  const old = await connect(`${url}/conversations/s/stream`)
  clock.tick(1_800_000)
  const young = await connect(`${url}/conversations/s/stream`)
  t.equal(app.sse.getStats().debates.sessions, 1, 'still within its idle ttl')
  const spare = spareBlocks()
  clock.tick(1_800_000 + 60_000)
  await old.end()
  t.equal(old.res?.complete, true, 'ended cleanly, so EventSource reconnects and resumes')
  t.equal(app.sse.getConversationClientCount('s'), 1)
  t.notOk(young.ended)
  t.match(app.sse.getStats(), { clientsExpired: 1, debates: { sessions: 0 } })
  t.equal(spareBlocks(), spare + 1, "the forgotten session's history block is kept for reuse")
})

t.test('cleanupStaleConnections removes clients whose socket is gone and takes a max age', async (t) => {
  const app = await buildApp({ heartbeatInterval: 0, cleanupInterval: 0 })
  const sockets: Socket[] = []
  app.addHook('onRequest', async (request) => { sockets.push(request.raw.socket) })
  const url = await listen(app, t)
  await connect(`${url}/conversations/s/stream`)
  const keep = await connect(`${url}/debates/s/stream`)
  // A socket gone without its response's close event yet having reached the hub.
  const gone = sockets[0]!
  const emit = gone.emit.bind(gone)
  gone.emit = ((event: string, ...args: unknown[]) => event === 'close' ? false : emit(event, ...args)) as typeof gone.emit
  gone.destroy()
  await eventually(() => gone.destroyed, 'destroyed')
  t.equal(app.sse.cleanupStaleConnections(), 1)
  t.equal(app.sse.getConversationClientCount('s'), 0)
  t.equal(app.sse.getDebateClientCount('s'), 1)
  t.equal(app.sse.cleanupStaleConnections(0), 1, 'every client has been connected for 0 ms or longer')
  await keep.end()
})

t.test('the heartbeat and cleanup timers can be switched off', async (t) => {
  const clock = fakeClock(t)
  const app = await buildApp({ heartbeatInterval: 0, cleanupInterval: 0 })
  await app.ready()
  t.equal(clock.countTimers(), 0)
  await app.close()
})

t.test('a slow client is dropped by the heartbeat too', async (t) => {
  const app = await buildApp({ heartbeatInterval: 0, maxBufferedBytes: 1024, historyBytes: 0 })
  let raw: import('node:http').ServerResponse | undefined
  app.addHook('onRequest', async (request, reply) => { raw = reply.raw as import('node:http').ServerResponse })
  const url = await listen(app, t)
  const c = await connect(`${url}/conversations/s/stream`)
  c.res!.pause()
  // Fill what the kernel and the response buffer will take, without the client reading.
  for (let i = 0; i < 100_000 && app.sse.getConversationClientCount('s') === 1; i++) {
    if (raw!.writableLength <= 1024) raw!.write(Buffer.alloc(64 * 1024, 0x3a))
    else app.sse.sendConversationHeartbeat('s')
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(app.sse.getConversationClientCount('s'), 0)
  t.equal(app.sse.getStats().clientsDroppedSlow, 1)
})
