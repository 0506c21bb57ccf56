/*
 * The hub's Prometheus metrics: objects with prom-client's metric interface, registered in the application's
 * registry, that read the hub's counters, stats and histograms when scraped. prom-client is never imported,
 * no value is kept up to date by a timer, and no label takes a value outside the kinds, the reject reasons
 * and the bucket bounds (perf note 38).
 */
import type { Backplane, BackplaneStats } from '../backplane/types.js'
import { REJECT_REASONS, type Counters, type RegistryStats } from '../counters.js'
import { FST_ERR_SSE_HUB_INVALID_OPTION } from '../errors.js'
import { BackplaneTimes, FANOUT_BUCKETS, FanOutTimes, Histogram } from './histogram.js'
import type { BackplaneTimer, FanOutTimer, HubMetrics, KindSource, MetricsOptions, MetricsRegistry, MetricsSource } from './types.js'

type Labels = Record<string, string | number>

/** One value of a metric, as prom-client's `get()` returns it. */
interface Value {
  readonly value: number
  readonly labels: Labels
  readonly metricName?: string
}

type MetricType = 'counter' | 'gauge' | 'histogram'

/** A metric computed when scraped: the shape prom-client's `Registry` reads (`registerMetric`, `metrics()`, `getMetricsAsJSON()`). */
class ScrapedMetric {
  readonly aggregator = 'sum'

  // `name` is not readonly: an OpenMetrics registry rewrites a counter's name.
  constructor (public name: string, readonly help: string, readonly type: MetricType, readonly values: (name: string) => Value[]) {}

  get (): { name: string, help: string, type: MetricType, values: Value[], aggregator: string } {
    return { name: this.name, help: this.help, type: this.type, values: this.values(this.name), aggregator: this.aggregator }
  }

  /** The hub's counters only grow while it runs; a registry's reset leaves them alone. */
  reset (): void {}
}

/** A histogram's values: cumulative buckets with `le`, then `_sum` and `_count`. */
function histogramValues (name: string, h: Histogram, labels: Labels): Value[] {
  const values: Value[] = []
  let below = 0
  for (let i = 0; i < h.bounds.length; i++) {
    below += h.counts[i] as number
    values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: h.bounds[i] as number }, value: below })
  }
  values.push(
    { metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: h.count },
    { metricName: `${name}_sum`, labels, value: h.sum },
    { metricName: `${name}_count`, labels, value: h.count }
  )
  return values
}

type KindValue = (counters: Counters, stats: () => RegistryStats) => number

/** The per-kind gauges and counters: name (after the prefix), type, help, value. */
const PER_KIND: ReadonlyArray<readonly [string, MetricType, string, KindValue]> = [
  ['clients', 'gauge', 'Open streams.', (_, s) => s().clients],
  ['sessions', 'gauge', 'Sessions held in memory, with or without clients.', (_, s) => s().sessions],
  ['closed_sessions', 'gauge', 'Closed sessions still remembered (closedSessionTtl).', (_, s) => s().closed],
  ['history_events', 'gauge', 'Events held for replay.', (_, s) => s().historyEvents],
  ['history_bytes', 'gauge', 'Bytes held for replay.', (_, s) => s().historyBytes],
  ['broadcasts_total', 'counter', 'Events broadcast, each counted once whatever the number of clients.', (c) => c.broadcasts],
  ['events_delivered_total', 'counter', 'Events written to clients: one per event per client, live or replayed.', (c) => c.eventsSent],
  ['written_bytes_total', 'counter', 'Bytes written to clients, heartbeats and replays included.', (c) => c.bytesSent],
  ['heartbeats_total', 'counter', 'Heartbeat comments written: one per heartbeat per client.', (c) => c.heartbeatsSent],
  ['clients_connected_total', 'counter', 'Streams opened.', (c) => c.clientsConnected],
  ['clients_dropped_slow_total', 'counter', 'Clients disconnected because their unsent bytes passed maxBufferedBytes.', (c) => c.clientsDroppedSlow],
  ['clients_expired_total', 'counter', 'Clients ended by cleanup at maxConnectionAge.', (c) => c.clientsExpired],
  ['replays_total', 'counter', 'Reconnections answered with a replay from history (possibly empty).', (c) => c.replaysServed],
  ['resyncs_total', 'counter', 'Resync events sent: the client lost its place and must reload the session.', (c) => c.resyncsSent],
  ['snapshots_total', 'counter', 'Snapshot events sent: joiners, and reconnections answered with the state instead of a resync.', (c) => c.snapshotsSent],
  ['sessions_evicted_total', 'counter', 'Sessions without clients forgotten, with their history, to stay within maxSessions.', (c) => c.sessionsEvicted]
]

