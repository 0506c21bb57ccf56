/*
 * One subscription to a hub stream: the EventSource's listeners, the subscription's status, each event applied
 * once and in order (held behind an async snapshot or resync handler), and the end for good.
 */
import type { ClosedEvent, ResyncEvent, SnapshotEvent } from '../events.js'
import { isNewerEventId } from './id-order.js'
import { endingStatus, streamRefused } from './refusal.js'
import type { EventMeta, EventSourceConstructor, EventSourceLike, EventSourceMessage, SubscribeOptions, Subscription, SubscriptionStatus } from './types.js'

const CLOSED = 2

type Handler = (data: unknown, meta: EventMeta) => void

/**
 * Subscribes to a session's stream at `url` (a route made by `fastify.sse.stream(kind)`), typed by the kind's
 * event map `E`:
 *
 *   const sub = subscribe<ConversationEvents>('/api/conversations/sessions/abc/stream', {
 *     on: { conversation_token (e) { append(e.token) } },
 *     onSnapshot (state) { replace(state) },
 *     onStatus (status) { show(status) }
 *   })
 *
 * Each event is applied at most once: one whose id is not newer than the last applied one is skipped (ids
 * ordered by their `<head>-<n>` form, see `compareEventIds`). A `snapshot` resets the subscription's place to
 * the snapshot's id, a `resync` to the resync's id (or to the id its handler resolves with). On the hub's
 * `closed` event, or when the server answers 204 No Content, the subscription closes for good: no reconnect loop.
 * A stream the server refuses (401, 403, 429, 503, …) closes it too, and `onError` gets a `StreamRefusedError`
 * with the status. Throws a `TypeError` when no `EventSource` class is available.
 */
