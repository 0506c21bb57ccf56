/*
 * The example server: its routes, a simulated run seen by a real SSE client,
 * pause/resume, error replies, stats, the JSON state endpoint, and a graceful
 * SIGTERM of a real `npx tsx example-server.ts` child process.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import http2 from 'node:http2'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { build } from '../example-server.js'
import { EventSource } from 'eventsource'
import { H2SseStream, SseClient, connect, listen, roundRobinProxy, waitFor, type Received } from './helper.js'
import { redisOrSkip } from './redis/helper.js'

// Three child processes started through npx: more than tap's default 30 s per file on a busy machine.
t.setTimeout(120_000)

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const seq = (id: string | undefined): number => Number(String(id).split('-')[1])
const base = (kind: 'conversation' | 'debate'): string => `/api/${kind}s/sessions`

async function post (app: FastifyInstance, url: string, body?: unknown): Promise<{ statusCode: number, json: Record<string, any> }> {
  const res = await app.inject({ method: 'POST', url, ...(body === undefined ? {} : { payload: body as Record<string, unknown> }) })
  return { statusCode: res.statusCode, json: res.json() }
}

async function state (app: FastifyInstance, kind: 'conversation' | 'debate', id: string): Promise<Record<string, any>> {
  const res = await app.inject(`${base(kind)}/${id}`)
  return res.json()
}

/** The per-turn texts built by joining a client's tokens, and the utterances it received. */
function turns (events: Received[], tokenType: string, utteranceType: string): { fromTokens: Map<number, string>, utterances: Array<Record<string, any>> } {
  const fromTokens = new Map<number, string>()
  for (const e of events) {
    if (e.event !== tokenType) continue
    const turn = e.json.turnCount as number | undefined ?? Number(String(e.json.segment).replace('turn-', ''))
    fromTokens.set(turn, (fromTokens.get(turn) ?? '') + String(e.json.token))
  }
  return { fromTokens, utterances: events.filter((e) => e.event === utteranceType).map((e) => e.json) }
}

t.test('a short conversation: started, speakers, tokens, utterances, context, completed, in order', async (t) => {
  const app = await build()
  const url = await listen(app, t)
  const client = await connect(`${url}${base('conversation')}/demo/stream`)
  const launched = await post(app, `${base('conversation')}/demo/launch`, { turns: 4, tokenDelayMs: 1 })
  t.equal(launched.statusCode, 202)
  t.equal(launched.json.status, 'running')
  t.equal(launched.json.totalTurns, 4)

  // The run closes its session with its last event: the hub sends `closed`, then ends the stream.
  await client.end()
  const closed = client.received.at(-1)!
  t.equal(closed.event, 'closed')
  const events = client.received.slice(0, -1)
  t.same(closed.json, { type: 'closed', sessionId: 'demo', lastEventId: events.at(-1)!.id, timestamp: closed.json.timestamp })
  const types = events.map((e) => e.event)
  t.equal(types[0], 'conversation_started')
  t.equal(types.at(-1), 'conversation_completed')
  t.equal(types.filter((x) => x === 'conversation_completed').length, 1)
  t.equal(types.filter((x) => x === 'conversation_speaker_changed').length, 4)
  t.equal(types.filter((x) => x === 'conversation_utterance').length, 4)
  t.equal(types.filter((x) => x === 'conversation_context_updated').length, 2, 'a context update every second turn')
  t.ok(types.filter((x) => x === 'conversation_token').length > 20, 'tokens streamed')
  // Every event has an id, increasing.
  t.ok(events.every((e, i) => i === 0 || seq(e.id) > seq(events[i - 1]!.id)), 'every event has an id, increasing')

  // Each turn: speaker change, then its tokens, then its utterance, whose content is exactly the tokens joined.
  const { fromTokens, utterances } = turns(events, 'conversation_token', 'conversation_utterance')
  t.same(utterances.map((u) => u.turnCount), [1, 2, 3, 4])
  for (const u of utterances) t.equal(fromTokens.get(u.turnCount), u.content, `turn ${u.turnCount} tokens add up to the utterance`)
  t.equal(utterances[0]!.isHost, true, 'the host opens')
  t.equal(utterances[3]!.isHost, true, 'the host closes')
  t.ok(utterances.slice(1, 3).every((u) => u.isHost === false), 'guests in between')
  const firstToken = types.indexOf('conversation_token')
  t.ok(types.indexOf('conversation_speaker_changed') < firstToken, 'speaker change before the first token')
  t.ok(types.indexOf('conversation_utterance') > firstToken, 'utterance after its tokens')
  const started = events[0]!.json
  t.equal(started.sessionId, 'demo')
  t.equal((started.participants as unknown[]).length, 4)

  // The JSON state endpoint agrees with what the client saw.
  const s = await state(app, 'conversation', 'demo')
  t.equal(s.status, 'completed')
  t.equal(s.turnCount, 4)
  t.same(s.transcript.map((e: any) => e.content), utterances.map((u) => u.content))
  t.equal(s.lastEventId, events.at(-1)!.id, 'the state names the newest event')
  t.equal(s.current, null)
  t.type(s.completedAt, 'number')
  t.match(s.summary, /turn 4/)
})

