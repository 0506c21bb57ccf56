/*
 * What the Redis backplane logs while Redis is in trouble (a real redis-server, killed and restarted): a start-up
 * failure is the register error with its cause and nothing else; an outage is one warn line with the cause, not a
 * stack trace per retry, then one line when it is over; a broadcast that fails is the caller's rejection, not a
 * log line as well. The one-line-a-minute rule on a fake clock.
 */
import t from 'tap'
import Fastify from 'fastify'
import sseHub, { redisBackplane } from '../../src/index.js'
import { OUTAGE_LOG_INTERVAL_MS, OutageLog } from '../../src/backplane/redis-outage.js'
import { lines, waitFor } from '../helper.js'
import { connected, freePort, redisOrSkip } from './helper.js'

const redis = await redisOrSkip(t)

if (redis !== undefined) {
  t.test('Redis unreachable at start: the register error names the cause, and nothing is logged', async (t) => {
    const { stream, logged } = lines()
    const app = Fastify({ logger: { level: 'debug', stream } })
    t.teardown(() => app.close())
    const port = await freePort()
    await t.rejects(async () => { await app.register(sseHub, { backplane: redisBackplane({ url: `redis://127.0.0.1:${port}`, connectTimeout: 2000 }) }) }, {
      code: 'FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE',
      message: new RegExp(`cannot connect to Redis \\(redis://127\\.0\\.0\\.1:${port}\\): connect ECONNREFUSED 127\\.0\\.0\\.1:${port}$`)
    })
    t.same(logged.filter((l) => (l.level as number) >= 40), [], 'no warning or error line besides the error')
  })

  t.test('Redis lost while running: one warn line with the cause, one when it is back; a failed broadcast is not logged', async (t) => {
    const { stream, logged } = lines()
    const watched = Fastify({ logger: { level: 'info', stream } })
    t.teardown(() => watched.close())
    await watched.register(sseHub, { backplane: redisBackplane({ url: redis.url, publishRetryMs: 200, connectTimeout: 2000 }) })
    await watched.ready()
    t.ok(connected(watched))

    await redis.kill()
    await waitFor(() => watched.sse.getStats().backplane.errors >= 8, 'several failed retries')
    await t.rejects(watched.sse.broadcastToConversation('s', 'conversation_error', { sessionId: 's', error: 'x' }), { code: 'FST_ERR_SSE_HUB_BROADCAST_FAILED' })
    const warned = logged.filter((l) => (l.level as number) >= 40)
    t.equal(warned.length, 1, `one line for ${watched.sse.getStats().backplane.errors} errors: ${JSON.stringify(warned)}`)
    t.match(warned[0], { level: 40, cause: /ECONNREFUSED/, msg: new RegExp(`^sse-hub: Redis backplane \\(redis://127\\.0\\.0\\.1:${redis.port}\\): connect ECONNREFUSED .*; retrying$`) })
    t.notOk('err' in warned[0]! || 'stack' in warned[0]!, 'no stack trace')

    await redis.restart()
    await waitFor(() => connected(watched), 'connected again')
    t.match(logged.at(-1), { level: 30, msg: /^sse-hub: Redis backplane \(redis:\/\/127\.0\.0\.1:\d+\): connected again after \d+\.\d s$/ })
    t.equal(logged.filter((l) => (l.level as number) >= 40).length, 1, 'still that one warning')
  })
}

t.test('OutageLog: the first error of an outage, then one line per interval with the count, then its end', async (t) => {
  let now = 1_000
  const seen: Array<[string, unknown, string]> = []
  const logger = {
    warn (o: unknown, msg: string) { seen.push(['warn', o, msg]) },
    info (msg: string) { seen.push(['info', undefined, msg]) }
  } as never
  const log = new OutageLog('here', () => now)
  log.recovered(logger)
  t.same(seen, [], 'no outage, nothing to end')
  log.error(undefined, new Error('before start'))
  t.same(seen, [], 'before start: only remembered')
  t.equal(log.last?.message, 'before start')

  const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })
  const reset = Object.assign(new Error('read failed'), { code: 'ECONNRESET' })
  log.error(logger, refused)
  for (let i = 0; i < 5; i++) { now += 1000; log.error(logger, refused) }
  t.equal(seen.length, 1, 'one line for six errors within the interval')
  t.same(seen[0], ['warn', { cause: 'connect ECONNREFUSED' }, 'sse-hub: Redis backplane (here): connect ECONNREFUSED; retrying'])
  now = 1_000 + OUTAGE_LOG_INTERVAL_MS
  log.error(logger, reset)
  t.same(seen[1], ['warn', { cause: 'read failed (ECONNRESET)', errors: 6 }, 'sse-hub: Redis backplane (here): still failing after 60.0 s (6 errors since the last line): read failed (ECONNRESET)'])
  now += 500
  log.recovered(logger)
  t.same(seen[2], ['info', undefined, 'sse-hub: Redis backplane (here): connected again after 60.5 s'])
  log.error(logger, refused)
  t.equal(seen.length, 4, 'a new outage: a first line again')
})
