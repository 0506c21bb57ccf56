/*
 * The producer leases seam: which process runs a session's producer, stopping it from any process, and what
 * the processes share besides (fastify-sse-hub/ai's chat → answer). Two implementations: this process only
 * (./memory.ts) and on a backplane (./backplane.ts), where a process that dies mid-answer is noticed.
 */

/** Values every process of the hub shares, as it shares the sessions (in memory: this process's). */
export interface SharedValues {
  /** The value of `name`; undefined when none (or expired). */
  readValue (name: string): Promise<string | undefined>
  /** Sets `name` to `value` (undefined: deletes it), kept `ttlMs`, if it holds `expected` (undefined: none); resolves whether it did. */
  swapValue (name: string, expected: string | undefined, value: string | undefined, ttlMs: number): Promise<boolean>
}

export interface Leases extends SharedValues {
  /**
   * Before a producer of the session runs here: takes its lease. `onStop` is called when another process asks
   * it to stop, or the lease was lost (the session was closed for it meanwhile). Rejects with
   * `FST_ERR_SSE_HUB_ALREADY_PIPED` when another process's producer holds it, `FST_ERR_SSE_HUB_SESSION_CLOSED`
   * when the session is closed.
   */
  take (kind: string, sessionId: string, onStop: () => void): Promise<void>
  /**
   * The producer here ended: gives the lease up once its session is `closed`; when it could not be closed (the
   * backplane unreachable), only stops renewing it, so that its lapse has the session closed.
   */
  release (kind: string, sessionId: string, closed: boolean): void
  /** Stops the producer running in another process: resolves true once its session is closed, false when none runs. */
  stopElsewhere (kind: string, sessionId: string): Promise<boolean>
  /** Whether a producer of the session runs in another process. */
  heldElsewhere (kind: string, sessionId: string): Promise<boolean>
  /** No more timers (the hub closes). */
  stop (): void
}
