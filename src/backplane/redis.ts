/*
 * The Redis backplane: one Redis Stream per session is the ordered, bounded
 * history (its entry ids are the SSE ids, so they are global), and one Lua
 * script per broadcast appends to it and PUBLISHes the new entry. Every process
 * SUBSCRIBEs to the channels of the sessions it has clients of, encodes each
 * event once and writes it to its own clients. After a lost connection it
 * resubscribes, reads what it missed from the stream (XRANGE after the last id
 * it delivered) and only then lets live events through, so nothing is skipped
 * or doubled; history that no longer covers the outage becomes a `resync`.
 */
import { createHash } from 'node:crypto'
import type { Redis, RedisOptions } from 'ioredis'
import {
  FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE,
  FST_ERR_SSE_HUB_BROADCAST_FAILED,
  FST_ERR_SSE_HUB_INVALID_OPTION
} from '../errors.js'
import { initialBackplaneStats, type Backplane, type BackplaneEvent, type BackplaneRead, type BackplaneSink, type BackplaneStats } from './types.js'

/** Options of {@link redisBackplane}. Give `url` or `client`. */
export interface RedisBackplaneOptions {
  /** Where Redis is, e.g. `redis://127.0.0.1:6379` (`rediss://` for TLS). The hub opens and closes two connections. */
  url?: string
  /**
   * Your ioredis client instead of `url`: the hub sends its commands through it and opens one
   * `client.duplicate()` for its subscriptions. `fastify.close()` leaves your client open.
   */
  client?: Redis
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
  /** More ioredis options for the connections opened from `url` (password, tls, db, …). */
  redisOptions?: RedisOptions
}

type Resolved = Required<Omit<RedisBackplaneOptions, 'url' | 'client'>> & Pick<RedisBackplaneOptions, 'url' | 'client'>

const DEFAULTS = { keyPrefix: 'sse-hub:', maxLen: 1000, streamTtl: 86_400_000, connectTimeout: 10_000, commandTimeout: 5000, redisOptions: {} }

/*
 * KEYS[1] the session's stream. ARGV: maxLen, ttl ms, type, data, channel (the stream's
 * name without any ioredis keyPrefix: channels are not prefixed). Append and announce
 * in one step, so the channel's order is the stream's order.
 */
const PUBLISH_SCRIPT = `local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 't', ARGV[3], 'd', ARGV[4])
if ARGV[2] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
redis.call('PUBLISH', ARGV[5], id .. '\\n' .. ARGV[3] .. '\\n' .. ARGV[4])
return id`
const PUBLISH_SHA = createHash('sha1').update(PUBLISH_SCRIPT).digest('hex')

// A stream id as Redis makes them; both parts must be exact JavaScript integers to be compared.
const STREAM_ID = /^(\d{1,16})-(\d{1,16})$/

/** Orders two stream ids (`'' ` counts as `0-0`). */
export function compareStreamIds (a: string, b: string): number {
  const i = a.indexOf('-')
  const j = b.indexOf('-')
  const d = Number(a.slice(0, i)) - Number(b.slice(0, j))
  return d !== 0 ? d : Number(a.slice(i + 1)) - Number(b.slice(j + 1))
}

function isStreamId (id: string): boolean {
  const m = STREAM_ID.exec(id)
  return m !== null && Number.isSafeInteger(Number(m[1])) && Number.isSafeInteger(Number(m[2]))
}

type Entry = [id: string, fields: string[]]

function toEvent (entry: Entry): BackplaneEvent {
  // The publish script writes the fields in this order: t, d.
  return { id: entry[0], type: entry[1][1] as string, data: entry[1][3] as string }
}

interface Feed {
  readonly kind: string
  readonly sessionId: string
  readonly key: string
  refs: number
  /** Settles when the subscription is live and `lastId` is known. */
  ready: Promise<void>
  /** The newest id delivered to the sink; `0-0` before any. */
  lastId: string
  /** Live events held back while the feed catches up after an outage. */
  queue: BackplaneEvent[] | undefined
}

