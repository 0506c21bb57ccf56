/*
 * The subscriber (`fastify-sse-hub/client`) against the real hub: the `eventsource` package as its
 * EventSource, real sockets. Events arrive typed and in order; a dropped connection resumes with Last-Event-ID and
 * applies every event once; a trimmed history gives `resync`, and the reload's id decides what is applied after.
 * A closed session closes the subscription (a resume from its final id is a 204); a late joiner gets the hub's
 * snapshot, then exactly the events after it.
 * Reconnections wait behind a gate (the hub's authorize hook) so the path taken is certain, not a matter of timing.
 */
import t from 'tap'
import type { Socket } from 'node:net'
import { EventSource } from 'eventsource'
import { subscribe, type ConversationEvents, type SubscriptionStatus } from '../../src/browser/index.js'
import { buildApp, listen, token, waitFor } from '../helper.js'

/** A test's record of one session: every token broadcast, with its id, as the application knows it. */
interface Broadcast { id: string, token: string }

/** Broadcasts tokens `from`..`to` (exclusive) to conversation `s`, in order; returns them with their ids. */
async function broadcastTokens (app: Awaited<ReturnType<typeof buildApp>>, s: string, from: number, to: number): Promise<Broadcast[]> {
  const out: Broadcast[] = []
  for (let i = from; i < to; i++) out.push({ id: await app.sse.broadcastToConversation(s, 'conversation_token', token(`t${i}`, i)), token: `t${i}` })
  return out
}

t.test('events from the hub arrive typed, in order, with their ids', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const got: Broadcast[] = []
  const statuses: SubscriptionStatus[] = []
  const sub = subscribe<ConversationEvents>(`${url}/conversations/s1/stream`, {
    on: { conversation_token (e, meta) { got.push({ id: meta.id, token: e.token }) } },
    onStatus (s) { statuses.push(s) },
    EventSource
  })
  t.teardown(() => { sub.close() })
  await waitFor(() => app.sse.getConversationClientCount('s1') === 1, 'the client joined')
  const sent = await broadcastTokens(app, 's1', 0, 20)
  await waitFor(() => got.length === 20, 'twenty tokens')
  t.same(got, sent)
  t.equal(sub.lastEventId, sent[19]!.id)
  t.same(statuses, ['connecting', 'open'])
})

for (const variant of [
  { name: 'replayed from the history', historySize: 1000, gap: 15 },
  { name: 'resynced: the history was trimmed', historySize: 5, gap: 30 }
]) {
  t.test(`a connection dropped mid-run, ${variant.name}: every event applied once, none missing`, async (t) => {
    let gate: Promise<void> = Promise.resolve()
    const app = await buildApp({ historySize: variant.historySize, retry: 20, retryJitter: 0, authorize: async () => { await gate } })
    const sockets = new Set<Socket>()
    app.server.on('connection', (s: Socket) => { sockets.add(s); s.once('close', () => sockets.delete(s)) })
    const url = await listen(app, t)
    // The application's state: the tokens broadcast so far. A resync reloads it, as a page would from its own API.
    const sent: Broadcast[] = []
    let applied: string[] = []
    const resyncs: string[] = []
    const statuses: SubscriptionStatus[] = []
    const sub = subscribe<ConversationEvents>(`${url}/conversations/drop/stream`, {
      on: { conversation_token (e) { applied.push(e.token) } },
      onResync: async (e) => {
        resyncs.push(e.reason)
        applied = sent.map((b) => b.token)
        return sent.at(-1)?.id
      },
      onStatus (s) { statuses.push(s) },
      EventSource
    })
    t.teardown(() => { sub.close() })
    await waitFor(() => app.sse.getConversationClientCount('drop') === 1, 'the client joined')
    sent.push(...await broadcastTokens(app, 'drop', 0, 10))
    await waitFor(() => applied.length === 10, 'the first ten tokens')

    let open!: () => void
    gate = new Promise<void>((resolve) => { open = resolve })
    for (const s of sockets) s.destroy()
    await waitFor(() => sub.status === 'reconnecting', 'the drop seen')
    sent.push(...await broadcastTokens(app, 'drop', 10, 10 + variant.gap))
    open()
    await waitFor(() => sub.status === 'open', 'reconnected')
    sent.push(...await broadcastTokens(app, 'drop', 10 + variant.gap, 20 + variant.gap))
    await waitFor(() => applied.length === sent.length, 'every token')
    t.same(applied, sent.map((b) => b.token), 'every token once, in order')
    t.equal(sub.duplicates, 0)
    t.equal(sub.lastEventId, sent.at(-1)!.id)
    t.same(statuses, ['connecting', 'open', 'reconnecting', 'open'])
    const stats = app.sse.getStats()
    if (variant.historySize === 5) {
      t.same(resyncs, ['history_trimmed'])
      t.equal(stats.resyncsSent, 1)
    } else {
      t.same(resyncs, [])
      t.equal(stats.replaysServed, 1)
    }
  })
}

