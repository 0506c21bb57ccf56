/*
 * The Redis backplane's ioredis connections: waiting until one is ready, and the
 * FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE error when Redis cannot be used.
 */
import type { Cluster, Redis } from 'ioredis'
import { FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE } from '../errors.js'

/** Resolves when `conn` is ready; its own `connect()` when it has not started. */
export async function connect (conn: Redis | Cluster): Promise<void> {
  if (conn.status === 'ready') return
  if (conn.status === 'wait') return conn.connect()
  await new Promise<void>((resolve) => { conn.once('ready', resolve) })
}

export function unavailable (err: unknown): Error {
  return new FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE((err as Error).message, { cause: err })
}
