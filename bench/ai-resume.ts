/*
 * fastify-sse-hub/ai (`chatStreams` + `redisBackplane`) against the `resumable-stream` package as the AI SDK docs use
 * it, on one private Redis: resuming an AI SDK chat's answer (the UI message stream) from another instance.
 *
 *   npm run bench -- --scenarios=ai-resume        (part of the default full run too)
 *   node bench/.build/bench/ai-resume.js [--reps 3] [--deltas 2000] [--pace 250] [--viewers 100] [--resumes 5] [--warm-resumes 20]
 *        [--lease-ms 2000] [--hub-max-len 8192] [--observe-ms 12000] [--results-file <json to add to>]
 *
 * Per variant and repetition (variants in an order rotated per repetition), two server processes (ai-server.ts:
 * instance A, instance B), both pinned to CPU 0, and one client process (ai-client.ts) pinned to CPU 1 with the
 * private redis-server (when `taskset` exists). The answer is synthetic (no model): start, start-step, text-start,
 * N text deltas, text-end, finish-step, finish. After a warm-up answer of N deltas resumed `--warm-resumes` times on
 * B, three measurements:
 *
 * 1. Resume, answer produced but still in progress: the POST on A produces all N deltas (as fast as it goes) and
 *    holds before text-end; then `--resumes` resume GETs on B, one after another, each until it has every chunk so
 *    far (N + 3). Measured from the GET's request: its first chunk, and its (N + 3)th chunk (the medians; each
 *    repetition's line lists every resume's). Then the answer is let finish.
 * 2. 100 viewers of one answer: the POST on A holds after text-start; `--viewers` resume GETs, half on A and half
 *    on B, each waited for until it has those three chunks; then the deltas at `--pace` per second and the end.
 *    CPU time (user + system) of A and B together, and of redis-server (INFO cpu), from the release to the last
 *    response's end, divided by the chunks delivered meanwhile to every stream (the viewers and the POST).
 * 3. The producer's process dies: the POST on A at `--pace`; a viewer on B (resume GET) from the start; SIGKILL to A
 *    once the POST has half the deltas; at once a resume GET on B, and another `--observe-ms`/2 later. Each is
 *    observed for up to `--observe-ms` after the kill: status, chunks, the `error` chunk if any, how it ended.
 *
 * The hub's options here: `leaseMs` (--lease-ms, 2000: a dead producer's viewers told within about leaseMs + 1 s),
 * and a Redis stream and a history that hold a whole answer: `redisBackplane({ maxLen })` (--hub-max-len, 8192;
 * the default 1000 keeps only the last ~1000 chunks, and a resume on another instance then starts mid-answer:
 * `--hub-max-len 1000` shows it), historySize 8192, historyBytes 4 MiB. resumable-stream's defaults.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { freePort, nowUs, numberArg as arg, sleep, type Response, type Stream } from './common.js'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..', '..')
const argv = process.argv.slice(2)
const strArg = (name: string): string | undefined => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : undefined }

const REPS = arg('reps', 3)
const DELTAS = arg('deltas', 2000)
const PACE = arg('pace', 250)
const VIEWERS = arg('viewers', 100)
const RESUMES = arg('resumes', 5)
const WARM_RESUMES = arg('warm-resumes', 20)
const LEASE_MS = arg('lease-ms', 2000)
const HUB_MAX_LEN = arg('hub-max-len', 8192)
const OBSERVE_MS = arg('observe-ms', 12_000)
const RESULTS_FILE = strArg('results-file')
const VARIANTS = ['hub', 'resumable-stream'] as const
type VariantName = typeof VARIANTS[number]
const LABEL: Record<VariantName, string> = { hub: 'fastify-sse-hub', 'resumable-stream': 'resumable-stream' }
/** Chunks of a whole answer, and of one held after its deltas (before text-end). */
const WHOLE = DELTAS + 6
const SO_FAR = DELTAS + 3

const hasTaskset = os.cpus().length >= 2 && (() => { try { execFileSync('sh', ['-c', 'command -v taskset']); return true } catch { return false } })()
const pin = (cpu: number): string[] => hasTaskset ? ['taskset', '-c', String(cpu)] : []
const rsVersion = (JSON.parse(readFileSync(join(root, 'node_modules', 'resumable-stream', 'package.json'), 'utf8')) as { version: string }).version

// ---------------------------------------------------------------- processes (all killed on the way out)