t.test('lastEventId option: the hub replays what came after it', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const sent = await broadcastTokens(app, 'later', 0, 8)
  const got: string[] = []
  const sub = subscribe<ConversationEvents>(`${url}/conversations/later/stream`, {
    on: { conversation_token (e) { got.push(e.token) } },
    lastEventId: sent[4]!.id,
    EventSource
  })
  t.teardown(() => { sub.close() })
  await waitFor(() => got.length === 3, 'the replay')
  t.same(got, ['t5', 't6', 't7'])
  t.equal(app.sse.getStats().replaysServed, 1)
})

t.test('the hub closes the session: every event, onClosed, status closed; resuming from the final id is a 204', async (t) => {
  const RETRY = 20
  const app = await buildApp({ retry: RETRY, retryJitter: 0 })
  let requests = 0
  app.server.on('request', (req: { url?: string }) => { if (req.url?.startsWith('/conversations/fin/stream') === true) requests++ })
  const url = await listen(app, t)
  const got: string[] = []
  const closed: unknown[] = []
  const sub = subscribe<ConversationEvents>(`${url}/conversations/fin/stream`, {
    on: {
      conversation_token (e) { got.push(e.token) },
      conversation_completed (e) { got.push(`completed ${e.turnCount}`) }
    },
    onClosed (e) { closed.push(e) },
    EventSource
  })
  t.teardown(() => { sub.close() })
  await waitFor(() => app.sse.getConversationClientCount('fin') === 1, 'the client joined')
  await broadcastTokens(app, 'fin', 0, 3)
  const finalId = await app.sse.closeConversation('fin', 'conversation_completed', { sessionId: 'fin', turnCount: 3 })
  await waitFor(() => sub.status === 'closed', 'closed')
  t.same(got, ['t0', 't1', 't2', 'completed 3'])
  t.match(closed, [{ type: 'closed', sessionId: 'fin', lastEventId: finalId }])
  t.equal(sub.lastEventId, finalId)

  // A subscription that resumes from the final id (a page reloaded with its stored id).
  const statuses: SubscriptionStatus[] = []
  const again = subscribe<ConversationEvents>(`${url}/conversations/fin/stream`, { lastEventId: finalId, onStatus (s) { statuses.push(s) }, EventSource })
  await waitFor(() => again.status === 'closed', 'closed by the 204')
  t.same(statuses, ['connecting', 'closed'])
  // The measurement: three retry intervals on the server's clock; a client still alive would have come back.
  await new Promise((resolve) => setTimeout(resolve, 3 * RETRY + 20))
  t.equal(requests, 2, 'one request each, no reconnect')
})

t.test('a late joiner gets the hub\'s snapshot, then exactly the events after it, while broadcasts race the hook', async (t) => {
  // The application's state of the session, kept with the id of the newest event it includes.
  const kept = { tokens: [] as string[], lastEventId: '' }
  const app = await buildApp({
    snapshot: async () => {
      const state = { tokens: [...kept.tokens] }
      const lastEventId = kept.lastEventId
      await new Promise((resolve) => setImmediate(resolve))
      return { state, lastEventId }
    }
  })
  const url = await listen(app, t)
  const keep = async (from: number, to: number): Promise<void> => {
    for (const b of await broadcastTokens(app, 'join', from, to)) { kept.tokens.push(b.token); kept.lastEventId = b.id }
  }
  await keep(0, 5)
  let applied: string[] = []
  const reasons: string[] = []
  const sub = subscribe<ConversationEvents, { tokens: string[] }>(`${url}/conversations/join/stream`, {
    on: { conversation_token (e) { applied.push(e.token) } },
    onSnapshot (state, e) { reasons.push(e.reason); applied = [...state.tokens] },
    EventSource
  })
  t.teardown(() => { sub.close() })
  await Promise.all([keep(5, 25), waitFor(() => reasons.length === 1, 'the snapshot')])
  await keep(25, 30)
  await waitFor(() => applied.length >= 30, 'every token')
  t.same(applied, Array.from({ length: 30 }, (_, i) => `t${i}`), 'the snapshot and the events after it: every token once, in order')
  t.same(reasons, ['join'])
  t.equal(sub.duplicates, 0)
})
