/* The plugin's options: their types, defaults and validation into one frozen copy. */
import type { FastifyRequest } from 'fastify'
import type { Backplane } from './backplane/types.js'
import { FST_ERR_SSE_HUB_INVALID_OPTION } from './errors.js'
import type { SessionKind } from './events.js'
import type { FanOutTuning } from './fanout.js'
import type { MetricsOptions } from './metrics/types.js'

/** What the `authorize` hook is told about the stream being opened. */
export interface AuthorizeContext {
  kind: SessionKind
  sessionId: string
}

/**
 * Decides whether `request` may watch a session. Return `false` for 403; throw an
 * error with a `statusCode` (e.g. `new FST_ERR_SSE_HUB_UNAUTHORIZED()`) for another 4xx.
 * It runs before any SSE byte is written.
 */
export type AuthorizeHook = (request: FastifyRequest, context: AuthorizeContext) => boolean | void | Promise<boolean | void>

/** What the `snapshot` hook returns: the application's state of a session, and the newest event id it includes. */
export interface SessionSnapshot<S = unknown> {
  /** Sent as the `snapshot` event's `state` (JSON). */
  state: S
  /** The id of the newest event `state` includes ('' when it includes none); the client gets every event after it. */
  lastEventId: string
}

/**
 * The application's current state of a session, for a client that joins without `Last-Event-ID` or with one the
 * history no longer covers; `undefined` when there is none. Sync or async; it runs before any SSE byte.
 */
export type SnapshotHook = (kind: SessionKind, sessionId: string, request: FastifyRequest) => SessionSnapshot | undefined | Promise<SessionSnapshot | undefined>

/** Options of `fastify.register(sseHub, options)`. Every one is optional. */
export interface SseHubOptions {
  /** Session ids must match this; others get a 400. Default `/^[A-Za-z0-9_-]{1,128}$/`. */
  sessionIdPattern?: RegExp
  /**
   * The longest, in milliseconds, a client's stream stays silent: a heartbeat comment goes to the clients of
   * every session that has had nothing written to it for about this long (a session streaming events more often
   * gets none). 0 turns them off. Default 15000.
   */
  heartbeatInterval?: number
  /** Milliseconds between stale-connection cleanups (first run after `onReady`); 0 turns it off. Default 60000. */
  cleanupInterval?: number
  /** Streams open this long (ms) are ended cleanly by cleanup, so the client reconnects and resumes. Default 3600000. */
  maxConnectionAge?: number
  /** A session with no clients and no broadcast for this long (ms) is forgotten with its history. Default 600000. */
  idleSessionTtl?: number
  /**
   * A closed session (`close…`) is remembered this long (ms): its clients get its history, `closed`, or 204,
   * and broadcasts to it are refused. Then it is forgotten. Default 3600000 (one hour).
   */
  closedSessionTtl?: number
  /** Base reconnection delay (ms) sent to clients in a `retry:` field. Default 3000. */
  retry?: number
  /** Up to this many ms are added at random to `retry` per client, so a restart does not cause a reconnect storm. Default 1000. */
  retryJitter?: number
  /**
   * Where events go between processes. `'memory'` (default): this process only, history in memory.
   * `redisBackplane({ url })`: every process sharing that Redis serves the same sessions.
   */
  backplane?: 'memory' | Backplane
  /**
   * With a backplane: how long (ms) a producer's lease (`pipe`) outlives its last renewal. It is renewed every
   * `leaseMs` / 3; when its process dies (or stalls), its sessions are closed with `pipe_failed`
   * (`reason: 'lease_lapsed'`) by the processes serving their clients, within about `leaseMs` + 1 s. Default 10000.
   */
  leaseMs?: number
  /** Events kept per session for `Last-Event-ID` replay (with a backplane: the most one replay sends); 0 keeps none. Default 1000. */
  historySize?: number
  /** Encoded bytes kept per session for replay (with a backplane: the most one replay sends); must not exceed `maxBufferedBytes`. Default 262144. */
  historyBytes?: number
  /** Largest encoded event a broadcast may produce. Default 65536. */
  maxEventBytes?: number
  /** A client with more unsent bytes than this is disconnected as too slow. Default 1048576. */
  maxBufferedBytes?: number
  /** Open streams in total (both kinds); past it, 503 with `Retry-After`. Default 10000. */
  maxClients?: number
  /** Open streams per session; past it, 503 with `Retry-After`. Default 10000. */
  maxClientsPerSession?: number
  /**
   * Open streams per client IP (`request.ip`, both kinds); past it, 429 with `Retry-After`.
   * Default Infinity (off): behind a proxy every client shares the proxy's address unless
   * Fastify's `trustProxy` is set, so a finite default would cap the whole audience.
   */
  maxClientsPerIp?: number
  /** Seconds sent in `Retry-After` with a 503 or 429. Default 5. */
  retryAfter?: number
  /** Access check for every new stream. Default: everyone may watch. */
  authorize?: AuthorizeHook
  /**
   * A snapshot for late joiners: a client without `Last-Event-ID`, or with an id that is unknown or older than
   * the history, gets a `snapshot` event with this state, then every event after its `lastEventId`, then live
   * events. Default: none (such a client gets live events, or `resync`).
   */
  snapshot?: SnapshotHook
  /**
   * Session kinds besides `conversation` and `debate`, each matching `^[a-z][a-z0-9_-]{0,31}$`;
   * type their events in `SessionKinds` by declaration merging. Default `[]`.
   */
  kinds?: readonly string[]
  /**
   * Sessions held in memory, every kind together. Past it, the least recently active session without clients
   * is forgotten (with its history) for a new one; when every session has clients, a connection that would
   * open a new session gets 503 with `Retry-After`. Default 100000.
   */
  maxSessions?: number
  /**
   * Advanced: a fan-out round yields to other work once it has run `sliceMs` ms, reading the clock every
   * `checkEvery` clients. Default `{ sliceMs: 3, checkEvery: 32 }`.
   */
  fanOutSlice?: Partial<FanOutTuning>
  /**
   * Prometheus metrics, registered in the application's prom-client `Registry` (prom-client is an optional peer
   * dependency the hub never imports): `{ registry, prefix = 'sse_hub_' }`. Values are read when scraped.
   * Default: none.
   */
  metrics?: MetricsOptions
}