const children = new Set<ChildProcess>()
function killAll (): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
}
process.on('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => { killAll(); process.exit(130) })


/** A private redis-server (no persistence) on a free loopback port, pinned with the client. */
async function startRedis (): Promise<{ url: string, proc: ChildProcess }> {
  const port = await freePort()
  const cmd = [...pin(1), 'redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']
  const proc = spawn(cmd[0] as string, cmd.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] })
  children.add(proc)
  let out = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`redis-server did not start in 10 s: ${out.slice(-400)}`)) }, 10_000)
    proc.once('error', reject)
    proc.once('exit', (code) => { reject(new Error(`redis-server exited with ${String(code)}: ${out.slice(-400)}`)) })
    proc.stdout?.on('data', (c: Buffer) => {
      out += c.toString()
      if (out.includes('Ready to accept connections')) { clearTimeout(timer); resolve() }
    })
  })
  return { url: `redis://127.0.0.1:${port}`, proc }
}

interface Child {
  proc: ChildProcess
  hello: Record<string, unknown>
  call: <T = any>(op: string, args?: Record<string, unknown>, timeoutMs?: number) => Promise<T>
}

let nextId = 0
/** A bench process pinned to `cpu`, spoken to over IPC (common.ts `serveIpc`); started with the node running this. */
async function start (script: string, args: string[], cpu: number): Promise<Child> {
  const cmd = [...pin(cpu), process.execPath, join(here, script), ...args]
  const proc = spawn(cmd[0] as string, cmd.slice(1), { cwd: root, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  children.add(proc)
  const waiting = new Map<number, (r: Response) => void>()
  const hello = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`${script} did not start`)) }, 30_000)
    proc.once('exit', (code, signal) => { clearTimeout(timer); reject(new Error(`${script} exited with ${String(code ?? signal)}`)) })
    proc.on('message', (msg: Record<string, unknown>) => {
      if (msg.ready === true) { clearTimeout(timer); resolve(msg); return }
      waiting.get(msg.id as number)?.(msg as unknown as Response)
    })
  })
  proc.once('exit', () => { for (const w of waiting.values()) w({ id: 0, ok: false, error: `${script} exited` }) })
  const call = async <T>(op: string, callArgs: Record<string, unknown> = {}, timeoutMs = 120_000): Promise<T> => {
    const id = ++nextId
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => { waiting.delete(id); reject(new Error(`${script} ${op}: no answer in ${timeoutMs} ms`)) }, timeoutMs)
      waiting.set(id, (r) => {
        clearTimeout(timer)
        waiting.delete(id)
        if (r.ok) resolve(r.result as T)
        else reject(new Error(`${script} ${op}: ${r.error}`))
      })
      proc.send({ id, op, args: callArgs })
    })
  }
  return { proc, hello, call }
}

async function stop (c: Child): Promise<void> {
  const gone = (): boolean => c.proc.exitCode !== null || c.proc.signalCode !== null
  if (gone()) return
  const exited = once(c.proc, 'exit')
  await c.call('exit', {}, 5000).catch(() => {})
  const timer = setTimeout(() => c.proc.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

// ---------------------------------------------------------------- one variant, one repetition


/** How a stream ended, in words without figures (they are metrics of their own): alike across repetitions. */
function outcome (s: Stream): string {
  if (s.status === 0) return s.ended === '' ? 'no response yet' : `no response (connection ${s.ended})`
  if (s.status !== 200) {
    let message = s.body ?? ''
    try { message = (JSON.parse(message) as { message?: string }).message ?? message } catch {}
    return message === '' ? String(s.status) : `${s.status} "${message.slice(0, 60)}"`
  }
  const parts = ['200: the chunks so far']
  if (s.errorText !== undefined) parts.push('an error chunk')
  if (s.done) parts.push('[DONE]')
  parts.push(s.ended === '' ? 'still open' : s.ended === 'end' ? 'the end' : `connection ${s.ended}`)
  return parts.join(', ')
}

type Metrics = Record<string, number | string>

const median = (xs: number[]): number => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid] as number : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

let redisInfo: Redis
async function redisCpuUs (): Promise<number> {
  const info = await redisInfo.info('cpu')
  const field = (name: string): number => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? NaN)
  return Math.round((field('used_cpu_user') + field('used_cpu_sys')) * 1e6)
}

