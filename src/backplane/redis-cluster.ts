/*
 * The Redis backplane on a Redis Cluster: commands through an ioredis Cluster (routed by their key's
 * slot; ioredis follows MOVED and ASK), live events over sharded pub/sub (SPUBLISH / SSUBSCRIBE): one
 * subscriber connection per master that serves a followed session, opened when first needed.
 */
import type { Cluster, Redis, RedisOptions } from 'ioredis'
import { connect } from './redis-connection.js'
import { PUBLISH_SCRIPT } from './redis-stream.js'
import type { Topology, TopologyEvents } from './redis-topology.js'

/** How often, while broadcasts wait for a master (failover, a moved slot), the slots are read again and the broadcasts re-sent. */
const PROBE_MS = 250

/** CRC16/XMODEM, as Redis Cluster hashes keys. */
function crc16 (bytes: Uint8Array): number {
  let crc = 0
  for (const byte of bytes) {
    crc ^= byte << 8
    for (let i = 0; i < 8; i++) crc = (crc & 0x8000) !== 0 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  }
  return crc
}

/** A key's (or shard channel's) hash slot: of its hash tag, the first non-empty `{…}`, if it has one. */
export function keySlot (key: string): number {
  const open = key.indexOf('{')
  const end = open < 0 ? -1 : key.indexOf('}', open + 1)
  const hashed = end > open + 1 ? key.slice(open + 1, end) : key
  return crc16(Buffer.from(hashed)) & 16383
}

interface Shard {
  readonly conn: Redis
  /** Settles when the connection is ready or failed. */
  readonly ready: Promise<void>
}

/**
 * A Redis Cluster. A shard subscriber that closes, or that Redis unsubscribes because a slot moved,
 * counts as lost subscriptions: the feeds resubscribe (on the slot's master now) and catch up from
 * the streams, as after a lost connection on one server.
 */
export class ClusterTopology implements Topology {
  readonly announce = 'SPUBLISH'
  /** One broadcast per session in flight: ioredis re-routes a failed command itself, which could reorder a pipeline (perf note 39). */
  readonly window = 1
  readonly cmd: Cluster
  readonly #own: boolean
  readonly #options: RedisOptions
  readonly #Redis: typeof Redis
  readonly #events: TopologyEvents
  /** Each master's subscriber, by `host:port`. */
  readonly #shards = new Map<string, Shard>()
  /** Each subscribed channel's subscriber. */
  readonly #where = new Map<string, Redis>()
  #probe: NodeJS.Timeout | undefined
  #stopped = false

  /** `own`: the hub opened `cmd` (and closes it). `options`: of the subscriber connections. */
  constructor (cmd: Cluster, own: boolean, options: RedisOptions, RedisClass: typeof Redis, events: TopologyEvents) {
    this.cmd = cmd
    this.#own = own
    this.#options = options
    this.#Redis = RedisClass
    this.#events = events
  }

  get ready (): boolean {
    return this.cmd.status === 'ready'
  }

  async connect (): Promise<void> {
    const e = this.#events
    this.cmd.on('error', e.error)
    this.cmd.on('node error', e.error)
    this.cmd.on('ready', e.ready)
    this.cmd.on('close', e.disconnected)
    this.cmd.on('ready', this.#onCmdReady)
    await connect(this.cmd)
    await this.#loadScript()
    // The one probe timer of this backplane (a Cluster stays 'ready' while one of its masters is gone).
    this.#probe = setInterval(this.#onProbe, PROBE_MS).unref()
  }

  /** On every master, so that EVALSHA rarely meets NOSCRIPT (a promoted replica has no script cache; the publisher then sends the script). */
  #loadScript (): Promise<unknown> {
    return Promise.all(this.cmd.nodes('master').map((node) => node.script('LOAD', PUBLISH_SCRIPT)))
  }