t.test('a short debate: started, phase changes, tokens, utterances, completed', async (t) => {
  const app = await build()
  const url = await listen(app, t)
  const client = await connect(`${url}${base('debate')}/d1/stream`)
  t.equal((await post(app, `${base('debate')}/d1/launch`, { turns: 8, tokenDelayMs: 0, topic: 'This house likes tests' })).statusCode, 202)
  await client.end()
  t.equal(client.received.at(-1)!.event, 'closed', 'the run closed its session')
  const events = client.received.slice(0, -1)
  const types = events.map((e) => e.event)
  t.equal(types[0], 'debate_started')
  t.equal(events[0]!.json.motion, 'This house likes tests')
  t.equal(types.at(-1), 'debate_completed')
  t.same(events.filter((e) => e.event === 'debate_phase_changed').map((e) => [e.json.from, e.json.to]),
    [[null, 'opening'], ['opening', 'rebuttal'], ['rebuttal', 'crossfire'], ['crossfire', 'closing']])
  const { fromTokens, utterances } = turns(events, 'debate_token', 'debate_utterance')
  t.equal(utterances.length, 8)
  for (const u of utterances) t.equal(fromTokens.get(u.turnCount), u.content)
  t.equal(utterances[0]!.position, 'moderator')
  t.same(utterances.slice(1).map((u) => u.position), ['for', 'against', 'for', 'against', 'for', 'against', 'for'])
  t.ok(['for', 'against', 'draw'].includes(events.at(-1)!.json.winner as string))
  const s = await state(app, 'debate', 'd1')
  t.equal(s.status, 'completed')
  t.equal(s.phase, 'closing')
  t.same(s.transcript.map((e: any) => e.content), utterances.map((u) => u.content))
  const list = await app.inject(base('debate'))
  t.same(list.json().sessions.map((x: any) => [x.sessionId, x.status]), [['d1', 'completed']])
})

t.test('runs of one and two turns', async (t) => {
  const app = await build()
  const url = await listen(app, t)
  for (const [kind, turnsWanted] of [['conversation', 1], ['conversation', 2], ['debate', 1], ['debate', 2]] as const) {
    const id = `${kind}-${turnsWanted}`
    const client = await connect(`${url}${base(kind)}/${id}/stream`)
    await post(app, `${base(kind)}/${id}/launch`, { turns: turnsWanted, tokenDelayMs: 0 })
    await client.until((c) => c.received.some((e) => e.event === `${kind}_completed`), `${id} completed`)
    const s = await state(app, kind, id)
    t.equal(s.status, 'completed', `${id} completes`)
    t.equal(s.transcript.length, turnsWanted)
    client.close()
  }
})

