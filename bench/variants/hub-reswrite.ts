// The hub with its direct socket path off (opt-in): every response's write is wrapped, as compression or
// instrumentation would, so the hub writes through res.write(). Against the hub variant, what the direct path buys
// on the Node line that runs the bench (perf note 17).
import Fastify from 'fastify'
import sseHub from '../../src/index.js'
import { hubOptions, serve } from './hub.js'
import type { Variant } from './types.js'

export async function create (): Promise<Variant> {
  const app = Fastify({ logger: false })
  await app.register(sseHub, hubOptions())
  app.addHook('onRequest', async (request, reply) => {
    const res = reply.raw
    const write = res.write
    res.write = function (this: typeof res, ...args: Parameters<typeof write>) { return write.apply(this, args) } as typeof write
  })
  app.get('/s/:id', app.sse.stream('conversation'))
  return serve(app, app.sse)
}
