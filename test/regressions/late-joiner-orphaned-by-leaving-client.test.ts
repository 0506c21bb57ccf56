/*
 * Regression (found on review): a client without `Last-Event-ID` whose asynchronous `snapshot` hook was
 * still running held no place in its session, so when the session's only other client left meanwhile the
 * session was forgotten, and the joiner was then attached to a session no longer held: no live events,
 * no heartbeats, and `app.close()` never ended it. The joiner now holds its place from the start.
 */
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { SseClient, buildApp, connect, listen, token, waitFor } from '../helper.js'

async function setup (t: Test): Promise<{ app: FastifyInstance, a: SseClient, b: SseClient, release: () => void }> {
  let release: (() => void) | undefined
  let calls = 0
  const app = await buildApp({
    snapshot: async () => {
      if (calls++ === 0) return undefined
      await new Promise<void>((resolve) => { release = resolve })
      return { state: {}, lastEventId: '' }
    }
  })
  const url = await listen(app, t)
  const a = await connect(`${url}/conversations/s/stream`)
  const b = new SseClient(`${url}/conversations/s/stream`)
  await waitFor(() => release !== undefined, 'the second hook running')
  a.close()
  await waitFor(() => app.sse.getStats().conversations.clients === 0, 'the first client gone')
  return { app, a, b, release: () => (release as () => void)() }
}

t.test('a late joiner whose only fellow client leaves during its snapshot still gets live events', async (t) => {
  const { app, b, release } = await setup(t)
  t.teardown(() => { b.close() })
  release()
  await b.connected()
  t.equal(app.sse.kind('conversation').count('s'), 1, 'the joiner is a client of the session held')
  await app.sse.broadcastToConversation('s', 'conversation_token', token('x'))
  t.same((await b.receive(2)).map((e) => e.event), ['snapshot', 'conversation_token'])
})

t.test('such a late joiner is ended by app.close()', async (t) => {
  const { app, b, release } = await setup(t)
  release()
  await b.connected()
  await app.close()
  await b.end()
  t.ok(b.ended, 'the stream ended at shutdown')
})
