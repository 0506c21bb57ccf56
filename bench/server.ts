/*
 * A server under test, run as its own process by bench/run.ts:
 *   node --expose-gc --import tsx bench/.build/bench/server.js <variant>
 * It serves streams, and broadcasts when the orchestrator asks (over IPC), measuring
 * its own CPU time, heap and event-loop delay. Every loop is bounded in count and time.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'
import { join } from 'node:path'
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks'
import { setImmediate as turn } from 'node:timers/promises'
import v8 from 'node:v8'
import { nowUs, payload, serveIpc } from './common.js'
import type { Variant } from './variants/types.js'

const name = process.argv[2] ?? ''
if (!/^[a-z-]+$/.test(name)) throw new Error(`bad variant ${name}`)
const { create } = await import(`./variants/${name}.js`) as { create: () => Promise<Variant> }
const variant = await create()
const port = await variant.listen()

const gc = (globalThis as { gc?: () => void }).gc
function heapAfterGc (): number {
  if (gc === undefined) throw new Error('run with --expose-gc')
  for (let i = 0; i < 3; i++) gc()
  return v8.getHeapStatistics().used_heap_size
}

// BENCH_PROFILE_DIR=<dir>: a CPU profile of each measurement window alone, <dir>/<variant>-<scenario>-<n>.cpuprofile
// (BENCH_PROFILE_INTERVAL_US: its sampling interval, default 100 µs; 1000 disturbs a loaded server less).
const profileDir = process.env.BENCH_PROFILE_DIR
if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true })
const inspector = profileDir === undefined ? undefined : new Session()
inspector?.connect()
let profiles = 0

/** A measurement window: CPU time, peak heap and event-loop delay from start() to stop(). */
class Window {
  readonly cpu = process.cpuUsage()
  readonly t0 = nowUs()
  readonly eld: IntervalHistogram = monitorEventLoopDelay({ resolution: 1 })
  peakHeap = 0
  readonly #timer: NodeJS.Timeout
  constructor (readonly scenario: string) {
    if (process.env.BENCH_HEAP_SAMPLING !== undefined) inspector?.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: process.env.BENCH_HEAP_SAMPLING === 'major' })
    inspector?.post('Profiler.enable', () => {
      inspector.post('Profiler.setSamplingInterval', { interval: Number(process.env.BENCH_PROFILE_INTERVAL_US ?? 100) }, () => { inspector.post('Profiler.start') })
    })
    this.eld.enable()
    this.sample()
    this.#timer = setInterval(() => { this.sample() }, 5)
  }

  sample (): void {
    const used = v8.getHeapStatistics().used_heap_size
    if (used > this.peakHeap) this.peakHeap = used
  }

  stop (): Record<string, number> {
    // BENCH_HEAP_SAMPLING=1 (with BENCH_PROFILE_DIR): where the objects still in the heap at the window's end were allocated.
    if (process.env.BENCH_HEAP_SAMPLING !== undefined) {
      inspector?.post('HeapProfiler.getSamplingProfile', (err, result) => {
        if (err === null) writeFileSync(join(profileDir as string, `${name}-${this.scenario}-${profiles + 1}.heapprofile`), JSON.stringify(result.profile))
        inspector.post('HeapProfiler.stopSampling')
      })
    }
    inspector?.post('Profiler.stop', (err, result) => {
      if (err === null) writeFileSync(join(profileDir as string, `${name}-${this.scenario}-${++profiles}.cpuprofile`), JSON.stringify(result.profile))
    })
    clearInterval(this.#timer)
    this.sample()
    this.eld.disable()
    const cpu = process.cpuUsage(this.cpu)
    return {
      cpuUs: cpu.user + cpu.system,
      elapsedUs: nowUs() - this.t0,
      peakHeap: this.peakHeap,
      eldP50Ms: this.eld.percentile(50) / 1e6,
      eldP99Ms: this.eld.percentile(99) / 1e6,
      eldMaxMs: this.eld.max / 1e6
    }
  }
}

let win: Window | undefined

