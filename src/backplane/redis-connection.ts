/*
 * The Redis backplane's ioredis connections: loading ioredis (an optional peer dependency), waiting until a
 * connection is ready, running a one-key script, and the FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE error when Redis
 * cannot be used.
 */
import type { Cluster, Redis } from 'ioredis'
import { FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE, FST_ERR_SSE_HUB_IOREDIS_MISSING } from '../errors.js'

/** ioredis, loaded when a Redis backplane starts, not with the plugin (perf note 33); FST_ERR_SSE_HUB_IOREDIS_MISSING without it. */
export async function loadIoredis (): Promise<{ Redis: typeof Redis, Cluster: typeof Cluster }> {
  try {
    return await import('ioredis')
  } catch (err) {
    throw new FST_ERR_SSE_HUB_IOREDIS_MISSING((err as Error).message, { cause: err })
  }
}

/** Resolves when `conn` is ready; its own `connect()` when it has not started. */
export async function connect (conn: Redis | Cluster): Promise<void> {
  if (conn.status === 'ready') return
  if (conn.status === 'wait') return conn.connect()
  await new Promise<void>((resolve) => { conn.once('ready', resolve) })
}

export function unavailable (err: unknown): Error {
  return new FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE((err as Error).message, { cause: err })
}

/** Runs a script of one key by its sha, or by its text when Redis does not have it cached (a restart, SCRIPT FLUSH). */
export async function runScript (cmd: Redis | Cluster, sha: string, body: string, key: string, args: Array<string | number>): Promise<unknown> {
  try {
    return await cmd.evalsha(sha, 1, key, ...args)
  } catch (err) {
    if (!(err as Error).message.startsWith('NOSCRIPT')) throw err
    return await cmd.eval(body, 1, key, ...args)
  }
}
