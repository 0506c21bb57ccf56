/*
 * Producing into one kind's sessions: `pipe` appends a source's events in order, then closes the session
 * (with the wire format's failure event when the source did not end by itself); `stop` aborts a producer, here
 * or (through the leases) in another process, and waits for its session's close. Which sessions have a
 * producer here is this module's map.
 */
import { FST_ERR_SSE_HUB_ALREADY_PIPED } from './errors.js'
import type { EventLog } from './event-log/types.js'
import type { Leases } from './leases/types.js'
import type { Sessions } from './sessions.js'
import type { PipeFailure } from './wire-format.js'

/** One item of a piped source: an event type of the kind and its payload, as `broadcast` takes them. */
export type PipedEvent<E> = { [K in keyof E & string]: { type: K, payload: E[K] } }[keyof E & string]

/** What `pipe` reads: an async iterable (an async generator, say) or a web `ReadableStream` of events. */
export type PipeSource<T> = AsyncIterable<T> | ReadableStream<T>

/**
 * A source, or a function making one that is given the producer's signal: `stop` (and `PipeOptions.signal`)
 * abort it, and the source should then end (an AI SDK stream ends with its `abort` chunk); what it yields
 * until then is appended. A source given as is is no longer read once stopped.
 */
export type Producer<T> = PipeSource<T> | ((signal: AbortSignal) => PipeSource<T>)

/** Options of `pipe`. */
export interface PipeOptions {
  /** Aborting it stops the producer, as `stop` does. */
  signal?: AbortSignal
}

/** Where a producer's events go: its kind's registry. */
export interface PipeTarget {
  /** Appends one event (validated as a broadcast); resolves with its id. */
  append (sessionId: string, type: string, payload: unknown): Promise<string>
  /** Closes the session, after the wire format's failure event when `failure` is given; resolves with the final id. */
  close (sessionId: string, failure: PipeFailure | undefined): Promise<string>
}

/** A producer running here. */
interface Running {
  readonly controller: AbortController
  /** Settles once its session is closed (or could not be). */
  readonly done: Promise<unknown>
}

const STOPPED: unique symbol = Symbol('stopped')

/** The producers of one kind's sessions running in this process. */
export class Producers {
  readonly #running = new Map<string, Running>()

  constructor (private readonly kind: string, private readonly target: PipeTarget, private readonly leases: Leases) {}

  /**
   * Runs `producer` into `sessionId`; resolves with the session's final event id once it is closed, or rejects
   * with the source's (or an append's) error once it is closed with the failure event. Throws
   * `FST_ERR_SSE_HUB_ALREADY_PIPED` when a producer of the session runs here.
   */
  pipe<T extends { type: string, payload: unknown }>(sessionId: string, producer: Producer<T>, options: PipeOptions = {}): Promise<string> {
    if (this.#running.has(sessionId)) throw new FST_ERR_SSE_HUB_ALREADY_PIPED(JSON.stringify(sessionId))
    const controller = new AbortController()
    const signal = options.signal === undefined ? controller.signal : AbortSignal.any([controller.signal, options.signal])
    const run = this.#run(sessionId, producer, signal, controller)
    const done = run.then(nothing, nothing).then(() => { this.#running.delete(sessionId) })
    this.#running.set(sessionId, { controller, done })
    return run
  }

  /** Aborts the producer of `sessionId`, here or elsewhere; resolves true once its session is closed, false when none runs. */
  async stop (sessionId: string): Promise<boolean> {
    const running = this.#running.get(sessionId)
    if (running === undefined) return await this.leases.stopElsewhere(this.kind, sessionId)
    running.controller.abort()
    await running.done
    return true
  }

  /**
   * The hub closes: aborts every producer running here, so that each session ends now (for its clients on other
   * instances too) and gives its lease up; resolves once they are closed, or after `ms` for one that ignores its signal.
   */
  async stopAll (ms: number): Promise<void> {
    const closed = [...this.#running.values()].map((running) => {
      running.controller.abort()
      return running.done
    })
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<void>((resolve) => { timer = setTimeout(resolve, ms) })
    await Promise.race([Promise.all(closed), late])
    clearTimeout(timer)
  }

  /** Whether a producer of `sessionId` runs, here or elsewhere. */
  async running (sessionId: string): Promise<boolean> {
    return this.#running.has(sessionId) || await this.leases.heldElsewhere(this.kind, sessionId)
  }

  async #run<T extends { type: string, payload: unknown }>(sessionId: string, producer: Producer<T>, signal: AbortSignal, controller: AbortController): Promise<string> {
    // Not taken (another process's producer has it, or the session is closed): nothing was read or appended.
    await this.leases.take(this.kind, sessionId, () => { controller.abort() })
    const told = typeof producer === 'function'
    let failure: PipeFailure | undefined
    let error: unknown
    let iterator: AsyncIterator<T> | undefined
    try {
      // Node's ReadableStream is async iterable (Node 20 and later, as `engines` requires).
      iterator = ((told ? producer(signal) : producer) as AsyncIterable<T>)[Symbol.asyncIterator]()
      while (true) {
        const next = told ? await iterator.next() : await untilStopped(iterator.next(), signal)
        if (next === STOPPED) {
          failure = 'stopped'
          break
        }
        if (next.done === true) break
        await this.target.append(sessionId, next.value.type, next.value.payload)
      }
    } catch (err) {
      failure = signal.aborted ? 'stopped' : 'source_error'
      error = err
    }
    // Not read to its end: let it release what it holds (a ReadableStream is cancelled).
    if (failure !== undefined) iterator?.return?.().catch(nothing)
    let closed = false
    try {
      const id = await this.target.close(sessionId, failure)
      closed = true
      if (failure === 'source_error') throw error
      return id
    } finally {
      // Not closed (the backplane unreachable): the lease is only no longer renewed, so that its lapse closes the session.
      this.leases.release(this.kind, sessionId, closed)
    }
  }
}

/** The producers of one kind's sessions: appended to and closed through the event log, in the kind's wire format. */
export function kindProducers (sessions: Sessions, eventLog: EventLog, now: () => number): Producers {
  return new Producers(sessions.kind, {
    append: (sessionId, type, payload) => eventLog.append(sessions, sessionId, type, sessions.format.eventJson(type, payload, now())),
    close: (sessionId, failure) => {
      if (failure === undefined) return eventLog.closeSession(sessions, sessionId, undefined, undefined)
      const { type, json } = sessions.format.failed(sessionId, failure, now())
      return eventLog.closeSession(sessions, sessionId, type, json)
    }
  }, eventLog.leases)
}

/** `next`, or {@link STOPPED} as soon as `signal` aborts, whichever comes first (one listener at a time). */
async function untilStopped<R>(next: Promise<R>, signal: AbortSignal): Promise<R | typeof STOPPED> {
  if (signal.aborted) return STOPPED
  let onAbort: (() => void) | undefined
  const stopped = new Promise<typeof STOPPED>((resolve) => {
    onAbort = () => { resolve(STOPPED) }
    signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([next, stopped])
  } finally {
    signal.removeEventListener('abort', onAbort as () => void)
  }
}

function nothing (): void {}
