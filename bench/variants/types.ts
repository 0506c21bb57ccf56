import type { BenchPayload } from '../common.js'

/** One server under test. Streams are served at `GET /s/:id` (one session per id). */
export interface Variant {
  /** Listens on 127.0.0.1, a free port; returns the port. */
  listen: () => Promise<number>
  /** Sends one event to every client of `session`; may return a promise that settles once it is written. */
  broadcast: (session: string, p: BenchPayload) => unknown
  /** Open streams, all sessions. */
  clients: () => number
  close: () => Promise<void>
}
