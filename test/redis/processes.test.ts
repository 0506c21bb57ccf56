/*
 * Two separate Node processes, each with its own hub, share one Redis: what one
 * broadcasts, clients of both receive, in one order; a client can move between them.
 */
import t, { type Test } from 'tap'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { connect, ids, spawnScript, type SseClient } from '../helper.js'
import { redisOrSkip } from './helper.js'

const redis = await redisOrSkip(t)
const FIXTURE = fileURLToPath(new URL('./fixtures/instance.ts', import.meta.url))

async function startProcess (t: Test, redisUrl: string): Promise<{ url: string, pid: number }> {
  const child = spawnScript(t, FIXTURE, { REDIS_URL: redisUrl, SSE_HUB_TEST_INSTANCE: '1' })
  const lines = createInterface({ input: child.stdout! })
  const timer = setTimeout(() => { child.kill('SIGKILL') }, 30_000)
  try {
    for await (const line of lines) return JSON.parse(line)
  } finally {
    clearTimeout(timer)
  }
  throw new Error('the hub process exited before listening')
}

async function broadcast (base: string, session: string, text: string): Promise<string> {
  const res = await fetch(`${base}/broadcast/${session}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: text })
  })
  return (await res.json() as { id: string }).id
}

if (redis !== undefined) {
  t.test('two processes serve one set of sessions', async (t) => {
    const [p1, p2] = await Promise.all([startProcess(t, redis.url), startProcess(t, redis.url)])
    t.not(p1.pid, p2.pid)
    const clients = await Promise.all([
      connect(`${p1.url}/conversations/p/stream`),
      connect(`${p1.url}/conversations/p/stream`),
      connect(`${p2.url}/conversations/p/stream`)
    ])
    const n = 25
    await Promise.all([
      (async () => { for (let i = 0; i < n; i++) await broadcast(p1.url, 'p', `one${i}`) })(),
      (async () => { for (let i = 0; i < n; i++) await broadcast(p2.url, 'p', `two${i}`) })()
    ])
    for (const c of clients) await c.receive(2 * n)
    const reference = clients[0] as SseClient
    for (const c of clients) t.same(ids(c), ids(reference), 'one order, one set of ids, across processes')
    t.equal(new Set(ids(reference)).size, 2 * n)

    // Reconnect to the other process with the id the first one gave.
    const moving = clients[2] as SseClient
    const last = ids(moving)[2 * n - 1] as string
    moving.close()
    const missed = [await broadcast(p2.url, 'p', 'm1'), await broadcast(p1.url, 'p', 'm2')]
    const moved = await connect(`${p1.url}/conversations/p/stream`, { 'last-event-id': last })
    await moved.receive(2)
    t.same(ids(moved), missed, 'exactly the missed events')
  })
}