async function runVariant (v: VariantName, rep: number, redisUrl: string, client: Child): Promise<Metrics> {
  const m: Metrics = {}
  const serverArgs = [v, redisUrl, String(LEASE_MS), String(HUB_MAX_LEN)]
  const a = await start('ai-server.js', serverArgs, 0)
  const b = await start('ai-server.js', serverArgs, 0)
  const portA = a.hello.port as number
  const portB = b.hello.port as number
  const prefix = `${v}-${rep}-${process.pid}`
  const post = (tag: string, id: string, deltas: number, pace: number, hold: string): Promise<boolean> =>
    client.call('open', { tag, port: portA, method: 'POST', path: '/api/chat', body: { id, deltas, pace, hold } })
  const resume = (tag: string, port: number, id: string, marks: number[] = []): Promise<boolean> =>
    client.call('open', { tag, port, method: 'GET', path: `/api/chat/${id}/stream`, marks })
  const wait = (tags: string[], what: { chunks?: number, ended?: boolean }, timeoutMs: number): Promise<Stream[]> =>
    client.call<Stream[]>('wait', { tags, ...what, timeoutMs }, timeoutMs + 10_000)
  /** Until A's GET route finds the chat's answer (the POST handler got that far). */
  const mapped = async (id: string): Promise<void> => {
    for (const deadline = Date.now() + 10_000; !await a.call<boolean>('mapped', { id });) {
      if (Date.now() > deadline) throw new Error(`${id}: the answer was not found in 10 s`)
      await sleep(5)
    }
  }
  const check = (list: Stream[], what: string, ok: (s: Stream) => boolean): void => {
    const bad = list.filter((s) => !ok(s))
    if (bad.length > 0) throw new Error(`${what}: ${bad.length} of ${list.length} streams short, e.g. ${JSON.stringify(bad[0])}`)
  }
  try {
    // Warm-up, not measured: an answer of the same length, resumed on B while held (--warm-resumes times: a fresh
    // process's first replays of 2,000 chunks take several times longer, its code not yet optimized), then finished.
    {
      const id = `${prefix}-warm`
      await post('warm-post', id, DELTAS, 0, 'deltas')
      check(await wait(['warm-post'], { chunks: SO_FAR }, 60_000), 'warm-up POST', (s) => s.chunks >= SO_FAR)
      await mapped(id)
      for (let i = 0; i < WARM_RESUMES; i++) {
        await resume(`warm-get${i}`, portB, id)
        check(await wait([`warm-get${i}`], { chunks: SO_FAR }, 30_000), 'warm-up resume', (s) => s.chunks >= SO_FAR)
        await client.call('close', { tags: [`warm-get${i}`] })
      }
      await resume('warm-live', portB, id)
      await wait(['warm-live'], { chunks: SO_FAR }, 30_000)
      await a.call('release', { id })
      check(await wait(['warm-post', 'warm-live'], { ended: true }, 30_000), 'warm-up end', (s) => s.ended === 'end' && s.done)
      await client.call('close', { tags: ['warm-post', 'warm-live'] })
    }

    // 1. Resume of an answer whose deltas are all produced, still in progress.
    {
      const id = `${prefix}-held`
      await post('held-post', id, DELTAS, 0, 'deltas')
      check(await wait(['held-post'], { chunks: SO_FAR }, 60_000), 'held POST', (s) => s.chunks >= SO_FAR)
      await mapped(id)
      const first: number[] = []
      const whole: number[] = []
      const bytes: number[] = []
      const firstTypes = new Set<string>()
      for (let i = 0; i < RESUMES; i++) {
        const tag = `held-get${i}`
        await resume(tag, portB, id, [SO_FAR])
        const [s] = await wait([tag], { chunks: SO_FAR }, 30_000)
        firstTypes.add((s as Stream).firstType)
        check([s as Stream], `resume (first chunk: ${(s as Stream).firstType})`, (x) => x.status === 200 && x.chunks >= SO_FAR)
        first.push(((s as Stream).tFirst - (s as Stream).tStart) / 1000)
        whole.push((((s as Stream).marks[SO_FAR] as number) - (s as Stream).tStart) / 1000)
        bytes.push((s as Stream).bytes)
        await client.call('close', { tags: [tag] })
      }
      m.resume_first_chunk_ms = median(first)
      m.resume_whole_ms = median(whole)
      // Each resume's, in order: the spread the median hides (in the results file too).
      m.resume_whole_each_ms = whole.map((x) => x.toFixed(2)).join(' ')
      m.resume_bytes = median(bytes)
      m.resume_first_type = [...firstTypes].join(', ')
      await a.call('release', { id })
      check(await wait(['held-post'], { ended: true }, 30_000), 'held POST end', (s) => s.ended === 'end' && s.done)
      await client.call('close', { tags: ['held-post'] })
    }

    // 2. Viewers of one answer (resume GETs, half on each instance), CPU per delivered chunk.
    {
      const id = `${prefix}-fan`
      await post('fan-post', id, DELTAS, PACE, 'head')
      check(await wait(['fan-post'], { chunks: 3 }, 30_000), 'fan POST', (s) => s.chunks >= 3)
      await mapped(id)
      const viewers = Array.from({ length: VIEWERS }, (_, i) => `fan-get${i}`)
      await client.call('openMany', { list: viewers.map((tag, i) => ({ tag, port: i % 2 === 0 ? portA : portB, method: 'GET', path: `/api/chat/${id}/stream` })) })
      const all = ['fan-post', ...viewers]
      const joined = await wait(all, { chunks: 3 }, 30_000)
      check(joined, 'viewers joining', (s) => s.status === 200 && s.chunks >= 3)
      const before = joined.reduce((n, s) => n + s.chunks, 0)
      const [cpuA0, cpuB0, redis0, client0] = await Promise.all([a.call<number>('cpu'), b.call<number>('cpu'), redisCpuUs(), client.call<number>('cpu')])
      const t0 = nowUs()
      await a.call('release', { id })
      const ended = await wait(all, { ended: true }, DELTAS / PACE * 1000 * 3 + 30_000)
      const [cpuA1, cpuB1, redis1, client1] = await Promise.all([a.call<number>('cpu'), b.call<number>('cpu'), redisCpuUs(), client.call<number>('cpu')])
      const delivered = ended.reduce((n, s) => n + s.chunks, 0) - before
      m.fan_server_cpu_us_per_chunk = (cpuA1 - cpuA0 + cpuB1 - cpuB0) / delivered
      m.fan_producer_cpu_us_per_chunk = (cpuA1 - cpuA0) / delivered
      m.fan_redis_cpu_us_per_chunk = (redis1 - redis0) / delivered
      m.fan_client_cpu_us_per_chunk = (client1 - client0) / delivered
      m.fan_delivered_ratio = delivered / ((VIEWERS + 1) * (WHOLE - 3))
      m.fan_complete_streams = ended.filter((s) => s.ended === 'end' && s.done && s.chunks === WHOLE).length
      m.fan_last_end_ms = (Math.max(...ended.map((s) => s.tEnded)) - t0) / 1000
      await client.call('close', { tags: all })
    }

    // 3. The producer's process SIGKILLed mid-answer; its viewer and resume GETs on the other instance.
    {
      const id = `${prefix}-kill`
      await post('kill-post', id, DELTAS, PACE, 'none')
      check(await wait(['kill-post'], { chunks: 3 }, 30_000), 'kill POST', (s) => s.chunks >= 3)
      await mapped(id)
      await resume('kill-viewer', portB, id)
      check(await wait(['kill-viewer'], { chunks: 3 }, 30_000), 'kill viewer', (s) => s.status === 200 && s.chunks >= 3)
      const half = 3 + Math.floor(DELTAS / 2)
      const [atKill] = await wait(['kill-post'], { chunks: half }, DELTAS / PACE * 1000 + 30_000)
      check([atKill as Stream], 'kill POST half', (s) => s.chunks >= half)
      const tKill = nowUs()
      a.proc.kill('SIGKILL')
      await resume('kill-resume', portB, id)
      await sleep(OBSERVE_MS / 2)
      await resume('kill-resume-late', portB, id)
      const left = OBSERVE_MS - (nowUs() - tKill) / 1000
      const [viewer, now, late] = await wait(['kill-viewer', 'kill-resume', 'kill-resume-late'], { ended: true }, Math.max(0, left)) as [Stream, Stream, Stream]
      // What the POST (on A) had when the kill was decided (a few more may have been produced before it landed).
      m.kill_post_chunks = (atKill as Stream).chunks
      const record = (key: string, s: Stream): void => {
        m[`${key}_status`] = s.status
        m[`${key}_chunks`] = s.chunks
        m[`${key}_error_ms`] = s.tError === 0 ? NaN : (s.tError - tKill) / 1000
        m[`${key}_end_ms`] = s.ended === '' ? NaN : (s.tEnded - tKill) / 1000
        m[`${key}_outcome`] = outcome(s)
        if (s.errorText !== undefined) m[`${key}_error_text`] = s.errorText
      }
      record('kill_viewer', viewer)
      record('kill_resume', now)
      record('kill_resume_late', late)
      await client.call('close', { tags: ['kill-post', 'kill-viewer', 'kill-resume', 'kill-resume-late'] })
    }
  } finally {
    await Promise.all([stop(a), stop(b)])
  }
  return m
}

