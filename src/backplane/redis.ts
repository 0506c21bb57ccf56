/*
 * The Redis backplane: one Redis Stream per session is the ordered, bounded
 * history (its entry ids are the SSE ids, so they are global), and one Lua
 * script per broadcast appends to it and PUBLISHes the new entry. Every process
 * SUBSCRIBEs to the channels of the sessions it has clients of, encodes each
 * event once and writes it to its own clients. After a lost connection it
 * resubscribes, reads what it missed from the stream (XRANGE after the last id
 * it delivered) and only then lets live events through, so nothing is skipped
 * or doubled; history that no longer covers the outage becomes a `resync`.
 * This module owns the connections and replay reads; broadcasts (their retries) are
 * in redis-publish.ts, the subscriber side in redis-feeds.ts, options in redis-options.ts,
 * the stream format and publish script in redis-stream.ts.
 */
import type { Redis, RedisOptions } from 'ioredis'
import { FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE, FST_ERR_SSE_HUB_INVALID_OPTION } from '../errors.js'
import { assertConnected, connect, unavailable } from './redis-connection.js'
import { Feeds } from './redis-feeds.js'
import { Publisher } from './redis-publish.js'
import { redactUrl, resolveRedisOptions, type RedisBackplaneOptions, type ResolvedRedisOptions } from './redis-options.js'
import { closedKey, compareStreamIds, isStreamId, PUBLISH_SCRIPT, streamIdTime, streamKey, toEvent, type Entry } from './redis-stream.js'
import { initialBackplaneStats, type Backplane, type BackplaneRead, type BackplaneSink, type BackplaneStats } from './types.js'

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
 * The backplane for an environment: Redis when `REDIS_URL` is set, else `'memory'`.
 * `fastify.register(sseHub, { backplane: backplaneFromEnv() })`.
 */
export function backplaneFromEnv (env: Record<string, string | undefined> = process.env): Backplane | 'memory' {
  const url = env.REDIS_URL
  return url === undefined || url === '' ? 'memory' : redisBackplane({ url })
}

class RedisBackplane implements Backplane {
  readonly type = 'redis'
  readonly #o: ResolvedRedisOptions
  readonly #stats: BackplaneStats = initialBackplaneStats('redis', false)
  readonly #feeds: Feeds
  readonly #publisher: Publisher

  #sink: BackplaneSink | undefined
  #cmd: Redis | undefined
  #sub: Redis | undefined
  #started = false
  #closed = false

  constructor (options: ResolvedRedisOptions) {
    this.#o = options
    this.#feeds = new Feeds(options.keyPrefix, this.#stats, this.#onError)
    this.#publisher = new Publisher(options, this.#stats)
  }

  readonly #onError = (err: Error): void => {
    this.#stats.errors++
    ;(this.#sink as BackplaneSink).log.warn({ err }, 'sse-hub redis backplane error')
  }

  readonly #onReady = (): void => {
    if (this.#started) this.#stats.reconnects++
    this.#feeds.recover()
  }

  /*
   * Load the publish script as the first command on a (re)connected command connection: with it
   * cached, EVALSHA never meets NOSCRIPT, whose EVAL retry could let a later broadcast overtake.
   * Then the broadcasts that waited for Redis are sent, behind it on the same connection.
   */
  readonly #onCmdReady = (): void => {
    ;(this.#cmd as Redis).script('LOAD', PUBLISH_SCRIPT).catch(this.#onError)
    this.#publisher.retry()
  }

  readonly #onClose = (): void => {
    if (this.#started && !this.#closed) this.#stats.errors++
  }

