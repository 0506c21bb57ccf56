/*
 * The example's Prometheus endpoint (`METRICS=1 npm start`): a prom-client registry of its own for the hub's
 * metrics, served as `GET /metrics` in the registry's text format.
 */
import type { FastifyInstance } from 'fastify'
import { Registry } from 'prom-client'

/** A registry for the hub's metrics (pass it as the hub's `metrics.registry`). */
export function metricsRegistry (): Registry {
  return new Registry()
}

/** `GET /metrics`: what Prometheus scrapes. */
export function registerMetricsRoute (app: FastifyInstance, registry: Registry): void {
  app.get('/metrics', async (request, reply) => {
    reply.header('content-type', registry.contentType)
    return await registry.metrics()
  })
}
