// Another build of this project, for before/after comparisons in one interleaved run (opt-in):
// BENCH_HUB_BASELINE=/path/to/other/checkout/dist/index.js npm run bench -- --variants=hub,hub-baseline,...
// It serves the stream() route exactly as the hub variant does.
import Fastify, { type FastifyPluginAsync } from 'fastify'
import { pathToFileURL } from 'node:url'
import type { SseHub } from '../../src/index.js'
import { hubOptions, serve } from './hub.js'
import type { Variant } from './types.js'

export async function create (): Promise<Variant> {
  const path = process.env.BENCH_HUB_BASELINE
  if (path === undefined) throw new Error('hub-baseline needs BENCH_HUB_BASELINE=<a built dist/index.js>')
  const sseHub = (await import(pathToFileURL(path).href) as { default: FastifyPluginAsync<Record<string, unknown>> }).default
  const app = Fastify({ logger: false })
  await app.register(sseHub, hubOptions())
  const sse = (app as unknown as { sse: SseHub }).sse
  app.get('/s/:id', sse.stream('conversation'))
  return serve(app, sse)
}