serveIpc({
  heap: () => {
    const heap = heapAfterGc()
    // BENCH_DEBUG_HEAP=1: what each measurement saw, with the memory outside the V8 heap.
    if (process.env.BENCH_DEBUG_HEAP !== undefined) {
      const { external, arrayBuffers } = process.memoryUsage()
      const mb = (n: number): string => (n / 2 ** 20).toFixed(1) + ' MB'
      console.error(`heap ${name}: ${mb(heap)}, external ${mb(external)}, array buffers ${mb(arrayBuffers)}`)
    }
    return heap
  },
  // Streams the variant still counts, or connections still open, whichever is more: a server may let go of a
  // client when its peer closes its side, before the socket is gone, and a heap measured then would count it.
  clients: () => Math.max(variant.clients(), process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length),
  /** Starts a measurement window for work the client drives (churn). */
  measure: ({ scenario }: { scenario?: string }) => { win = new Window(scenario ?? 'window'); return true },
  stop: () => {
    const result = win?.stop()
    win = undefined
    return result
  },
  /** Back-to-back broadcasts to one session: one per event-loop turn. */
  fanout: async ({ session, count, maxMs }: { session: string, count: number, maxMs: number }) => {
    win = new Window('fanout')
    const w = win
    const t0 = nowUs()
    let sent = 0
    let last: unknown
    while (sent < count && nowUs() - t0 < maxMs * 1000) {
      last = variant.broadcast(session, payload(sent, nowUs()))
      sent++
      w.sample()
      await turn()
    }
    await last
    return { sent, t0 }
  },
  /** A fixed rate of broadcasts to one session, each stamped with the time it was due. */
  rate: async ({ session, perSecond, durationMs }: { session: string, perSecond: number, durationMs: number }) => {
    win = new Window('rate')
    const every = 1e6 / perSecond
    const total = Math.floor(durationMs * perSecond / 1000)
    const t0 = nowUs()
    let sent = 0
    for (let guard = 0; sent < total && guard < total * 10; guard++) {
      const now = nowUs()
      for (let due = t0 + sent * every; due <= now && sent < total; due = t0 + sent * every) {
        variant.broadcast(session, payload(sent, Math.round(due)))
        sent++
      }
      await new Promise((resolve) => setTimeout(resolve, Math.max(1, (t0 + sent * every - nowUs()) / 1000)))
    }
    return { sent, t0 }
  },
  /**
   * Token streaming: `sessions.length` sessions, each at `perSecond` tokens/s, their
   * schedules spread evenly; each token stamped with the time it was due.
   */
  tokens: async ({ sessions, perSecond, durationMs }: { sessions: string[], perSecond: number, durationMs: number }) => {
    win = new Window('tokens')
    // With BENCH_DEBUG_LATENCY: when the phase starts, to line it up with a --trace-gc log (ms since start).
    if (process.env.BENCH_DEBUG_LATENCY !== undefined) console.error(`${name}: tokens start at ${performance.now().toFixed(0)} ms`)
    // With BENCH_DEBUG_LATENCY: the server's worst timer lateness per 250 ms, to tell a busy server from a busy client.
    const lateness: number[] = []
    let tick = performance.now()
    const probe = process.env.BENCH_DEBUG_LATENCY === undefined
      ? undefined
      : setInterval(() => {
        const now = performance.now()
        const slot = Math.floor((now - t0Ms) / 250)
        lateness[slot] = Math.max(lateness[slot] ?? 0, now - tick - 5)
        tick = now
      }, 5)
    const t0Ms = performance.now()
    const every = 1e6 / (perSecond * sessions.length)
    const total = Math.floor(durationMs * perSecond * sessions.length / 1000)
    const t0 = nowUs()
    let sent = 0
    const deadline = t0 + durationMs * 3000
    while (sent < total && nowUs() < deadline) {
      const now = nowUs()
      for (let due = t0 + sent * every; due <= now && sent < total; due = t0 + sent * every) {
        variant.broadcast(sessions[sent % sessions.length] as string, payload(sent, Math.round(due)))
        sent++
      }
      await new Promise((resolve) => setTimeout(resolve, 1))
    }
    if (probe !== undefined) {
      clearInterval(probe)
      console.error(`${name}: worst timer lateness ms per 250 ms: ${lateness.slice(0, 40).map((x) => Math.round(x)).join(' ')}`)
    }
    return { sent, t0 }
  },
  exit: async () => {
    await variant.close()
    setTimeout(() => process.exit(0), 10).unref()
    return true
  }
})
process.send?.({ ready: true, port, pid: process.pid })
