/*
 * End to end with a real Prometheus server: it scrapes the example server's `GET /metrics` (METRICS=1) every
 * second while the test opens streams and broadcasts, and its HTTP API then answers with the right values.
 * Skipped loudly when no `prometheus` binary can run, unless SSE_HUB_REQUIRE_PROMETHEUS=1 (CI), then it fails.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { build } from '../example-server.js'
import { componentMissing, connect, listen, token, waitFor } from './helper.js'
import { freePort } from './redis/helper.js'

const BINARY = process.env.SSE_HUB_PROMETHEUS ?? 'prometheus'

/** Starts a private Prometheus scraping `target` (host:port) every second; undefined (skipped or failed) when it cannot run. */
async function prometheusOrSkip (target: string): Promise<string | undefined> {
  const dir = await mkdtemp(path.join(tmpdir(), 'sse-hub-prometheus-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await writeFile(path.join(dir, 'prometheus.yml'), [
    'global:',
    '  scrape_interval: 1s',
    'scrape_configs:',
    '  - job_name: sse_hub',
    '    scrape_interval: 1s',
    '    static_configs:',
    `      - targets: ['${target}']`,
    ''
  ].join('\n'))
  const port = await freePort()
  const api = `http://127.0.0.1:${port}`
  let output = ''
  try {
    const proc = spawn(BINARY, [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`
    ], { stdio: ['ignore', 'pipe', 'pipe'] })
    proc.stdout.on('data', (c: Buffer) => { output += c.toString() })
    proc.stderr.on('data', (c: Buffer) => { output += c.toString() })
    // A process that never started (no binary) emits 'error' and no 'exit'.
    let exited = false
    proc.once('exit', () => { exited = true })
    proc.once('error', () => { exited = true })
    t.teardown(async () => {
      if (exited) return
      proc.kill('SIGKILL')
      await once(proc, 'exit')
    })
    const spawned = once(proc, 'spawn')
    await Promise.race([spawned, once(proc, 'error').then(([err]) => { throw err })])
    await waitFor(async () => {
      if (exited) throw new Error(`prometheus exited: ${output.slice(-500)}`)
      return (await fetch(`${api}/-/ready`).catch(() => undefined))?.ok === true
    }, 'prometheus ready', 30_000)
    return api
  } catch (err) {
    componentMissing(t, 'Prometheus end-to-end test', err, 'Install prometheus (Debian: apt-get install prometheus)', 'SSE_HUB_REQUIRE_PROMETHEUS')
    return undefined
  }
}

/** The value of an instant query's only sample; undefined while Prometheus has none. */
async function query (api: string, promql: string): Promise<number | undefined> {
  const res = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(promql)}`)
  const body = await res.json() as { status: string, data: { result: Array<{ value: [number, string] }> } }
  const sample = body.data.result[0]
  return sample === undefined ? undefined : Number(sample.value[1])
}

const app = await build({ metrics: true })
const url = await listen(app, t)
const api = await prometheusOrSkip(new URL(url).host)

if (api !== undefined) {
  t.test('Prometheus scrapes the example server: open streams and events delivered', async (t) => {
    const stream = `${url}/api/conversations/sessions/e2e/stream`
    const clients = [await connect(stream), await connect(stream), await connect(stream)]
    await app.sse.broadcastToConversation('e2e', 'conversation_token', token('one'))
    await app.sse.broadcastToConversation('e2e', 'conversation_token', token('two'))
    await Promise.all(clients.map(async (c) => await c.receive(2)))
    // The deadline guards against a hang; the condition is what is waited for (scrapes every second).
    await waitFor(async () => await query(api, 'sse_hub_clients{kind="conversation"}') === 3, 'sse_hub_clients{kind="conversation"} == 3 in Prometheus', 30_000)
    await waitFor(async () => await query(api, 'sse_hub_events_delivered_total{kind="conversation"}') === 6, 'sse_hub_events_delivered_total == 6 in Prometheus', 30_000)
    t.equal(await query(api, 'sum(sse_hub_events_delivered_total)'), 6)
    t.equal(await query(api, 'sse_hub_fanout_seconds_count{kind="conversation"}'), 2, 'one fan-out observation per broadcast')
    t.equal(await query(api, 'sse_hub_clients{kind="debate"}'), 0)
    for (const c of clients) c.close()
    await waitFor(async () => await query(api, 'sse_hub_clients{kind="conversation"}') === 0, 'sse_hub_clients back to 0', 30_000)
  })
}
