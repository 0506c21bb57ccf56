/*
 * Slow peers do not delay the others: healthy clients' end-to-end latency
 * (broadcast call -> event parsed) with no stalled peer, then with peers that
 * stop reading, in the same run, and how many of those the hub dropped.
 *
 *   npx tsx bench/slow-peers.ts [--healthy 100] [--stalled 50] [--events 1500] [--rate 100] [--bytes 4000]
 *
 * Everything on 127.0.0.1, in this process (server and clients), bounded: each
 * phase sends a fixed number of events at a fixed rate and gives up after 60 s.
 */
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import Fastify, { type FastifyInstance } from 'fastify'
import sseHub from '../src/index.js'
import { numberArg as arg } from './common.js'

const HEALTHY = arg('healthy', 100)
const STALLED = arg('stalled', 50)
const EVENTS = arg('events', 1500)
const RATE = arg('rate', 100)
const PAYLOAD = 'x'.repeat(arg('bytes', 4000))
const MAX_BUFFERED = 256 * 1024
const PHASE_LIMIT_MS = 60_000

interface Phase { stalled: number, p50: number, p99: number, max: number, delivered: number, expected: number, dropped: number }

/** A raw SSE reader that records the latency of every event carrying `"t":<ms>`. */
function reader (port: number, path: string, latencies: number[] | undefined): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`)
    })
    socket.setEncoding('latin1')
    let buffer = ''
    let open = false
    socket.on('data', (chunk: string) => {
      if (!open) { open = true; resolve(socket) }
      if (latencies === undefined) { socket.pause(); return } // a stalled peer: reads the head, then never again
      buffer += chunk
      let at: number
      while ((at = buffer.indexOf('"t":')) >= 0) {
        const end = buffer.indexOf(',', at)
        if (end < 0) break
        latencies.push(performance.now() - Number(buffer.slice(at + 4, end)))
        buffer = buffer.slice(end)
      }
      if (buffer.length > 1024) buffer = buffer.slice(-64)
    })
    socket.once('error', reject)
  })
}

function percentile (sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number
}

async function phase (stalled: number): Promise<Phase> {
  const app: FastifyInstance = Fastify({ logger: false })
  await app.register(sseHub, { maxBufferedBytes: MAX_BUFFERED, historyBytes: 64 * 1024, heartbeatInterval: 0, maxClientsPerSession: Infinity, maxClients: Infinity })
  app.get('/s/:id', app.sse.stream('conversation'))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as net.AddressInfo
  const latencies: number[] = []
  const sockets: net.Socket[] = []
  for (let i = 0; i < HEALTHY; i++) sockets.push(await reader(port, '/s/bench', latencies))
  for (let i = 0; i < stalled; i++) sockets.push(await reader(port, '/s/bench', undefined))

  const started = performance.now()
  for (let i = 0; i < EVENTS && performance.now() - started < PHASE_LIMIT_MS; i++) {
    const due = started + (i * 1000) / RATE
    const wait = due - performance.now()
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
    await app.sse.broadcastToConversation('bench', 'conversation_token', {
      participantId: 'p', personaSlug: 's', personaName: 'S', segment: String(i), token: PAYLOAD,
      // `t` first among the fields the reader scans: when the call was made.
      ...({ t: performance.now() } as object)
    } as never)
  }
  const expected = HEALTHY * EVENTS
  const deadline = performance.now() + 10_000
  while (latencies.length < expected && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  const stats = app.sse.getStats()
  for (const s of sockets) s.destroy()
  await app.close()
  const sorted = latencies.sort((a, b) => a - b)
  return {
    stalled,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    max: sorted[sorted.length - 1] ?? NaN,
    delivered: latencies.length,
    expected,
    dropped: stats.clientsDroppedSlow
  }
}

const results: Phase[] = []
for (const stalled of [0, STALLED, 0, STALLED]) results.push(await phase(stalled))
console.log(`slow peers: ${HEALTHY} healthy clients, ${EVENTS} events of ${PAYLOAD.length} B at ${RATE}/s, maxBufferedBytes ${MAX_BUFFERED / 1024} KiB (node ${process.version})`)
console.log('| stalled peers | healthy p50 ms | healthy p99 ms | healthy max ms | delivered / expected | stalled peers dropped |')
console.log('|---:|---:|---:|---:|---:|---:|')
for (const r of results) {
  console.log(`| ${r.stalled} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.max.toFixed(1)} | ${r.delivered} / ${r.expected} | ${r.dropped} |`)
}
const failed = results.some((r) => r.delivered !== r.expected || r.dropped !== r.stalled)
process.exitCode = failed ? 1 : 0