t.test('pause really pauses, resume continues, and nothing is lost', async (t) => {
  const app = await build()
  const url = await listen(app, t)
  const client = await connect(`${url}${base('conversation')}/p1/stream`)
  await post(app, `${base('conversation')}/p1/launch`, { turns: 3, tokenDelayMs: 2 })
  await client.until((c) => c.received.filter((e) => e.event === 'conversation_token').length >= 5, '5 tokens')

  const paused = await post(app, `${base('conversation')}/p1/pause`)
  t.equal(paused.statusCode, 200)
  t.equal(paused.json.status, 'paused')
  await client.until((c) => c.received.some((e) => e.event === 'conversation_paused'), 'conversation_paused')
  const atPause = client.received.length
  t.equal((await post(app, `${base('conversation')}/p1/pause`)).statusCode, 409, 'pausing twice is a conflict')
  t.equal((await post(app, `${base('conversation')}/p1/launch`)).statusCode, 409, 'a paused run cannot be launched again')

  // A clock made of events: a second run with the same token delay streams 30 tokens while p1 stays silent.
  const other = await connect(`${url}${base('conversation')}/clock/stream`)
  await post(app, `${base('conversation')}/clock/launch`, { turns: 50, tokenDelayMs: 2 })
  await other.until((c) => c.received.filter((e) => e.event === 'conversation_token').length >= 30, '30 tokens elsewhere')
  t.equal(client.received.length, atPause, 'no event while paused')
  t.equal(client.received.at(-1)!.event, 'conversation_paused')
  t.equal((await state(app, 'conversation', 'p1')).status, 'paused')

  const resumed = await post(app, `${base('conversation')}/p1/resume`)
  t.equal(resumed.statusCode, 200)
  t.equal(resumed.json.status, 'running')
  t.equal((await post(app, `${base('conversation')}/p1/resume`)).statusCode, 409, 'resuming a running run is a conflict')
  await client.until((c) => c.received.some((e) => e.event === 'conversation_completed'), 'conversation_completed')
  t.equal(client.received[atPause]!.event, 'conversation_resumed', 'the next event after the pause is the resume')
  const { fromTokens, utterances } = turns(client.received, 'conversation_token', 'conversation_utterance')
  t.equal(utterances.length, 3)
  for (const u of utterances) t.equal(fromTokens.get(u.turnCount), u.content, 'no token lost or repeated across the pause')
  t.equal((await post(app, `${base('conversation')}/p1/pause`)).statusCode, 409, 'a completed run cannot be paused')
  const again = await post(app, `${base('conversation')}/p1/launch`, { turns: 1, tokenDelayMs: 0 })
  t.equal(again.statusCode, 409, 'a completed session is closed: it cannot be launched again')
  t.match(again.json.message, /completed and closed/)
  // Reconnecting with the final event's id: 204 No Content, the SSE "stop reconnecting".
  const late = new SseClient(`${url}${base('conversation')}/p1/stream`, { 'last-event-id': client.received.filter((e) => e.id !== undefined).at(-1)!.id! })
  await late.end()
  t.equal(late.statusCode, 204)
})

t.test('the debate twins pause and resume too', async (t) => {
  const app = await build()
  const url = await listen(app, t)
  const client = await connect(`${url}${base('debate')}/dp/stream`)
  await post(app, `${base('debate')}/dp/launch`, { turns: 2, tokenDelayMs: 1 })
  await client.until((c) => c.received.some((e) => e.event === 'debate_token'), 'a token')
  t.equal((await post(app, `${base('debate')}/dp/pause`)).statusCode, 200)
  t.equal((await post(app, `${base('debate')}/dp/resume`)).statusCode, 200)
  await client.until((c) => c.received.some((e) => e.event === 'debate_completed'), 'debate_completed')
  const types = client.received.map((e) => e.event)
  t.ok(types.indexOf('debate_paused') < types.indexOf('debate_resumed'))
})

t.test('error replies are JSON: 404, 409, 400', async (t) => {
  const app = await build()
  t.teardown(() => app.close())
  for (const kind of ['conversation', 'debate'] as const) {
    for (const action of ['pause', 'resume']) {
      const r = await post(app, `${base(kind)}/nobody/${action}`)
      t.equal(r.statusCode, 404, `${kind} ${action} unknown`)
      t.match(r.json, { statusCode: 404, error: 'Not Found', message: `no ${kind} session nobody` })
    }
    const g = await app.inject(`${base(kind)}/nobody`)
    t.equal(g.statusCode, 404)
    t.equal(g.json().error, 'Not Found')
  }

  t.equal((await post(app, `${base('conversation')}/busy/launch`, { turns: 100, tokenDelayMs: 1000 })).statusCode, 202)
  const conflict = await post(app, `${base('conversation')}/busy/launch`)
  t.equal(conflict.statusCode, 409)
  t.match(conflict.json, { statusCode: 409, error: 'Conflict', message: 'conversation busy is already running' })

  const bad: Array<[unknown, RegExp]> = [
    [{ turns: 'x' }, /turns must be integer/],
    [{ turns: 0 }, /turns must be >= 1/],
    [{ turns: 501 }, /turns must be <= 500/],
    [{ tokenDelayMs: -1 }, /tokenDelayMs must be >= 0/],
    [{ tokenDelayMs: 1.5 }, /tokenDelayMs must be integer/],
    [{ topic: '' }, /topic must NOT have fewer than 1 characters/],
    [{ turnz: 3 }, /must NOT have additional properties/],
    [[1, 2], /body must be object,null/]
  ]
  for (const [body, message] of bad) {
    const r = await post(app, `${base('conversation')}/fresh/launch`, body)
    t.equal(r.statusCode, 400, `400 for ${JSON.stringify(body)}`)
    t.match(r.json, { statusCode: 400, code: 'FST_ERR_VALIDATION', message })
  }
  t.equal((await app.inject(`${base('conversation')}/fresh`)).statusCode, 404, 'a rejected launch creates nothing')

  for (const url of [`${base('conversation')}/bad.id/launch`, `${base('debate')}/bad.id/pause`]) {
    const r = await post(app, url)
    t.equal(r.statusCode, 400, `bad session id: ${url}`)
  }
  const stream = await app.inject({ url: `${base('conversation')}/bad.id/stream`, headers: { accept: 'text/event-stream' } })
  t.equal(stream.statusCode, 400, 'the hub refuses a bad session id before any SSE byte')
  t.equal(stream.json().code, 'FST_ERR_SSE_HUB_INVALID_SESSION_ID')
})

