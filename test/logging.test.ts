/* What the hub logs through Fastify's logger: debug lines for a stream's start and end, only when debug is on. */
import t from 'tap'
import { buildApp, connect, lines, listen, waitFor } from './helper.js'

t.test('with a debug-level logger, a stream\'s start and end are logged with its kind, session and client', async (t) => {
  const { stream, logged } = lines()
  const app = await buildApp({ heartbeatInterval: 0 }, { logger: { level: 'debug', stream } })
  const url = await listen(app, t)
  const c = await connect(`${url}/conversations/s1/stream?lastEventId=nope`)
  c.close()
  await waitFor(() => logged.some((l) => l.msg === 'sse client disconnected'), 'disconnect logged')
  const mine = logged.filter((l) => typeof l.msg === 'string' && (l.msg as string).startsWith('sse client'))
  t.match(mine, [
    { level: 20, msg: 'sse client connected', kind: 'conversation', sessionId: 's1', clientId: c.clientId, welcome: 'resync' },
    { level: 20, msg: 'sse client disconnected', kind: 'conversation', sessionId: 's1', clientId: c.clientId }
  ])
})

t.test('at info level nothing of it is logged', async (t) => {
  const { stream, logged } = lines()
  const app = await buildApp({ heartbeatInterval: 0 }, { logger: { level: 'info', stream } })
  const url = await listen(app, t)
  const c = await connect(`${url}/conversations/s1/stream`)
  c.close()
  await waitFor(() => app.sse.getStats().clients === 0, 'client gone')
  t.same(logged.filter((l) => typeof l.msg === 'string' && (l.msg as string).startsWith('sse client')), [])
})
