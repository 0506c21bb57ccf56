/*
 * Guarantee — churn: 10,000 real-HTTP connect/abort cycles, with a broadcaster and a
 * 5 ms heartbeat running all along (it reaches the sessions the broadcaster leaves
 * alone), leave the registry empty, no hub listener on any response or socket, no
 * MaxListeners warning, no uncaught exception, unhandled rejection or error log, and
 * heap growth after GC under HEAP_BOUND.
 *
 * Cycles (by index, mixed): abort after connection_established; abort after 1-3
 * broadcast events (mid-broadcast); abort after a heartbeat (mid-heartbeat); abort
 * before the response; abort while an async `authorize` waits (the hub resumes with
 * a destroyed response); server-side `remove…Client`; server-side socket destroyed
 * and a broadcast written right after, before the hub has seen the close.
 *
 * GC: `package.json` passes --expose-gc to tap (`node-arg`); run alone with plain
 * node the test turns it on itself.
 */
import t from 'tap'
import http from 'node:http'
import v8 from 'node:v8'
import vm from 'node:vm'
import type { Socket } from 'node:net'
import { buildApp, eventually, fastifySse, isToolingWarning, listen, SseClient, token, noConnections } from '../helper.js'

const CYCLES = Number(process.env.CHURN_CYCLES ?? 10_000)
// ~10-20 s alone on 2 cores; more when the suite runs files in parallel. tap's default is 30 s.
t.setTimeout(120_000)
const CONCURRENCY = 50
const SESSIONS = 10 // per kind
/** Heap growth allowed after GC, all cycles done: 8 MB, i.e. < 840 bytes per cycle. A leaked client (response + socket) is tens of KB. */
const HEAP_BOUND = 8 * 2 ** 20

const gcFlag = typeof (globalThis as { gc?: unknown }).gc === 'function'
const gc: () => void = (globalThis as { gc?: () => void }).gc ?? (() => {
  v8.setFlagsFromString('--expose-gc')
  return vm.runInNewContext('gc') as () => void
})()

