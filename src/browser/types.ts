/*
 * The subscriber's public types: the options of `subscribe()`, its handle, the typed handlers of an event map,
 * and the part of `EventSource` it uses. Types only: nothing here exists at run time.
 */
import type { ClosedEvent, ResyncEvent, SnapshotEvent } from '../events.js'

/**
 * The status of a subscription. `connecting` until the first stream opens, `open` while one is open,
 * `reconnecting` while the EventSource retries after a drop, `closed` for good: the session closed, the server
 * answered 204 No Content (or refused the stream), or `close()` was called.
 */
export type SubscriptionStatus = 'connecting' | 'open' | 'reconnecting' | 'closed'

/** The fields the hub adds to every event's payload on the wire: `{ type, ...payload, timestamp }`. */
export interface EventEnvelope<K extends string> {
  /** The event's type. */
  type: K
  /** When the hub encoded the event (ms since the epoch). */
  timestamp: number
}

/** What a handler of event `K` receives: its payload as broadcast, with the hub's `type` and `timestamp`. */
export type EventData<E, K extends keyof E & string> = E[K] & EventEnvelope<K>

/** Where an event sits in the session's history. */
export interface EventMeta {
  /** The event's SSE `id:`. */
  id: string
}

/** `EventSource`'s own event names: an application event of one of these names cannot be told apart. */
export type EventSourceOwnEvents = 'open' | 'error' | 'message'

/**
 * One optional handler per event type of the map `E`. A handler for an event `E` lacks, or whose parameter does
 * not accept `E`'s payload, does not compile.
 */
export type EventHandlers<E> = {
  [K in Exclude<keyof E & string, EventSourceOwnEvents>]?: (data: EventData<E, K>, meta: EventMeta) => void
}

/** The message `EventSource` dispatches for a named event. */
export interface EventSourceMessage {
  /** The event's data (the `data:` lines, joined). */
  readonly data: string
  /** The SSE last event id after this event: its `id:`, or the previous one when it had none. */
  readonly lastEventId: string
}

/** The part of an `EventSource` the subscriber uses; the browser's and the `eventsource` package's both fit. */
export interface EventSourceLike {
  /** 0 connecting, 1 open, 2 closed. */
  readonly readyState: number
  addEventListener (type: string, listener: (event: EventSourceMessage) => void): void
  close (): void
}

/** What `onError` gets when the server refused the stream: its HTTP status (for an error reply, its JSON is not read). */
export interface StreamRefusedError extends Error {
  readonly name: 'StreamRefusedError'
  /** The HTTP status of the refusal, e.g. 401, 403, 429 or 503 (then retry after a while, as `Retry-After` says). */
  readonly status: number
}

/** An `EventSource` class: `globalThis.EventSource`, or one from a package such as `eventsource`. */
export type EventSourceConstructor = new (url: string, init?: { withCredentials?: boolean }) => EventSourceLike

/** The options of {@link subscribe}. `E` is the session kind's event map, `S` the type of its snapshot state. */
export interface SubscribeOptions<E, S = unknown> {
  /** A handler per application event; each is called once per event id, in the session's order. */
  on?: EventHandlers<E>
  /**
   * The hub sent the session's state (the `snapshot` option of the hub): replace your state with `state`. The
   * events after it follow. Return a promise to hold those events until it settles.
   */
  onSnapshot?: (state: S, event: SnapshotEvent<S> & EventMeta) => void | PromiseLike<unknown>
  /**
   * The hub could not replay from where this subscription was: reload the session's state, then keep listening.
   * Return a promise to hold the events that follow until it settles; when it resolves with an event id (the
   * newest event the reloaded state includes), only events newer than that id are applied afterwards.
   */
  onResync?: (event: ResyncEvent & EventMeta) => void | PromiseLike<string | undefined | void>
  /** The session is over (the hub's `closed` event): no event follows and the subscription is closed. */
  onClosed?: (event: ClosedEvent) => void
  /** Every change of {@link Subscription.status}, starting with `connecting`. */
  onStatus?: (status: SubscriptionStatus) => void
  /**
   * An event whose data is not JSON, or a handler that threw (or a held promise that rejected): the event is
   * skipped, the subscription goes on. A stream the server refused (401, 403, 429, 503, any status but 200 and
   * 204): a {@link StreamRefusedError} with its `status`, and the subscription is closed (a finished session, 204
   * or the `closed` event, is no error). Default: `console.error`.
   */
  onError?: (error: Error | StreamRefusedError) => void
  /** Start after this event id (sent as the `lastEventId` query parameter), e.g. one kept from an earlier visit. */
  lastEventId?: string
  /** Passed to the EventSource: send cookies on a cross-origin stream. */
  withCredentials?: boolean
  /** The `EventSource` class to use. Default: `globalThis.EventSource` (every browser; in Node, pass one). */
  EventSource?: EventSourceConstructor
}

/** What {@link subscribe} returns. */
export interface Subscription {
  /** Closes the stream for good; no handler is called afterwards. */
  close (): void
  /** The newest event id this subscription has applied (or been given by a snapshot or resync). */
  readonly lastEventId: string | undefined
  /** The current status. */
  readonly status: SubscriptionStatus
  /** Events received but not applied because their id was not newer than {@link lastEventId} (the hub sends none). */
  readonly duplicates: number
}
