/*
 * Two hub instances through Redis, and through a Redis Cluster, versus one in-memory hub:
 * end-to-end latency (broadcast call -> event parsed by a client) p50/p99, and delivered events/s.
 *
 *   npx tsx bench/redis-two-instances.ts [--clients 100] [--events 2000] [--no-cluster]
 *
 * Starts a private redis-server (no persistence) on a free 127.0.0.1 port, or uses
 * REDIS_URL when set; and a private cluster of three masters (no replicas, no persistence,
 * `redis-cli --cluster create`), or uses REDIS_CLUSTER_NODES when set. Everything (servers, Redis client, SSE clients) runs on
 * 127.0.0.1; the clients share this process with the servers, so the absolute
 * figures include their parsing, and the comparison is what matters. Bounded:
 * each phase gives up after 60 s.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import Fastify, { type FastifyInstance } from 'fastify'
import sseHub, { redisBackplane, type SseHubOptions } from '../src/index.js'
import { freePort, numberArg as arg } from './common.js'

const CLIENTS = arg('clients', 100)
const EVENTS = arg('events', 2000)
const LATENCY_EVENTS = arg('latency-events', 500)
const PHASE_LIMIT_MS = 60_000


async function startRedis (replicaOf?: string): Promise<{ url: string, stop: () => void }> {
  if (process.env.REDIS_URL !== undefined && replicaOf === undefined) return { url: process.env.REDIS_URL, stop: () => {} }
  const port = await freePort()
  const replica = replicaOf === undefined ? [] : ['--replicaof', '127.0.0.1', new URL(replicaOf).port, '--repl-diskless-load', 'on-empty-db']
  const proc: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0', ...replica], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`redis-server did not start in 10 s: ${out.slice(-400)}`)) }, 10_000)
    proc.once('error', reject)
    proc.stdout?.on('data', (c: Buffer) => {
      out += c.toString()
      // A replica is ready once its first sync from the master is done.
      if (out.includes(replicaOf === undefined ? 'Ready to accept connections' : 'MASTER <-> REPLICA sync: Finished with success')) {
        clearTimeout(timer)
        resolve()
      }
    })
  })
  return { url: `redis://127.0.0.1:${port}`, stop: () => { proc.kill('SIGKILL') } }
}

/** Three cluster masters on free ports, joined by redis-cli; `stop` kills them and removes their node files. */
async function startCluster (): Promise<{ nodes: Array<{ host: string, port: number }>, stop: () => void }> {
  const given = process.env.REDIS_CLUSTER_NODES
  if (given !== undefined) {
    return { nodes: given.split(',').map((n) => ({ host: n.slice(0, n.lastIndexOf(':')), port: Number(n.slice(n.lastIndexOf(':') + 1)) })), stop: () => {} }
  }
  const dir = mkdtempSync(join(tmpdir(), 'sse-hub-bench-cluster-'))
  const procs: ChildProcess[] = []
  const ports: number[] = []
  const stop = (): void => {
    for (const p of procs) p.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    for (let i = 0; i < 3; i++) {
      const port = await freePort()
      const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--cluster-enabled', 'yes',
        '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--dir', dir], { stdio: ['ignore', 'pipe', 'inherit'] })
      procs.push(proc)
      ports.push(port)
      await waitReady(proc)
    }
    const cli = spawn('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-yes'], { stdio: 'ignore' })
    const [code] = await once(cli, 'exit') as [number | null]
    if (code !== 0) throw new Error(`redis-cli --cluster create exited with ${String(code)}`)
    // Every node agrees the cluster is ok before the hubs connect.
    const deadline = Date.now() + 20_000
    for (const port of ports) {
      for (;;) {
        const info = execFileSync('redis-cli', ['-p', String(port), 'cluster', 'info']).toString()
        if (info.includes('cluster_state:ok')) break
        if (Date.now() > deadline) throw new Error('the cluster did not become ok in 20 s')
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
  } catch (err) {
    stop()
    throw err
  }
  return { nodes: ports.map((port) => ({ host: '127.0.0.1', port })), stop }
}

async function waitReady (proc: ChildProcess): Promise<void> {
  let out = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error('redis-server did not start in 10 s')) }, 10_000)
    proc.once('error', reject)
    proc.stdout?.on('data', (c: Buffer) => {
      out += c.toString()
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer)
        resolve()
      }
    })
  })
}

async function hub (options: SseHubOptions): Promise<{ app: FastifyInstance, url: string }> {
  const app = Fastify({ logger: false })
  await app.register(sseHub, { heartbeatInterval: 0, maxBufferedBytes: 64 * 1024 * 1024, historyBytes: 1024 * 1024, ...options })
  app.get('/c/:id/stream', app.sse.stream('conversation'))
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url }
}

