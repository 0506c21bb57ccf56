/*
 * The `snapshot` option (in memory): a late joiner gets the application's state, then every event after it;
 * no gap and no duplicate, also when broadcasts race an asynchronous hook (a property test; its seed is
 * printed, and SNAPSHOT_SEED=<n> replays it).
 */
import t, { type Test } from 'tap'
import fc from 'fast-check'
import type { FastifyInstance } from 'fastify'
import type { SessionSnapshot, SseHubOptions } from '../src/index.js'
import { resolveOptions } from '../src/options.js'
import { buildApp, connect, ids, listen, SseClient, token, type Received } from './helper.js'

/** An application that keeps each conversation's tokens in memory and answers the hook from them. */
class Transcripts {
  readonly tokens = new Map<string, string[]>()
  app!: FastifyInstance

  /** Broadcasts a token and keeps it in the state, in one synchronous step (as an application would). */
  say (sessionId: string, text: string): Promise<string> {
    const list = this.tokens.get(sessionId) ?? []
    this.tokens.set(sessionId, list)
    list.push(text)
    return this.app.sse.broadcastToConversation(sessionId, 'conversation_token', token(text))
  }

  /** The state now: the tokens so far, and the id of the newest. */
  state (sessionId: string): SessionSnapshot {
    return { state: { tokens: [...this.tokens.get(sessionId) ?? []] }, lastEventId: this.app.sse.kind('conversation').lastEventId(sessionId) ?? '' }
  }
}

async function setup (t: Test, hook: (app: Transcripts) => SseHubOptions['snapshot'], options: SseHubOptions = {}, logs?: string[]): Promise<{ app: FastifyInstance, url: string, transcripts: Transcripts }> {
  const transcripts = new Transcripts()
  const logger = logs === undefined ? false : { level: 'warn', stream: { write (line: string) { logs.push(line) } } }
  const app = await buildApp({ ...options, snapshot: hook(transcripts) }, { logger })
  transcripts.app = app
  const url = await listen(app, t)
  return { app, url, transcripts }
}

/** What a client has of the session: the snapshot's tokens, then those of the events after it. */
function seen (events: Received[]): string[] {
  const snapshot = events.find((e) => e.event === 'snapshot')
  const tokens = [...(snapshot?.json.state as { tokens: string[] } | undefined)?.tokens ?? []]
  for (const e of events) if (e.event === 'conversation_token') tokens.push(e.json.token as string)
  return tokens
}

t.test('a client without Last-Event-ID gets the snapshot (id: its lastEventId), then live events', async (t) => {
  const { app, url, transcripts } = await setup(t, (tr) => (kind, sessionId) => kind === 'conversation' ? tr.state(sessionId) : undefined)
  t.equal(app.sse.kind('conversation').lastEventId('s'), undefined, 'no event yet')
  await transcripts.say('s', 'a')
  const b = await transcripts.say('s', 'b')
  t.equal(app.sse.kind('conversation').lastEventId('s'), b)
  const c = await connect(`${url}/conversations/s/stream`)
  await transcripts.say('s', 'c')
  const got = await c.receive(2)
  t.same(got[0]?.event, 'snapshot')
  t.equal(got[0]?.id, b)
  t.match(got[0]?.json, { type: 'snapshot', sessionId: 's', reason: 'join', state: { tokens: ['a', 'b'] } })
  t.same(seen(got), ['a', 'b', 'c'])
  const d = await connect(`${url}/debates/s/stream`)
  await app.sse.broadcastToDebate('s', 'debate_paused', { debateId: 's', turnCount: 1 })
  t.same((await d.receive(1)).map((e) => e.event), ['debate_paused'], 'no snapshot when the hook has none')
  t.match(app.sse.getStats(), { snapshotsSent: 1, replaysServed: 0, resyncsSent: 0 }, 'a snapshot is counted as such')
})

