/*
 * The Redis backplane's broadcasts: this producer's id and sequence numbers, the broadcasts of each
 * session on their way to Redis (in order), holding them while Redis is unreachable (for up to
 * publishRetryMs and publishRetryBytes), and re-sending them, which the publish script makes idempotent.
 */
import { randomUUID } from 'node:crypto'
import { FST_ERR_SSE_HUB_BROADCAST_FAILED, FST_ERR_SSE_HUB_SESSION_CLOSED } from '../errors.js'
import type { ResolvedRedisOptions } from './redis-options.js'
import { append, appendAndWait, NotReplicatedError, type Append } from './redis-append.js'
import { framesKey, producersKey } from './redis-stream.js'
import type { Commands, Topology } from './redis-topology.js'
import type { BackplaneStats } from './types.js'

interface Broadcast {
  readonly seq: number
  readonly type: string
  readonly data: string
  /** '' for a broadcast; for a close, the closed TTL (ms, '-1' for none) — see the publish script. */
  readonly closing: string
  readonly bytes: number
  /** Past it (ms since the epoch) a broadcast not sent yet is rejected. */
  readonly deadline: number
  /** Sent and its reply not in yet. */
  sent: boolean
  readonly resolve: (id: string) => void
  readonly reject: (err: Error) => void
}

/** One session's broadcasts not settled yet, oldest first. */
interface Lane {
  /** The session's stream key, which is also its channel's name. */
  readonly key: string
  /** The publish script's keys: the stream's, its producers hash's, and its frames' when they are kept. */
  readonly keys: readonly string[]
  /** The publish script's last argument: '1' when the frames kept are named (`event:` lines). */
  readonly named: string
  readonly queue: Broadcast[]
  inFlight: number
  /**
   * A send failed because Redis was unreachable: nothing more is sent until every reply is in and,
   * unless it was a timeout (the connection is up), the connection was ready again after `readyAt`.
   */
  blocked: boolean
  /** The value of `Publisher.#readies` when the lane's send failed with a lost connection; -1 for a timeout. */
  readyAt: number
  /** The lane's first sequence number: its broadcasts are numbered from it, one after another. */
  readonly base: number
  /** Broadcasts numbered so far. */
  count: number
}

/**
 * Whether `err` says Redis could not be reached (the connection closed or is not writable, or the
 * command timed out) or too few replicas acknowledged, so the broadcast may be re-sent; a reply from Redis is not.
 */
function unreachable (err: Error): boolean {
  return err.name !== 'ReplyError'
}

/**
 * Sends the broadcasts of one Redis backplane. Of its stats, counts `published` and `publishFailures`.
 * Each broadcast carries (producer, sequence number); a session's broadcasts are sent in order, and
 * after a failure to reach Redis they wait until the command connection is ready again (`retry()`),
 * for up to `publishRetryMs` each, while the data held stays under `publishRetryBytes`.
 */
export class Publisher {
  /** This backplane's producer id: sequence numbers are unique under it. */
  readonly producer = randomUUID()
  readonly #stats: BackplaneStats
  readonly #o: ResolvedRedisOptions
  readonly #lanes = new Map<string, Lane>()

  #cmd: Commands | undefined
  /** The command announcing an event ('PUBLISH' or 'SPUBLISH'). */
  #announce = 'PUBLISH'
  /** Broadcasts of a lane in flight at once. */
  #window = Infinity
  /** Above every sequence number of a dropped lane: where a new lane starts. */
  #nextBase = 1
  /** Bytes of type and data of the broadcasts not settled yet. */
  #held = 0
  /** Lanes waiting for Redis. */
  #blocked = 0
  /** Times the command connection was ready again (`retry()`). */
  #readies = 0
  /** The one deadline check: set while a broadcast waits for Redis, at `#timerAt`. */
  #timer: NodeJS.Timeout | undefined
  #timerAt = Infinity
  #stopped = false
  readonly #append: Append

  constructor (options: ResolvedRedisOptions, stats: BackplaneStats) {
    this.#o = options
    this.#stats = stats
    this.#append = options.waitReplicas === 0 ? append : appendAndWait(options.waitReplicas, options.waitTimeout)
  }

  /** The topology: its command connection, how it announces, how many broadcasts of a session it sends at once (before any `publish`). */
  attach (topology: Topology): void {
    this.#cmd = topology.cmd
    this.#announce = topology.announce
    this.#window = topology.window
  }

  /** Whether broadcasts wait for Redis after a failure to reach it. */
  get waiting (): boolean {
    return this.#blocked > 0
  }

  /**
   * A broadcast; with `closing` (see {@link Broadcast.closing}), a close after the final event `type` ('' for none).
   * `frames`: undefined when the session's frames are not kept ({@link framesKey}), else whether they are named.
   */
  publish (key: string, frames: boolean | undefined, type: string, data: string, closing = ''): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const bytes = type.length + data.length
      const waiting = this.#blocked > 0 || (this.#cmd as Commands).status !== 'ready'
      if (this.#stopped || (waiting && this.#o.publishRetryMs > 0 && this.#held + bytes > this.#o.publishRetryBytes)) {
        const why = this.#stopped ? 'the backplane is stopped' : `${this.#held} bytes of broadcasts wait for Redis, unreachable or short of waitReplicas replicas (publishRetryBytes ${this.#o.publishRetryBytes})`
        this.#fail(reject, new Error(why))
        return
      }
      let lane = this.#lanes.get(key)
      if (lane === undefined) {
        const keys = frames === undefined ? [key, producersKey(key)] : [key, producersKey(key), framesKey(key)]
        lane = { key, keys, named: frames === true ? '1' : '', queue: [], inFlight: 0, blocked: false, readyAt: 0, base: this.#nextBase, count: 0 }
        this.#lanes.set(key, lane)
      }
      this.#held += bytes
      lane.queue.push({ seq: lane.base + lane.count++, type, data, closing, bytes, deadline: Date.now() + this.#o.publishRetryMs, sent: false, resolve, reject })
      this.#pump(lane)
    })
  }