/** A minimal SSE reader: counts events and records each one's latency from the send time in its `segment`. */
class Reader {
  received = 0
  #buf = ''
  constructor (readonly latencies: number[], onOpen: () => void, url: string, readonly onEvent: () => void) {
    const agent = new http.Agent({ keepAlive: false })
    http.get(url, { agent, headers: { accept: 'text/event-stream' } }, (res) => {
      res.setEncoding('utf8')
      onOpen()
      res.on('data', (chunk: string) => {
        this.#buf += chunk
        let end: number
        while ((end = this.#buf.indexOf('\n\n')) >= 0) {
          const frame = this.#buf.slice(0, end)
          this.#buf = this.#buf.slice(end + 2)
          if (!frame.includes('event: conversation_token')) continue
          const m = /"segment":"([0-9.]+)"/.exec(frame)
          if (m !== null) this.latencies.push(performance.now() - Number(m[1]))
          this.received++
          this.onEvent()
        }
      })
    })
  }
}

interface Result { p50: number, p99: number, eventsPerSec: number, ackP50: number, ackP99: number }

async function run (label: string, publishers: FastifyInstance[], urls: string[]): Promise<Result> {
  const latencies: number[] = []
  let opened = 0
  let total = 0
  let waiter: (() => void) | undefined
  let target = 0
  const readers: Reader[] = []
  for (let i = 0; i < CLIENTS; i++) {
    readers.push(new Reader(latencies, () => { opened++ }, `${urls[i % urls.length] as string}/c/bench/stream`, () => {
      total++
      if (total >= target && waiter !== undefined) waiter()
    }))
  }
  const deadline = Date.now() + PHASE_LIMIT_MS
  while (opened < CLIENTS || publishers.some((p) => p.sse.getConversationClientCount('bench') === 0)) {
    if (Date.now() > deadline) throw new Error('clients did not connect')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  while (publishers.reduce((n, p) => n + p.sse.getConversationClientCount('bench'), 0) < CLIENTS) {
    if (Date.now() > deadline) throw new Error('clients did not connect')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  const all = async (n: number): Promise<void> => {
    target = n
    if (total >= n) return
    await Promise.race([
      new Promise<void>((resolve) => { waiter = resolve }),
      new Promise((resolve, reject) => setTimeout(() => { reject(new Error(`${label}: timed out at ${total} of ${target} deliveries; ${JSON.stringify(publishers.map((p) => p.sse.getStats().backplane))}`)) }, PHASE_LIMIT_MS).unref())
    ])
  }
  const send = (p: FastifyInstance, i: number): Promise<string> => p.sse.broadcastToConversation('bench', 'conversation_token', {
    participantId: 'p', personaSlug: 'ada', personaName: 'Ada', segment: String(performance.now()), token: `t${i}`
  })

  // Warm-up (JIT, connections, the Lua script), not measured.
  for (let i = 0; i < 100; i++) {
    // Counted from before the send: with waitReplicas the clients may have the event before the broadcast resolves.
    const delivered = total + CLIENTS
    await send(publishers[i % publishers.length] as FastifyInstance, i)
    await all(delivered)
  }
  latencies.length = 0
  // The broadcast call to its promise resolving (Redis stored it; with waitReplicas, a replica too).
  const acks: number[] = []
  // Latency: one event at a time, each delivered everywhere before the next (no queueing in the figure).
  for (let i = 0; i < LATENCY_EVENTS; i++) {
    // Counted from before the send: with waitReplicas the clients may have the event before the broadcast resolves.
    const delivered = total + CLIENTS
    const sent = performance.now()
    await send(publishers[i % publishers.length] as FastifyInstance, i)
    acks.push(performance.now() - sent)
    await all(delivered)
  }
  const quantile = (xs: number[]) => {
    const sorted = [...xs].sort((a, b) => a - b)
    return (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number
  }
  const q = quantile(latencies)
  const ack = quantile(acks)

  // Throughput: every publisher sends as fast as its broadcasts resolve, 64 in flight each.
  const base = total
  const started = performance.now()
  await Promise.all(publishers.map(async (p, k) => {
    const mine = Math.floor(EVENTS / publishers.length)
    for (let i = 0; i < mine; i += 64) {
      await Promise.all(Array.from({ length: Math.min(64, mine - i) }, (_, j) => send(p, k * mine + i + j)))
    }
  }))
  const sent = Math.floor(EVENTS / publishers.length) * publishers.length
  await all(base + sent * CLIENTS)
  const seconds = (performance.now() - started) / 1000
  return { p50: q(0.5), p99: q(0.99), eventsPerSec: (sent * CLIENTS) / seconds, ackP50: ack(0.5), ackP99: ack(0.99) }
}

/** Broadcasts/s one instance's promises resolve at, 64 in flight over 16 sessions, no clients: median of 3 runs of 4096. */
async function publishRate (app: FastifyInstance): Promise<number> {
  const rates: number[] = []
  for (let run = 0; run < 3; run++) {
    const started = performance.now()
    for (let i = 0; i < 4096; i += 64) {
      await Promise.all(Array.from({ length: 64 }, (_, j) => app.sse.broadcastToConversation(`rate${(i + j) % 16}`, 'conversation_token', {
        participantId: 'p', personaSlug: 'ada', personaName: 'Ada', segment: 's', token: `t${i + j}`
      })))
    }
    rates.push(4096 / ((performance.now() - started) / 1000))
  }
  return rates.sort((x, y) => x - y)[1] as number
}

const redis = await startRedis()
const cluster = process.argv.includes('--no-cluster') ? undefined : await startCluster()
try {
  const memory = await hub({})
  const mem = await run('memory', [memory.app], [memory.url])
  await memory.app.close()

  const a = await hub({ backplane: redisBackplane({ url: redis.url }) })
  const b = await hub({ backplane: redisBackplane({ url: redis.url }) })
  const red = await run('redis', [a.app, b.app], [a.url, b.url])
  const lag = a.app.sse.getStats().backplane.maxLagMs
  const rate = await publishRate(a.app)
  await Promise.all([a.app.close(), b.app.close()])

  let clu: Result | undefined
  let clusterLag = 0
  if (cluster !== undefined) {
    const ca = await hub({ backplane: redisBackplane({ cluster: cluster.nodes }) })
    const cb = await hub({ backplane: redisBackplane({ cluster: cluster.nodes }) })
    clu = await run('cluster', [ca.app, cb.app], [ca.url, cb.url])
    clusterLag = ca.app.sse.getStats().backplane.maxLagMs
    await Promise.all([ca.app.close(), cb.app.close()])
  }

  // The same, each broadcast acknowledged by a replica (WAIT 1 behind the publish script) before it resolves.
  const replica = await startRedis(redis.url)
  const wa = await hub({ backplane: redisBackplane({ url: redis.url, waitReplicas: 1 }) })
  const wb = await hub({ backplane: redisBackplane({ url: redis.url, waitReplicas: 1 }) })
  const waited = await run('waitReplicas', [wa.app, wb.app], [wa.url, wb.url])
  const waitedRate = await publishRate(wa.app)
  await Promise.all([wa.app.close(), wb.app.close()])
  replica.stop()

  const f = (n: number): string => n.toFixed(2).padStart(9)
  const g = (n: number): string => Math.round(n).toLocaleString('en-US').padStart(12)
  console.log(`\n${CLIENTS} SSE clients, ${LATENCY_EVENTS} latency events, ${EVENTS} throughput events, Node ${process.version}, ${(await import('node:os')).cpus().length} CPUs\n`)
  console.log('| scenario                                   | latency p50 ms | latency p99 ms | delivered events/s |')
  console.log('|--------------------------------------------|---------------:|---------------:|-------------------:|')
  console.log(`| in-memory, 1 instance                      |      ${f(mem.p50)} |      ${f(mem.p99)} |       ${g(mem.eventsPerSec)} |`)
  console.log(`| Redis, 2 instances (clients split, 2 pubs) |      ${f(red.p50)} |      ${f(red.p99)} |       ${g(red.eventsPerSec)} |`)
  if (clu !== undefined) console.log(`| Cluster (3 masters), 2 instances           |      ${f(clu.p50)} |      ${f(clu.p99)} |       ${g(clu.eventsPerSec)} |`)
  console.log(`| Redis + 1 replica, waitReplicas: 1         |      ${f(waited.p50)} |      ${f(waited.p99)} |       ${g(waited.eventsPerSec)} |`)
  console.log(`\nbroadcast call -> promise resolved, p50 / p99 ms: in-memory ${mem.ackP50.toFixed(2)} / ${mem.ackP99.toFixed(2)}, Redis ${red.ackP50.toFixed(2)} / ${red.ackP99.toFixed(2)}, waitReplicas: 1 ${waited.ackP50.toFixed(2)} / ${waited.ackP99.toFixed(2)}`)
  console.log(`broadcasts/s one instance resolves (64 in flight, no clients): Redis ${g(rate).trim()}, waitReplicas: 1 ${g(waitedRate).trim()}`)
  console.log(`\nRedis backplane max lag (XADD -> arrival at an instance): ${lag} ms${clu === undefined ? '' : `; cluster: ${clusterLag} ms`}`)
} finally {
  redis.stop()
  cluster?.stop()
}
process.exit(0)
