/*
 * How the Redis backplane reaches Redis: the seam between one Redis server (here: two connections,
 * PUBLISH / SUBSCRIBE) and a Redis Cluster (./redis-cluster.ts: sharded pub/sub), and which one a
 * backplane's options ask for.
 */
import type { Cluster, Redis, RedisOptions } from 'ioredis'
import { connect } from './redis-connection.js'
import type { ResolvedRedisOptions } from './redis-options.js'
import { PUBLISH_SCRIPT } from './redis-stream.js'

/** The connection the backplane sends its commands on: one server's, or a Cluster's (which routes each by its key's slot). */
export type Commands = Redis | Cluster

/** What a topology tells the backplane. */
export interface TopologyEvents {
  error (err: Error): void
  /** A connection to Redis was lost (not a session's close: that is the backplane sink's `closed`). */
  disconnected (): void
  /** A connection is ready (again): catch up if subscriptions were lost. */
  ready (): void
  /** The command side may reach Redis again: send the broadcasts that wait. */
  commandsReady (): void
  /** Broadcasts wait for Redis: whether the topology should look for it again (a Cluster only). */
  stalled (): boolean
  /** Subscriptions were lost: what is announced until they are back must be read from the streams. */
  lost (): void
  /** Subscribing may work again: resubscribe and catch up. */
  subscribable (): void
  /** A message on a subscribed channel. */
  message (channel: string, message: string): void
}

/**
 * One way of reaching Redis. Channels are stream keys; a session's channel and keys share a slot.
 */
export interface Topology {
  /** The command the publish script announces an event with. */
  readonly announce: 'PUBLISH' | 'SPUBLISH'
  /** A session's broadcasts sent before the first one's reply is in (perf note 39). */
  readonly window: number
  readonly cmd: Commands
  /** Whether both commands and subscriptions can work now. */
  readonly ready: boolean
  /** Connects; the caller bounds the time. */
  connect (): Promise<void>
  /** Before a resubscription: learn again where channels live. */
  refresh (): Promise<void>
  /** Resolves once `channel`'s messages are delivered to `message`. */
  subscribe (channel: string): Promise<void>
  unsubscribe (channel: string): void
  /** Disconnects the connections the topology opened; a caller's client is left open. */
  stop (): void
}

/** The ioredis options of every connection the hub opens: the publisher and the feeds retry themselves (see redis.ts). */
export function ownOptions (o: ResolvedRedisOptions): RedisOptions {
  return {
    lazyConnect: true,
    enableOfflineQueue: false,
    autoResubscribe: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    connectTimeout: o.connectTimeout,
    commandTimeout: o.commandTimeout,
    retryStrategy: (times) => Math.min(times * 100, 2000)
  }
}

/** One Redis server: a command connection and a subscriber connection (PUBLISH, SUBSCRIBE). */
export class ServerTopology implements Topology {
  readonly announce = 'PUBLISH'
  readonly window = Infinity
  readonly cmd: Redis
  readonly #sub: Redis
  readonly #events: TopologyEvents
  readonly #own: boolean

  /** `own`: the hub opened `cmd` (and closes it). */
  constructor (cmd: Redis, own: boolean, options: RedisOptions, events: TopologyEvents) {
    this.cmd = cmd
    this.#own = own
    this.#events = events
    this.#sub = cmd.duplicate(options)
  }

  get ready (): boolean {
    return this.cmd.status === 'ready' && this.#sub.status === 'ready'
  }

  async connect (): Promise<void> {
    const e = this.#events
    for (const conn of [this.cmd, this.#sub]) {
      conn.on('error', e.error)
      conn.on('ready', e.ready)
      conn.on('close', e.disconnected)
    }
    this.cmd.on('ready', this.#onCmdReady)
    this.#sub.on('close', e.lost)
    this.#sub.on('message', e.message)
    await Promise.all([connect(this.cmd), connect(this.#sub)])
    await this.cmd.script('LOAD', PUBLISH_SCRIPT)
  }

  /*
   * Load the publish script as the first command on a (re)connected command connection: with it
   * cached, EVALSHA never meets NOSCRIPT, whose EVAL retry could let a later broadcast overtake.
   * Then the broadcasts that waited for Redis are sent, behind it on the same connection.
   */
  readonly #onCmdReady = (): void => {
    this.cmd.script('LOAD', PUBLISH_SCRIPT).catch(this.#events.error)
    this.#events.commandsReady()
  }

  async refresh (): Promise<void> {}

  async subscribe (channel: string): Promise<void> {
    if (!this.ready) throw new Error(`Redis connection is ${this.cmd.status}/${this.#sub.status}`)
    await this.#sub.subscribe(channel)
  }

  unsubscribe (channel: string): void {
    if (this.#sub.status === 'ready') this.#sub.unsubscribe(channel).catch(this.#events.error)
  }

  stop (): void {
    this.#sub.disconnect()
    const e = this.#events
    if (this.#own) {
      this.cmd.disconnect()
    } else {
      // Not ours to disconnect: only take our listeners back.
      this.cmd.removeListener('error', e.error)
      this.cmd.removeListener('ready', e.ready)
      this.cmd.removeListener('close', e.disconnected)
      this.cmd.removeListener('ready', this.#onCmdReady)
    }
  }
}
