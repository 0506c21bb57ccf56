/*
 * ioredis is an optional peer dependency: in a process where it cannot be found, the in-memory hub works (the
 * package never loads ioredis for it), and `register` with a Redis backplane fails with FST_ERR_SSE_HUB_IOREDIS_MISSING,
 * saying what to install. The packed-tarball test shows the same in a project that never installed it.
 */
import t from 'tap'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { connect, spawnScript } from '../helper.js'

const FIXTURE = fileURLToPath(new URL('./fixtures/without-ioredis.ts', import.meta.url))
const HIDE = fileURLToPath(new URL('./fixtures/no-ioredis.mjs', import.meta.url))

interface Failure { code?: string, message: string, cause?: string }

t.test('without ioredis: the in-memory hub streams, a Redis backplane fails register with what to install', async (t) => {
  const child = spawnScript(t, FIXTURE, { SSE_HUB_TEST_WITHOUT_IOREDIS: '1' }, [HIDE])
  let first: string | undefined
  for await (const line of createInterface({ input: child.stdout! })) { first = line; break }
  t.ok(first, 'the process printed its results')
  const { url, ioredis, redis } = JSON.parse(first!) as { url: string, ioredis: Failure, redis: Failure }

  // Node's message (its code does not cross tap's module loader thread, so it is not compared).
  const notFound = "Cannot find package 'ioredis' imported from /"
  t.equal(ioredis.message, notFound, 'ioredis cannot be found in that process')
  t.equal(redis.code, 'FST_ERR_SSE_HUB_IOREDIS_MISSING')
  t.equal(redis.message, `fastify-sse-hub: the Redis backplane needs the 'ioredis' package, which could not be loaded (${notFound}); install it: npm install ioredis`)
  t.equal(redis.cause, notFound, "Node's error is its cause")

  const c = await connect(`${url}/streams/s`)
  t.teardown(() => { c.close() })
  const res = await fetch(`${url}/say/s`, { method: 'POST' })
  t.equal(res.status, 200)
  const [e] = await c.receive(1)
  t.equal(e?.json.token, 'no Redis needed')
})
