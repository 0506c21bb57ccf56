/*
 * Slow and half-open clients: a peer that stops reading is dropped once its unsent
 * bytes pass `maxBufferedBytes` (stats.clientsDroppedSlow), the memory held for it
 * (`res.writableLength`) never exceeds that limit plus one event, and every other
 * client keeps receiving every event while it is stuck. Counts and bounds only:
 * nothing here depends on timing.
 */
import t from 'tap'
import type http from 'node:http'
import type net from 'node:net'
import { buildApp, connect, listen, rawResponses, stalledPeer, token, type SseClient } from './helper.js'

const MAX_BUFFERED = 64 * 1024
const EVENT_TEXT = 'x'.repeat(8000)
const SLOW = 3
const FAST = 5
/** Enough to fill loopback socket buffers (a few MB) many times over; the loop stops at the drop. */
const MAX_EVENTS = 5000

t.test('peers that stop reading are dropped at maxBufferedBytes; the others get every event', async (t) => {
  const app = await buildApp({ maxBufferedBytes: MAX_BUFFERED, historyBytes: MAX_BUFFERED, heartbeatInterval: 0 })
  const responses = rawResponses(app)
  const url = await listen(app, t)

  const fast: SseClient[] = []
  for (let i = 0; i < FAST; i++) fast.push(await connect(`${url}/conversations/room/stream?peer=fast${i}`))
  const stuck: net.Socket[] = []
  for (let i = 0; i < SLOW; i++) stuck.push(await stalledPeer(url, `/conversations/room/stream?peer=slow${i}`))
  t.teardown(() => { for (const s of stuck) s.destroy() })
  t.equal(app.sse.getConversationClientCount('room'), FAST + SLOW)
  // Opened one after the other: the fast clients' responses first, then the stuck peers'.
  const slowRes = responses.slice(FAST)
  t.equal(slowRes.length, SLOW)

  let sent = 0
  let maxHeld = 0
  let frameBytes = 0
  let fastCaughtUpWhileStuckHalfFull = 0
  while (app.sse.getStats().clientsDroppedSlow < SLOW && sent < MAX_EVENTS) {
    const before = app.sse.getStats().bytesSent
    await app.sse.broadcastToConversation('room', 'conversation_token', token(EVENT_TEXT, sent))
    sent++
    frameBytes = Math.max(frameBytes, Math.round((app.sse.getStats().bytesSent - before) / Math.max(1, app.sse.getConversationClientCount('room'))))
    for (const res of slowRes) if (!res.destroyed) maxHeld = Math.max(maxHeld, res.writableLength)
    // Every fast client has every event so far before the next one is sent: the stuck peers do not hold them back.
    await Promise.all(fast.map((c) => c.receive(sent)))
    if (slowRes.some((res) => !res.destroyed && res.writableLength > MAX_BUFFERED / 2)) fastCaughtUpWhileStuckHalfFull++
  }

  const stats = app.sse.getStats()
  t.equal(stats.clientsDroppedSlow, SLOW, `all ${SLOW} stuck peers dropped, after ${sent} events of ${frameBytes} bytes`)
  t.ok(sent > 1, `${sent} broadcasts before the last drop`)
  t.ok(slowRes.every((res) => res.destroyed), 'their responses are destroyed, freeing the backlog')
  t.equal(app.sse.getConversationClientCount('room'), FAST, 'the fast clients are all still connected')
  t.ok(maxHeld <= MAX_BUFFERED, `bytes held for a stuck peer after a broadcast: ${maxHeld} <= maxBufferedBytes ${MAX_BUFFERED}`)
  t.ok(fastCaughtUpWhileStuckHalfFull > 0, `fast clients were current ${fastCaughtUpWhileStuckHalfFull} times while a stuck peer held over half the limit`)

  // And after the drop: more events, still to every fast client, in order, none missing.
  for (let i = 0; i < 50; i++) await app.sse.broadcastToConversation('room', 'conversation_token', token('after', sent + i))
  sent += 50
  for (const c of fast) {
    const got = await c.receive(sent)
    t.equal(got.length, sent, 'a fast client got every event')
    const seqs = got.map((e) => Number(e.id?.split('-')[1]))
    t.ok(seqs.every((s, i) => i === 0 || s > (seqs[i - 1] as number)), 'in id order')
    t.equal(c.parseErrors.length, 0)
  }
  t.equal(app.sse.getStats().clientsDroppedSlow, SLOW, 'no fast client was dropped')
  t.comment(JSON.stringify({ eventsUntilAllDropped: sent - 50, frameBytes, maxHeldBytes: maxHeld, maxBufferedBytes: MAX_BUFFERED }))
})

