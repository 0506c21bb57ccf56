/*
 * Producer leases on a backplane: the leases of the producers running here, renewed every `leaseMs` / 3, and the
 * watch over the sessions followed here, so that one whose producer's process is gone is closed (`lease_lapsed`)
 * once its lease lapses, and a stop asked here waits for the close. One timer for both, while there is either.
 */
import type { FastifyBaseLogger } from 'fastify'
import { randomUUID } from 'node:crypto'
import type { Backplane, ProducerNotice } from '../backplane/types.js'
import { FST_ERR_SSE_HUB_ALREADY_PIPED, FST_ERR_SSE_HUB_SESSION_CLOSED } from '../errors.js'
import type { Session } from '../session.js'
import type { Leases } from './types.js'

/** A lease held by a producer running here. */
interface Held {
  readonly kind: string
  readonly sessionId: string
  readonly onStop: () => void
  renewedAt: number
  /** A renewal is on its way. */
  busy: boolean
  /** Lost (or its session closed): renewed no more, its producer told once. */
  ended: boolean
}

/** A session whose producer runs elsewhere, as far as this process knows: followed by clients here, or by stops asked here. */
interface Watch {
  readonly kind: string
  readonly sessionId: string
  /** The session's clients here; undefined for a watch made by a stop only. */
  session: Session | undefined
  /** Stops asked here: resolved once the session is closed. */
  readonly waiters: Array<() => void>
  /** When to look at its lease next. */
  dueAt: number
  busy: boolean
  /** `'leased'` notices received: one that arrives while a look is on its way outdates the look's `'none'`. */
  notices: number
  /** The last look failed (the backplane unreachable): an expired lease gets a grace period, once (LeaseOp `'lapse'`). */
  failed: boolean
}

/** How many `leaseMs` a session without a producer sleeps between looks (a `'leased'` notice wakes it before). */
const IDLE_LEASES = 5

const keyOf = (kind: string, sessionId: string): string => `${kind}\n${sessionId}`

export class BackplaneLeases implements Leases {
  /** Whose leases this process's are. */
  readonly #holder = randomUUID()
  readonly #held = new Map<string, Held>()
  readonly #watched = new Map<string, Watch>()
  readonly #tickMs: number
  #timer: NodeJS.Timeout | undefined
  #stopped = false

  constructor (
    private readonly backplane: Backplane,
    private readonly leaseMs: number,
    /** Closes a session whose lease lapsed, with the failure event `lease_lapsed`. */
    private readonly lapse: (kind: string, sessionId: string) => Promise<unknown>,
    private readonly logger: FastifyBaseLogger,
    private readonly now: () => number
  ) {
    // A lapse is noticed within a tick of it: leaseMs + 1 s at most.
    this.#tickMs = Math.min(1000, Math.floor(leaseMs / 6))
  }

