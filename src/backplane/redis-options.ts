/*
 * The options of redisBackplane(): their type and documentation, defaults and checks
 * (FST_ERR_SSE_HUB_INVALID_OPTION), and how a Redis URL is shown in messages. No type here names ioredis's: an
 * application without Redis type-checks without ioredis installed (it is an optional peer dependency).
 */
import { FST_ERR_SSE_HUB_INVALID_OPTION } from '../errors.js'

/**
 * An ioredis client, a `Redis` or a `Cluster`, described by the members the hub checks, so that these types need
 * none of ioredis's.
 */
export interface IoredisClient {
  readonly status: string
  readonly isCluster: boolean
  duplicate (...args: never[]): unknown
  xrange (...args: never[]): unknown
}

/** A Redis Cluster node to start from. */
export interface RedisClusterNode {
  host: string
  port: number
}

/** Options of {@link redisBackplane}. Give `url`, `cluster` or `client`. */
export interface RedisBackplaneOptions {
  /** Where Redis is, e.g. `redis://127.0.0.1:6379` (`rediss://` for TLS). The hub opens and closes two connections. */
  url?: string
  /**
   * A Redis Cluster (Redis 7 or later) instead of `url`: some of its nodes, e.g. `[{ host: '10.0.0.1', port: 6379 }]`;
   * the others are found from them. A session's keys share one hash slot; its live events go over
   * sharded pub/sub (`SPUBLISH` / `SSUBSCRIBE`), on the shard that holds it. See docs/redis.md.
   */
  cluster?: readonly RedisClusterNode[]
  /**
   * Your ioredis client instead of `url`: the hub sends its commands through it and opens one
   * `client.duplicate()` for its subscriptions (for a `Cluster`, one connection per master that holds
   * a followed session). `fastify.close()` leaves your client open.
   */
  client?: IoredisClient
  /** Prefix of every key and channel the hub uses. Default `'sse-hub:'`. */
  keyPrefix?: string
  /** Events kept per session stream (`XADD … MAXLEN ~ maxLen`: at least this many). Default 1000. */
  maxLen?: number
  /** A session's stream expires this many ms after its last broadcast; 0 never. Default 86400000 (one day). */
  streamTtl?: number
  /** Milliseconds `register` waits for Redis before failing with `FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE`. Default 10000. */
  connectTimeout?: number
  /** Milliseconds a Redis command may take on the connections the hub opens before it fails. Default 5000. */
  commandTimeout?: number
  /**
   * Milliseconds a broadcast may wait for Redis while it is unreachable (connection lost, or a
   * command failed with a connection error or timed out). A session's broadcasts wait in order and,
   * once Redis answers, are appended exactly once each (a broadcast whose reply was lost is re-sent
   * and recognised by its producer id and sequence number). Past it the broadcast rejects with
   * `FST_ERR_SSE_HUB_BROADCAST_FAILED`. `0`: a broadcast fails at once while Redis is unreachable. Default 5000.
   */
  publishRetryMs?: number
  /**
   * Bytes of broadcasts (event type and data) held while Redis is unreachable (or, with `waitReplicas`, while its
   * replicas are behind): past it a new broadcast rejects at once with `FST_ERR_SSE_HUB_BROADCAST_FAILED`, so memory
   * stays bounded. Default 1048576 (1 MiB).
   */
  publishRetryBytes?: number
  /**
   * Replicas that must acknowledge a broadcast before it resolves: the publish script is followed by
   * `WAIT waitReplicas waitTimeout` on the same connection. While fewer acknowledge, the broadcast is
   * re-sent (the script recognises it and only the WAIT is repeated) within `publishRetryMs`; past it,
   * it rejects with `FST_ERR_SSE_HUB_BROADCAST_FAILED` although the master stored it and its clients
   * may have received it (docs/redis.md, "Durability"). `0`: no WAIT, Redis' asynchronous replication. Default 0.
   */
  waitReplicas?: number
  /** Milliseconds one `WAIT` waits for `waitReplicas` acknowledgements; below `commandTimeout`. Default 1000. */
  waitTimeout?: number
  /**
   * More ioredis options (its `RedisOptions`) for the connections opened from `url` or to `cluster` nodes
   * (password, tls, db, …). Typed as an object so that an application without ioredis needs no ioredis types;
   * with ioredis installed, `redisOptions: { … } satisfies RedisOptions` checks them.
   */
  redisOptions?: object
}

