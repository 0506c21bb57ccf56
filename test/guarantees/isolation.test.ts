/*
 * Guarantee — isolation: random fan-out across 100 sessions (50 conversations and
 * 50 debates sharing the same ids, so kinds are checked too) with 5 real HTTP
 * clients each, plus random broadcasts to every session and late joiners. Every
 * client receives exactly its own session's events, in id order, none missing — also
 * 20 clients that drop mid-traffic and resume with Last-Event-ID.
 *
 * The plan is random per run; its seed is printed, and ISOLATION_SEED=<n> replays it.
 */
import t from 'tap'
import fc from 'fast-check'
import type { SessionKind } from '../../src/index.js'
import { buildApp, connect, eventually, listen, token, type Received, type SseClient } from '../helper.js'

const SESSIONS_PER_KIND = 50
const CLIENTS_PER_SESSION = 5
const OPS = 3000
const seed = Number(process.env.ISOLATION_SEED ?? Math.floor(Math.random() * 2 ** 31))

interface Target { kind: SessionKind, id: string, expected: string[] }
interface Watcher {
  target: Target
  client: SseClient
  /** Index in `target.expected` of the first event this watcher must see. */
  from: number
  /** A resumer's first connection: what it received, and how many events the hub wrote to it. */
  first?: { received: Received[], written: number, lastId: string }
}

t.test('100 sessions x 5 clients: every client sees only its session, in order, nothing missing', async (t) => {
  t.comment(`ISOLATION_SEED=${seed}`)
  const app = await buildApp({ heartbeatInterval: 0 })
  const url = await listen(app, t)
  const targets: Target[] = []
  for (const kind of ['conversation', 'debate'] as const) {
    for (let i = 0; i < SESSIONS_PER_KIND; i++) targets.push({ kind, id: `s${i}`, expected: [] })
  }
  const watch = async (target: Target): Promise<Watcher> => ({
    target,
    client: await connect(`${url}/${target.kind === 'conversation' ? 'conversations' : 'debates'}/${target.id}/stream`),
    from: target.expected.length
  })
  const watchers: Watcher[] = []
  for (const target of targets) {
    watchers.push(...await Promise.all(Array.from({ length: CLIENTS_PER_SESSION }, () => watch(target))))
  }
  t.equal(app.sse.getStats().clients, targets.length * CLIENTS_PER_SESSION)

  // An op is one session's index, or -1: a broadcast to every session.
  const plan = fc.sample(fc.oneof({ weight: 60, arbitrary: fc.nat(targets.length - 1) }, { weight: 1, arbitrary: fc.constant(-1) }), { numRuns: OPS, seed })
  let n = 0
  const send = async (target: Target): Promise<void> => {
    n++
    const id = target.kind === 'conversation'
      ? await app.sse.broadcastToConversation(target.id, 'conversation_token', { ...token(`t${n}`, n), personaSlug: target.id })
      : await app.sse.broadcastToDebate(target.id, 'debate_token', { debateId: target.id, participantId: 'p', personaSlug: 'x', turnCount: n, token: `t${n}` })
    target.expected.push(id)
  }
  const run = async (ops: number[]): Promise<void> => {
    for (const op of ops) {
      if (op === -1) for (const target of targets) await send(target)
      else await send(targets[op] as Target)
    }
  }
  await run(plan.slice(0, OPS / 2))
  // Resumers: 20 clients drop (whatever is still in flight is lost to them), miss a quarter
  // of the plan, and come back with Last-Event-ID: replay must fill the gap exactly.
  const resumers = watchers.filter((w, i) => i % 25 === 0 && w.target.expected.length > 0)
  for (const r of resumers) {
    const received = [...await r.client.receive(1)]
    r.first = { received, written: r.target.expected.length - r.from, lastId: received.at(-1)?.id as string }
    r.client.close()
  }
  await eventually(() => app.sse.getStats().clients === watchers.length - resumers.length, 'the resumers gone')
  await run(plan.slice(OPS / 2, (OPS * 3) / 4))
  for (const r of resumers) {
    r.client = await connect(`${url}/${r.target.kind === 'conversation' ? 'conversations' : 'debates'}/${r.target.id}/stream`, { 'last-event-id': r.first?.lastId as string })
  }
  // Late joiners: one more client per session, in the middle of the traffic.
  watchers.push(...await Promise.all(targets.map(watch)))
  await run(plan.slice((OPS * 3) / 4))
  // A last event to every session: once a client has it, everything written before it has arrived too.
  await run([-1])

  let wrong = 0
  let deliveries = 0
  for (const w of watchers) {
    const want = w.target.expected.slice(w.from)
    const first = w.first?.received ?? []
    const got = [...first, ...await w.client.receive(want.length - first.length)]
    // What the hub wrote: everything since `from`, plus, for a resumer, the part written twice (lost in flight, then replayed).
    deliveries += w.first === undefined ? want.length : w.first.written + want.length - (w.target.expected.indexOf(w.first.lastId) + 1 - w.from)
    const ids = got.map((e) => e.id)
    const seqs = ids.map((id) => Number(id?.split('-')[1]))
    const own = got.every((e) => (w.target.kind === 'conversation' ? e.json.personaSlug : e.json.debateId) === w.target.id &&
      e.event === `${w.target.kind}_token`)
    const inOrder = seqs.every((s, i) => i === 0 || s > (seqs[i - 1] as number))
    if (got.length !== want.length || ids.join() !== want.join() || !own || !inOrder || w.client.parseErrors.length > 0) {
      if (wrong++ === 0) t.fail(`${w.target.kind} ${w.target.id}: got ${got.length} events, wanted ${want.length}`, { own, inOrder })
    }
  }
  t.equal(wrong, 0, `all ${watchers.length} clients got exactly their own session's events, in id order`)
  t.equal(app.sse.getStats().replaysServed, resumers.length, `${resumers.length} resumers were served a replay, none a resync`)
  t.equal(app.sse.getStats().resyncsSent, 0)
  t.equal(app.sse.getStats().eventsSent, deliveries, 'the hub counted exactly the deliveries the clients saw')
  t.comment(`${n} broadcasts, ${deliveries} deliveries to ${watchers.length} clients`)
})

t.test('a client of one session never receives another session\'s events', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const a = await connect(`${url}/conversations/a/stream`)
  const b = await connect(`${url}/conversations/b/stream`)
  for (let i = 0; i < 10; i++) {
    await app.sse.broadcastToConversation(i % 2 === 0 ? 'a' : 'b', 'conversation_token', token(`${i % 2 === 0 ? 'a' : 'b'}${i}`))
  }
  t.same((await a.receive(5)).map((e) => e.json.token), ['a0', 'a2', 'a4', 'a6', 'a8'])
  t.same((await b.receive(5)).map((e) => e.json.token), ['b1', 'b3', 'b5', 'b7', 'b9'])
})