  async start (sink: BackplaneSink): Promise<void> {
    if (this.#sink !== undefined) throw new FST_ERR_SSE_HUB_INVALID_OPTION("'backplane': this redisBackplane() already serves a hub; create one per hub")
    this.#sink = sink
    const o = this.#o
    // No ioredis queue while disconnected, and no command re-sent by ioredis: the publisher holds and re-sends broadcasts itself, in order.
    const own: RedisOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      autoResubscribe: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      connectTimeout: o.connectTimeout,
      commandTimeout: o.commandTimeout,
      retryStrategy: (times) => Math.min(times * 100, 2000)
    }
    // Loaded here, not with the plugin (perf note 33).
    const cmd = o.client ?? new (await import('ioredis')).Redis(o.url as string, { ...o.redisOptions, ...own })
    const sub = cmd.duplicate(own)
    this.#cmd = cmd
    this.#sub = sub
    this.#feeds.attach(sink, cmd, sub)
    this.#publisher.attach(cmd)
    for (const conn of [cmd, sub]) {
      conn.on('error', this.#onError)
      conn.on('ready', this.#onReady)
      conn.on('close', this.#onClose)
    }
    cmd.on('ready', this.#onCmdReady)
    sub.on('close', this.#feeds.onSubClose)
    sub.on('message', this.#feeds.onMessage)

    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((resolve, reject) => {
      timer = setTimeout(() => { reject(new Error(`no connection within ${o.connectTimeout} ms`)) }, o.connectTimeout)
    })
    try {
      await Promise.race([Promise.all([connect(cmd), connect(sub)]).then(() => cmd.script('LOAD', PUBLISH_SCRIPT)), timeout])
    } catch (err) {
      await this.close()
      const where = o.url === undefined ? 'the given client' : redactUrl(o.url)
      throw new FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE(`cannot connect to Redis (${where}): ${(err as Error).message}`, { cause: err })
    } finally {
      clearTimeout(timer)
    }
    this.#started = true
  }

  async close (): Promise<void> {
    this.#closed = true
    this.#feeds.stop()
    this.#publisher.close()
    const cmd = this.#cmd as Redis
    ;(this.#sub as Redis).disconnect()
    if (this.#o.client === undefined) {
      cmd.disconnect()
    } else {
      // Not ours to close: only take our listeners back.
      cmd.removeListener('error', this.#onError)
      cmd.removeListener('ready', this.#onReady)
      cmd.removeListener('close', this.#onClose)
      cmd.removeListener('ready', this.#onCmdReady)
    }
  }

  publish (kind: string, sessionId: string, type: string, data: string): Promise<string> {
    const key = streamKey(this.#o.keyPrefix, kind, sessionId)
    return this.#publisher.publish(key, key, type, data)
  }

  closeSession (kind: string, sessionId: string, type: string | undefined, data: string | undefined, ttlMs: number): Promise<string> {
    const key = streamKey(this.#o.keyPrefix, kind, sessionId)
    return this.#publisher.publish(key, key, type ?? '', data ?? '', ttlMs === Infinity ? '-1' : String(ttlMs))
  }

  async closedSession (kind: string, sessionId: string): Promise<string | undefined> {
    const cmd = this.#cmd as Redis
    try {
      assertConnected(cmd, this.#sub as Redis)
      return await cmd.get(closedKey(streamKey(this.#o.keyPrefix, kind, sessionId))) ?? undefined
    } catch (err) {
      throw unavailable(err)
    }
  }

  subscribe (kind: string, sessionId: string): Promise<void> {
    return this.#feeds.subscribe(kind, sessionId)
  }

  unsubscribe (kind: string, sessionId: string): void {
    this.#feeds.unsubscribe(kind, sessionId)
  }

  async read (kind: string, sessionId: string, afterId: string | undefined): Promise<BackplaneRead> {
    const key = streamKey(this.#o.keyPrefix, kind, sessionId)
    const cmd = this.#cmd as Redis
    try {
      assertConnected(cmd, this.#sub as Redis)
      if (afterId === undefined) return { found: true, events: (await cmd.xrange(key, '-', '+') as Entry[]).map(toEvent) }
      const valid = isStreamId(afterId)
      if (valid) {
        // Inclusive start: the first entry is afterId itself when it is still retained.
        const entries = await cmd.xrange(key, afterId, '+') as Entry[]
        if (entries[0]?.[0] === afterId) return { found: true, events: entries.slice(1).map(toEvent) }
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
    this.#stats.connected = !this.#closed && (this.#cmd as Redis).status === 'ready' && (this.#sub as Redis).status === 'ready' && !this.#feeds.recoverWanted
    return { ...this.#stats }
  }
}
