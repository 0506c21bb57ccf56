/*
 * Long-life soak: streams stay open, and keep receiving events (a busy session) or
 * heartbeats (a quiet one), for longer than Node's old 5-minute `requestTimeout`,
 * under Fastify's DEFAULT server options (no timeout overrides). Not a unit test:
 * `npm run soak`.
 *
 *   npm run soak                        # 6 minutes
 *   npm run soak -- --minutes=0.5       # or SOAK_MINUTES=0.5
 *
 * Knobs (flag or env): --minutes / SOAK_MINUTES (6), --heartbeat-ms / SOAK_HEARTBEAT_MS (1000),
 * --event-ms / SOAK_EVENT_MS (250), --clients / SOAK_CLIENTS (20 on the busy session; a quarter as many on the quiet one).
 * Exits 1 when any client's stream ended early, missed or reordered an event, hit a parse error, when a quiet
 * client got fewer than 90% of the expected heartbeats or went longer than 1.5 heartbeat intervals without one,
 * or when a busy client got a heartbeat once events were flowing (they already keep its stream alive; checked when
 * --event-ms is at most half of --heartbeat-ms).
 */
import Fastify from 'fastify'
import http from 'node:http'
import { createParser } from 'eventsource-parser'
import { EventSource } from 'eventsource'
import sseHub from '../src/index.js'