  readonly #onCmdReady = (): void => {
    this.#loadScript().catch(this.#events.error)
    this.#events.commandsReady()
  }

  readonly #onProbe = (): void => {
    if (!this.#events.stalled()) return
    void this.refresh().then(() => { this.#events.commandsReady() })
  }

  /** Settles when ioredis read the slots again; a failure (no node answered) leaves them as they were, and what then fails reports itself. */
  refresh (): Promise<void> {
    return new Promise((resolve) => { this.cmd.refreshSlotsCache(() => { resolve() }) })
  }

  async subscribe (channel: string): Promise<void> {
    // Known once connected: ioredis keeps the last master it learned of every slot.
    const owner = (this.cmd.slots[keySlot(channel)] as string[])[0] as string
    try {
      await this.#subscribeAt(this.#reach(owner), channel)
    } catch (err) {
      // The slot moved since ioredis last learned of it (it learns only from a command to that slot, or
      // a refresh): subscribe where the MOVED reply says it is now, and read the slots again.
      const moved = /^MOVED \d+ (\S+)$/.exec((err as Error).message)
      if (moved === null) throw err
      void this.refresh()
      await this.#subscribeAt(this.#reach(moved[1] as string), channel)
    }
  }

  /**
   * Where this process reaches the node Redis calls `node` (`host:port`): through the Cluster's `natMap`, as
   * ioredis does for commands (a node in a container announces an address only its peers reach). A slot
   * ioredis learned from a MOVED reply, and a MOVED reply to SSUBSCRIBE, name the node as Redis announces it.
   */
  #reach (node: string): string {
    const natMap = this.cmd.options.natMap
    const mapped = typeof natMap === 'function' ? natMap(node) : natMap?.[node]
    return mapped == null ? node : `${mapped.host}:${mapped.port}`
  }

  async #subscribeAt (owner: string, channel: string): Promise<void> {
    const shard = this.#shard(owner)
    await shard.ready
    await shard.conn.ssubscribe(channel)
    this.#where.set(channel, shard.conn)
  }

  unsubscribe (channel: string): void {
    const conn = this.#where.get(channel)
    this.#where.delete(channel)
    if (conn?.status === 'ready') conn.sunsubscribe(channel).catch(this.#events.error)
  }

  /** The subscriber on `owner` (`host:port`, as this process reaches it), opened if there is none. */
  #shard (owner: string): Shard {
    const found = this.#shards.get(owner)
    if (found !== undefined) return found
    const at = owner.lastIndexOf(':')
    // No reconnection: a master that is gone may stay gone; the feeds' next pass opens one where the slot is then.
    const conn = new this.#Redis({ ...this.#options, host: owner.slice(0, at), port: Number(owner.slice(at + 1)), retryStrategy: () => null })
    const shard: Shard = { conn, ready: conn.connect() }
    shard.ready.catch(() => {}) // a failure reaches the subscribe that waits for it, and 'close' below
    this.#shards.set(owner, shard)
    const e = this.#events
    conn.on('error', e.error)
    conn.on('smessage', e.message)
    // Redis unsubscribed it from the channels of a slot that moved (or answered SSUBSCRIBE with MOVED).
    conn.on('moved', this.#onLost)
    conn.once('close', () => {
      this.#shards.delete(owner)
      for (const [channel, c] of this.#where) if (c === conn) this.#where.delete(channel)
      if (this.#stopped) return
      e.disconnected()
      this.#onLost()
    })
    return shard
  }

  readonly #onLost = (): void => {
    this.#events.lost()
    this.#events.subscribable()
  }

  stop (): void {
    this.#stopped = true
    clearInterval(this.#probe)
    for (const { conn } of this.#shards.values()) conn.disconnect()
    this.#shards.clear()
    this.#where.clear()
    const e = this.#events
    if (this.#own) {
      this.cmd.disconnect()
    } else {
      this.cmd.removeListener('error', e.error)
      this.cmd.removeListener('node error', e.error)
      this.cmd.removeListener('ready', e.ready)
      this.cmd.removeListener('close', e.disconnected)
      this.cmd.removeListener('ready', this.#onCmdReady)
    }
  }
}