t.test('maxSessions: the oldest finished session makes room; 409 when all are active', async (t) => {
  const app = await build({ maxSessions: 2 })
  const url = await listen(app, t)
  const a = await connect(`${url}${base('conversation')}/a/stream`)
  await post(app, `${base('conversation')}/a/launch`, { turns: 1, tokenDelayMs: 0 })
  await a.until((c) => c.received.some((e) => e.event === 'conversation_completed'), 'a completed')
  t.equal((await post(app, `${base('conversation')}/b/launch`, { turns: 100, tokenDelayMs: 1000 })).statusCode, 202)
  t.equal((await post(app, `${base('conversation')}/c/launch`, { turns: 100, tokenDelayMs: 1000 })).statusCode, 202, 'a (finished) is forgotten')
  t.equal((await app.inject(`${base('conversation')}/a`)).statusCode, 404)
  const full = await post(app, `${base('conversation')}/d/launch`)
  t.equal(full.statusCode, 409, 'b and c are both running')
  t.match(full.json.message, /2 conversation sessions are running/)
  t.equal((await post(app, `${base('debate')}/d/launch`, { turns: 1 })).statusCode, 202, 'each kind has its own limit')
})

t.test('stats reflect open streams', async (t) => {
  const app = await build()
  const url = await listen(app, t)
  const before = (await app.inject('/api/sse/stats')).json()
  t.match(before, { conversations: { activeSessions: 0, clients: 0 }, debates: { activeSessions: 0, clients: 0 }, clients: 0 })
  const a = await connect(`${url}${base('conversation')}/s1/stream`)
  await connect(`${url}${base('conversation')}/s1/stream`)
  await connect(`${url}${base('debate')}/s2/stream`)
  const during = (await app.inject('/api/sse/stats')).json()
  t.match(during, { conversations: { activeSessions: 1, clients: 2 }, debates: { activeSessions: 1, clients: 1 }, clients: 3, clientsConnected: 3 })
  a.close()
  const stats = async (): Promise<Record<string, any>> => (await app.inject('/api/sse/stats')).json()
  let after = await stats()
  for (let i = 0; i < 1000 && after.conversations.clients !== 1; i++) {
    await new Promise((resolve) => setImmediate(resolve))
    after = await stats()
  }
  t.equal(after.conversations.clients, 1, 'a closed client leaves the stats')
})

t.test('the JSON state mid-run: current turn and its partial text', async (t) => {
  const app = await build()
  const url = await listen(app, t)
  const client = await connect(`${url}${base('conversation')}/mid/stream`)
  await post(app, `${base('conversation')}/mid/launch`, { turns: 2, tokenDelayMs: 1 })
  await client.until((c) => c.received.filter((e) => e.event === 'conversation_token').length >= 3, '3 tokens')
  await post(app, `${base('conversation')}/mid/pause`)
  await client.until((c) => c.received.some((e) => e.event === 'conversation_paused'), 'conversation_paused')
  const s = await state(app, 'conversation', 'mid')
  const tokens = client.received.filter((e) => e.event === 'conversation_token').map((e) => e.json.token).join('')
  t.equal(s.status, 'paused')
  t.equal(s.current.turnCount, 1)
  t.equal(s.current.speakerName, 'Rae Okafor')
  t.equal(s.current.partial, tokens, 'the partial text is the tokens sent so far')
  t.equal(s.lastEventId, client.received.at(-1)!.id, 'lastEventId is the paused event')
  t.same(s.transcript, [])
})