const positive = (min: number, max: number) => (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max

const CHECKS: { readonly [K in keyof RedisBackplaneOptions]-?: [(v: unknown) => boolean, string] } = {
  url: [(v) => typeof v === 'string' && /^rediss?:\/\//.test(v), 'must be a redis:// or rediss:// URL'],
  client: [(v) => typeof v === 'object' && v !== null && typeof (v as Redis).duplicate === 'function' && typeof (v as Redis).xrange === 'function', 'must be an ioredis client'],
  keyPrefix: [(v) => typeof v === 'string' && v.length <= 128, 'must be a string of at most 128 characters'],
  maxLen: [positive(1, 100_000_000), 'must be an integer from 1 to 100000000'],
  streamTtl: [positive(0, Number.MAX_SAFE_INTEGER), 'must be an integer >= 0'],
  connectTimeout: [positive(1, 2 ** 31 - 1), 'must be an integer from 1 to 2147483647'],
  commandTimeout: [positive(1, 2 ** 31 - 1), 'must be an integer from 1 to 2147483647'],
  redisOptions: [(v) => typeof v === 'object' && v !== null, 'must be an object']
}

/**
 * A Redis backplane for the `backplane` option, so several processes serve one set of
 * sessions: `await fastify.register(sseHub, { backplane: redisBackplane({ url: process.env.REDIS_URL }) })`.
 * Options are checked now (`FST_ERR_SSE_HUB_INVALID_OPTION`); Redis is connected during `register`.
 * One backplane serves one hub.
 */
export function redisBackplane (options: RedisBackplaneOptions): Backplane {
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
  if ((resolved.url === undefined) === (resolved.client === undefined)) {
    throw new FST_ERR_SSE_HUB_INVALID_OPTION('redisBackplane: give exactly one of `url` and `client`')
  }
  return new RedisBackplane(resolved as unknown as Resolved)
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
  readonly #o: Resolved
  readonly #feeds = new Map<string, Feed>()
  readonly #stats: BackplaneStats = initialBackplaneStats('redis', false)

  #sink: BackplaneSink | undefined
  #cmd: Redis | undefined
  #sub: Redis | undefined
  #started = false
  #closed = false
  /** The subscriber lost its connection: resubscribe and catch up when both connections are ready. */
  #recoverWanted = false
  #recovery = Promise.resolve()
  #retryTimer: NodeJS.Timeout | undefined

  constructor (options: Resolved) {
    this.#o = options
  }

  readonly #onError = (err: Error): void => {
    this.#stats.errors++
    ;(this.#sink as BackplaneSink).log.warn({ err }, 'sse-hub redis backplane error')
  }

  readonly #onReady = (): void => {
    if (this.#started) this.#stats.reconnects++
    this.#recover()
  }

  /*
   * Load the publish script as the first command on a (re)connected command connection: with it
   * cached, EVALSHA never meets NOSCRIPT, whose EVAL retry could let a later broadcast overtake.
   */
  readonly #onCmdReady = (): void => {
    ;(this.#cmd as Redis).script('LOAD', PUBLISH_SCRIPT).catch(this.#onError)
  }

  readonly #onClose = (): void => {
    if (this.#started && !this.#closed) this.#stats.errors++
  }

  readonly #onSubClose = (): void => {
    // Whatever is published from now on until the subscription is back must be read from the streams.
    this.#recoverWanted = true
  }

  readonly #onMessage = (channel: string, message: string): void => {
    const feed = this.#feeds.get(channel)
    const a = message.indexOf('\n')
    const b = message.indexOf('\n', a + 1)
    // Not ours (unsubscribed meanwhile, or published by someone else on our channel): ignore.
    if (feed === undefined || b < 0 || !isStreamId(message.slice(0, a))) return
    const event: BackplaneEvent = { id: message.slice(0, a), type: message.slice(a + 1, b), data: message.slice(b + 1) }
    const stats = this.#stats
    stats.received++
    stats.lagMs = Math.max(0, Date.now() - this.eventTime(event.id))
    stats.maxLagMs = Math.max(stats.maxLagMs, stats.lagMs)
    if (feed.queue !== undefined) feed.queue.push(event)
    else this.#emit(feed, event)
  }

  async start (sink: BackplaneSink): Promise<void> {
    if (this.#sink !== undefined) throw new FST_ERR_SSE_HUB_INVALID_OPTION("'backplane': this redisBackplane() already serves a hub; create one per hub")
    this.#sink = sink
    const o = this.#o
    // Fail fast instead of queueing while disconnected, and never resend a command whose reply was lost (no double XADD).
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
    for (const conn of [cmd, sub]) {
      conn.on('error', this.#onError)
      conn.on('ready', this.#onReady)
      conn.on('close', this.#onClose)
    }
    cmd.on('ready', this.#onCmdReady)
    sub.on('close', this.#onSubClose)
    sub.on('message', this.#onMessage)

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
    clearTimeout(this.#retryTimer)
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
    const cmd = this.#cmd as Redis
    const key = this.#key(kind, sessionId)
    const args = [key, this.#o.maxLen, this.#o.streamTtl, type, data, key] as const
    const stats = this.#stats
    const persisted = cmd.status !== 'ready'
      ? Promise.reject(new Error(`Redis connection is ${cmd.status}`))
      : (cmd.evalsha(PUBLISH_SHA, 1, ...args) as Promise<string>).catch((err: Error) => {
          // The script cache was flushed (SCRIPT FLUSH): send the script itself.
          if (!err.message.startsWith('NOSCRIPT')) throw err
          return cmd.eval(PUBLISH_SCRIPT, 1, ...args) as Promise<string>
        })
    return persisted.then((id) => {
      stats.published++
      return id
    }, (err: Error) => {
      stats.publishFailures++
      throw new FST_ERR_SSE_HUB_BROADCAST_FAILED(err.message, { cause: err })
    })
  }

  async subscribe (kind: string, sessionId: string): Promise<void> {
    const key = this.#key(kind, sessionId)
    let feed = this.#feeds.get(key)
    if (feed === undefined) {
      const created: Feed = { kind, sessionId, key, refs: 0, ready: Promise.resolve(), lastId: '0-0', queue: undefined }
      created.ready = this.#follow(created)
      feed = created
      this.#feeds.set(key, feed)
      this.#stats.subscriptions = this.#feeds.size
    }
    feed.refs++
    try {
      await feed.ready
    } catch (err) {
      this.unsubscribe(kind, sessionId)
      throw err
    }
  }

  async #follow (feed: Feed): Promise<void> {
    try {
      this.#assertConnected()
      const sub = this.#sub as Redis
      await sub.subscribe(feed.key)
      // Where the session stands now: the point to catch up from if the connection drops later.
      const newest = await (this.#cmd as Redis).xrevrange(feed.key, '+', '-', 'COUNT', 1) as Entry[]
      const id = newest[0]?.[0] ?? '0-0'
      if (compareStreamIds(id, feed.lastId) > 0) feed.lastId = id
    } catch (err) {
      throw unavailable(err)
    }
  }

  unsubscribe (kind: string, sessionId: string): void {
    const key = this.#key(kind, sessionId)
    const feed = this.#feeds.get(key)
    if (feed === undefined || --feed.refs > 0) return
    this.#feeds.delete(key)
    this.#stats.subscriptions = this.#feeds.size
    const sub = this.#sub as Redis
    // Messages that still arrive for it are ignored; a resubscription after an outage leaves it out.
    if (sub.status === 'ready') sub.unsubscribe(key).catch(this.#onError)
  }

  async read (kind: string, sessionId: string, afterId: string): Promise<BackplaneRead> {
    const key = this.#key(kind, sessionId)
    const cmd = this.#cmd as Redis
    try {
      this.#assertConnected()
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
    return Number(id.slice(0, id.indexOf('-')))
  }

  stats (): BackplaneStats {
    this.#stats.connected = !this.#closed && (this.#cmd as Redis).status === 'ready' && (this.#sub as Redis).status === 'ready' && !this.#recoverWanted
    return { ...this.#stats }
  }

  #key (kind: string, sessionId: string): string {
    return `${this.#o.keyPrefix}${kind}:${sessionId}`
  }

  #assertConnected (): void {
    const cmd = this.#cmd as Redis
    const sub = this.#sub as Redis
    if (cmd.status !== 'ready' || sub.status !== 'ready') throw new Error(`Redis connection is ${cmd.status}/${sub.status}`)
  }

  /** Delivers `event` unless the sink already has it (the seam between a catch-up read and live messages). */
  #emit (feed: Feed, event: BackplaneEvent): void {
    if (compareStreamIds(event.id, feed.lastId) <= 0) return
    feed.lastId = event.id
    ;(this.#sink as BackplaneSink).deliver(feed.kind, feed.sessionId, event)
  }

  /**
   * After the subscriber reconnected: hold live events back, resubscribe every followed
   * session, read what each missed from its stream, deliver that, then the held events.
   * Goes again if the subscriber dropped meanwhile; retries after a second if it failed.
   */
  #recover (): void {
    // One recovery at a time: each call queues a pass, which finds nothing to do if an earlier one did it.
    this.#recovery = this.#recovery.then(() => this.#recoverPass())
  }

  async #recoverPass (): Promise<void> {
    const cmd = this.#cmd as Redis
    const sub = this.#sub as Redis
    while (this.#recoverWanted && !this.#closed && cmd.status === 'ready' && sub.status === 'ready') {
      this.#recoverWanted = false
      const feeds = [...this.#feeds.values()]
      if (feeds.length === 0) continue
      // Hold live events from here: whatever arrived before (nothing, after a loss; or what a failed
      // pass held) was written to the stream before the XRANGE below, which reads it again. So the
      // hold never outgrows one pass.
      for (const f of feeds) f.queue = []
      try {
        await sub.subscribe(...feeds.map((f) => f.key))
        const pipeline = cmd.pipeline()
        for (const f of feeds) {
          pipeline.xrange(f.key, f.lastId, '+')
          pipeline.xrevrange(f.key, '+', '-', 'COUNT', 1)
        }
        const replies = await pipeline.exec() as Array<[Error | null, Entry[]]>
        let behind = false
        feeds.forEach((f, i) => {
          const [err, entries] = replies[2 * i] as [Error | null, Entry[]]
          // One unsubscribed while reading is skipped: its clients are gone.
          if (this.#feeds.get(f.key) === f) {
            if (err === null) {
              this.#catchUp(f, entries, (replies[2 * i + 1] as [null, Entry[]])[1])
            } else {
              // This session's key cannot be read (e.g. it is not a stream any more): it stays
              // behind and is retried; the other sessions go on.
              this.#onError(err)
              behind = true
            }
          }
        })
        if (behind) throw new Error('some sessions could not be caught up')
      } catch (err) {
        this.#onError(err as Error)
        this.#recoverWanted = true // the sessions already caught up are read again (nothing new), harmlessly
        clearTimeout(this.#retryTimer)
        this.#retryTimer = setTimeout(() => { this.#recover() }, 1000).unref()
        break
      }
    }
  }

  #catchUp (feed: Feed, entries: Entry[], newest: Entry[]): void {
    let events = feed.queue as BackplaneEvent[]
    feed.queue = undefined
    if (feed.lastId === '0-0' || entries[0]?.[0] === feed.lastId) {
      this.#stats.catchUps++
      // What was missed, then what was held; #emit drops what was delivered already (lastId itself included).
      events = entries.map(toEvent).concat(events)
    } else {
      // What was missed is no longer in the stream (trimmed, expired, or Redis lost its data).
      this.#stats.resyncs++
      const newestId = newest[0]?.[0] ?? ''
      feed.lastId = newestId === '' ? '0-0' : newestId
      ;(this.#sink as BackplaneSink).resync(feed.kind, feed.sessionId, newestId)
    }
    for (const event of events) this.#emit(feed, event)
  }
}

/** Resolves when `conn` is ready; its own `connect()` when it has not started. */
async function connect (conn: Redis): Promise<void> {
  if (conn.status === 'ready') return
  if (conn.status === 'wait') return conn.connect()
  await new Promise<void>((resolve) => { conn.once('ready', resolve) })
}

function unavailable (err: unknown): Error {
  return new FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE((err as Error).message, { cause: err })
}

/** A URL for messages: without its password. */
function redactUrl (url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@')
}
