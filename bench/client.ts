/*
 * The load client, its own process (bench/run.ts starts it):
 *   node bench/.build/bench/client.js
 * Holds thousands of SSE connections on raw net sockets to 127.0.0.1, de-chunks the
 * HTTP/1.1 body, counts the events that carry a `"t":` stamp and records each one's
 * latency (arrival minus the stamp, both on CLOCK_MONOTONIC) in a histogram.
 * Every loop is bounded in count and time.
 */
import net from 'node:net'
import { createHistogram } from 'node:perf_hooks'
import { nowUs, serveIpc, sleep } from './common.js'

const NN = Buffer.from('\n\n')
const MARK = Buffer.from('"t":')
const CONNECT_TIMEOUT_MS = 10_000

let received = 0
let firstAt = 0
let lastAt = 0
let readNow = 0
// BENCH_DEBUG_LATENCY=1: the worst latency per 250 ms of due time, printed by `expect` (where does the tail come from?).
const debugLatency = process.env.BENCH_DEBUG_LATENCY !== undefined
let firstDue = 0
let worstByBucket: number[] = []
const steady = createHistogram({ lowest: 1, highest: 120e6, figures: 3 })
const latency = createHistogram({ lowest: 1, highest: 120e6, figures: 3 })

// One read buffer for every socket: each read is handled before the next one lands.
const shared = Buffer.allocUnsafe(256 * 1024)

class Conn {
  readonly socket: net.Socket
  head = ''
  inBody = false
  chunked = false
  chunkLeft = 0
  skip = 0
  size = 0
  inExt = false
  pending: Buffer | null = null
  status = 0
  readonly ready: Promise<boolean>
  #settle: (ok: boolean) => void = () => {}

