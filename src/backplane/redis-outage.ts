/*
 * What a Redis backplane writes to the log while Redis is in trouble: one line with the cause when trouble starts,
 * then at most one line a minute while it lasts (ioredis retries every connection every few hundred ms), and one
 * line when it is over. No timer: each error checks the time.
 */
import type { FastifyBaseLogger } from 'fastify'

/** Least time between two lines of one outage. */
export const OUTAGE_LOG_INTERVAL_MS = 60_000

export class OutageLog {
  /** The newest error seen, for a start-up failure's message (ioredis rejects then with only "Connection is closed."). */
  last: Error | undefined = undefined
  /** When the current outage's first error came; 0 when there is none. */
  #since = 0
  #lastLine = 0
  /** Errors since the last line. */
  #unlogged = 0

  constructor (private readonly where: string, private readonly now: () => number = Date.now) {}

  /** An error of the backplane's connections or commands; `logger` undefined before the backplane started. */
  error (logger: FastifyBaseLogger | undefined, err: Error): void {
    this.last = err
    if (logger === undefined) return
    const now = this.now()
    if (this.#since === 0) {
      this.#since = this.#lastLine = now
      logger.warn({ cause: cause(err) }, `sse-hub: Redis backplane (${this.where}): ${cause(err)}; retrying`)
      return
    }
    this.#unlogged++
    if (now - this.#lastLine < OUTAGE_LOG_INTERVAL_MS) return
    logger.warn({ cause: cause(err), errors: this.#unlogged }, `sse-hub: Redis backplane (${this.where}): still failing after ${seconds(now - this.#since)} s (${this.#unlogged} errors since the last line): ${cause(err)}`)
    this.#lastLine = now
    this.#unlogged = 0
  }

  /** The connections are ready again: the end of an outage, if there was one. */
  recovered (logger: FastifyBaseLogger): void {
    if (this.#since === 0) return
    logger.info(`sse-hub: Redis backplane (${this.where}): connected again after ${seconds(this.now() - this.#since)} s`)
    this.#since = 0
    this.#unlogged = 0
  }
}

/** The message, with the errno code when Node gives one that the message lacks. */
function cause (err: Error): string {
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' && !err.message.includes(code) ? `${err.message} (${code})` : err.message
}

const seconds = (ms: number): string => (ms / 1000).toFixed(1)