t.test('the slow check bounds what the hub buffers for one client, the write that drops it included', async (t) => {
  const max = 32 * 1024
  const app = await buildApp({ maxBufferedBytes: max, historyBytes: 8 * 1024 })
  const responses = rawResponses(app)
  const url = await listen(app, t)
  const stalled = await stalledPeer(url, '/conversations/s/stream')
  t.teardown(() => stalled.destroy())
  const raw = responses[0] as http.ServerResponse
  let peak = 0
  for (let i = 0; i < 20_000 && app.sse.getConversationClientCount('s') === 1; i++) {
    await app.sse.broadcastToConversation('s', 'conversation_token', token('y'.repeat(1000), i))
    peak = Math.max(peak, raw.writableLength)
  }
  t.equal(app.sse.getConversationClientCount('s'), 0)
  t.ok(peak <= max + 1200, `peak ${peak} buffered bytes stays within maxBufferedBytes + one event`)
  t.ok(raw.destroyed, 'its connection is destroyed, freeing the backlog')
})

t.test('a lone half-open peer (connected, never reads again) is dropped and its socket closed by the server', async (t) => {
  const app = await buildApp({ maxBufferedBytes: MAX_BUFFERED, historyBytes: MAX_BUFFERED, heartbeatInterval: 0 })
  const url = await listen(app, t)
  const socket = await stalledPeer(url, '/conversations/half/stream')
  t.teardown(() => { socket.destroy() })
  const closed = new Promise<void>((resolve) => { socket.once('close', () => { resolve() }) })
  let sent = 0
  while (app.sse.getStats().clientsDroppedSlow < 1 && sent < MAX_EVENTS) {
    await app.sse.broadcastToConversation('half', 'conversation_token', token(EVENT_TEXT, sent++))
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(app.sse.getStats().clientsDroppedSlow, 1, `dropped after ${sent} events`)
  t.equal(app.sse.getConversationClientCount('half'), 0)
  // Reading again, the peer finds the connection reset or ended: it reconnects and replays.
  socket.resume()
  await closed
  t.pass('the stuck socket was closed by the server')
})

t.test('a limit below the socket\'s high-water mark holds too: the peer is dropped past maxBufferedBytes, not at the mark', async (t) => {
  const LIMIT = 4096
  const app = await buildApp({ maxBufferedBytes: LIMIT, historyBytes: LIMIT, heartbeatInterval: 0 })
  const responses = rawResponses(app)
  const url = await listen(app, t)
  const socket = await stalledPeer(url, '/conversations/low/stream')
  t.teardown(() => { socket.destroy() })
  const served = responses[0] as http.ServerResponse
  t.ok((served.socket as net.Socket).writableHighWaterMark > LIMIT, `the socket's high-water mark ${(served.socket as net.Socket).writableHighWaterMark} is above the limit`)
  let sent = 0
  let maxHeld = 0
  while (app.sse.getStats().clientsDroppedSlow < 1 && sent < MAX_EVENTS) {
    await app.sse.broadcastToConversation('low', 'conversation_token', token('y'.repeat(3000), sent++))
    if (!served.destroyed) maxHeld = Math.max(maxHeld, served.writableLength)
  }
  t.equal(app.sse.getStats().clientsDroppedSlow, 1, `dropped after ${sent} events`)
  t.ok(served.destroyed, 'its response is destroyed')
  t.ok(maxHeld <= LIMIT, `bytes held after a broadcast: ${maxHeld} <= maxBufferedBytes ${LIMIT}`)
})
