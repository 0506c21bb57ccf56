/*
 * The fan-out write path (src/batch.ts, src/client-writer.ts and the rounds in src/fanout.ts):
 * coalesced writes, the direct HTTP/1 socket path and its fallbacks, time-sliced
 * rounds that keep every client's events complete, once each, and in order.
 */
import t from 'tap'
import Fastify from 'fastify'
import { IncomingMessage, ServerResponse } from 'node:http'
import http2 from 'node:http2'
import net, { Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import sseHub from '../src/index.js'
import { Batch, HEARTBEAT, Outgoing } from '../src/batch.js'
import { directSocket, writeBatch } from '../src/client-writer.js'
import { buildApp, connect, eventually, listen, rawResponses, token, type SseClient } from './helper.js'

/** Every write handed to each captured response's socket, in order. */
function spyOnSockets (raws: ServerResponse[]): unknown[][] {
  return raws.map((res) => {
    const calls: unknown[] = []
    const socket = res.socket as Socket
    const write = socket.write.bind(socket) as (...args: unknown[]) => boolean
    socket.write = ((...args: unknown[]) => { calls.push(args[0]); return write(...args) }) as typeof socket.write
    return calls
  })
}

/** Makes every round pause after each client. */
const SLICE_EVERY_CLIENT = { fanOutSlice: { sliceMs: 0, checkEvery: 1 } }

const tokens = (c: SseClient): unknown[] => c.received.map((e) => e.json.token)

t.test('events broadcast in one turn reach each client in one write, the same bytes for every client', async (t) => {
  const app = await buildApp({ heartbeatInterval: 0 })
  const raws = rawResponses(app)
  const url = await listen(app, t)
  const a = await connect(`${url}/conversations/s/stream`)
  const b = await connect(`${url}/conversations/s/stream`)
  const writes = spyOnSockets(raws)
  const ids = await Promise.all([1, 2, 3].map((n) => app.sse.broadcastToConversation('s', 'conversation_token', token(`t${n}`, n))))
  t.equal(writes[0]!.length, 1, 'one write for three events')
  t.ok(Buffer.isBuffer(writes[0]![0]))
  t.equal(writes[0]![0], writes[1]![0], 'one Buffer, shared by both clients')
  t.match((writes[0]![0] as Buffer).toString(), /^[0-9a-f]+\r\nid: .*\r\n$/s, 'framed as one HTTP/1.1 chunk')
  for (const c of [a, b]) {
    const got = await c.receive(3)
    t.same(got.map((e) => e.json.token), ['t1', 't2', 't3'])
    t.same(got.map((e) => e.id), ids)
  }
  t.match(app.sse.getStats(), { eventsSent: 6 })
})

t.test('the broadcast promise settles once every client has been written to', async (t) => {
  const app = await buildApp({ ...SLICE_EVERY_CLIENT, heartbeatInterval: 0 })
  const url = await listen(app, t)
  const clients = [await connect(`${url}/conversations/s/stream`), await connect(`${url}/conversations/s/stream`), await connect(`${url}/conversations/s/stream`)]
  await app.sse.broadcastToConversation('s', 'conversation_token', token('x'))
  t.equal(app.sse.getStats().eventsSent, 3, 'written to all three, though the round paused after each')
  for (const c of clients) await c.receive(1)
})

t.test('a wrapped res.write sees every byte: no direct socket write then', async (t) => {
  const app = await buildApp({ heartbeatInterval: 0 })
  let raw: ServerResponse | undefined
  app.addHook('onRequest', async (request, reply) => { raw = reply.raw as ServerResponse })
  const url = await listen(app, t)
  const c = await connect(`${url}/conversations/s/stream`)
  const seen: Buffer[] = []
  const write = raw!.write.bind(raw!) as (chunk: Buffer) => boolean
  raw!.write = ((chunk: Buffer) => { seen.push(chunk); return write(chunk) }) as ServerResponse['write']
  await app.sse.broadcastToConversation('s', 'conversation_token', token('wrapped'))
  t.equal(seen.length, 1)
  t.match(seen[0]!.toString(), /^id: .*\nevent: conversation_token\ndata: .*"token":"wrapped".*\n\n$/s, 'plain SSE bytes, Node adds the chunk framing')
  const [e] = await c.receive(1)
  t.equal(e?.json.token, 'wrapped')
})

t.test('an HTTP/1.0 client gets the stream without chunked framing', async (t) => {
  const app = await buildApp({ heartbeatInterval: 0 })
  const url = await listen(app, t)
  const { port } = new URL(url)
  const socket = net.connect(Number(port), '127.0.0.1')
  t.teardown(() => socket.destroy())
  let text = ''
  const waiters: Array<() => void> = []
  socket.setEncoding('latin1')
  socket.on('data', (chunk: string) => { text += chunk; for (const w of waiters.splice(0)) w() })
  const until = async (re: RegExp): Promise<void> => {
    for (let i = 0; i < 1000 && !re.test(text); i++) await new Promise<void>((resolve) => waiters.push(resolve))
  }
  socket.write('GET /conversations/s/stream HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n')
  await until(/event: connection_established\n.*\n\n/)
  await app.sse.broadcastToConversation('s', 'conversation_token', token('old'))
  await until(/"token":"old"/)
  const [head, body] = text.split('\r\n\r\n') as [string, string]
  t.match(head, /^HTTP\/1\.1 200/)
  t.notMatch(head, /transfer-encoding/i)
  const events: string[] = []
  const parser = createParser({ onEvent: (e) => { events.push(e.event ?? 'message') } })
  parser.feed(body)
  t.same(events, ['connection_established', 'conversation_token'], 'the body is plain SSE')
})

t.test('HTTP/2 compatibility responses go through res.write()', async (t) => {
  const app = Fastify({ http2: true, logger: false })
  await app.register(sseHub, { heartbeatInterval: 0 })
  // stream() is typed for the default (HTTP/1) server; the route itself works on HTTP/2.
  app.get('/conversations/:id/stream', app.sse.stream('conversation') as never)
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const session = http2.connect(`http://127.0.0.1:${port}`)
  t.teardown(() => session.close())
  const stream = session.request({ ':path': '/conversations/s/stream', accept: 'text/event-stream' })
  const events: EventSourceMessage[] = []
  const waiters: Array<() => void> = []
  const parser = createParser({ onEvent: (e) => { events.push(e); for (const w of waiters.splice(0)) w() } })
  stream.setEncoding('utf8')
  stream.on('data', (chunk: string) => { parser.feed(chunk) })
  const until = async (n: number): Promise<void> => {
    for (let i = 0; i < 1000 && events.length < n; i++) await new Promise<void>((resolve) => waiters.push(resolve))
  }
  await until(1)
  await Promise.all([app.sse.broadcastToConversation('s', 'conversation_token', token('h2a')), app.sse.broadcastToConversation('s', 'conversation_token', token('h2b'))])
  await until(3)
  t.same(events.map((e) => e.event), ['connection_established', 'conversation_token', 'conversation_token'])
  t.same(events.slice(1).map((e) => JSON.parse(e.data).token), ['h2a', 'h2b'])
  stream.close()
})

t.test('directSocket: only an HTTP/1 response that owns a live net.Socket, not for HEAD', async (t) => {
  const req = (method: string): IncomingMessage => Object.assign(new IncomingMessage(new Socket()), { method })
  t.equal(directSocket({}), undefined, 'not an http.ServerResponse (HTTP/2, anything else)')
  t.equal(directSocket(new ServerResponse(req('GET'))), undefined, 'no socket yet (a pipelined response waiting its turn)')
  const get = new ServerResponse(req('GET'))
  const socket = new Socket()
  get.assignSocket(socket)
  t.equal(directSocket(get), socket)
  const head = new ServerResponse(req('HEAD'))
  head.assignSocket(new Socket())
  t.equal(directSocket(head), undefined, 'HEAD: Node drops the body, so must we')
  socket.destroy()
  t.equal(directSocket(get), undefined, 'a destroyed socket')
})

t.test('directSocket: a response that does not work as the direct path assumes is written through res.write()', async (t) => {
  const response = (): ServerResponse => {
    const res = new ServerResponse(Object.assign(new IncomingMessage(new Socket()), { method: 'GET' }))
    res.assignSocket(new Socket())
    return res
  }
  const plain = response()
  t.equal(directSocket(plain), plain.socket, 'as Node 20 to 26 make it')
  const noFraming = response()
  Object.defineProperty(noFraming, 'chunkedEncoding', { value: undefined })
  t.equal(directSocket(noFraming), undefined, 'a Node without a boolean chunkedEncoding: the framing is unknown')
  for (const res of [plain, noFraming]) res.socket?.destroy()
})

t.test('writeBatch: a socket that no longer takes writes leaves the bytes to res.write(), counted in writableLength', async (t) => {
  const req = Object.assign(new IncomingMessage(new Socket()), { method: 'GET' })
  const res = new ServerResponse(req)
  const socket = new Socket()
  res.assignSocket(socket)
  t.equal(directSocket(res), socket)
  socket.end() // as Node does when the peer half-closes
  let direct = 0
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean
  socket.write = ((...args: unknown[]) => { direct++; return write(...args) }) as typeof socket.write
  const batch = new Batch([new Outgoing(1, Buffer.from('data: x\n\n'))])
  writeBatch(res, socket, batch)
  t.equal(direct, 0, 'nothing written to the ended socket')
  t.ok(res.writableLength >= batch.bytes, 'held by the response, where the slow-client check sees it')
  socket.destroy()
})

t.test('Batch: counts, encodings built once, and the part a client still needs', async (t) => {
  const f = (s: string): Buffer => Buffer.from(s)
  const one = new Batch([new Outgoing(7, f('a\n\n'))])
  t.equal(one.plain(), one.outgoing[0]!.frame, 'one frame: no copy')
  t.equal(one.chunked().toString(), '3\r\na\n\n\r\n')
  t.equal(one.chunked(), one.chunked(), 'built once')
  const resync = new Outgoing(0, f('event: resync\n\n'))
  const b = new Batch([new Outgoing(3, f('x\n\n')), HEARTBEAT, new Outgoing(5, f('yy\n\n'))])
  t.match(b, { firstSeq: 3, lastSeq: 5, events: 2, bytes: 10 })
  t.equal(b.plain().toString(), 'x\n\n:\n\nyy\n\n')
  t.equal(b.plain(), b.plain())
  t.equal(b.chunked().toString(), 'a\r\nx\n\n:\n\nyy\n\n\r\n')
  t.equal(b.unsentTo(2, true), b, 'all of it: the batch itself')
  t.same(b.unsentTo(3, true)?.outgoing.map((e) => e.seq), [0, 5])
  t.same(b.unsentTo(3, false)?.outgoing.map((e) => e.seq), [5], 'a heartbeat is skipped when asked')
  t.equal(b.unsentTo(5, false), undefined)
  const withResync = new Batch([new Outgoing(3, f('x\n\n')), resync, HEARTBEAT])
  t.same(withResync.unsentTo(3, false)?.outgoing, [resync], 'a resync is never skipped: the events after it would hide a gap')
  t.match(new Batch([HEARTBEAT]), { firstSeq: Infinity, lastSeq: 0, events: 0 })
})

t.test('a sliced round: later broadcasts queue behind it, and every client gets every event once, in order', async (t) => {
  // A small maxBufferedBytes: a queue past it makes the paused round finish at once.
  const app = await buildApp({ ...SLICE_EVERY_CLIENT, heartbeatInterval: 0, maxBufferedBytes: 4096, historyBytes: 4096 })
  const url = await listen(app, t)
  const [a, b, c] = [await connect(`${url}/conversations/s/stream`), await connect(`${url}/conversations/s/stream`), await connect(`${url}/conversations/s/stream`)] as [SseClient, SseClient, SseClient]
  const first = app.sse.broadcastToConversation('s', 'conversation_token', token('e1'))
  const during = new Promise<void>((resolve) => {
    // Runs right after the round's first slice (microtasks run in order): it paused after one client.
    queueMicrotask(() => {
      t.equal(app.sse.getStats().eventsSent, 1, 'the round paused after one client')
      for (let i = 2; i <= 6; i++) void app.sse.broadcastToConversation('s', 'conversation_token', token(`e${i}`.padEnd(1000, '.'), i))
      app.sse.sendConversationHeartbeat('s')
      resolve()
    })
  })
  await during
  await first
  await app.sse.broadcastToConversation('s', 'conversation_token', token('e7'))
  const want = ['e1', 'e2', 'e3', 'e4', 'e5', 'e6', 'e7']
  for (const client of [a, b, c]) {
    await client.receive(7)
    t.same(tokens(client).map((x) => String(x).replace(/\.+$/, '')), want)
    t.equal(client.comments.length, 1, 'the heartbeat too')
  }
  t.equal(app.sse.getStats().clientsDroppedSlow, 0)
})

t.test('a client that joins (and replays) while rounds are in flight gets each event once', async (t) => {
  const app = await buildApp({ ...SLICE_EVERY_CLIENT, heartbeatInterval: 0 })
  const url = await listen(app, t)
  const a = await connect(`${url}/conversations/s/stream`)
  const b = await connect(`${url}/conversations/s/stream`)
  const ids: string[] = [await app.sse.broadcastToConversation('s', 'conversation_token', token('e0'))]
  // Keep rounds going, one broadcast per turn, until the new client is in.
  const late: SseClient[] = []
  const joining = connect(`${url}/conversations/s/stream`, { 'last-event-id': ids[0]! }).then((c) => { late.push(c) })
  for (let i = 1; i <= 2000 && late.length === 0; i++) {
    ids.push(await app.sse.broadcastToConversation('s', 'conversation_token', token(`e${i}`, i)))
  }
  await joining
  for (let i = 0; i < 3; i++) ids.push(await app.sse.broadcastToConversation('s', 'conversation_token', token('after', i)))
  const d = late[0]!
  await d.receive(ids.length - 1)
  await a.receive(ids.length)
  await b.receive(ids.length)
  t.same(a.received.map((e) => e.id), ids)
  t.same(b.received.map((e) => e.id), ids)
  t.same(d.received.map((e) => e.id), ids.slice(1), 'replay, then live: nothing twice, nothing missing')
})

t.test('a client ended by the hub first gets what was broadcast to it', async (t) => {
  const app = await buildApp({ ...SLICE_EVERY_CLIENT, heartbeatInterval: 0 })
  const url = await listen(app, t)
  const [a, b, c] = [await connect(`${url}/conversations/s/stream`), await connect(`${url}/conversations/s/stream`), await connect(`${url}/conversations/s/stream`)] as [SseClient, SseClient, SseClient]

  // Queued, not yet in a round.
  const p1 = app.sse.broadcastToConversation('s', 'conversation_token', token('q1'))
  t.ok(app.sse.removeConversationClient('s', c.clientId))
  await c.end()
  t.same(tokens(c), ['q1'], 'written before the end')

  // A heartbeat only: nothing to catch up.
  await p1
  app.sse.sendConversationHeartbeat('s')
  const p2 = app.sse.broadcastToConversation('s', 'conversation_token', token('r1'))
  await new Promise<void>((resolve) => {
    queueMicrotask(() => {
      // The round over [heartbeat, r1] paused after `a`; `b` is still owed r1, and gets it before its end.
      app.sse.broadcastToConversation('s', 'conversation_token', token('r2')).catch(() => {})
      t.ok(app.sse.removeConversationClient('s', b.clientId))
      resolve()
    })
  })
  await b.end()
  t.same(tokens(b), ['q1', 'r1', 'r2'])
  await p2
  await a.receive(3)
  t.same(tokens(a), ['q1', 'r1', 'r2'])

  // Only a heartbeat queued: nothing owed.
  app.sse.sendConversationHeartbeat('s')
  t.ok(app.sse.removeConversationClient('s', a.clientId))
  await a.end()
  t.same(tokens(a), ['q1', 'r1', 'r2'])
})

t.test('shutdown writes what was broadcast before it', async (t) => {
  const app = await buildApp({ heartbeatInterval: 0 })
  const url = await listen(app, t)
  const a = await connect(`${url}/conversations/s/stream`)
  void app.sse.broadcastToConversation('s', 'conversation_token', token('last'))
  app.sse.endAll()
  await a.end()
  t.same(tokens(a), ['last'])
  t.equal(a.res?.complete, true, 'ended cleanly')
  await eventually(() => app.sse.getStats().clients === 0, 'clients gone')
})

t.test('a write that throws costs only that client its stream', async (t) => {
  const app = await buildApp({ heartbeatInterval: 0 })
  const raws = rawResponses(app)
  const url = await listen(app, t)
  const broken = await connect(`${url}/conversations/s/stream`)
  const fine = await connect(`${url}/conversations/s/stream`)
  const later = await connect(`${url}/conversations/s/stream`)
  const boom = (() => { throw new Error('broken wrapper') }) as unknown as ServerResponse['write']
  raws[0]!.write = boom
  await app.sse.broadcastToConversation('s', 'conversation_token', token('a'))
  await broken.end()
  t.equal(app.sse.getConversationClientCount('s'), 2, 'the broken one is gone')
  t.same(tokens(broken), [])
  // Ended by the hub with an event still owed, and its write throws: it is dropped, the end goes on.
  await later.receive(1)
  raws[2]!.write = boom
  void app.sse.broadcastToConversation('s', 'conversation_token', token('b'))
  t.ok(app.sse.removeConversationClient('s', later.clientId))
  await later.end()
  t.same(tokens(later), ['a'])
  await fine.receive(2)
  t.same(tokens(fine), ['a', 'b'])
  t.equal(app.sse.getConversationClientCount('s'), 1)
})
