/*
 * A session's fan-out: frames queued by broadcasts are written in rounds, one batch per round, to each
 * client in turn; a round yields to other work after a time slice (perf notes 13 and 31).
 */
import { Batch, type Outgoing } from './batch.js'
import type { Client } from './client-writer.js'
import type { FanOutTimer } from './metrics/types.js'

/** How rounds share the event loop; the defaults are what `npm run bench` measured. */
export interface FanOutTuning {
  /** A round yields for a turn of the event loop once it has run this long (ms)… */
  readonly sliceMs: number
  /** …reading the clock every this many clients. */
  readonly checkEvery: number
}

/** What every fan-out of a registry shares. */
export interface FanOutHost {
  readonly tuning: FanOutTuning
  /** Above this many queued bytes a round does not yield: nothing grows without bound. */
  readonly maxQueuedBytes: number
  /** The heartbeat period now (see `SessionRegistry.heartbeatIdle`). */
  readonly period: number
  /** Writes a round's batch to one client. */
  write (client: Client, batch: Batch): void
  readonly timer: FanOutTimer
}

// Captured at load (perf note 32).
const later = globalThis.setImmediate
// perf note 14: a microtask through a settled promise.
const settled = Promise.resolve()
const clock = performance.now.bind(performance)

/** A round in progress: one batch, written to the clients in insertion order. */
class Round {
  constructor (
    readonly batch: Batch,
    readonly clients: IterableIterator<Client>,
    /** Resolve the broadcasts of the batch once every client has been written to. */
    readonly waiters: Array<() => void>
  ) {}
}

export class FanOut {
  /** Frames broadcast but not yet in a round, their bytes, and their broadcasts' resolvers. */
  #queue: Outgoing[] = []
  #queueBytes = 0
  #waiters: Array<() => void> = []
  // The arrays of the last finished round, emptied, to be the next queue (perf note 24).
  #spareQueue: Outgoing[] = []
  #spareWaiters: Array<() => void> = []
  #round: Round | undefined = undefined
  #scheduled = false
  /** The heartbeat period in which a round last started. */
  #wroteIn = -1
  /** Rounds started: each client is stamped with the one that last wrote to it. */
  #rounds = 0

  constructor (readonly clients: Map<string, Client>, readonly host: FanOutHost) {}

  /** Queues a frame for every client; it is written in a round right after the caller yields. `done` runs once it is. */
  send (o: Outgoing, done?: () => void): void {
    this.#queue.push(o)
    this.#queueBytes += o.frame.length
    this.host.timer.queued(o)
    if (done !== undefined) this.#waiters.push(done)
    if (this.#round === undefined && !this.#scheduled) {
      this.#scheduled = true
      void settled.then(() => {
        this.#scheduled = false
        this.#pump()
      })
    }
  }

  /** Whether a round started in heartbeat period `period`. */
  wroteIn (period: number): boolean {
    return this.#wroteIn === period
  }

  /** The frames queued and not yet written to `client`: the current round's unless it reached the client, then the queue. */
  unwritten (client: Client): Outgoing[] {
    const round = this.#round
    return round === undefined || client.writtenIn === this.#rounds ? this.#queue : [...round.batch.outgoing, ...this.#queue]
  }

  /** Runs rounds until the queue is empty, yielding after a time slice unless the queue is over its bound. */
  #pump (): void {
    const { tuning: { sliceMs, checkEvery }, maxQueuedBytes } = this.host
    const deadline = clock() + sliceMs
    for (;;) {
      let round = this.#round
      if (round === undefined) {
        if (this.#queue.length === 0) return
        round = this.#round = new Round(new Batch(this.#queue), this.clients.values(), this.#waiters)
        this.#rounds++
        this.#wroteIn = this.host.period
        this.#queue = this.#spareQueue
        this.#queueBytes = 0
        this.#waiters = this.#spareWaiters
      }
      const { batch, clients } = round
      let n = 0
      for (let next = clients.next(); next.done !== true; next = clients.next()) {
        const client = next.value
        client.writtenIn = this.#rounds
        this.host.write(client, batch)
        if (++n % checkEvery === 0 && clock() >= deadline && this.#queueBytes <= maxQueuedBytes) {
          later(() => { this.#pump() })
          return
        }
      }
      this.#round = undefined
      const { outgoing } = round.batch
      const { waiters } = round
      this.host.timer.written(outgoing)
      for (const done of waiters) done()
      // Nothing refers to the finished round's arrays any more (resolving a broadcast runs no code now).
      outgoing.length = 0
      waiters.length = 0
      this.#spareQueue = outgoing
      this.#spareWaiters = waiters
    }
  }
}