async function settledHeap (): Promise<number> {
  for (let i = 0; i < 4; i++) {
    gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
  return process.memoryUsage().heapUsed
}

type Counts = Record<string, number>
const listenerCounts = (e: NodeJS.EventEmitter): Counts =>
  Object.fromEntries(e.eventNames().map((n) => [String(n), e.listenerCount(n)]))
/** Events where `got` has more listeners than `ref`. */
const excess = (got: Counts, ref: Counts): string[] =>
  Object.keys(got).filter((k) => (got[k] as number) > (ref[k] ?? 0)).map((k) => `${k}: ${got[k]} > ${ref[k] ?? 0}`)

t.test(`${CYCLES} connect/abort cycles leave nothing behind`, async (t) => {
  const problems = { warnings: [] as string[], uncaught: [] as unknown[], rejections: [] as unknown[], errorLogs: [] as string[], listeners: [] as string[] }
  // Warnings from the test runner's loaders (not the hub) are left out: see isToolingWarning in helper.ts.
  const onWarning = (w: Error): void => { if (!isToolingWarning(w)) problems.warnings.push(`${w.name}: ${w.message}`) }
  const onUncaught = (err: unknown): void => { problems.uncaught.push(err) }
  const onRejection = (err: unknown): void => { problems.rejections.push(err) }
  process.on('warning', onWarning)
  process.on('uncaughtExceptionMonitor', onUncaught)
  process.on('unhandledRejection', onRejection)
  t.teardown(() => {
    process.off('warning', onWarning)
    process.off('uncaughtExceptionMonitor', onUncaught)
    process.off('unhandledRejection', onRejection)
  })

  const app = await buildApp({
    heartbeatInterval: 5,
    cleanupInterval: 0,
    idleSessionTtl: 0,
    authorize: async (request) => {
      // Held until the peer is gone, so the hub resumes with a destroyed response.
      const socket = request.raw.socket
      if (request.headers['x-slow-auth'] !== undefined && !socket.destroyed) await new Promise((resolve) => socket.once('close', resolve))
      return true
    }
  }, { logger: { level: 'error', stream: { write: (line: string) => { problems.errorLogs.push(line) } } } })
  // The reference: the same @fastify/sse stream, never touched by the hub.
  await app.register(fastifySse)
  app.get('/reference', {
    sse: { kind: 'only', heartbeat: false },
    handler: async (_request, reply) => {
      reply.sse.keepAlive()
      reply.sse.sendHeaders(200)
      reply.raw.write(': ref\n\n')
    }
  })
  const base = await listen(app, t)

  // Every server-side response and its socket is checked once closed, then forgotten.
  let reference: { res: Counts, socket: Counts } | undefined
  const checked = { requests: 0, responses: 0 }
  const live = new Map<string, http.ServerResponse>()
  app.server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = req.url as string
    const socket = res.socket as Socket
    live.set(url, res)
    if (url !== '/reference') checked.requests++
    res.once('close', () => {
      live.delete(url)
      setImmediate(() => {
        const counts = { res: listenerCounts(res), socket: listenerCounts(socket) }
        if (url === '/reference') { reference = counts; return }
        checked.responses++
        const ref = reference as { res: Counts, socket: Counts }
        const extra = [...excess(counts.res, ref.res).map((x) => `response ${x}`), ...excess(counts.socket, ref.socket).map((x) => `socket ${x}`)]
        if (extra.length > 0 && problems.listeners.length < 5) problems.listeners.push(`${url}: ${extra.join(', ')}`)
      })
    })
  })
  // The reference was aborted by its client, the path that leaves the most listeners.
  const ref = new SseClient(`${base}/reference`)
  await ref.until((c) => c.comments.length > 0, 'reference stream')
  ref.close()
  await eventually(() => reference !== undefined, 'reference closed')

  const kinds = ['conversations', 'debates'] as const
  let broadcasts = 0
  /** Broadcasts to the sessions in turn, 4 events a millisecond or so, until stopped. */
  const startBroadcaster = (): () => Promise<void> => {
    let on = true
    const done = (async () => {
      while (on) {
        for (let k = 0; k < 4; k++) {
          const n = broadcasts++
          const s = `s${(n >> 1) % SESSIONS}`
          if (n % 2 === 0) await app.sse.broadcastToConversation(s, 'conversation_token', token(`t${n}`, n))
          else await app.sse.broadcastToDebate(s, 'debate_token', { debateId: s, participantId: 'p', personaSlug: 'x', turnCount: n, token: 't' })
        }
        await new Promise((resolve) => setTimeout(resolve, 1))
      }
    })()
    const stop = async (): Promise<void> => { on = false; await done }
    t.teardown(stop)
    return stop
  }

  const modes = { established: 0, midBroadcast: 0, midHeartbeat: 0, beforeResponse: 0, duringAuthorize: 0, serverRemove: 0, serverDestroyThenBroadcast: 0 }
  async function cycle (i: number): Promise<void> {
    const kind = kinds[i % 2] as typeof kinds[number]
    const slot = i % 20
    // Heartbeats only reach sessions with nothing else written: mid-heartbeat cycles use ones the broadcaster leaves alone.
    const session = `${slot >= 12 && slot < 15 ? 'q' : 's'}${(i >> 1) % SESSIONS}`
    const path = `/${kind}/${session}/stream?cycle=${i}`
    if (slot === 15 || slot === 16) {
      modes.beforeResponse++
      const c = new SseClient(base + path)
      const closed = new Promise((resolve) => c.req.once('close', resolve))
      c.close()
      await closed
    } else if (slot === 17) {
      modes.duringAuthorize++
      const c = new SseClient(base + path, { 'x-slow-auth': '1' })
      const closed = new Promise((resolve) => c.req.once('close', resolve))
      c.req.once('finish', () => { c.close() })
      await closed
    } else {
      const c = await new SseClient(base + path).connected()
      if (slot < 8) {
        modes.established++
      } else if (slot < 12) {
        modes.midBroadcast++
        await c.until((x) => x.received.length >= 1 + (i % 3), 'broadcast events')
      } else if (slot < 15) {
        modes.midHeartbeat++
        await c.until((x) => x.comments.length >= 1, 'a heartbeat')
      } else if (slot === 18) {
        modes.serverRemove++
        const removed = kind === 'conversations' ? app.sse.removeConversationClient(session, c.clientId) : app.sse.removeDebateClient(session, c.clientId)
        if (!removed) throw new Error('remove returned false for a live client')
        await c.end()
        return
      } else {
        modes.serverDestroyThenBroadcast++
        live.get(path)?.destroy()
        if (kind === 'conversations') await app.sse.broadcastToConversation(session, 'conversation_token', token('after destroy'))
        else await app.sse.broadcastToDebate(session, 'debate_token', { debateId: session, participantId: 'p', personaSlug: 'x', turnCount: 0, token: 't' })
        await c.end()
        return
      }
      c.close()
      await c.end()
    }
  }

  let next = 0
  const runWorkers = async (until: number): Promise<void> => {
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < until) await cycle(next++)
    }))
  }
  const drain = async (): Promise<void> => {
    await noConnections(app.server)
    await eventually(() => app.sse.getStats().clients === 0 && live.size === 0, 'every stream closed on the server', 1_000_000)
    // idleSessionTtl is 0: cleanup forgets a session once a millisecond has passed since its last activity.
    await eventually(() => { app.sse.cleanupStaleConnections(); return app.sse.getStats().conversations.sessions + app.sse.getStats().debates.sessions === 0 }, 'sessions forgotten', 1_000_000)
  }

  // Warm-up (JIT, pools, lazily created module state), then the baseline heap.
  const warmup = Math.min(1000, CYCLES)
  let stop = startBroadcaster()
  await runWorkers(warmup)
  await stop()
  await drain()
  const heapBefore = await settledHeap()

  const started = performance.now()
  stop = startBroadcaster()
  await runWorkers(warmup + CYCLES)
  await stop()
  await drain()
  const seconds = (performance.now() - started) / 1000
  const heapAfter = await settledHeap()
  await eventually(() => checked.responses === checked.requests, 'every response checked', 1_000_000)

  const stats = app.sse.getStats()
  t.equal(stats.clients, 0, 'no client left')
  t.equal(stats.conversations.activeSessions + stats.debates.activeSessions, 0, 'no session with clients')
  t.equal(stats.conversations.sessions + stats.debates.sessions, 0, 'no session left')
  t.equal(stats.conversations.historyBytes + stats.debates.historyBytes, 0, 'no history left')
  t.equal(stats.clientsRejected, 0, 'no client refused')
  t.same(problems.listeners, [], 'no closed response or socket has more listeners than a plain @fastify/sse stream')
  t.equal(problems.warnings.filter((w) => w.startsWith('MaxListenersExceededWarning')).length, 0, 'no MaxListeners warning')
  t.same(problems.warnings, [], 'no process warning at all')
  t.same(problems.uncaught, [], 'no uncaught exception')
  t.same(problems.rejections, [], 'no unhandled rejection')
  t.same(problems.errorLogs, [], 'no error logged')
  t.ok(Object.values(modes).every((n) => n > 0), 'every kind of cycle ran')
  t.ok(checked.requests - stats.clientsConnected >= modes.duringAuthorize, 'every abort during authorize reached the hub after its peer had left')
  const growth = heapAfter - heapBefore
  t.ok(growth < HEAP_BOUND, `heap growth after GC ${(growth / 2 ** 20).toFixed(2)} MB < ${HEAP_BOUND / 2 ** 20} MB`)
  t.comment(JSON.stringify({ exposeGcFlag: gcFlag, cycles: CYCLES, seconds: +seconds.toFixed(1), cyclesPerSecond: Math.round(CYCLES / seconds), heapGrowthMB: +(growth / 2 ** 20).toFixed(2), broadcasts, modes, requests: checked.requests, connected: stats.clientsConnected }))
})