export function subscribe<E, S = unknown> (url: string | URL, options: SubscribeOptions<E, S> = {}): Subscription {
  const EventSourceClass = options.EventSource ?? (globalThis as { EventSource?: EventSourceConstructor }).EventSource
  if (EventSourceClass === undefined) throw new TypeError('fastify-sse-hub/client: no EventSource here; pass one as options.EventSource')
  const report = options.onError ?? ((error: Error) => { console.error(error) })
  let status: SubscriptionStatus = 'connecting'
  let lastEventId = options.lastEventId
  let duplicates = 0
  // While a snapshot or resync handler's promise is pending, what arrives waits here, in order.
  let held: Array<() => void> | undefined

  const setStatus = (next: SubscriptionStatus): void => {
    if (status === next) return
    status = next
    guard('status', () => { options.onStatus?.(next) })
  }
  const guard = (what: string, fn: () => void): void => {
    try { fn() } catch (err) { report(failure(`the ${what} handler threw`, err)) }
  }
  const end = (): void => {
    held = undefined
    source.close()
    setStatus('closed')
  }
  const deliver = (step: () => void): void => {
    if (status === 'closed') return
    if (held !== undefined) held.push(step)
    else step()
  }
  const hold = (result: unknown, apply: (value: unknown) => void): void => {
    if (!isThenable(result)) return
    const queue: Array<() => void> = []
    held = queue
    result.then(apply, (err: unknown) => { report(failure('a held handler rejected', err)) }).then(() => {
      held = undefined
      // A step may hold again: deliver() then queues the rest behind it, in order.
      for (const step of queue) deliver(step)
    })
  }

  const source = new EventSourceClass(withLastEventId(String(url), options.lastEventId), { withCredentials: options.withCredentials === true })
  guard('status', () => { options.onStatus?.('connecting') })
  // A closed EventSource dispatches nothing more: these run only while the subscription is live.
  source.addEventListener('open', () => { setStatus('open') })
  source.addEventListener('error', (event) => {
    if (source.readyState !== CLOSED) { setStatus('reconnecting'); return }
    // CLOSED: the EventSource gave up (204 No Content, an HTTP error, not an event stream); it will not retry.
    void endingStatus(event, String(url), lastEventId, options.withCredentials === true).then((code) => {
      deliver(() => {
        if (code !== undefined && code !== 204) report(code === 200 ? failure(`the stream ${String(url)} is not an event stream`, undefined) : streamRefused(String(url), code))
        end()
      })
    })
  })

  for (const [type, handler] of Object.entries(options.on ?? {}) as Array<[string, Handler | undefined]>) {
    if (typeof handler !== 'function') continue
    listen(source, type, (message, data) => {
      const id = message.lastEventId
      if (id !== '' && !isNewerEventId(id, lastEventId)) { duplicates++; return }
      if (id !== '') lastEventId = id
      const parsed = parse(type, id, data, report)
      if (parsed !== undefined) guard(type, () => { handler(parsed.value, { id }) })
    }, deliver)
  }
  listen(source, 'snapshot', (message, data) => {
    // The snapshot's `id:` is the newest event its state includes: the events after it follow.
    lastEventId = message.lastEventId === '' ? undefined : message.lastEventId
    const parsed = parse('snapshot', message.lastEventId, data, report)
    if (parsed === undefined || options.onSnapshot === undefined) return
    const event = { ...(parsed.value as SnapshotEvent<S>), id: message.lastEventId }
    guard('snapshot', () => { hold(options.onSnapshot!(event.state, event), () => {}) })
  }, deliver)
  listen(source, 'resync', (message, data) => {
    // Its `id:` is the session's newest id; empty when the session has none yet: a new history starts.
    lastEventId = message.lastEventId === '' ? undefined : message.lastEventId
    const parsed = parse('resync', message.lastEventId, data, report)
    if (parsed === undefined || options.onResync === undefined) return
    const event = { ...(parsed.value as ResyncEvent), id: message.lastEventId }
    guard('resync', () => {
      hold(options.onResync!(event), (id) => { if (typeof id === 'string' && id !== '') lastEventId = id })
    })
  }, deliver)
  listen(source, 'closed', (message, data) => {
    const parsed = parse('closed', '', data, report)
    if (parsed !== undefined && options.onClosed !== undefined) guard('closed', () => { options.onClosed!(parsed.value as ClosedEvent) })
    end()
  }, (step) => {
    // Stop the transport at once (no reconnect, no 204 round trip), even while earlier events are held.
    source.close()
    deliver(step)
  })

  return {
    close: () => { if (status !== 'closed') end() },
    get lastEventId () { return lastEventId },
    get status () { return status },
    get duplicates () { return duplicates }
  }
}

/**
 * Adds a listener for `type`: each message becomes one step, given to `deliver` (now, or after what is held).
 * The data is read when the message arrives, since an EventSource may reuse nothing but the string.
 */
function listen (source: EventSourceLike, type: string, apply: (message: EventSourceMessage, data: string) => void, deliver: (step: () => void) => void): void {
  source.addEventListener(type, (message) => {
    const snapshot = { data: message.data, lastEventId: message.lastEventId }
    deliver(() => { apply(snapshot, snapshot.data) })
  })
}

/** The event's JSON data, or undefined (reported) when it is not JSON. */
function parse (type: string, id: string, data: string, report: (error: Error) => void): { value: unknown } | undefined {
  try {
    return { value: JSON.parse(data) }
  } catch (err) {
    report(failure(`the data of the ${type} event${id === '' ? '' : ` ${id}`} is not JSON`, err))
    return undefined
  }
}

function failure (message: string, cause: unknown): Error {
  return new Error(`fastify-sse-hub/client: ${message}`, { cause })
}

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function'
}

/** `url` with `lastEventId` as a query parameter, when there is one. */
function withLastEventId (url: string, id: string | undefined): string {
  if (id === undefined || id === '') return url
  const hash = url.indexOf('#')
  const base = hash < 0 ? url : url.slice(0, hash)
  return base + (base.includes('?') ? '&' : '?') + 'lastEventId=' + encodeURIComponent(id) + (hash < 0 ? '' : url.slice(hash))
}