  /** For the command connection's `ready` event (after the script is loaded): send what waits. */
  readonly retry = (): void => {
    this.#readies++
    for (const lane of this.#lanes.values()) {
      this.#unblock(lane)
      this.#pump(lane)
    }
  }

  /** Rejects every broadcast not settled yet; no more timer. */
  stop (): void {
    this.#stopped = true
    clearTimeout(this.#timer)
    for (const lane of this.#lanes.values()) {
      for (const b of lane.queue) this.#fail(b.reject, new Error('the backplane stopped before Redis stored the broadcast'))
    }
    this.#lanes.clear()
    this.#held = 0
  }

  /** Sends the lane's broadcasts not sent yet, in order, unless it waits for Redis; rejects those past their deadline. */
  #pump (lane: Lane): void {
    const cmd = this.#cmd as Commands
    if (lane.blocked || cmd.status !== 'ready') {
      this.#expire(lane, new Error(cmd.status === 'ready' ? 'Redis connection lost' : `Redis connection is ${cmd.status}`))
      return
    }
    for (const b of lane.queue) {
      if (b.sent) continue
      if (lane.inFlight >= this.#window) break // perf note 39
      b.sent = true
      lane.inFlight++
      // The oldest broadcast not settled is the queue's first: the records of those before it can go.
      const ack = (lane.queue[0] as Broadcast).seq
      const args = [this.#o.maxLen, this.#o.streamTtl, b.type, b.data, lane.key, this.producer, b.seq, lane.base, ack, this.#announce, b.closing, lane.named]
      this.#append(cmd, lane.keys, args).then((id) => { this.#settled(lane, b, id, undefined) }, (err: Error) => { this.#settled(lane, b, undefined, err) })
    }
    this.#forget(lane)
  }

  #settled (lane: Lane, b: Broadcast, id: string | undefined, err: Error | undefined): void {
    // After stop() every broadcast was rejected already.
    if (this.#stopped) return
    lane.inFlight--
    if (err !== undefined && unreachable(err) && Date.now() < b.deadline) {
      // Re-sent once every reply of the lane is in, in order: a later broadcast sent meanwhile failed the same way.
      b.sent = false
      if (!lane.blocked) {
        lane.blocked = true
        this.#blocked++
        // A command that timed out, or a broadcast stored but not replicated yet, can be re-sent at once;
        // after a lost connection, not before it is ready again.
        lane.readyAt = err.message === 'Command timed out' || err instanceof NotReplicatedError ? -1 : this.#readies
      }
    } else {
      this.#remove(lane, b)
      if (err === undefined) {
        this.#stats.published++
        b.resolve(id as string)
      } else if (err.message.endsWith('SSE_HUB_SESSION_CLOSED')) {
        // The script refused it: nothing was stored or sent.
        b.reject(new FST_ERR_SSE_HUB_SESSION_CLOSED(lane.key))
      } else {
        this.#fail(b.reject, err)
      }
    }
    this.#unblock(lane)
    this.#pump(lane)
  }

  /** A blocked lane whose replies are all in may send again: after a timeout, or once the connection was ready again. */
  #unblock (lane: Lane): void {
    if (lane.blocked && lane.inFlight === 0 && lane.readyAt < this.#readies) {
      lane.blocked = false
      this.#blocked--
    }
  }

  /** Rejects the broadcasts of a waiting lane that are past their deadline; the deadline check is set for the others. */
  #expire (lane: Lane, reason: Error): void {
    const now = Date.now()
    for (const b of lane.queue.filter((x) => !x.sent)) {
      if (now < b.deadline) {
        // Deadlines grow along a lane: the first one waiting is the lane's earliest.
        this.#checkAt(b.deadline)
        break
      }
      this.#remove(lane, b)
      this.#fail(b.reject, new Error(`${reason.message}; not stored within publishRetryMs (${this.#o.publishRetryMs} ms)`, { cause: reason }))
    }
    this.#forget(lane)
  }

  /** Sets the deadline check for `at` unless it is due earlier already. */
  #checkAt (at: number): void {
    if (this.#stopped || at >= this.#timerAt) return
    clearTimeout(this.#timer)
    this.#timerAt = at
    this.#timer = setTimeout(() => {
      this.#timerAt = Infinity
      for (const lane of this.#lanes.values()) this.#pump(lane)
    }, Math.max(0, at - Date.now())).unref()
  }

  #remove (lane: Lane, b: Broadcast): void {
    lane.queue.splice(lane.queue.indexOf(b), 1)
    this.#held -= b.bytes
  }

  /** A lane with nothing left is dropped; the session's next lane numbers its broadcasts above this one's. */
  #forget (lane: Lane): void {
    if (lane.queue.length === 0 && lane.inFlight === 0 && this.#lanes.get(lane.key) === lane) {
      this.#lanes.delete(lane.key)
      this.#nextBase = Math.max(this.#nextBase, lane.base + lane.count)
    }
  }

  #fail (reject: (err: Error) => void, err: Error): void {
    this.#stats.publishFailures++
    reject(new FST_ERR_SSE_HUB_BROADCAST_FAILED(err.message, { cause: err }))
  }
}
