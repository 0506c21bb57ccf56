/*
 * The Redis backplane's two ioredis connections (commands, subscriptions): waiting until one is
 * ready, and failing with FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE when either is not.
 */
import type { Redis } from 'ioredis'
import { FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE } from '../errors.js'

/** Resolves when `conn` is ready; its own `connect()` when it has not started. */
export async function connect (conn: Redis): Promise<void> {
  if (conn.status === 'ready') return
  if (conn.status === 'wait') return conn.connect()
  await new Promise<void>((resolve) => { conn.once('ready', resolve) })
}

/** Throws unless both connections are ready. */
export function assertConnected (cmd: Redis, sub: Redis): void {
  if (cmd.status !== 'ready' || sub.status !== 'ready') throw new Error(`Redis connection is ${cmd.status}/${sub.status}`)
}

export function unavailable (err: unknown): Error {
  return new FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE((err as Error).message, { cause: err })
}
