/*
 * The metrics seam: the `metrics` option's types, what the hub asks of its metrics, and the timers they hand out.
 * Two implementations: {@link NO_METRICS} (no `metrics` option: nothing measured) and `PrometheusMetrics` (./prometheus.ts).
 */
import type { Backplane, BackplaneStats } from '../backplane/types.js'
import type { Outgoing } from '../batch.js'
import type { Counters, RegistryStats } from '../counters.js'

/**
 * The part of a prom-client `Registry` the hub uses; pass the application's own `Registry`. The hub registers
 * metric objects that read its counters at scrape time, and never imports prom-client itself.
 */
export interface MetricsRegistry {
  /** Adds a metric (an object with prom-client's metric interface: `name`, `help`, `type`, `get()`, `reset()`). */
  registerMetric (metric: never): void
  /** Removes a metric by name; the hub calls it for its own metrics in `onClose` when the registry has it. */
  removeSingleMetric?: (name: string) => void
}

/** The `metrics` option: Prometheus metrics in the application's prom-client registry. */
export interface MetricsOptions {
  /** The application's prom-client `Registry` (`new Registry()`, or prom-client's `register`). */
  registry: MetricsRegistry
  /** Prepended to every metric name; must match `^[a-zA-Z_:][a-zA-Z0-9_:]*$`. Default `'sse_hub_'`. */
  prefix?: string
}

/** What the metrics read at scrape time of one kind. */
export interface KindSource {
  readonly kind: string
  readonly counters: Counters
  stats (): RegistryStats
}

/** What the metrics read at scrape time: every kind, and the backplane's stats when there is one. */
export interface MetricsSource {
  readonly kinds: readonly KindSource[]
  readonly backplane: (() => BackplaneStats) | undefined
}

/**
 * Measures fan-outs: told of each frame queued and of each round's frames once every client has them.
 * Two implementations, chosen once per kind: {@link UNTIMED_FANOUT} (no `metrics` option) and `FanOutTimes`
 * (./histogram.ts), one observation per event (perf note 38).
 */
export interface FanOutTimer {
  queued (o: Outgoing): void
  written (outgoing: readonly Outgoing[]): void
}

/** The fan-out timer of a hub without metrics: no clock read, nothing stored. */
export const UNTIMED_FANOUT: FanOutTimer = Object.freeze({ queued () {}, written () {} })

/**
 * Measures the backplane: publish latency and lag. Two implementations, chosen once: {@link UNTIMED_BACKPLANE}
 * (no `metrics` option) and `BackplaneTimes` (./histogram.ts).
 */
export interface BackplaneTimer {
  /** A publish starts: its start time, for {@link published}. */
  publishing (): number
  /** The publish that {@link publishing} returned `started` for was persisted. */
  published (started: number): void
  /** The event `id` arrived here from the backplane. */
  arrived (id: string): void
}

/** The backplane timer of a hub without metrics: no clock read. */
export const UNTIMED_BACKPLANE: BackplaneTimer = Object.freeze({ publishing: () => 0, published () {}, arrived () {} })

/** What the hub asks of its metrics. */
export interface HubMetrics {
  /** The fan-out timer of a kind (asked once per kind). */
  fanOutTimer (kind: string): FanOutTimer
  /** The timer of the backplane. */
  backplaneTimer (backplane: Backplane): BackplaneTimer
  /** Registers the metrics; throws `FST_ERR_SSE_HUB_INVALID_OPTION` when the registry refuses one. */
  register (source: MetricsSource): void
  /** Removes them from the registry. */
  unregister (): void
}

/** The metrics of a hub without the `metrics` option: nothing measured, nothing registered. */
export const NO_METRICS: HubMetrics = Object.freeze({
  fanOutTimer: () => UNTIMED_FANOUT,
  backplaneTimer: () => UNTIMED_BACKPLANE,
  register () {},
  unregister () {}
})