/** Options after defaults and validation; frozen. */
export type ResolvedOptions = Readonly<Required<Omit<SseHubOptions, 'authorize' | 'snapshot' | 'fanOutSlice' | 'metrics'>> & Pick<SseHubOptions, 'authorize' | 'snapshot'> & { fanOutSlice: FanOutTuning, metrics: Readonly<Required<MetricsOptions>> | undefined }>

const DEFAULTS: Required<Omit<SseHubOptions, 'authorize' | 'snapshot' | 'fanOutSlice' | 'metrics'>> & { fanOutSlice: FanOutTuning, metrics: undefined } = {
  sessionIdPattern: /^[A-Za-z0-9_-]{1,128}$/,
  heartbeatInterval: 15_000,
  cleanupInterval: 60_000,
  maxConnectionAge: 3_600_000,
  idleSessionTtl: 600_000,
  closedSessionTtl: 3_600_000,
  retry: 3000,
  retryJitter: 1000,
  backplane: 'memory',
  leaseMs: 10_000,
  historySize: 1000,
  historyBytes: 262_144,
  maxEventBytes: 65_536,
  maxBufferedBytes: 1_048_576,
  maxClients: 10_000,
  maxClientsPerSession: 10_000,
  maxClientsPerIp: Infinity,
  retryAfter: 5,
  kinds: [],
  maxSessions: 100_000,
  fanOutSlice: Object.freeze({ sliceMs: 3, checkEvery: 32 }),
  metrics: undefined
}

type Check = (value: unknown) => string | undefined

// setInterval keeps only 32 bits of milliseconds.
const MAX_TIMER_MS = 2 ** 31 - 1

const integer = (min: number, max: number, infinite = false): Check => (value) => {
  if (typeof value !== 'number' || Number.isNaN(value)) return 'must be a number'
  if (infinite && value === Infinity) return undefined
  if (!Number.isInteger(value) || value < min || value > max) {
    return `must be an integer from ${min} to ${max}${infinite ? ' (or Infinity)' : ''}`
  }
  return undefined
}

const CHECKS: { readonly [K in keyof SseHubOptions]-?: Check } = {
  sessionIdPattern: (v) => v instanceof RegExp ? undefined : 'must be a RegExp',
  heartbeatInterval: integer(0, MAX_TIMER_MS),
  cleanupInterval: integer(0, MAX_TIMER_MS),
  maxConnectionAge: integer(1, Number.MAX_SAFE_INTEGER, true),
  idleSessionTtl: integer(0, Number.MAX_SAFE_INTEGER, true),
  closedSessionTtl: integer(1, Number.MAX_SAFE_INTEGER, true),
  retry: integer(0, MAX_TIMER_MS),
  retryJitter: integer(0, MAX_TIMER_MS),
  backplane: (v) => v === 'memory' || isBackplane(v) ? undefined : "must be 'memory' or a backplane such as redisBackplane({ url })",
  leaseMs: integer(100, 3_600_000),
  historySize: integer(0, 1_000_000),
  historyBytes: integer(0, Number.MAX_SAFE_INTEGER),
  maxEventBytes: integer(64, Number.MAX_SAFE_INTEGER),
  maxBufferedBytes: integer(1024, Number.MAX_SAFE_INTEGER),
  maxClients: integer(1, Number.MAX_SAFE_INTEGER, true),
  maxClientsPerSession: integer(1, Number.MAX_SAFE_INTEGER, true),
  maxClientsPerIp: integer(1, Number.MAX_SAFE_INTEGER, true),
  retryAfter: integer(0, 86_400),
  authorize: (v) => typeof v === 'function' ? undefined : 'must be a function',
  snapshot: (v) => typeof v === 'function' ? undefined : 'must be a function',
  kinds: kindsProblem,
  maxSessions: integer(1, Number.MAX_SAFE_INTEGER, true),
  fanOutSlice: (v) => {
    if (typeof v !== 'object' || v === null) return 'must be an object'
    const { sliceMs = 0, checkEvery = 1, ...rest } = v as Record<string, unknown>
    if (Object.keys(rest).length > 0) return `has unknown keys (${Object.keys(rest).join(', ')})`
    return integer(0, 1000)(sliceMs) ?? integer(1, 1_000_000)(checkEvery)
  },
  metrics: metricsProblem
}