t.test('lastEventId: undefined for a session that has a client but no event yet, then the newest id', async (t) => {
  const { app, url, transcripts } = await setup(t, () => () => undefined)
  const c = await connect(`${url}/conversations/s/stream`)
  t.equal(app.sse.kind('conversation').count('s'), 1, 'the session is held here')
  t.equal(app.sse.kind('conversation').lastEventId('s'), undefined, 'no event yet')
  const a = await transcripts.say('s', 'a')
  t.equal(app.sse.kind('conversation').lastEventId('s'), a)
  t.same((await c.receive(1)).map((e) => e.json.token), ['a'])
})

t.test('an unknown or trimmed id gets a snapshot with that reason; a snapshot too old for the history, resync and a log line', async (t) => {
  let stale = false
  const logs: string[] = []
  const { app, url, transcripts } = await setup(t, (tr) => (kind, sessionId) => stale ? { state: {}, lastEventId: 'gone' } : tr.state(sessionId), { historySize: 3 }, logs)
  const first = await transcripts.say('s', 't0')
  for (let i = 1; i < 6; i++) await transcripts.say('s', `t${i}`)
  const unknown = await connect(`${url}/conversations/s/stream`, { 'last-event-id': 'nonsense' })
  const [u] = await unknown.receive(1)
  t.match(u?.json, { reason: 'unknown_event_id', state: { tokens: ['t0', 't1', 't2', 't3', 't4', 't5'] } })
  const trimmed = await connect(`${url}/conversations/s/stream`, { 'last-event-id': first })
  const [tr] = await trimmed.receive(1)
  t.match(tr?.json, { reason: 'history_trimmed' })
  const resumed = await connect(`${url}/conversations/s/stream`, { 'last-event-id': ids(trimmed)[0] as string })
  await transcripts.say('s', 't6')
  t.same((await resumed.receive(1)).map((e) => e.json.token), ['t6'], 'an id the history covers: no snapshot')
  stale = true
  const old = await connect(`${url}/conversations/s/stream`)
  const [r] = await old.receive(1)
  t.equal(r?.event, 'resync')
  t.match(app.sse.getStats(), { resyncsSent: 1, snapshotsSent: 2, replaysServed: 1 }, 'two snapshots (unknown, trimmed), one replay, one resync')
  t.match(logs.map((l) => JSON.parse(l)), [{ msg: 'sse snapshot older than the history: resync instead', sessionId: 's', snapshotLastEventId: 'gone' }])
})

t.test('a snapshot that includes no event ("") is followed by the whole history; none at all, by what the log has', async (t) => {
  let answer: SessionSnapshot | undefined = { state: { tokens: [] }, lastEventId: '' }
  const { url, transcripts } = await setup(t, () => async () => answer)
  await transcripts.say('s', 'a')
  await transcripts.say('s', 'b')
  const c = await connect(`${url}/conversations/s/stream`)
  const got = await c.receive(3)
  t.same(got.map((e) => e.event), ['snapshot', 'conversation_token', 'conversation_token'])
  t.same(seen(got), ['a', 'b'])
  answer = undefined
  const none = await connect(`${url}/conversations/s/stream`, { 'last-event-id': 'nonsense' })
  t.same((await none.receive(1)).map((e) => e.event), ['resync'], 'no snapshot: resync as without the option')
  const plain = await connect(`${url}/conversations/s/stream`)
  await transcripts.say('s', 'c')
  t.same((await plain.receive(1)).map((e) => e.json.token), ['c'])
})

t.test('a hook that throws, or a state JSON cannot carry, is an error reply before any SSE byte', async (t) => {
  let mode = 'throw'
  const { url } = await setup(t, () => async () => {
    if (mode === 'throw') throw Object.assign(new Error('no state'), { statusCode: 404 })
    if (mode === 'undefined') throw undefined
    return { state: { n: 1n }, lastEventId: '' }
  })
  const thrown = new SseClient(`${url}/conversations/s/stream`)
  t.match(await thrown.errorBody(), { statusCode: 404, message: 'no state' })
  mode = 'bigint'
  const bad = new SseClient(`${url}/conversations/s/stream`)
  t.match(await bad.errorBody(), { statusCode: 500, code: 'FST_ERR_SSE_HUB_INVALID_PAYLOAD' })
  mode = 'undefined'
  const nothing = await new SseClient(`${url}/conversations/s/stream`).opened()
  t.same([nothing.statusCode, nothing.headers['content-type']], [500, undefined], 'a thrown undefined: Fastify\'s own 500, no stream')
  t.same([thrown, bad, nothing].map((c) => c.headers['retry-after']), [undefined, undefined, undefined], 'no Retry-After: only a 503 asks to come back later')
})

