/*
 * Client limits: `maxClients`, `maxClientsPerSession` and `maxClientsPerIp`, counted across every kind,
 * the 503/429 decision with its `Retry-After`, and refusing every new stream once the hub is shutting down.
 * It owns the counts it checks; a refusal is counted in the kind's counters.
 */
import type { FastifyReply } from 'fastify'
import type { Counters, RejectReason } from './counters.js'
import { FST_ERR_SSE_HUB_REPLY_SENT, FST_ERR_SSE_HUB_SHUTTING_DOWN, FST_ERR_SSE_HUB_TOO_MANY_CLIENTS, FST_ERR_SSE_HUB_TOO_MANY_CLIENTS_PER_IP } from './errors.js'
import type { ResolvedOptions } from './options.js'

export class ClientLimits {
  /** Streams open or being opened, every kind together. */
  #total = 0
  /** Streams per `request.ip`; an address leaves the map at zero, so it holds at most `maxClients` entries. */
  readonly #perIp = new Map<string, number>()
  #shuttingDown = false
  readonly #maxClients: number
  readonly #maxPerSession: number
  readonly #maxPerIp: number
  readonly #retryAfter: string

  constructor (options: ResolvedOptions) {
    this.#maxClients = options.maxClients
    this.#maxPerSession = options.maxClientsPerSession
    this.#maxPerIp = options.maxClientsPerIp
    this.#retryAfter = String(options.retryAfter)
  }

  /** From now on every new stream is refused with 503 (`preClose`). */
  shutDown (): void { this.#shuttingDown = true }

  get shuttingDown (): boolean { return this.#shuttingDown }

  /**
   * Throws, before any SSE byte, when `reply` cannot become a stream of a session that has `inSession`
   * streams now, counting the refusal in `counters`. Returns the address to count, undefined when
   * `maxClientsPerIp` is off (perf note 7).
   */
  admit (reply: FastifyReply, inSession: number, counters: Counters): string | undefined {
    if (this.#shuttingDown) throw new FST_ERR_SSE_HUB_SHUTTING_DOWN()
    if (reply.sent || reply.raw.headersSent) throw new FST_ERR_SSE_HUB_REPLY_SENT()
    const ip = this.#maxPerIp === Infinity ? undefined : reply.request.ip
    if (ip !== undefined && (this.#perIp.get(ip) ?? 0) >= this.#maxPerIp) {
      throw this.refuse(reply, new FST_ERR_SSE_HUB_TOO_MANY_CLIENTS_PER_IP(), counters, 'max_per_ip')
    }
    if (this.#total >= this.#maxClients) throw this.refuse(reply, new FST_ERR_SSE_HUB_TOO_MANY_CLIENTS('maxClients'), counters, 'max_clients')
    if (inSession >= this.#maxPerSession) throw this.refuse(reply, new FST_ERR_SSE_HUB_TOO_MANY_CLIENTS('maxClientsPerSession'), counters, 'max_per_session')
    return ip
  }

  /** Counts a refusal for lack of room and tells the client when to come back; returns `err` to throw. */
  refuse<T extends Error>(reply: FastifyReply, err: T, counters: Counters, reason: RejectReason): T {
    counters.rejected(reason)
    this.retryLater(reply)
    return err
  }

  /** Sets `Retry-After` on a 503 or 429 reply. */
  retryLater (reply: FastifyReply): void {
    reply.header('retry-after', this.#retryAfter)
  }

  /** Counts one stream, open or waiting to open. */
  take (ip: string | undefined): void {
    this.#total++
    if (ip !== undefined) this.#perIp.set(ip, (this.#perIp.get(ip) ?? 0) + 1)
  }

  /** Undoes {@link take}. */
  give (ip: string | undefined): void {
    this.#total--
    if (ip === undefined) return
    const left = (this.#perIp.get(ip) as number) - 1
    if (left === 0) this.#perIp.delete(ip)
    else this.#perIp.set(ip, left)
  }
}
