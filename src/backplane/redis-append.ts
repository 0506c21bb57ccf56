/*
 * How one broadcast reaches Redis: the publish script (its cached sha, else the script itself), and,
 * with `waitReplicas`, the `WAIT` sent right behind it on the same connection.
 */
import { PUBLISH_SCRIPT, PUBLISH_SHA } from './redis-stream.js'
import type { Commands } from './redis-topology.js'

/** Appends and announces one broadcast (the publish script's keys and arguments); resolves with its id. */
export type Append = (cmd: Commands, keys: readonly string[], args: ReadonlyArray<string | number>) => Promise<string>

/**
 * The master stored and announced the broadcast, but fewer replicas than `waitReplicas` acknowledged
 * it within `waitTimeout`. Not a reply error: the broadcast may be re-sent, and the publish script
 * answers the re-send with the id it stored, so only the WAIT is repeated.
 */
export class NotReplicatedError extends Error {
  override readonly name = 'NotReplicatedError'
}

/** Runs `send` with the script's sha; after a flushed script cache (SCRIPT FLUSH), with the script itself. */
async function withScript<T> (send: (script: 'evalsha' | 'eval', body: string) => Promise<T>): Promise<T> {
  try {
    return await send('evalsha', PUBLISH_SHA)
  } catch (err) {
    if (!(err as Error).message.startsWith('NOSCRIPT')) throw err
    return await send('eval', PUBLISH_SCRIPT)
  }
}

/**
 * On a Cluster, ioredis follows a redirection of a pipeline only when every command in it got the same
 * one, and `WAIT` (no key) never does: a MOVED, ASK, TRYAGAIN or CLUSTERDOWN answered to the script is
 * then a broadcast not stored, to hold and re-send once the slots are read again (as ioredis does for a
 * single command), not a failure.
 */
function redirected (err: Error): Error {
  return /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN) /.test(err.message) ? new Error(`the cluster redirected the broadcast (${err.message})`, { cause: err }) : err
}

/** The publish script alone: acknowledged by the master, replicated asynchronously. */
export const append: Append = (cmd, keys, args) => withScript((script, body) => cmd[script](body, keys.length, ...keys, ...args) as Promise<string>)

/**
 * The publish script, then `WAIT replicas timeout` in the same pipeline: on one connection, and on a
 * Cluster routed by the script's keys to the session's master (the WAIT with it); a redirection is
 * re-sent after the slots are read again (see {@link redirected}). Rejects with {@link NotReplicatedError}
 * when fewer replicas acknowledge in time. One WAIT per broadcast: perf note 41.
 */
export function appendAndWait (replicas: number, timeout: number): Append {
  return async (cmd, keys, args) => {
    const [id, acks] = await withScript(async (script, body) => {
      const replies = await cmd.pipeline()[script](body, keys.length, ...keys, ...args).wait(replicas, timeout).exec() as Array<[Error | null, unknown]>
      const failed = replies.find(([err]) => err !== null)
      if (failed !== undefined) throw redirected(failed[0] as Error)
      return replies.map(([, reply]) => reply) as [string, number]
    })
    if (acks < replicas) throw new NotReplicatedError(`the master stored and announced it as ${id}, but ${acks} of ${replicas} replicas acknowledged it within waitTimeout (${timeout} ms)`)
    return id
  }
}
