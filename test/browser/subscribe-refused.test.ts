/*
 * A refused stream is told apart from a finished session: the subscriber (`fastify-sse-hub/client`) reports 401,
 * 403, 429, 503 or 400 to `onError` as a StreamRefusedError with its status and closes; a 204 (a closed session)
 * closes it with no error. Both ways of learning the status: the `eventsource` package's error `code`, and, as a
 * browser's EventSource gives none, one more request of the stream (real fetch, real sockets).
 */
import t from 'tap'
import { EventSource } from 'eventsource'
import { FST_ERR_SSE_HUB_UNAUTHORIZED } from '../../src/index.js'
import { subscribe, type EventSourceConstructor, type EventSourceLike, type EventSourceMessage, type SubscriptionStatus } from '../../src/browser/index.js'
import { endingStatus } from '../../src/browser/refusal.js'
import { buildApp, listen, waitFor } from '../helper.js'

/** An EventSource whose error events carry no status, as a browser's. */
class BrowserLikeEventSource implements EventSourceLike {
  readonly #source: EventSource
  constructor (url: string, init?: { withCredentials?: boolean }) { this.#source = new EventSource(url, init) }
  get readyState (): number { return this.#source.readyState }
  addEventListener (type: string, listener: (event: EventSourceMessage) => void): void {
    this.#source.addEventListener(type, type === 'error' ? () => { listener(new Event('error') as unknown as EventSourceMessage) } : listener as never)
  }
  close (): void { this.#source.close() }
}

/** Subscribes to `url` and resolves once the subscription is closed, with what onError and onClosed got. */
async function until (url: string, EventSourceClass: EventSourceConstructor, lastEventId?: string): Promise<{ errors: Error[], closed: number, statuses: SubscriptionStatus[] }> {
  const errors: Error[] = []
  const statuses: SubscriptionStatus[] = []
  let closed = 0
  subscribe(url, { onError (e) { errors.push(e) }, onClosed () { closed++ }, onStatus (s) { statuses.push(s) }, EventSource: EventSourceClass, lastEventId })
  await waitFor(() => statuses.at(-1) === 'closed', 'the subscription closed')
  return { errors, closed, statuses }
}

for (const [name, EventSourceClass] of [['eventsource (error code)', EventSource], ['browser-like (one more request)', BrowserLikeEventSource]] as const) {
  t.test(`${name}: a refused stream ends in onError with its status; a 204 ends with none`, async (t) => {
    const app = await buildApp({
      maxClientsPerSession: 1,
      authorize (request, { sessionId }) {
        if (sessionId === 'nobody') throw new FST_ERR_SSE_HUB_UNAUTHORIZED()
        return sessionId !== 'secret'
      }
    })
    app.get('/json', async () => ({ not: 'a stream' }))
    const url = await listen(app, t)

    for (const [session, status] of [['nobody', 401], ['secret', 403], ['bad%20id', 400]] as const) {
      const { errors, closed, statuses } = await until(`${url}/conversations/${session}/stream`, EventSourceClass)
      t.equal(errors.length, 1, `${status}: one error`)
      t.match(errors[0], { name: 'StreamRefusedError', status, message: new RegExp(`HTTP ${status}`) }, `${status}: its status`)
      t.equal(closed, 0, `${status}: not a finished session`)
      t.same(statuses, ['connecting', 'closed'])
    }

    // 503: the session's one place is taken.
    const first = subscribe(`${url}/conversations/full/stream`, { EventSource: EventSourceClass })
    await waitFor(() => first.status === 'open', 'the first client is in')
    const full = await until(`${url}/conversations/full/stream`, EventSourceClass)
    t.match(full.errors, [{ name: 'StreamRefusedError', status: 503 }], '503')
    first.close()

    // A 200 that is not an event stream: an error, without a status.
    const json = await until(`${url}/json`, EventSourceClass)
    t.equal(json.errors.length, 1)
    t.match(json.errors[0]!.message, /not an event stream/)
    t.notOk('status' in json.errors[0]!)

    // 204: a closed session without events is no error.
    await app.sse.closeConversation('done')
    const done = await until(`${url}/conversations/done/stream`, EventSourceClass)
    t.same(done.errors, [], '204: no error')
    t.equal(done.closed, 0)
  })
}

t.test('the status asked again carries the subscription\'s Last-Event-ID: a reconnect at a closed session\'s end is a 204', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const id = await app.sse.broadcastToConversation('ended', 'conversation_error', { sessionId: 'ended', error: 'x' })
  await app.sse.closeConversation('ended')
  const { errors } = await until(`${url}/conversations/ended/stream`, BrowserLikeEventSource, id)
  t.same(errors, [], 'no error: the session is over')
  t.equal(await endingStatus(undefined, `${url}/conversations/ended/stream`, id, true), 204, 'with the id: 204')
})

t.test('endingStatus: undefined when nothing can tell', async (t) => {
  t.equal(await endingStatus(undefined, 'http://127.0.0.1:1/', undefined, false), undefined, 'a network error')
  const saved = globalThis.fetch
  t.teardown(() => { globalThis.fetch = saved })
  // @ts-expect-error: an environment without fetch
  delete globalThis.fetch
  t.equal(await endingStatus({ code: 'x' }, 'http://127.0.0.1:1/', undefined, false), undefined, 'no fetch, no numeric code')
})