t.test('the snapshot option must be a function', async (t) => {
  t.throws(() => resolveOptions({ snapshot: { state: 1 } }), { code: 'FST_ERR_SSE_HUB_INVALID_OPTION', message: /'snapshot': must be a function/ })
  t.throws(() => resolveOptions({ closedSessionTtl: 0 }), { code: 'FST_ERR_SSE_HUB_INVALID_OPTION' })
})

t.test('a closed session: the snapshot, the events after it, closed and the end', async (t) => {
  let at = ''
  const { app, url, transcripts } = await setup(t, () => () => ({ state: { tokens: ['a'] }, lastEventId: at }))
  at = await transcripts.say('s', 'a')
  await transcripts.say('s', 'b')
  const final = await app.sse.closeConversation('s', 'conversation_completed', { sessionId: 's', turnCount: 2 })
  const c = new SseClient(`${url}/conversations/s/stream`)
  await c.end()
  t.same(c.received.map((e) => e.event), ['snapshot', 'conversation_token', 'conversation_completed', 'closed'])
  t.equal(c.received[2]?.id, final)
})

t.test('property: an async snapshot with broadcasts racing it yields exactly the session\'s events', async (t) => {
  const seed = Number(process.env.SNAPSHOT_SEED ?? Math.floor(Math.random() * 2 ** 31))
  t.comment(`SNAPSHOT_SEED=${seed}`)
  const turns = async (n: number): Promise<void> => { for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve)) }
  // A broadcast may come from any promise's continuation: gaps are turns of the event loop and microtasks.
  const ticks = async (n: number): Promise<void> => { for (let i = 0; i < n; i++) await Promise.resolve() }
  // The hook answers when the broadcasting loop opens its gate, then after some microtasks: its continuation
  // and the broadcasts that follow share one microtask queue, so a broadcast can fall anywhere in the join.
  let timing = { capture: 0, answer: 0 }
  let gate = Promise.resolve()
  const { url, transcripts } = await setup(t, (tr) => async (kind, sessionId) => {
    await turns(timing.capture)
    const state = tr.state(sessionId)
    await gate
    await ticks(timing.answer)
    return state
  })
  let run = 0
  await fc.assert(fc.asyncProperty(
    fc.nat(5), fc.nat(4), fc.nat(12), fc.nat(12), fc.array(fc.tuple(fc.nat(3), fc.nat(12)), { minLength: 1, maxLength: 12 }),
    async (before, capture, answer, openAt, gaps) => {
      const sessionId = `p${run++}`
      timing = { capture, answer }
      let open = (): void => {}
      gate = new Promise((resolve) => { open = resolve })
      const all: string[] = []
      for (let i = 0; i < before; i++) { all.push(`b${i}`); await transcripts.say(sessionId, `b${i}`) }
      const c = new SseClient(`${url}/conversations/${sessionId}/stream`)
      for (const [i, [loopTurns, microtasks]] of gaps.entries()) {
        await turns(loopTurns)
        if (i === openAt) open()
        await ticks(microtasks)
        all.push(`l${i}`)
        void transcripts.say(sessionId, `l${i}`)
      }
      open()
      await c.until((x) => x.received.some((e) => e.event === 'snapshot') && seen(x.received).length >= all.length, 'every event')
      c.close()
      return JSON.stringify(seen(c.received)) === JSON.stringify(all)
    }
  ), { seed, numRuns: 60 })
  t.pass('every run saw each event once, in order')
})
