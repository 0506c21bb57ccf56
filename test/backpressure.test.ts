import t from 'tap'
import net from 'node:net'
import { buildApp, connect, eventually, listen, token } from './helper.js'

/** A raw TCP peer that sends the request head, reads the response head, then stops reading. */
async function stalledPeer (url: string, path: string): Promise<net.Socket> {
  const { port } = new URL(url)
  const socket = net.connect(Number(port), '127.0.0.1')
  socket.setNoDelay(true)
  await new Promise<void>((resolve) => socket.once('connect', resolve))
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`)
  await new Promise<void>((resolve) => socket.once('data', () => resolve()))
  socket.pause()
  return socket
}

t.test('a client that stops reading is dropped past maxBufferedBytes; the others get everything', async (t) => {
  const max = 256 * 1024
  const app = await buildApp({ maxBufferedBytes: max, historyBytes: 16 * 1024 })
  const url = await listen(app, t)
  const readers = [await connect(`${url}/conversations/s/stream`), await connect(`${url}/conversations/s/stream`)]
  const stalled = await stalledPeer(url, '/conversations/s/stream')
  t.teardown(() => stalled.destroy())
  await eventually(() => app.sse.getConversationClientCount('s') === 3, 'three clients')

  let sent = 0
  const big = 'x'.repeat(4000)
  // Broadcast until the stalled peer is gone (bounded: far more than enough to fill any socket buffer).
  for (let i = 0; i < 20_000 && app.sse.getStats().clientsDroppedSlow === 0; i++) {
    await app.sse.broadcastToConversation('s', 'conversation_token', token(big, i))
    sent++
    await new Promise((resolve) => setImmediate(resolve)) // let the good readers read
  }
  t.equal(app.sse.getStats().clientsDroppedSlow, 1, 'the stalled peer was dropped')
  t.equal(app.sse.getConversationClientCount('s'), 2, 'the readers stay')
  for (const client of readers) {
    const got = await client.receive(sent)
    t.equal(got.length, sent, 'every event reached the reader')
  }
  t.ok(sent > 1, `${sent} broadcasts`)
})

t.test('the slow check bounds what the hub buffers for one client', async (t) => {
  const max = 32 * 1024
  const app = await buildApp({ maxBufferedBytes: max, historyBytes: 8 * 1024 })
  let raw: import('node:http').ServerResponse | undefined
  app.addHook('onRequest', async (request, reply) => { raw = reply.raw as import('node:http').ServerResponse })
  const url = await listen(app, t)
  const stalled = await stalledPeer(url, '/conversations/s/stream')
  t.teardown(() => stalled.destroy())
  let peak = 0
  for (let i = 0; i < 20_000 && app.sse.getConversationClientCount('s') === 1; i++) {
    await app.sse.broadcastToConversation('s', 'conversation_token', token('y'.repeat(1000), i))
    peak = Math.max(peak, raw!.writableLength)
  }
  t.equal(app.sse.getConversationClientCount('s'), 0)
  t.ok(peak <= max + 1200, `peak ${peak} buffered bytes stays within maxBufferedBytes + one event`)
  t.ok(raw!.destroyed, 'its connection is destroyed, freeing the backlog')
})