// ---------------------------------------------------------------- report

function fmt (x: number | string | undefined): string {
  if (typeof x === 'string') return x
  if (x === undefined || !Number.isFinite(x)) return 'n/a'
  if (Number.isInteger(x)) return x.toLocaleString('en-US')
  const a = Math.abs(x)
  if (a >= 1000) return Math.round(x).toLocaleString('en-US')
  if (a >= 100) return x.toFixed(0)
  if (a >= 10) return x.toFixed(1)
  return x.toFixed(2)
}

/** A numeric metric's median over the repetitions; a text metric's values, once each. */
function summarize (runs: Metrics[]): Metrics {
  const keys = new Set(runs.flatMap((r) => Object.keys(r)))
  const out: Metrics = {}
  for (const k of keys) {
    const values = runs.map((r) => r[k]).filter((x) => x !== undefined)
    if (values.every((x) => typeof x === 'number')) out[k] = median(values as number[])
    else out[k] = [...new Set(values.map(String))].join(' | ')
  }
  return out
}

function table (title: string, rows: Array<[string, string]>, med: Record<VariantName, Metrics>): string {
  const lines = [`| ${title} | ${VARIANTS.map((v) => LABEL[v]).join(' | ')} |`, `|---|${VARIANTS.map(() => '---:').join('|')}|`]
  for (const [key, label] of rows) lines.push(`| ${label} | ${VARIANTS.map((v) => fmt(med[v][key])).join(' | ')} |`)
  return lines.join('\n')
}

