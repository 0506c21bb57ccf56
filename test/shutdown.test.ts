import t from 'tap'
import http from 'node:http'
import { buildApp, connect, listen } from './helper.js'

t.test('fastify.close() ends every open stream in preClose and resolves, even with 1,000 streams', async (t) => {
  const app = await buildApp({ heartbeatInterval: 1000 })
  const url = await listen(app)
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity })
  t.teardown(() => agent.destroy())
  const { port } = new URL(url)
  const ended: Promise<boolean>[] = []
  let connected = 0
  await Promise.all(Array.from({ length: 1000 }, async (_, i) => {
    await new Promise<void>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path: `/${i % 2 === 0 ? 'conversations' : 'debates'}/s${i % 10}/stream`, agent }, (res) => {
        res.once('data', () => { connected++; resolve() })
        ended.push(new Promise((resolve) => {
          res.on('end', () => resolve(true))
          res.on('error', () => resolve(false))
          res.resume()
        }))
      })
      req.on('error', reject)
    })
  }))
  t.equal(connected, 1000)
  t.equal(app.sse.getStats().clients, 1000)
  const started = process.hrtime.bigint()
  await app.close()
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  t.comment(`close() with 1,000 open streams took ${ms.toFixed(1)} ms`)
  const results = await Promise.all(ended)
  t.ok(results.every(Boolean), 'every client saw a clean end')
  t.equal(app.sse.getStats().clients, 0)
})

t.test('a stream opened after close began is refused with 503', async (t) => {
  const app = await buildApp()
  await app.ready()
  app.sse.endAll()
  const res = await app.inject('/conversations/x/stream')
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'FST_ERR_SSE_HUB_CLOSING')
  await app.close()
})

t.test('a single stream does not hold close() open', async (t) => {
  const app = await buildApp()
  const url = await listen(app)
  const c = await connect(`${url}/conversations/x/stream`)
  await app.close()
  await c.end()
  t.equal(c.res?.complete, true)
})