t.test('a late joiner gets the run\'s snapshot (the turn half spoken), then the events after it', async (t) => {
  const app = await build()
  const url = await listen(app, t)
  const first = await connect(`${url}${base('conversation')}/snap/stream`)
  await post(app, `${base('conversation')}/snap/launch`, { turns: 2, tokenDelayMs: 1 })
  await first.until((c) => c.received.filter((e) => e.event === 'conversation_token').length >= 3, '3 tokens')
  await post(app, `${base('conversation')}/snap/pause`)
  await first.until((c) => c.received.some((e) => e.event === 'conversation_paused'), 'conversation_paused')
  const late = await connect(`${url}${base('conversation')}/snap/stream`)
  await late.receive(1)
  const snapshot = late.received[0]!
  const s = await state(app, 'conversation', 'snap')
  t.equal(snapshot.event, 'snapshot')
  t.equal(snapshot.id, s.lastEventId, 'its id is the newest event the state includes')
  t.match(snapshot.json, { sessionId: 'snap', reason: 'join', state: { status: 'paused', current: { partial: s.current.partial }, transcript: [] } })
  t.ok(s.current.partial.length > 0, 'mid-utterance')
  await post(app, `${base('conversation')}/snap/resume`)
  await Promise.all([first.end(), late.end()])
  // What the late joiner got after its snapshot is exactly what the first client got after the snapshot's id.
  const after = (c: SseClient, id: string): unknown[] => c.received.slice(c.received.findIndex((e) => e.id === id) + 1).map((e) => [e.id, e.event, e.event === 'closed' ? null : e.data])
  t.same(after(late, snapshot.id!), after(first, snapshot.id!))
  t.equal(late.received.at(-1)!.event, 'closed')
})

t.test('the built client is served at /client/', async (t) => {
  const app = await build()
  t.teardown(() => app.close())
  const res = await app.inject('/client/index.js')
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /javascript/)
  t.match(res.body, /export \{ subscribe \} from '\.\/subscribe\.js'/)
  t.equal((await app.inject('/client/subscribe.js')).statusCode, 200)
  t.match((await app.inject('/app.js')).body, /import \{ subscribe \} from '\/client\/index\.js'/, 'the page imports it')
})

t.test('close stops running simulations and ends their streams', async (t) => {
  const app = await build()
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  const client = await connect(`${url}${base('conversation')}/long/stream`)
  await post(app, `${base('conversation')}/long/launch`, { turns: 500, tokenDelayMs: 1 })
  await post(app, `${base('debate')}/long/launch`, { turns: 500, tokenDelayMs: 1 })
  await post(app, `${base('debate')}/long/pause`)
  await client.until((c) => c.received.some((e) => e.event === 'conversation_token'), 'a token')
  await app.close()
  await client.end()
  const types = client.received.map((e) => e.event)
  t.notOk(types.includes('conversation_completed'), 'the run was stopped, not completed')
})

t.test('the page is served at /', async (t) => {
  const app = await build()
  t.teardown(() => app.close())
  const res = await app.inject('/')
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /text\/html/)
  t.match(res.body, /<html/i)
})

/** Runs `npx tsx example-server.ts` with `env`; resolves once it prints its URL and pid. */
async function startChild (t: { teardown: (fn: () => unknown) => void }, env: Record<string, string>): Promise<{ url: string, pid: number, exited: Promise<[number | null, NodeJS.Signals | null]>, stderr: () => string }> {
  // Its own process group, so a failed test can kill npx, sh, tsx and the server at once.
  const child = spawn('npx', ['tsx', 'example-server.ts'], {
    cwd: ROOT,
    // The child runs src/ through tsx, not tap's loader: its coverage would not line up with the suite's.
    env: { ...process.env, NODE_V8_COVERAGE: '', _TAPJS_PROCESSINFO_COVERAGE_: '0', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true
  })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(-(child.pid as number), 'SIGKILL')
  })
  // npx runs the server under sh and tsx. The tests signal the server itself (npm does not forward a signal
  // past sh); its exit code travels back up to npx.
  const [url, pid] = await new Promise<[string, number]>((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /listening on (https?:\/\/\S+) \(.*pid (\d+)\)/.exec(out)
      if (m !== null) resolve([m[1] as string, Number(m[2])])
    })
    exited.then(() => { reject(new Error(`server exited before listening: ${stderr}`)) }, reject)
  })
  return { url, pid, exited, stderr: () => stderr }
}

