/*
 * The Redis backplane: one Redis Stream per session is the ordered, bounded
 * history (its entry ids are the SSE ids, so they are global), and one Lua
 * script per broadcast appends to it and PUBLISHes the new entry. Every process
 * SUBSCRIBEs to the channels of the sessions it has clients of, encodes each
 * event once and writes it to its own clients. After a lost connection it
 * resubscribes, reads what it missed from the stream (XRANGE after the last id
 * it delivered) and only then lets live events through, so nothing is skipped
 * or doubled; history that no longer covers the outage becomes a `resync`.
 * This module owns start/stop and history reads; the connections are a topology (one server in
 * redis-topology.ts, a Cluster with sharded pub/sub in redis-cluster.ts); broadcasts (their retries) are
 * in redis-publish.ts, the subscriber side in redis-feeds.ts, options in redis-options.ts,
 * the stream format and publish script in redis-stream.ts.
 */
import type { Cluster, Redis, RedisOptions } from 'ioredis'
import { FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE, FST_ERR_SSE_HUB_INVALID_OPTION } from '../errors.js'
import { ClusterTopology } from './redis-cluster.js'
import { loadIoredis, runScript, unavailable } from './redis-connection.js'
import { Feeds } from './redis-feeds.js'
import { OutageLog } from './redis-outage.js'
import { RedisLeases } from './redis-lease.js'
import { Publisher } from './redis-publish.js'
import { redactUrl, resolveRedisOptions, type RedisBackplaneOptions, type RedisClusterNode, type ResolvedRedisOptions } from './redis-options.js'
import { CLOSED_FIELD, compareStreamIds, FRAMES_FIELD, framesKey, isStreamId, producersKey, REPLAY_SCRIPT, REPLAY_SHA, replayedEvent, streamIdTime, streamKey, type Entry } from './redis-stream.js'
import { ownOptions, ServerTopology, type Commands, type Topology, type TopologyEvents } from './redis-topology.js'
import { initialBackplaneStats, type Backplane, type BackplaneEvent, type BackplaneRead, type BackplaneSink, type BackplaneStats, type LeaseOp, type LeaseState, type ReplayBounds } from './types.js'

/**
 * A Redis backplane for the `backplane` option, so several processes serve one set of
 * sessions: `await fastify.register(sseHub, { backplane: redisBackplane({ url: process.env.REDIS_URL }) })`.
 * Options are checked now (`FST_ERR_SSE_HUB_INVALID_OPTION`); Redis is connected during `register`.
 * One backplane serves one hub.
 */
export function redisBackplane (options: RedisBackplaneOptions): Backplane {
  return new RedisBackplane(resolveRedisOptions(options))
}

/**
 * The backplane for an environment: a Redis Cluster when `REDIS_CLUSTER_NODES` is set
 * (`host:port,host:port,…`, some of its nodes; an entry without its port is refused), Redis when `REDIS_URL` is set, else `'memory'`
 * (both set: `FST_ERR_SSE_HUB_INVALID_OPTION`). `fastify.register(sseHub, { backplane: backplaneFromEnv() })`.
 */
export function backplaneFromEnv (env: Record<string, string | undefined> = process.env): Backplane | 'memory' {
  const url = env.REDIS_URL ?? ''
  const nodes = env.REDIS_CLUSTER_NODES ?? ''
  if (url !== '' && nodes !== '') throw new FST_ERR_SSE_HUB_INVALID_OPTION('set one of REDIS_URL and REDIS_CLUSTER_NODES, not both')
  if (nodes !== '') {
    return redisBackplane({ cluster: nodes.split(',').map(clusterNode) })
  }
  return url === '' ? 'memory' : redisBackplane({ url })
}

/** Where a backplane's Redis is, for messages (a URL without its password). */
function where (o: ResolvedRedisOptions): string {
  return o.url !== undefined ? redactUrl(o.url) : o.cluster !== undefined ? `the cluster at ${o.cluster.map((n) => `${n.host}:${n.port}`).join(',')}` : 'the given client'
}

/** One `REDIS_CLUSTER_NODES` entry: `host:port`, the port always given (no default guessed for a host alone). */
function clusterNode (entry: string): RedisClusterNode {
  const node = entry.trim()
  const at = node.lastIndexOf(':')
  const host = node.slice(0, Math.max(at, 0)).trim()
  const port = node.slice(at + 1).trim()
  if (at < 0 || host === '' || !/^\d+$/.test(port)) throw new FST_ERR_SSE_HUB_INVALID_OPTION(`REDIS_CLUSTER_NODES: '${entry}' is not host:port`)
  return { host, port: Number(port) }
}

/** A stream's entries from `start` (inclusive) through the replay script (perf note 44). */
async function replay (cmd: Commands, key: string, start: string): Promise<BackplaneEvent[]> {
  return (await runScript(cmd, REPLAY_SHA, REPLAY_SCRIPT, key, [start]) as string[]).map(replayedEvent)
}