  async take (kind: string, sessionId: string, onStop: () => void): Promise<void> {
    // Following the session first: a stop asked once the lease is taken comes as a notice.
    await this.backplane.subscribe(kind, sessionId)
    let answer: string
    try {
      answer = await this.backplane.lease('take', kind, sessionId, this.#holder, this.leaseMs)
    } catch (err) {
      this.backplane.unsubscribe(kind, sessionId)
      throw err
    }
    if (answer !== 'taken') {
      this.backplane.unsubscribe(kind, sessionId)
      const what = JSON.stringify(sessionId)
      throw answer === 'closed' ? new FST_ERR_SSE_HUB_SESSION_CLOSED(what) : new FST_ERR_SSE_HUB_ALREADY_PIPED(what)
    }
    this.#held.set(keyOf(kind, sessionId), { kind, sessionId, onStop, renewedAt: this.now(), busy: false, ended: false })
    this.#arm()
  }

  release (kind: string, sessionId: string, closed: boolean): void {
    if (!this.#held.delete(keyOf(kind, sessionId))) return
    this.backplane.unsubscribe(kind, sessionId)
    // Not released (Redis unreachable): the session is closed, so its lapse changes nothing.
    if (closed) this.backplane.lease('release', kind, sessionId, this.#holder, 0).catch(nothing)
  }

  async stopElsewhere (kind: string, sessionId: string): Promise<boolean> {
    await this.backplane.subscribe(kind, sessionId)
    const watch = this.#watch(kind, sessionId, undefined)
    let resolve!: () => void
    const closed = new Promise<void>((resolve_) => { resolve = resolve_ })
    watch.waiters.push(resolve)
    // Checked at the next tick too, should the notices be missed.
    watch.dueAt = Math.min(watch.dueAt, this.now())
    try {
      if (!await this.backplane.stopProducer(kind, sessionId)) return false
      await closed
      return true
    } finally {
      watch.waiters.splice(watch.waiters.indexOf(resolve), 1)
      this.backplane.unsubscribe(kind, sessionId)
    }
  }

  async heldElsewhere (kind: string, sessionId: string): Promise<boolean> {
    return (await this.backplane.leaseState(kind, sessionId)).state === 'held'
  }

  /** `session` has a client (or a join) here: watched while it has, so its clients do not wait on a dead producer. */
  watch (session: Session): void {
    this.#watch(session.kind, session.id, session)
  }

  /** A notice from the backplane: a stop for a producer here, or a producer that took the lease of a session watched here. */
  notice (kind: string, sessionId: string, notice: ProducerNotice): void {
    const key = keyOf(kind, sessionId)
    if (notice === 'stop') this.#held.get(key)?.onStop()
    const watch = this.#watched.get(key)
    if (watch === undefined) return
    watch.notices++
    watch.dueAt = Math.min(watch.dueAt, this.now() + this.leaseMs)
  }

  /** A session followed here was closed: the stops waiting for it are done. */
  closed (kind: string, sessionId: string): void {
    const key = keyOf(kind, sessionId)
    const watch = this.#watched.get(key)
    if (watch === undefined) return
    this.#watched.delete(key)
    for (const resolve of watch.waiters) resolve()
  }

  async readValue (name: string): Promise<string | undefined> {
    return await this.backplane.readValue(name)
  }

  async swapValue (name: string, expected: string | undefined, value: string | undefined, ttlMs: number): Promise<boolean> {
    return await this.backplane.swapValue(name, expected, value, ttlMs)
  }

  stop (): void {
    this.#stopped = true
    clearInterval(this.#timer)
    for (const watch of this.#watched.values()) for (const resolve of watch.waiters) resolve()
    this.#watched.clear()
    this.#held.clear()
  }

  #watch (kind: string, sessionId: string, session: Session | undefined): Watch {
    const key = keyOf(kind, sessionId)
    let watch = this.#watched.get(key)
    if (watch === undefined) {
      // Looked at the next tick: a client that resumes a dead producer's session learns it within leaseMs.
      watch = { kind, sessionId, session, waiters: [], dueAt: this.now(), busy: false, notices: 0, failed: false }
      this.#watched.set(key, watch)
      this.#arm()
    } else if (session !== undefined) {
      watch.session = session
      // A notice may have been missed while nobody here followed the session.
      watch.dueAt = Math.min(watch.dueAt, this.now() + this.leaseMs)
    }
    return watch
  }

  #arm (): void {
    if (this.#timer === undefined && !this.#stopped) this.#timer = setInterval(this.#tick, this.#tickMs).unref()
  }

  readonly #tick = (): void => {
    const now = this.now()
    for (const held of this.#held.values()) {
      if (!held.busy && !held.ended && now - held.renewedAt >= this.leaseMs / 3) this.#renew(held, now)
    }
    for (const [key, watch] of this.#watched) {
      const s = watch.session
      // Nobody here waits on it any more.
      if (watch.waiters.length === 0 && (s === undefined || s.closed !== undefined || (s.clients.size === 0 && s.joins.size === 0))) {
        this.#watched.delete(key)
      } else if (!watch.busy && now >= watch.dueAt) {
        this.#check(watch)
      }
    }
    if (this.#held.size === 0 && this.#watched.size === 0) {
      clearInterval(this.#timer)
      this.#timer = undefined
    }
  }

  #renew (held: Held, now: number): void {
    held.busy = true
    this.backplane.lease('renew', held.kind, held.sessionId, this.#holder, this.leaseMs).then((answer) => {
      held.busy = false
      if (answer === 'renewed' || answer === 'stop') held.renewedAt = now
      if (answer === 'renewed') return
      // A stop whose notice was missed; or the lease lost (lapsed: not renewed within leaseMs), or the session
      // closed (by the producer itself as this renewal crossed it, or for the lapse).
      if (answer !== 'stop') held.ended = true
      if (answer === 'lost') this.logger.warn({ kind: held.kind, sessionId: held.sessionId }, "sse-hub: a producer's lease was lost (it was not renewed within leaseMs); the producer is stopped")
      held.onStop()
    }, (err: unknown) => {
      held.busy = false
      this.logger.debug({ err, kind: held.kind, sessionId: held.sessionId }, 'sse-hub: a lease renewal failed; the next tick tries again')
    })
  }

  #check (watch: Watch): void {
    watch.busy = true
    const { kind, sessionId, notices } = watch
    this.backplane.lease('lapse', kind, sessionId, watch.failed ? 'grace' : '', this.leaseMs).then(async (answer) => {
      watch.failed = false
      if (answer.startsWith('held ')) {
        // Stops waiting look every tick; a watch, when the lease would lapse unless renewed.
        watch.dueAt = this.now() + (watch.waiters.length > 0 ? 0 : Number(answer.slice(5)) + 1)
        return
      }
      if (answer === 'lapsed') {
        this.logger.warn({ kind, sessionId }, 'sse-hub: the producer of a session stopped renewing its lease (its process is gone or stalled); the session is closed (pipe_failed, lease_lapsed)')
        await this.lapse(kind, sessionId)
      } else if (answer === 'none' && watch.waiters.length === 0) {
        // No producer (yet): look again later, or a lease's lifetime after a `'leased'` notice that crossed this look.
        watch.dueAt = this.now() + this.leaseMs * (watch.notices === notices ? IDLE_LEASES : 1)
        return
      }
      this.closed(kind, sessionId)
    }).catch((err: unknown) => {
      // Redis unreachable (or the close failed): look again at the next tick.
      watch.dueAt = this.now()
      watch.failed = true
      this.logger.debug({ err, kind, sessionId }, "sse-hub: a session's lease could not be looked at; the next tick tries again")
    }).finally(() => { watch.busy = false })
  }
}

function nothing (): void {}