// ---------------------------------------------------------------- main

const t0 = Date.now()
const loadStart = os.loadavg().map((x) => Number(x.toFixed(2)))
console.log(`ai-resume: fastify-sse-hub/ai vs resumable-stream ${rsVersion}, node ${process.version}, ${os.cpus().length} CPUs, ` +
  `taskset ${hasTaskset ? 'servers→CPU0, client and redis-server→CPU1' : 'not used'}, load average ${loadStart.join(' ')}\n` +
  `  reps ${REPS}; ${DELTAS} deltas; pace ${PACE}/s; ${VIEWERS} viewers; ${RESUMES} resumes per repetition after ${WARM_RESUMES} unmeasured; hub leaseMs ${LEASE_MS}, maxLen ${HUB_MAX_LEN}; observed ${OBSERVE_MS} ms after a kill`)
const runs: Record<VariantName, Metrics[]> = { hub: [], 'resumable-stream': [] }
const redis = await startRedis()
redisInfo = new Redis(redis.url)
let client: Child | undefined
try {
  client = await start('ai-client.js', [], hasTaskset ? 1 : 0)
  for (let rep = 0; rep < REPS; rep++) {
    const order = VARIANTS.map((_, i) => VARIANTS[(i + rep) % VARIANTS.length] as VariantName)
    for (const v of order) {
      const vt = Date.now()
      try {
        const m = await runVariant(v, rep, redis.url, client)
        runs[v].push(m)
        console.log(`  rep ${rep + 1}/${REPS} ${LABEL[v]}: ${((Date.now() - vt) / 1000).toFixed(1)} s  resume ${fmt(m.resume_first_chunk_ms)} / ${fmt(m.resume_whole_ms)} ms (each: ${String(m.resume_whole_each_ms)}), ` +
          `${fmt(m.fan_server_cpu_us_per_chunk)} µs/chunk; kill: ${String(m.kill_resume_outcome)}`)
      } catch (err) {
        console.error(`  rep ${rep + 1}/${REPS} ${LABEL[v]} failed: ${(err as Error).message.slice(0, 600)}`)
      }
    }
  }
} finally {
  if (client !== undefined) await stop(client)
  redisInfo.disconnect()
  redis.proc.kill('SIGKILL')
}
const loadEnd = os.loadavg().map((x) => Number(x.toFixed(2)))
const med = { hub: summarize(runs.hub), 'resumable-stream': summarize(runs['resumable-stream']) }