t.test('SIGTERM to the server run by `npx tsx example-server.ts` ends open streams and exits 0 promptly', async (t) => {
  const { url, pid, exited, stderr } = await startChild(t, {})
  const client = new SseClient(`${url}${base('conversation')}/demo/stream`)
  await client.connected()
  const launch = await fetch(`${url}${base('conversation')}/demo/launch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ turns: 500, tokenDelayMs: 5 })
  })
  t.equal(launch.status, 202)
  await client.until((c) => c.received.filter((e) => e.event === 'conversation_token').length >= 3, 'tokens from the child')

  const started = Date.now()
  process.kill(pid, 'SIGTERM')
  await client.end()
  t.equal(client.res?.complete, true, 'the stream ended cleanly (a complete response), not cut')
  const [code, signal] = await exited
  const elapsed = Date.now() - started
  t.equal(code, 0, 'exit code 0')
  t.equal(signal, null)
  t.ok(elapsed < 5000, `exited promptly (${elapsed} ms)`)
  t.notMatch(stderr(), /error/i, 'nothing on stderr looks like an error')
})

for (const [name, env, scheme] of [
  ['HTTP2=1 (TLS, self-signed)', { HTTP2: '1' }, 'https'],
  ['H2C=1 (cleartext)', { H2C: '1' }, 'http']
] as const) {
  t.test(`${name}: streams over HTTP/2, and SIGINT with an open HTTP/2 session exits 0 promptly`, async (t) => {
    const { url, pid, exited, stderr } = await startChild(t, env)
    t.match(url, new RegExp(`^${scheme}://`))
    const session = http2.connect(url, { rejectUnauthorized: false })
    session.on('error', () => {})
    t.teardown(() => { session.destroy() })
    const stream = await new H2SseStream(session, `${base('debate')}/h2/stream`).connected()
    const launch = session.request({ ':method': 'POST', ':path': `${base('debate')}/h2/launch`, 'content-type': 'application/json' })
    launch.end(JSON.stringify({ turns: 500, tokenDelayMs: 5 }))
    const [headers] = await once(launch, 'response') as [http2.IncomingHttpHeaders]
    t.equal(headers[':status'], 202)
    launch.resume()
    await stream.until((s) => s.received.filter((e) => e.event === 'debate_token').length >= 3, 'debate tokens over HTTP/2')
    t.equal(stream.received[0]?.event, 'debate_started')

    const started = Date.now()
    process.kill(pid, 'SIGINT')
    await stream.end()
    t.ok(stream.endedCleanly, 'the HTTP/2 stream ended with END_STREAM')
    const [code] = await exited
    const elapsed = Date.now() - started
    t.equal(code, 0, 'exit code 0')
    t.ok(elapsed < 5000, `exited promptly (${elapsed} ms), the idle session closed with GOAWAY`)
    t.notMatch(stderr(), /error|warning/i)
  })
}