export class PrometheusMetrics implements HubMetrics {
  readonly #registry: MetricsRegistry
  readonly #prefix: string
  readonly #fanOut = new Map<string, Histogram>()
  #backplane: BackplaneTimes | undefined
  readonly #registered: ScrapedMetric[] = []

  constructor (options: Required<MetricsOptions>) {
    this.#registry = options.registry
    this.#prefix = options.prefix
  }

  fanOutTimer (kind: string): FanOutTimer {
    const histogram = new Histogram(FANOUT_BUCKETS)
    this.#fanOut.set(kind, histogram)
    return new FanOutTimes(histogram)
  }

  backplaneTimer (backplane: Backplane): BackplaneTimer {
    this.#backplane = new BackplaneTimes(backplane)
    return this.#backplane
  }

  register (source: MetricsSource): void {
    const p = this.#prefix
    const kinds = source.kinds
    const perKind = (f: (k: KindSource) => number) => (): Value[] => kinds.map((k) => ({ labels: { kind: k.kind }, value: f(k) }))
    const metrics = PER_KIND.map(([name, type, help, value]) =>
      new ScrapedMetric(p + name, help, type, perKind((k) => value(k.counters, () => k.stats()))))
    metrics.push(
      new ScrapedMetric(`${p}clients_rejected_total`, 'Streams refused, by reason: 503/429 for room, 403, 401, 406.', 'counter',
        () => kinds.flatMap((k) => REJECT_REASONS.map((reason) => ({ labels: { kind: k.kind, reason }, value: k.counters.rejections[reason] })))),
      new ScrapedMetric(`${p}fanout_seconds`, 'Time from a broadcast to its write to the last client of its session (with a backplane: from its arrival here).', 'histogram',
        (name) => kinds.flatMap((k) => histogramValues(name, this.#fanOut.get(k.kind) as Histogram, { kind: k.kind })))
    )
    const times = this.#backplane
    // The hub passes the backplane's stats exactly when it asked for its timer.
    if (times !== undefined) {
      const stats = source.backplane as () => BackplaneStats
      const one = (f: () => number) => (): Value[] => [{ labels: {}, value: f() }]
      metrics.push(
        new ScrapedMetric(`${p}backplane_connected`, 'Whether the backplane can publish and deliver now (1) or not (0).', 'gauge', one(() => Number(stats().connected))),
        new ScrapedMetric(`${p}backplane_reconnects_total`, 'Times the backplane connection was re-established after a loss.', 'counter', one(() => stats().reconnects)),
        new ScrapedMetric(`${p}backplane_catch_ups_total`, 'Sessions caught up from history after a backplane outage.', 'counter', one(() => stats().catchUps)),
        new ScrapedMetric(`${p}backplane_errors_total`, 'Backplane connection losses and errors.', 'counter', one(() => stats().errors)),
        new ScrapedMetric(`${p}backplane_publish_failures_total`, 'Broadcasts the backplane could not persist.', 'counter', one(() => stats().publishFailures)),
        new ScrapedMetric(`${p}backplane_lag_seconds`, "Time from an event's append to the backplane to its arrival here.", 'histogram', (name) => histogramValues(name, times.lag, {})),
        new ScrapedMetric(`${p}backplane_publish_seconds`, 'Time from a broadcast to the backplane confirming it persisted.', 'histogram', (name) => histogramValues(name, times.publish, {}))
      )
    }
    for (const metric of metrics) {
      try {
        this.#registry.registerMetric(metric as never)
      } catch (err) {
        this.unregister()
        throw new FST_ERR_SSE_HUB_INVALID_OPTION(`'metrics': ${(err as Error).message} (give each hub its own prefix or registry)`)
      }
      this.#registered.push(metric)
    }
  }

  unregister (): void {
    for (const metric of this.#registered.splice(0)) this.#registry.removeSingleMetric?.(metric.name)
  }
}