/** Checked options with their defaults: exactly one of `url`, `cluster` and `client`. */
export type ResolvedRedisOptions = Required<Omit<RedisBackplaneOptions, 'url' | 'cluster' | 'client'>> & Pick<RedisBackplaneOptions, 'url' | 'cluster' | 'client'>

const DEFAULTS = { keyPrefix: 'sse-hub:', maxLen: 1000, streamTtl: 86_400_000, connectTimeout: 10_000, commandTimeout: 5000, publishRetryMs: 5000, publishRetryBytes: 1_048_576, waitReplicas: 0, waitTimeout: 1000, redisOptions: {} }

const positive = (min: number, max: number) => (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max

const isNode = (n: unknown): boolean => typeof n === 'object' && n !== null && typeof (n as RedisClusterNode).host === 'string' &&
  (n as RedisClusterNode).host !== '' && positive(1, 65535)((n as RedisClusterNode).port)

const CHECKS: { readonly [K in keyof RedisBackplaneOptions]-?: [(v: unknown) => boolean, string] } = {
  url: [(v) => typeof v === 'string' && /^rediss?:\/\//.test(v), 'must be a redis:// or rediss:// URL'],
  cluster: [(v) => Array.isArray(v) && v.length > 0 && v.every(isNode), 'must be a non-empty array of { host, port }'],
  client: [(v) => typeof v === 'object' && v !== null && typeof (v as IoredisClient).duplicate === 'function' && typeof (v as IoredisClient).xrange === 'function', 'must be an ioredis client'],
  keyPrefix: [(v) => typeof v === 'string' && v.length <= 128, 'must be a string of at most 128 characters'],
  maxLen: [positive(1, 100_000_000), 'must be an integer from 1 to 100000000'],
  streamTtl: [positive(0, Number.MAX_SAFE_INTEGER), 'must be an integer >= 0'],
  connectTimeout: [positive(1, 2 ** 31 - 1), 'must be an integer from 1 to 2147483647'],
  commandTimeout: [positive(1, 2 ** 31 - 1), 'must be an integer from 1 to 2147483647'],
  publishRetryMs: [positive(0, 2 ** 31 - 1), 'must be an integer from 0 to 2147483647'],
  publishRetryBytes: [positive(1, Number.MAX_SAFE_INTEGER), 'must be an integer >= 1'],
  waitReplicas: [positive(0, 1000), 'must be an integer from 0 to 1000'],
  waitTimeout: [positive(1, 2 ** 31 - 1), 'must be an integer from 1 to 2147483647'],
  redisOptions: [(v) => typeof v === 'object' && v !== null, 'must be an object']
}

/** Checks the options of redisBackplane() (`FST_ERR_SSE_HUB_INVALID_OPTION`) and fills in the defaults. */
export function resolveRedisOptions (options: RedisBackplaneOptions): ResolvedRedisOptions {
  if (typeof options !== 'object' || options === null) throw new FST_ERR_SSE_HUB_INVALID_OPTION('redisBackplane: options must be an object')
  const resolved: Record<string, unknown> = { ...DEFAULTS }
  for (const key of Object.keys(options)) {
    const check = CHECKS[key as keyof RedisBackplaneOptions]
    if (check === undefined) throw new FST_ERR_SSE_HUB_INVALID_OPTION(`redisBackplane '${key}': unknown option`)
    const value = (options as Record<string, unknown>)[key]
    if (value === undefined) continue
    if (!check[0](value)) throw new FST_ERR_SSE_HUB_INVALID_OPTION(`redisBackplane '${key}': ${check[1]}`)
    resolved[key] = value
  }
  if ([resolved.url, resolved.cluster, resolved.client].filter((v) => v !== undefined).length !== 1) {
    throw new FST_ERR_SSE_HUB_INVALID_OPTION('redisBackplane: give exactly one of `url`, `cluster` and `client`')
  }
  // A WAIT that outlasts its command timeout would be cut by ioredis before Redis answers it.
  if ((resolved.waitReplicas as number) > 0 && (resolved.waitTimeout as number) >= (resolved.commandTimeout as number)) {
    throw new FST_ERR_SSE_HUB_INVALID_OPTION(`redisBackplane 'waitTimeout': must be below commandTimeout (${String(resolved.commandTimeout)} ms)`)
  }
  return resolved as unknown as ResolvedRedisOptions
}

/** A URL for messages: without its password. */
export function redactUrl (url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@')
}
