import t from 'tap'
import Fastify from 'fastify'
import sseHub, { FST_ERR_SSE_HUB_INVALID_OPTION } from '../src/index.js'
import { resolveOptions } from '../src/options.js'

t.test('defaults', async (t) => {
  const o = resolveOptions(undefined)
  t.same(o.sessionIdPattern, /^[A-Za-z0-9_-]{1,128}$/)
  t.equal(o.heartbeatInterval, 15_000)
  t.equal(o.cleanupInterval, 60_000)
  t.equal(o.maxConnectionAge, 3_600_000)
  t.equal(o.historySize, 1000)
  t.equal(o.maxBufferedBytes, 1_048_576)
  t.equal(o.authorize, undefined)
  t.ok(Object.isFrozen(o), 'frozen')
  t.same(resolveOptions(null), o)
})

t.test('a resolved copy never mutates the input', async (t) => {
  const input = { historySize: 5, heartbeatInterval: undefined, prefix: '/x' }
  const snapshot = { ...input }
  const o = resolveOptions(input)
  t.same(input, snapshot)
  t.equal(o.historySize, 5)
  t.equal(o.heartbeatInterval, 15_000, 'undefined means default')
  t.notOk('prefix' in o, "Fastify's own register keys are ignored")
})

t.test('accepted values', async (t) => {
  const authorize = (): boolean => true
  const o = resolveOptions({ maxClients: Infinity, maxConnectionAge: Infinity, authorize, sessionIdPattern: /^x$/ })
  t.equal(o.maxClients, Infinity)
  t.equal(o.authorize, authorize)
})

t.test('kinds, maxSessions and fanOutSlice: defaults, and frozen copies of what is given', async (t) => {
  const d = resolveOptions({})
  t.same(d.kinds, [])
  t.equal(d.maxSessions, 100_000)
  t.same(d.fanOutSlice, { sliceMs: 3, checkEvery: 32 })
  const kinds = ['chat']
  const o = resolveOptions({ kinds, maxSessions: Infinity, fanOutSlice: { checkEvery: 1 } })
  t.same(o.kinds, ['chat'])
  t.not(o.kinds, kinds, 'a copy')
  t.ok(Object.isFrozen(o.kinds) && Object.isFrozen(o.fanOutSlice))
  t.same(o.fanOutSlice, { sliceMs: 3, checkEvery: 1 }, 'what is not given keeps its default')
})

const bad: Array<[unknown, RegExp]> = [
  ['nope', /options: must be an object/],
  [[1], /options: must be an object/],
  [{ heartbeatIntervall: 5 }, /'heartbeatIntervall': unknown option/],
  [{ heartbeatInterval: '5' }, /'heartbeatInterval': must be a number/],
  [{ heartbeatInterval: NaN }, /'heartbeatInterval': must be a number/],
  [{ heartbeatInterval: -1 }, /'heartbeatInterval': must be an integer from 0 to 2147483647$/],
  [{ retry: 1.5 }, /'retry': must be an integer/],
  [{ heartbeatInterval: Infinity }, /'heartbeatInterval': must be an integer/],
  [{ maxClients: 0 }, /'maxClients': must be an integer from 1 to \d+ \(or Infinity\)/],
  [{ sessionIdPattern: '^x$' }, /'sessionIdPattern': must be a RegExp/],
  [{ authorize: true }, /'authorize': must be a function/],
  [{ historyBytes: 2048, maxBufferedBytes: 1024 }, /'historyBytes': must not exceed maxBufferedBytes/],
  [{ toString: 1 }, /'toString': unknown option/],
  [{ maxSessions: 0 }, /'maxSessions': must be an integer from 1/],
  [{ fanOutSlice: 3 }, /'fanOutSlice': must be an object/],
  [{ fanOutSlice: { sliceMs: 3, every: 2 } }, /'fanOutSlice': has unknown keys \(every\)/],
  [{ fanOutSlice: { sliceMs: -1 } }, /'fanOutSlice': must be an integer from 0 to 1000/],
  [{ fanOutSlice: { checkEvery: 0 } }, /'fanOutSlice': must be an integer from 1 to 1000000/]
]
for (const [input, message] of bad) {
  t.test(`rejects ${JSON.stringify(input)}`, async (t) => {
    t.throws(() => resolveOptions(input), { code: 'FST_ERR_SSE_HUB_INVALID_OPTION', message })
  })
}

t.test('register fails with FST_ERR_SSE_HUB_INVALID_OPTION naming the option', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  // @ts-expect-error an unknown option is a compile error too
  app.register(sseHub, { maxClientz: 1 })
  const err = await app.ready().then(() => undefined, (e: Error) => e)
  t.ok(err instanceof FST_ERR_SSE_HUB_INVALID_OPTION)
  t.match(err?.message, /'maxClientz'/)
})