// Prometheus's metric name rule.
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/

function metricsProblem (v: unknown): string | undefined {
  if (typeof v !== 'object' || v === null) return 'must be an object: { registry, prefix? }'
  const { registry, prefix, ...rest } = v as Record<string, unknown>
  if (Object.keys(rest).length > 0) return `has unknown keys (${Object.keys(rest).join(', ')})`
  if (typeof (registry as { registerMetric?: unknown } | null)?.registerMetric !== 'function') return "'registry' must be a prom-client Registry"
  if (prefix !== undefined && (typeof prefix !== 'string' || !METRIC_NAME.test(prefix))) return `'prefix' must match ${String(METRIC_NAME)}`
  return undefined
}

const KIND = /^[a-z][a-z0-9_-]{0,31}$/

function kindsProblem (v: unknown): string | undefined {
  if (!Array.isArray(v)) return 'must be an array of kind names'
  const seen = new Set<unknown>(['conversation', 'debate'])
  for (const kind of v) {
    if (typeof kind !== 'string' || !KIND.test(kind)) return `${JSON.stringify(kind)}: a kind must match ${String(KIND)}`
    if (seen.has(kind)) return `${JSON.stringify(kind)}: ${kind === 'conversation' || kind === 'debate' ? 'is built in' : 'is given twice'}`
    seen.add(kind)
  }
  return undefined
}

const BACKPLANE_METHODS = ['start', 'stop', 'publish', 'closeSession', 'closedSession', 'subscribe', 'unsubscribe', 'read', 'keepFrames', 'lease', 'leaseState', 'stopProducer', 'readValue', 'swapValue', 'compareIds', 'stats'] as const

function isBackplane (v: unknown): v is Backplane {
  return typeof v === 'object' && v !== null && BACKPLANE_METHODS.every((m) => typeof (v as Record<string, unknown>)[m] === 'function')
}

const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k)

/**
 * Validates user options and returns a frozen copy with defaults applied.
 * The input object is never modified. Keys Fastify itself passes to every
 * plugin (`prefix`, `logLevel`, …) are ignored.
 */
export function resolveOptions (input: unknown): ResolvedOptions {
  if (input === undefined || input === null) input = {}
  if (typeof input !== 'object' || Array.isArray(input)) {
    throw new FST_ERR_SSE_HUB_INVALID_OPTION('options: must be an object')
  }
  const given = input as Record<string, unknown>
  const resolved: Record<string, unknown> = { ...DEFAULTS }
  for (const key of Object.keys(given)) {
    if (FASTIFY_KEYS.has(key)) continue
    if (!hasOwn(CHECKS, key)) {
      throw new FST_ERR_SSE_HUB_INVALID_OPTION(`'${key}': unknown option`)
    }
    const value = given[key]
    if (value === undefined) continue
    const problem = CHECKS[key as keyof SseHubOptions](value)
    if (problem !== undefined) {
      throw new FST_ERR_SSE_HUB_INVALID_OPTION(`'${key}': ${problem}`)
    }
    resolved[key] = value
  }
  resolved.kinds = Object.freeze([...resolved.kinds as string[]])
  resolved.fanOutSlice = Object.freeze({ ...DEFAULTS.fanOutSlice, ...resolved.fanOutSlice as Partial<FanOutTuning> })
  const metrics = resolved.metrics as MetricsOptions | undefined
  if (metrics !== undefined) resolved.metrics = Object.freeze({ registry: metrics.registry, prefix: metrics.prefix ?? 'sse_hub_' })
  if ((resolved.historyBytes as number) > (resolved.maxBufferedBytes as number)) {
    throw new FST_ERR_SSE_HUB_INVALID_OPTION("'historyBytes': must not exceed maxBufferedBytes, or a replay would drop its own client")
  }
  return Object.freeze(resolved) as unknown as ResolvedOptions
}

// Fastify hands these register options to every plugin.
const FASTIFY_KEYS: ReadonlySet<string> = new Set(['prefix', 'logLevel', 'logSerializers', 'encapsulate'])