/**
 * A session's frames, when they are whole (one for every entry of the stream: perf note 45) and within `bounds`:
 * read in one transaction with the stream's length and newest id, which they then match.
 */
async function frames (cmd: Commands, key: string, bounds: ReplayBounds): Promise<BackplaneRead | undefined> {
  const replies = await cmd.multi().xlen(key).xrevrange(key, '+', '-', 'COUNT', 1).hget(producersKey(key), FRAMES_FIELD).getBuffer(framesKey(key)).exec() as Array<[Error | null, unknown]>
  const failed = replies.find(([err]) => err !== null)
  if (failed !== undefined) throw failed[0] as Error
  const [count, newest, kept, blob] = replies.map(([, reply]) => reply) as [number, Entry[], string | null, Buffer | null]
  if (blob === null || blob.length === 0 || Number(kept) !== count || count > bounds.events || blob.length > bounds.bytes) return undefined
  return { found: true, frames: blob, count, newestId: (newest[0] as Entry)[0] }
}

class RedisBackplane implements Backplane {
  readonly type = 'redis'
  readonly retainedEvents: number
  readonly #o: ResolvedRedisOptions
  readonly #stats: BackplaneStats = initialBackplaneStats('redis', false)
  readonly #feeds: Feeds
  readonly #publisher: Publisher
  readonly #outage: OutageLog
  readonly #leases: RedisLeases
  /** The kinds whose sessions' frames are kept (`keepFrames`): whether those are named. */
  readonly #framed = new Map<string, boolean>()

  #sink: BackplaneSink | undefined
  #topology: Topology | undefined
  #started = false
  #stopped = false

  constructor (options: ResolvedRedisOptions) {
    this.#o = options
    this.retainedEvents = options.maxLen
    this.#outage = new OutageLog(where(options))
    this.#feeds = new Feeds(options.keyPrefix, this.#stats, this.#onError)
    this.#publisher = new Publisher(options, this.#stats)
    this.#leases = new RedisLeases(options.keyPrefix, options.streamTtl, () => this.#topology as Topology)
  }