const tables = [
  table(`1. resume GET on instance B; answer on A: ${DELTAS.toLocaleString('en-US')} deltas produced, still in progress (median of ${RESUMES} × ${REPS})`, [
    ['resume_first_chunk_ms', 'request → first chunk, ms'],
    ['resume_whole_ms', `request → the whole answer so far (${SO_FAR.toLocaleString('en-US')} chunks), ms`],
    ['resume_first_type', 'the first chunk'],
    ['resume_bytes', 'bytes received']
  ], med),
  table(`2. ${VIEWERS} viewers of one answer (resume GETs, half on A, half on B) + the POST; ${DELTAS.toLocaleString('en-US')} deltas at ${PACE}/s`, [
    ['fan_server_cpu_us_per_chunk', 'server CPU µs per delivered chunk (A + B)'],
    ['fan_producer_cpu_us_per_chunk', '… of which the producing instance (A)'],
    ['fan_redis_cpu_us_per_chunk', 'redis-server CPU µs per delivered chunk'],
    ['fan_delivered_ratio', 'chunks delivered / expected'],
    ['fan_last_end_ms', 'release → last response ended, ms']
  ], med),
  table(`3. producer's process SIGKILLed after ${Math.floor(DELTAS / 2).toLocaleString('en-US')} of ${DELTAS.toLocaleString('en-US')} deltas; times from the kill`, [
    ['kill_post_chunks', 'chunks the POST on A had when the kill was sent'],
    ['kill_viewer_outcome', 'viewer on B (connected before): what it got'],
    ['kill_viewer_chunks', '… chunks'],
    ['kill_viewer_error_ms', '… error chunk at, ms'],
    ['kill_viewer_end_ms', '… response ended at, ms'],
    ['kill_resume_outcome', 'resume GET on B right after the kill'],
    ['kill_resume_chunks', '… chunks'],
    ['kill_resume_end_ms', '… response ended at, ms'],
    ['kill_resume_late_outcome', `resume GET on B ${Math.round(OBSERVE_MS / 2000)} s after the kill`]
  ], med)
]
const errorTexts = [...new Set(Object.values(runs).flat().flatMap((r) => Object.entries(r).filter(([k]) => k.endsWith('_error_text')).map(([, x]) => String(x))))]
if (errorTexts.length > 0) tables[2] += `\n\nerror chunks' errorText: ${errorTexts.map((t) => `"${t}"`).join(', ')}`
const seconds = ((Date.now() - t0) / 1000).toFixed(0)
console.log(`\nMedians of ${REPS} interleaved run(s) (${seconds} s; load average at start ${loadStart.join(' ')}, at end ${loadEnd.join(' ')}); ` +
  `a text cell lists each distinct outcome; still open = at ${OBSERVE_MS / 1000} s after the kill:\n\n${tables.join('\n\n')}\n`)

const result = {
  env: { date: new Date(t0).toISOString(), node: process.version, nproc: os.cpus().length, taskset: hasTaskset, loadStart, loadEnd, resumableStream: rsVersion, seconds: Number(seconds) },
  options: { reps: REPS, deltas: DELTAS, pace: PACE, viewers: VIEWERS, resumes: RESUMES, warmResumes: WARM_RESUMES, leaseMs: LEASE_MS, hubMaxLen: HUB_MAX_LEN, observeMs: OBSERVE_MS },
  runs,
  medians: med,
  tables
}
if (RESULTS_FILE !== undefined && existsSync(RESULTS_FILE)) {
  const all = JSON.parse(readFileSync(RESULTS_FILE, 'utf8')) as Record<string, unknown>
  writeFileSync(RESULTS_FILE, JSON.stringify({ ...all, aiResume: result }, null, 2) + '\n')
  console.log(`results: ${RESULTS_FILE} (aiResume)`)
} else {
  const file = RESULTS_FILE ?? join(root, 'bench', 'results', `${new Date(t0).toISOString().replace(/[:.]/g, '-')}-ai-resume.json`)
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n')
  console.log(`results: ${file}`)
}
process.exit(Object.values(runs).every((r) => r.length > 0) ? 0 : 1)