  constructor (port: number, path: string) {
    this.ready = new Promise((resolve) => { this.#settle = resolve })
    const timer = setTimeout(() => { this.#settle(false); this.socket.destroy() }, CONNECT_TIMEOUT_MS)
    this.ready.then(() => { clearTimeout(timer) }, () => {})
    this.socket = net.connect({
      host: '127.0.0.1',
      port,
      onread: { buffer: shared, callback: (n: number, buf: Uint8Array) => { this.feed(buf as Buffer, n); return true } }
    })
    this.socket.on('error', () => { this.#settle(false) })
    this.socket.on('close', () => { this.#settle(false) })
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`)
  }

  feed (buf: Buffer, n: number): void {
    readNow = nowUs()
    if (this.inBody) { this.body(buf, 0, n); return }
    this.head += buf.toString('latin1', 0, n)
    const end = this.head.indexOf('\r\n\r\n')
    if (end < 0) return
    const head = this.head.slice(0, end)
    const rest = Buffer.from(this.head.slice(end + 4), 'latin1')
    this.head = ''
    this.inBody = true
    this.status = Number(head.slice(9, 12))
    this.chunked = /\r\ntransfer-encoding:[ \t]*chunked/i.test(head)
    this.#settle(this.status === 200)
    if (rest.length > 0) this.body(rest, 0, rest.length)
  }

  body (buf: Buffer, start: number, end: number): void {
    if (!this.chunked) { this.events(buf, start, end); return }
    let pos = start
    while (pos < end) {
      if (this.chunkLeft > 0) {
        const take = Math.min(this.chunkLeft, end - pos)
        this.events(buf, pos, pos + take)
        pos += take
        this.chunkLeft -= take
        if (this.chunkLeft === 0) this.skip = 2
      } else if (this.skip > 0) {
        pos++
        this.skip--
      } else {
        const c = buf[pos++] as number
        if (c === 10) {
          this.chunkLeft = this.size
          this.size = 0
          this.inExt = false
        } else if (c === 59) {
          this.inExt = true
        } else if (c !== 13 && !this.inExt) {
          this.size = this.size * 16 + (c <= 57 ? c - 48 : (c | 32) - 87)
        }
      }
    }
  }

  events (buf: Buffer, start: number, end: number): void {
    let data = buf.subarray(start, end)
    if (this.pending !== null) {
      data = Buffer.concat([this.pending, data])
      this.pending = null
    }
    let pos = 0
    for (;;) {
      const nn = data.indexOf(NN, pos)
      if (nn < 0) break
      const m = data.indexOf(MARK, pos)
      if (m >= 0 && m < nn) {
        let t = 0
        for (let i = m + 4; i < nn; i++) {
          const d = (data[i] as number) - 48
          if (d < 0 || d > 9) break
          t = t * 10 + d
        }
        latency.record(Math.max(1, readNow - t))
        if (debugLatency) {
          if (firstDue === 0) firstDue = t
          const b = Math.max(0, Math.floor((t - firstDue) / 250_000))
          worstByBucket[b] = Math.max(worstByBucket[b] ?? 0, readNow - t)
          if (b >= 4) steady.record(Math.max(1, readNow - t))
        }
        received++
        if (firstAt === 0) firstAt = readNow
        lastAt = readNow
      }
      pos = nn + 2
    }
    if (pos < data.length) this.pending = Buffer.from(data.subarray(pos))
  }
}

let conns: Conn[] = []

async function pool (count: number, concurrency: number, maxMs: number, job: (i: number) => Promise<boolean>): Promise<{ ok: number, failed: number, elapsedMs: number }> {
  const t0 = Date.now()
  let next = 0
  let ok = 0
  let failed = 0
  const worker = async (): Promise<void> => {
    while (next < count && Date.now() - t0 < maxMs) {
      const i = next++
      if (await job(i)) ok++
      else failed++
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
  return { ok, failed, elapsedMs: Date.now() - t0 }
}

function stats (): Record<string, number> {
  const cpu = process.cpuUsage()
  return {
    received,
    firstAt,
    lastAt,
    p50Us: received > 0 ? latency.percentile(50) : 0,
    p99Us: received > 0 ? latency.percentile(99) : 0,
    maxUs: received > 0 ? latency.max : 0,
    cpuUs: cpu.user + cpu.system
  }
}

serveIpc({
  /** Opens `n` streams, spread over `paths`, and waits for every response head. */
  connect: async ({ port, paths, n, concurrency = 128 }: { port: number, paths: string[], n: number, concurrency?: number }) => {
    const opened: Conn[] = []
    const r = await pool(n, concurrency, 120_000, async (i) => {
      const c = new Conn(port, paths[i % paths.length] as string)
      opened.push(c)
      return c.ready
    })
    conns.push(...opened)
    return { ...r, open: conns.length }
  },
  /** Closes streams until `keep` are left. */
  close: ({ keep }: { keep: number }) => {
    for (const c of conns.slice(keep)) c.socket.destroy()
    conns = conns.slice(0, keep)
    return conns.length
  },
  reset: () => {
    received = 0
    firstDue = 0
    worstByBucket = []
    steady.reset()
    firstAt = 0
    lastAt = 0
    latency.reset()
    return true
  },
  stats: () => stats(),
  /** Waits until `total` stamped events have arrived (or `timeoutMs` passed, or arrivals stalled for `idleMs`). */
  expect: async ({ total, timeoutMs, idleMs = 3000 }: { total: number, timeoutMs: number, idleMs?: number }) => {
    const t0 = Date.now()
    let seen = received
    let seenAt = Date.now()
    while (received < total && Date.now() - t0 < timeoutMs && Date.now() - seenAt < idleMs) {
      await sleep(10)
      if (received !== seen) { seen = received; seenAt = Date.now() }
    }
    if (debugLatency && received > 0) {
      console.error('worst latency ms per 250 ms:', Array.from(worstByBucket, (us) => Math.round((us ?? 0) / 1000)).join(' '))
      console.error(`after the first second: p50 ${(steady.percentile(50) / 1000).toFixed(2)} ms, p99 ${(steady.percentile(99) / 1000).toFixed(2)} ms`)
    }
    return stats()
  },
  /** Connect/disconnect cycles: open a stream, wait for its response head, close it. */
  churn: async ({ port, path, cycles, concurrency, maxMs }: { port: number, path: string, cycles: number, concurrency: number, maxMs: number }) => {
    return pool(cycles, concurrency, maxMs, async () => {
      const c = new Conn(port, path)
      const ok = await c.ready
      c.socket.destroy()
      return ok
    })
  }
})
process.send?.({ ready: true, pid: process.pid })
