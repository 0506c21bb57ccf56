/*
 * Guarantee — slow and half-open peers: a peer that stops reading is dropped once
 * its unsent bytes pass `maxBufferedBytes` (stats.clientsDroppedSlow), the memory held
 * for it (`res.writableLength`) never exceeds that limit plus one event, and every
 * other client keeps receiving every event while it is stuck. Counts and bounds only:
 * nothing here depends on timing.
 */
import t from 'tap'
import net from 'node:net'
import type http from 'node:http'
import { buildApp, connect, listen, token, type SseClient } from './helper.js'

const MAX_BUFFERED = 64 * 1024
const EVENT_TEXT = 'x'.repeat(8000)
const SLOW = 3
const FAST = 5
/** Enough to fill loopback socket buffers (a few MB) many times over; the loop stops at the drop. */
const MAX_EVENTS = 5000

/** A raw TCP peer that opens a stream, reads until connected, then stops reading for good. */
async function stuckPeer (port: number, path: string): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1')
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`)
  let seen = ''
  await new Promise<void>((resolve, reject) => {
    socket.on('error', reject)
    socket.on('data', (chunk: Buffer) => {
      seen += chunk.toString('latin1')
      if (seen.includes('event: connection_established')) {
        socket.pause()
        socket.removeAllListeners('data')
        resolve()
      }
    })
  })
  socket.on('error', () => {})
  return socket
}

t.test('peers that stop reading are dropped at maxBufferedBytes; the others get every event', async (t) => {
  const app = await buildApp({ maxBufferedBytes: MAX_BUFFERED, historyBytes: MAX_BUFFERED, heartbeatInterval: 0 })
  const url = await listen(app, t)
  const port = Number(new URL(url).port)
  const responses = new Map<string, http.ServerResponse>()
  app.server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => { responses.set(req.url as string, res) })

  const fast: SseClient[] = []
  for (let i = 0; i < FAST; i++) fast.push(await connect(`${url}/conversations/room/stream?peer=fast${i}`))
  const stuck: net.Socket[] = []
  for (let i = 0; i < SLOW; i++) stuck.push(await stuckPeer(port, `/conversations/room/stream?peer=slow${i}`))
  t.teardown(() => { for (const s of stuck) s.destroy() })
  t.equal(app.sse.getConversationClientCount('room'), FAST + SLOW)
  const slowRes = Array.from({ length: SLOW }, (_, i) => responses.get(`/conversations/room/stream?peer=slow${i}`) as http.ServerResponse)

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

t.test('a lone half-open peer (connected, never reads again) is dropped and its socket closed by the server', async (t) => {
  const app = await buildApp({ maxBufferedBytes: MAX_BUFFERED, historyBytes: MAX_BUFFERED, heartbeatInterval: 0 })
  const url = await listen(app, t)
  const port = Number(new URL(url).port)
  const socket = await stuckPeer(port, '/conversations/half/stream')
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
  const url = await listen(app, t)
  const port = Number(new URL(url).port)
  let res: http.ServerResponse | undefined
  app.server.on('request', (_req: http.IncomingMessage, r: http.ServerResponse) => { res = r })
  const socket = await stuckPeer(port, '/conversations/low/stream')
  t.teardown(() => { socket.destroy() })
  const served = res as http.ServerResponse
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
