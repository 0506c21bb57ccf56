/* One client's write (src/client-writer.ts): its three outcomes, on real sockets. */
import t, { type Test } from 'tap'
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo, Socket } from 'node:net'
import { Batch, Outgoing } from '../src/batch.js'
import { Client, FAILED, TOO_SLOW, WRITTEN } from '../src/client-writer.js'
import { Counters } from '../src/counters.js'
import type { Session } from '../src/session.js'

const session = { kind: 'conversation', id: 's' } as unknown as Session
const silent = { warn () {}, debug () {} } as unknown as Client['logger']
const outgoing = (seq: number, bytes: number): Outgoing => new Outgoing(seq, Buffer.alloc(bytes, 97))

/** A real response on a real connection whose peer reads only when `reading` is true. */
async function response (t: Test, reading: boolean): Promise<{ res: http.ServerResponse, peer: Socket }> {
  const server = http.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const got = once(server, 'request') as Promise<[http.IncomingMessage, http.ServerResponse]>
  const req = http.get(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`)
  req.on('error', () => {})
  const [, res] = await got
  res.writeHead(200, { 'content-type': 'text/event-stream' })
  res.write(':\n\n')
  const peer = req.socket as Socket
  if (!reading) peer.pause()
  else req.on('response', (r) => r.resume())
  return { res, peer }
}

t.test('written: the batch reaches the socket, the client is current, and it is counted', async (t) => {
  const { res } = await response(t, true)
  const counters = new Counters()
  const c = new Client('c', res, 0, undefined, session, silent, 0, undefined, 1 << 20)
  t.ok(c.socket, 'HTTP/1: written straight to the socket')
  t.equal(c.write(new Batch([outgoing(1, 10), outgoing(2, 10)]), true, 1 << 20, counters), WRITTEN)
  t.equal(c.sentSeq, 2)
  t.match(counters, { eventsSent: 2, bytesSent: 20 })
  t.equal(c.write(new Batch([outgoing(2, 10)]), true, 1 << 20, counters), WRITTEN, 'nothing it lacks: nothing written')
  t.equal(counters.eventsSent, 2)
})

t.test('too slow: past maxBufferedBytes unsent, even under the socket\'s high-water mark', async (t) => {
  const { res } = await response(t, false)
  const counters = new Counters()
  const max = 4096
  const c = new Client('c', res, 0, undefined, session, silent, 0, undefined, max)
  t.ok(c.markAboveLimit, 'the socket\'s mark (16 KiB) cannot vouch for a 4 KiB limit')
  let seq = 0
  let outcome: number = WRITTEN
  while (outcome === WRITTEN && seq < 10_000) outcome = c.write(new Batch([outgoing(++seq, 1000)]), true, max, counters)
  t.equal(outcome, TOO_SLOW)
  t.ok(res.writableLength > max && res.writableLength <= max + 1000 + 64, `held ${res.writableLength} bytes when found too slow`)
  t.equal(counters.eventsSent, seq - 1, 'the batch that went past the limit is not counted as sent')
})

t.test('failed: a write that throws is reported, not thrown', async (t) => {
  const { res } = await response(t, true)
  const warned: unknown[] = []
  const logger = { warn (o: unknown) { warned.push(o) } } as unknown as Client['logger']
  res.write = () => { throw new Error('broken wrapper') }
  const c = new Client('c', res, 0, undefined, session, logger, 0, undefined, 1 << 20)
  t.equal(c.write(new Batch([outgoing(1, 10)]), true, 1 << 20, new Counters()), FAILED)
  t.equal(c.sentSeq, 0)
  t.match(warned, [{ kind: 'conversation', sessionId: 's', clientId: 'c', err: { message: 'broken wrapper' } }])
})

t.test('covered: events a backplane replay already gave are skipped until the first it lacks', async (t) => {
  const { res } = await response(t, true)
  const counters = new Counters()
  const c = new Client('c', res, 0, undefined, session, silent, 0, (id) => id <= '2', 1 << 20)
  const batch = new Batch([new Outgoing(1, Buffer.from('a'), '1'), new Outgoing(2, Buffer.from('b'), '2'), new Outgoing(3, Buffer.from('c'), '3')])
  t.same(c.unsent(batch, true)?.outgoing.map((o) => o.id), ['3'])
  t.equal(c.covered, undefined, 'cleared at the first event it lacks')
})

t.test('the direct path waits until the response holds no byte of its own (Node 24 keeps its first chunks until the next tick)', async (t) => {
  const { res } = await response(t, true)
  const socket = res.socket as Socket
  let held = 5
  Object.defineProperty(res, 'writableLength', { configurable: true, get: () => socket.writableLength + held })
  const written: unknown[] = []
  const socketWrite = socket.write.bind(socket) as (...args: unknown[]) => boolean
  socket.write = ((...args: unknown[]) => { written.push(args[0]); return socketWrite(...args) }) as typeof socket.write
  const c = new Client('c', res, 0, undefined, session, silent, 0, undefined, 1 << 20)
  const first = new Batch([outgoing(1, 10)])
  t.equal(c.write(first, true, 1 << 20, new Counters()), WRITTEN)
  t.notOk(written.includes(first.chunked()), 'through res.write() while the response held bytes')
  held = 0
  const second = new Batch([outgoing(2, 10)])
  t.equal(c.write(second, true, 1 << 20, new Counters()), WRITTEN)
  t.ok(written.includes(second.chunked()), 'straight to the socket, its chunk framed once, once nothing is held')
})