function knob (name: string, env: string, fallback: number): number {
  const flag = process.argv.find((a) => a.startsWith(`--${name}=`))
  const raw = flag?.slice(name.length + 3) ?? process.env[env]
  const n = raw === undefined ? fallback : Number(raw)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} / ${env}: a positive number, got ${String(raw)}`)
  return n
}

const minutes = knob('minutes', 'SOAK_MINUTES', 6)
const heartbeatMs = Math.round(knob('heartbeat-ms', 'SOAK_HEARTBEAT_MS', 1000))
const eventMs = Math.round(knob('event-ms', 'SOAK_EVENT_MS', 250))
const clientCount = Math.round(knob('clients', 'SOAK_CLIENTS', 20))
const durationMs = Math.round(minutes * 60_000)

interface RawClient {
  heartbeats: number
  /** Heartbeats that came after this client's first event. */
  heartbeatsAmidEvents: number
  lastBeatAt: number
  maxBeatGapMs: number
  events: number
  lastSeq: number
  outOfOrder: number
  parseErrors: number
  endedEarly: boolean
  req: http.ClientRequest
}

// Fastify's default server options: only the logger is turned off.
const app = Fastify({ logger: false })
await app.register(sseHub, { heartbeatInterval: heartbeatMs, maxConnectionAge: Infinity })
app.get('/conversations/:id/stream', app.sse.stream('conversation'))
const url = await app.listen({ port: 0, host: '127.0.0.1' })
const streamUrl = `${url}/conversations/soak/stream`
const quietUrl = `${url}/conversations/quiet/stream`
const quietCount = Math.max(1, Math.round(clientCount / 4))

let finished = false
function openRaw (target: string): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const c: RawClient = { heartbeats: 0, heartbeatsAmidEvents: 0, lastBeatAt: 0, maxBeatGapMs: 0, events: 0, lastSeq: 0, outOfOrder: 0, parseErrors: 0, endedEarly: false, req: undefined as unknown as http.ClientRequest }
    const parser = createParser({
      onEvent: (msg) => {
        if (msg.event !== 'conversation_token') return
        const seq = Number((JSON.parse(msg.data) as { segment: string }).segment)
        if (seq !== c.lastSeq + 1) c.outOfOrder++
        c.lastSeq = seq
        c.events++
      },
      onComment: () => {
        const now = Date.now()
        if (c.lastBeatAt > 0) c.maxBeatGapMs = Math.max(c.maxBeatGapMs, now - c.lastBeatAt)
        c.lastBeatAt = now
        c.heartbeats++
        if (c.events > 0) c.heartbeatsAmidEvents++
      },
      onError: () => { c.parseErrors++ }
    })
    c.req = http.get(target, { headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) { reject(new Error(`status ${String(res.statusCode)}`)); return }
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { parser.feed(chunk) })
      res.on('close', () => { if (!finished) c.endedEarly = true })
      resolve(c)
    })
    c.req.on('error', (err) => { if (!finished) { c.endedEarly = true; reject(err) } })
  })
}

await app.ready()
const raw = await Promise.all(Array.from({ length: clientCount }, async () => await openRaw(streamUrl)))
const quiet = await Promise.all(Array.from({ length: quietCount }, async () => await openRaw(quietUrl)))
// One real EventSource too: it never sees comments, so it counts events only.
const es = { events: 0, errors: 0, lastSeq: 0, outOfOrder: 0 }
const source = new EventSource(streamUrl)
source.addEventListener('conversation_token', (e) => {
  const seq = Number((JSON.parse(e.data) as { segment: string }).segment)
  if (seq !== es.lastSeq + 1) es.outOfOrder++
  es.lastSeq = seq
  es.events++
})
source.addEventListener('error', () => { if (!finished) es.errors++ })
await new Promise<void>((resolve) => { source.addEventListener('open', () => { resolve() }, { once: true }) })
const hubClients = app.sse.getConversationClientCount('soak') + app.sse.getConversationClientCount('quiet')

const startedAt = Date.now()
const heapAtStart = process.memoryUsage().heapUsed
let seq = 0
const broadcaster = setInterval(() => {
  seq++
  void app.sse.broadcastToConversation('soak', 'conversation_token', {
    participantId: 'p1', personaSlug: 'ada', personaName: 'Ada', segment: String(seq), token: `tok ${seq}`
  })
}, eventMs)
const progress = setInterval(() => {
  const r = raw[0] as RawClient
  console.log(`soak: ${((Date.now() - startedAt) / 60_000).toFixed(1)} min, sent ${seq}, busy client0 events ${r.events}, quiet client0 heartbeats ${(quiet[0] as RawClient).heartbeats}`)
}, 60_000)

await new Promise((resolve) => setTimeout(resolve, durationMs))
clearInterval(broadcaster)
clearInterval(progress)
// Let the last event reach everyone: wait (bounded) until every client has it.
const lastSeq = seq
for (let i = 0; i < 200 && (raw.some((c) => c.lastSeq < lastSeq) || es.lastSeq < lastSeq); i++) {
  await new Promise((resolve) => setTimeout(resolve, 10))
}
const elapsedMs = Date.now() - startedAt
const stillOpen = app.sse.getConversationClientCount('soak') + app.sse.getConversationClientCount('quiet')
const heapAtEnd = process.memoryUsage().heapUsed
finished = true
source.close()
const closeStart = performance.now()
await app.close()
const closeMs = performance.now() - closeStart

const expectedHeartbeats = Math.floor(elapsedMs / heartbeatMs)
const minHeartbeats = Math.min(...quiet.map((c) => c.heartbeats))
const maxBeatGapMs = Math.max(...quiet.map((c) => c.maxBeatGapMs))
const heartbeatsAmidEvents = raw.reduce((n, c) => n + c.heartbeatsAmidEvents, 0)
const problems: string[] = []
if ([...raw, ...quiet].some((c) => c.endedEarly)) problems.push('a raw stream ended before the end of the soak')
if (es.errors > 0) problems.push(`EventSource reported ${es.errors} error(s) (reconnects)`)
if (stillOpen !== hubClients) problems.push(`hub counted ${stillOpen} clients at the end, ${hubClients} at the start`)
if (raw.some((c) => c.events !== lastSeq || c.outOfOrder > 0) || es.events !== lastSeq || es.outOfOrder > 0) problems.push('an event was missed or out of order')
if ([...raw, ...quiet].some((c) => c.parseErrors > 0)) problems.push('SSE parse errors')
if (minHeartbeats < expectedHeartbeats * 0.9) problems.push(`too few heartbeats on the quiet session: ${minHeartbeats} < 90% of ${expectedHeartbeats}`)
if (maxBeatGapMs > heartbeatMs * 1.5) problems.push(`a quiet client went ${maxBeatGapMs} ms without a heartbeat (interval ${heartbeatMs} ms)`)
// A session written to at least every half interval is never idle at a heartbeat tick.
if (eventMs <= heartbeatMs / 2 && heartbeatsAmidEvents > 0) problems.push(`${heartbeatsAmidEvents} heartbeat(s) reached busy clients while events were flowing`)

const summary = {
  minutes: +(elapsedMs / 60_000).toFixed(2),
  serverOptions: 'Fastify defaults (logger off)',
  heartbeatMs,
  eventMs,
  rawClients: clientCount,
  quietRawClients: quietCount,
  eventSourceClients: 1,
  eventsBroadcast: lastSeq,
  eventsPerRawClient: { min: Math.min(...raw.map((c) => c.events)), max: Math.max(...raw.map((c) => c.events)) },
  eventsEventSource: es.events,
  heartbeatsPerQuietClient: { min: minHeartbeats, max: Math.max(...quiet.map((c) => c.heartbeats)), expected: expectedHeartbeats },
  maxHeartbeatGapMs: maxBeatGapMs,
  heartbeatsToBusyClientsAmidEvents: heartbeatsAmidEvents,
  outOfOrder: raw.reduce((n, c) => n + c.outOfOrder, 0) + es.outOfOrder,
  parseErrors: [...raw, ...quiet].reduce((n, c) => n + c.parseErrors, 0),
  streamsEndedEarly: [...raw, ...quiet].filter((c) => c.endedEarly).length,
  eventSourceErrors: es.errors,
  heapUsedMB: { start: +(heapAtStart / 2 ** 20).toFixed(1), end: +(heapAtEnd / 2 ** 20).toFixed(1) },
  closeMs: +closeMs.toFixed(1),
  ok: problems.length === 0,
  problems
}
console.log(JSON.stringify(summary, null, 2))
process.exitCode = problems.length === 0 ? 0 : 1