  readonly #onError = (err: Error): void => {
    this.#stats.errors++
    // Before start() succeeds, the register error tells it (FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE).
    this.#outage.error(this.#started ? (this.#sink as BackplaneSink).logger : undefined, err)
  }

  readonly #events: TopologyEvents = {
    error: this.#onError,
    disconnected: () => { if (this.#started && !this.#stopped) this.#stats.errors++ },
    ready: () => {
      if (this.#started) {
        this.#stats.reconnects++
        this.#outage.recovered((this.#sink as BackplaneSink).logger)
      }
      this.#feeds.recover()
    },
    commandsReady: () => { this.#publisher.retry() },
    stalled: () => this.#publisher.waiting,
    lost: () => { this.#feeds.onSubClose() },
    subscribable: () => { this.#feeds.recover() },
    message: (channel, message) => { this.#feeds.onMessage(channel, message) }
  }

  /** One server (`url`, or a caller's `Redis`) or a Cluster (`cluster`, or a caller's `Cluster`). */
  async #connectTopology (): Promise<Topology> {
    const o = this.#o
    const own = ownOptions(o)
    const ioredis = await loadIoredis()
    // The options' types describe a caller's client and ioredis options without ioredis's types (redis-options.ts).
    const client = o.client as Redis | Cluster | undefined
    const redisOptions = o.redisOptions as RedisOptions
    if (o.cluster !== undefined || client?.isCluster === true) {
      const subscriberOptions = { ...(client as Cluster | undefined)?.options.redisOptions, ...redisOptions, ...own }
      const cmd = (client as Cluster | undefined) ?? new ioredis.Cluster(o.cluster as RedisClusterNode[], {
        lazyConnect: true,
        enableOfflineQueue: false,
        clusterRetryStrategy: own.retryStrategy,
        redisOptions: subscriberOptions
      })
      return new ClusterTopology(cmd, client === undefined, subscriberOptions, ioredis.Redis, this.#events)
    }
    const cmd = (client as Redis | undefined) ?? new ioredis.Redis(o.url as string, { ...redisOptions, ...own })
    return new ServerTopology(cmd, client === undefined, own, this.#events)
  }

  async start (sink: BackplaneSink): Promise<void> {
    if (this.#sink !== undefined) throw new FST_ERR_SSE_HUB_INVALID_OPTION("'backplane': this redisBackplane() already serves a hub; create one per hub")
    this.#sink = sink
    const o = this.#o
    const topology = await this.#connectTopology()
    this.#topology = topology
    this.#feeds.attach(sink, topology)
    this.#publisher.attach(topology)

    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((resolve, reject) => {
      timer = setTimeout(() => { reject(new Error(`no connection within ${o.connectTimeout} ms`)) }, o.connectTimeout)
    })
    try {
      await Promise.race([topology.connect(), timeout])
    } catch (err) {
      await this.stop()
      // ioredis rejects with "Connection is closed."; the cause (e.g. ECONNREFUSED) came as an error event.
      const cause = this.#outage.last ?? err as Error
      throw new FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE(`cannot connect to Redis (${where(o)}): ${cause.message}`, { cause })
    } finally {
      clearTimeout(timer)
    }
    this.#started = true
  }

  async stop (): Promise<void> {
    this.#stopped = true
    this.#feeds.stop()
    this.#publisher.stop()
    ;(this.#topology as Topology).stop()
  }

  keepFrames (kind: string, named: boolean): void {
    this.#framed.set(kind, named)
  }

  publish (kind: string, sessionId: string, type: string, data: string): Promise<string> {
    const key = streamKey(this.#o.keyPrefix, kind, sessionId)
    return this.#publisher.publish(key, this.#framed.get(kind), type, data)
  }

  closeSession (kind: string, sessionId: string, type: string | undefined, data: string | undefined, ttlMs: number): Promise<string> {
    const key = streamKey(this.#o.keyPrefix, kind, sessionId)
    return this.#publisher.publish(key, this.#framed.get(kind), type ?? '', data ?? '', ttlMs === Infinity ? '-1' : String(ttlMs))
  }

  async closedSession (kind: string, sessionId: string): Promise<string | undefined> {
    const topology = this.#topology as Topology
    try {
      if (!topology.ready) throw new Error('Redis connection is not ready')
      return await topology.cmd.hget(producersKey(streamKey(this.#o.keyPrefix, kind, sessionId)), CLOSED_FIELD) ?? undefined
    } catch (err) {
      throw unavailable(err)
    }
  }

  lease (op: LeaseOp, kind: string, sessionId: string, holder: string, ttlMs: number): Promise<string> {
    return this.#leases.lease(op, kind, sessionId, holder, ttlMs)
  }

  leaseState (kind: string, sessionId: string): Promise<LeaseState> {
    return this.#leases.leaseState(kind, sessionId)
  }

  stopProducer (kind: string, sessionId: string): Promise<boolean> {
    return this.#leases.stopProducer(kind, sessionId)
  }

  readValue (name: string): Promise<string | undefined> {
    return this.#leases.readValue(name)
  }

  swapValue (name: string, expected: string | undefined, value: string | undefined, ttlMs: number): Promise<boolean> {
    return this.#leases.swapValue(name, expected, value, ttlMs)
  }

  subscribe (kind: string, sessionId: string): Promise<void> {
    return this.#feeds.subscribe(kind, sessionId)
  }

  unsubscribe (kind: string, sessionId: string): void {
    this.#feeds.unsubscribe(kind, sessionId)
  }

  async read (kind: string, sessionId: string, afterId: string | undefined, whole?: ReplayBounds): Promise<BackplaneRead> {
    const key = streamKey(this.#o.keyPrefix, kind, sessionId)
    const topology = this.#topology as Topology
    const cmd = topology.cmd
    try {
      if (!topology.ready) throw new Error('Redis connection is not ready')
      if (afterId === undefined) {
        const framed = whole !== undefined && this.#framed.has(kind) ? await frames(cmd, key, whole) : undefined
        return framed ?? { found: true, events: await replay(cmd, key, '-') }
      }
      const valid = isStreamId(afterId)
      if (valid) {
        // Inclusive start: the first entry is afterId itself when it is still retained.
        const events = await replay(cmd, key, afterId)
        if (events[0]?.id === afterId) return { found: true, events: events.slice(1) }
      }
      const [oldest, newest] = await Promise.all([
        cmd.xrange(key, '-', '+', 'COUNT', 1) as Promise<Entry[]>,
        cmd.xrevrange(key, '+', '-', 'COUNT', 1) as Promise<Entry[]>
      ])
      const first = oldest[0]?.[0]
      const trimmed = valid && (first === undefined || compareStreamIds(afterId, first) < 0)
      return { found: false, reason: trimmed ? 'history_trimmed' : 'unknown_event_id', newestId: newest[0]?.[0] ?? '' }
    } catch (err) {
      throw unavailable(err)
    }
  }

  compareIds (a: string, b: string): number {
    return compareStreamIds(a, b)
  }

  /** A stream id's milliseconds part: when Redis appended the event. */
  eventTime (id: string): number {
    return streamIdTime(id)
  }

  stats (): BackplaneStats {
    this.#stats.connected = !this.#stopped && (this.#topology as Topology).ready && !this.#feeds.recoverWanted
    return { ...this.#stats }
  }
}
