/*
 * Timings for metrics: fixed-bucket histograms kept in typed arrays, and the timers that fill them (a kind's
 * fan-out time; the backplane's lag and publish latency). ./prometheus.ts reads them at scrape time.
 */
import type { Backplane } from '../backplane/types.js'
import type { Outgoing } from '../batch.js'
import type { BackplaneTimer, FanOutTimer } from './types.js'

const clock = performance.now.bind(performance)

/** Upper bounds (seconds) of `fanout_seconds`: from a small session's 0.1 ms to a stalled one's second. */
export const FANOUT_BUCKETS: readonly number[] = Object.freeze([0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1])
/** Upper bounds (seconds) of the backplane's lag and publish latency: a network round trip to an outage. */
export const BACKPLANE_BUCKETS: readonly number[] = Object.freeze([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])

/** Observations in fixed buckets: counting one costs no allocation. */
export class Histogram {
  /** Observations per bucket (not cumulative); the last is above every bound (`+Inf`). */
  readonly counts: Float64Array
  sum = 0
  count = 0

  constructor (readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1)
  }

  observe (seconds: number): void {
    const bounds = this.bounds
    let i = 0
    while (i < bounds.length && seconds > (bounds[i] as number)) i++
    this.counts[i] = (this.counts[i] as number) + 1
    this.sum += seconds
    this.count++
  }
}

/** A kind's fan-out time: from an event queued to the end of the round that wrote it to every client. */
export class FanOutTimes implements FanOutTimer {
  constructor (readonly histogram: Histogram) {}

  queued (o: Outgoing): void {
    // Heartbeats and resyncs (seq 0) are not broadcasts, and the heartbeat frame is shared.
    if (o.seq > 0) o.queuedAt = clock()
  }

  written (outgoing: readonly Outgoing[]): void {
    const end = clock()
    for (const o of outgoing) {
      if (o.seq > 0) this.histogram.observe((end - o.queuedAt) / 1000)
    }
  }
}

/** The backplane's publish latency (publish call to persisted) and lag (an event's time in its id to its arrival here). */
export class BackplaneTimes implements BackplaneTimer {
  readonly publish = new Histogram(BACKPLANE_BUCKETS)
  readonly lag = new Histogram(BACKPLANE_BUCKETS)

  constructor (private readonly backplane: Backplane) {}

  publishing (): number { return clock() }

  published (started: number): void {
    this.publish.observe((clock() - started) / 1000)
  }

  arrived (id: string): void {
    const at = this.backplane.eventTime?.(id)
    if (at !== undefined) this.lag.observe(Math.max(0, Date.now() - at) / 1000)
  }
}