t.test('with REDIS_URL, two example-server processes serve one set of sessions', async (t) => {
  const redis = await redisOrSkip(t)
  if (redis === undefined) return
  const env = { REDIS_URL: `redis://127.0.0.1:${redis.port}` }
  const [a, b] = await Promise.all([startChild(t, env), startChild(t, env)])
  t.not(a.url, b.url, 'two servers on two ports')
  const onA = new SseClient(`${a.url}${base('conversation')}/shared/stream`)
  const onB = new SseClient(`${b.url}${base('conversation')}/shared/stream`)
  await Promise.all([onA.connected(), onB.connected()])
  const launch = await fetch(`${a.url}${base('conversation')}/shared/launch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ turns: 2, tokenDelayMs: 1 })
  })
  t.equal(launch.status, 202, 'launched on A')
  // The run closes the session: each instance sends its clients `closed` (its own timestamp), then ends the stream.
  await Promise.all([onA.end(), onB.end()])
  t.ok(onA.received.length > 10)
  const seen = (c: SseClient): unknown[] => c.received.map((e) => [e.id, e.event, e.event === 'closed' ? { ...e.json, timestamp: 0 } : e.data])
  t.same(seen(onB), seen(onA), 'the client on B saw exactly what the client on A saw: same events, same order, same ids')
  t.same(onA.received.slice(-2).map((e) => e.event), ['conversation_completed', 'closed'])
  t.match(onB.received[0]?.id, /^\d+-\d+$/, 'Redis stream ids')
  const stats = await (await fetch(`${b.url}/api/sse/stats`)).json() as { backplane: { type: string, connected: boolean } }
  t.match(stats.backplane, { type: 'redis', connected: true })
  process.kill(a.pid, 'SIGTERM')
  process.kill(b.pid, 'SIGTERM')
  t.same((await a.exited)[0], 0)
  t.same((await b.exited)[0], 0)
})

t.test('with REDIS_URL, a run rides out redis-server killed -9 and restarted 1.5 s later: completed, every client sees every event once', async (t) => {
  // Persistent (every write fsync'd): the restart is an outage, not a loss of history.
  const redis = await redisOrSkip(t, true)
  if (redis === undefined) return
  const env = { REDIS_URL: redis.url }
  const [a, b] = await Promise.all([startChild(t, env), startChild(t, env)])
  const proxy = await roundRobinProxy([a.url, b.url], t)
  const path = `${base('conversation')}/blip/stream`
  const direct = new SseClient(`${b.url}${path}`)
  await direct.connected()
  // A real eventsource client through the proxy, as a browser behind a load balancer.
  const viaProxy: Array<{ id: string, event: string, data: string }> = []
  const es = new EventSource(`${proxy}${path}`)
  t.teardown(() => { es.close() })
  const types = ['conversation_started', 'conversation_speaker_changed', 'conversation_token', 'conversation_utterance', 'conversation_context_updated', 'conversation_completed', 'conversation_error', 'resync']
  for (const type of types) es.addEventListener(type, (e) => { viaProxy.push({ id: e.lastEventId, event: type, data: e.data }) })
  let closedViaProxy = false
  es.addEventListener('closed', () => { closedViaProxy = true })
  await new Promise((resolve) => { es.addEventListener('connection_established', resolve, { once: true }) })

  const launch = await fetch(`${a.url}${base('conversation')}/blip/launch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ turns: 4, tokenDelayMs: 10 })
  })
  t.equal(launch.status, 202)
  await direct.until((c) => c.received.length >= 15, '15 events before the kill')
  await redis.kill()
  const killedAt = direct.received.length
  // The outage's length is the scenario, not a wait for a result.
  await new Promise((resolve) => setTimeout(resolve, 1500))
  await redis.restart()

  const done = (e: { event?: string }): boolean => e.event === 'conversation_completed'
  // The run closes its session: `closed` follows its final event on both.
  await direct.until((c) => c.received.some((e) => e.event === 'closed'), 'closed on the direct client')
  await waitFor(() => closedViaProxy, 'closed through the proxy', 30_000)
  t.equal(direct.received.at(-1)?.event, 'closed', 'closed comes last')
  const events = direct.received.filter((e) => e.event !== 'closed').map((e) => ({ id: e.id as string, event: e.event as string, data: e.data }))
  t.ok(events.some(done), 'conversation_completed before it')
  t.ok(killedAt < events.length - 1, `the run went on after the restart (${killedAt} of ${events.length} events before the kill)`)
  t.same(viaProxy, events, 'through the proxy: the same events, in the same order, with the same ids')
  t.equal(new Set(events.map((e) => e.id)).size, events.length, 'each id once')
  t.notOk(events.some((e) => e.event === 'resync' || e.event === 'conversation_error'), 'no resync, no error: nothing was lost')
  const { fromTokens, utterances } = turns(direct.received, 'conversation_token', 'conversation_utterance')
  t.same(utterances.map((u) => u.turnCount), [1, 2, 3, 4])
  for (const u of utterances) t.equal(fromTokens.get(u.turnCount), u.content, `turn ${u.turnCount}: no token lost or doubled`)
  const s = await (await fetch(`${a.url}${base('conversation')}/blip`)).json() as { status: string, lastEventId: string }
  t.equal(s.status, 'completed')
  t.equal(s.lastEventId, events.at(-1)?.id)
  process.kill(a.pid, 'SIGTERM')
  process.kill(b.pid, 'SIGTERM')
  t.same((await a.exited)[0], 0)
  t.same((await b.exited)[0], 0)
})
