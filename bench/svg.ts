/*
 * The benchmark chart, as hand-written SVG: for each metric, one bar per variant
 * showing its performance relative to node:http (1.0 = node:http; longer is better,
 * whichever way the metric itself points), labelled with the measured value.
 */
type Metrics = Record<string, number>

const COLORS = ['#2563eb', '#6b7280', '#d97706', '#059669', '#9333ea']

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

function fmt (x: number): string {
  if (!Number.isFinite(x)) return 'n/a'
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString('en-US')
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)
}

export function chart (med: Record<string, Metrics>, variants: Array<[string, string]>, sizes: number[], env: Record<string, unknown>): string {
  // [key, label, unit, higher is better]
  const rows: Array<[string, string, string, boolean]> = [
    ...sizes.slice().sort((a, b) => a - b).map((n): [string, string, string, boolean] =>
      [`fanout_${n}_events_per_s`, `fan-out to ${n.toLocaleString('en-US')} clients`, 'events/s', true]),
    ...sizes.slice().sort((a, b) => a - b).map((n): [string, string, string, boolean] =>
      [`fanout_${n}_eld_p99_ms`, `event-loop delay p99, ${n.toLocaleString('en-US')} clients`, 'ms', false]),
    ['rate_cpu_us_per_event', 'server CPU per delivered event', 'µs', false],
    ['idle_heap_per_conn_kb', 'idle heap per connection', 'KB', false],
    ['tokens_p99_ms', 'token streaming latency p99', 'ms', false],
    ['churn_cycles_per_s', 'connect/disconnect churn', 'conn/s', true],
    ['churn_cpu_us_per_cycle', 'server CPU per connect/disconnect', 'µs', false]
  ]
  const base = med['node-http'] ?? {}
  const left = 300
  const barMax = 430
  const cap = 3
  const barH = 14
  const groupH = variants.length * (barH + 3) + 18
  const top = 84
  const width = left + barMax + 170
  const height = top + rows.length * groupH + 40
  const x1 = left + barMax / cap
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`)
  out.push(`<rect width="100%" height="100%" fill="#fff"/>`)
  out.push(`<text x="12" y="22" font-size="15" font-weight="600">SSE servers relative to node:http: longer bar = better (capped at 3×)</text>`)
  const load = (env.loadStart as number[] | undefined)?.join(' ') ?? '?'
  out.push(`<text x="12" y="40" fill="#555">${esc(`node ${String(env.node)}, ${String(env.nproc)} × ${String(env.cpuModel)}, ${env.taskset === true ? 'server and client pinned to separate CPUs' : 'no CPU pinning'}, medians of ${String(env.reps)} interleaved runs, ${String(env.date).slice(0, 10)}`)}</text>`)
  out.push(`<text x="12" y="56" fill="#555">${esc(`shared machine, load average ${load} at start; labels: measured value (value ÷ node:http)`)}</text>`)
  variants.forEach(([, label], i) => {
    const lx = 12 + i * 150
    out.push(`<rect x="${lx}" y="64" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/><text x="${lx + 14}" y="73">${esc(label)}</text>`)
  })
  rows.forEach(([key, label, unit, higher], r) => {
    const gy = top + r * groupH
    out.push(`<text x="${left - 8}" y="${gy + groupH / 2}" text-anchor="end" dominant-baseline="middle">${esc(label)}</text>`)
    variants.forEach(([v], i) => {
      const x = med[v]?.[key] ?? NaN
      const b = base[key] ?? NaN
      const rel = higher ? x / b : b / x
      const shown = Number.isFinite(rel) ? Math.min(rel, cap) : 0
      const y = gy + 6 + i * (barH + 3)
      out.push(`<rect x="${left}" y="${y}" width="${(shown / cap * barMax).toFixed(1)}" height="${barH}" fill="${COLORS[i % COLORS.length]}"/>`)
      const ratio = x / b
      const text = `${fmt(x)} ${unit}${v === 'node-http' ? '' : `  (${Number.isFinite(ratio) ? ratio.toFixed(2) : 'n/a'}×)`}`
      out.push(`<text x="${left + shown / cap * barMax + 4}" y="${y + barH - 3}" fill="#333">${esc(text)}</text>`)
    })
    out.push(`<line x1="12" x2="${width - 12}" y1="${gy + groupH - 2}" y2="${gy + groupH - 2}" stroke="#eee"/>`)
  })
  out.push(`<line x1="${x1}" x2="${x1}" y1="${top}" y2="${top + rows.length * groupH}" stroke="#000" stroke-dasharray="4 3"/>`)
  out.push(`<text x="${x1}" y="${top + rows.length * groupH + 14}" text-anchor="middle">1× node:http</text>`)
  out.push('</svg>')
  return out.join('\n') + '\n'
}
