/*
 * The entry point `fastify-sse-hub/client`: a typed subscriber for the hub's streams, for browsers and Node.
 * Plain ESM without dependencies; the event maps are imported as types only.
 */
export { subscribe } from './subscribe.js'
export { compareEventIds } from './id-order.js'
export type {
  EventData,
  EventEnvelope,
  EventHandlers,
  EventMeta,
  EventSourceConstructor,
  EventSourceLike,
  EventSourceMessage,
  EventSourceOwnEvents,
  StreamRefusedError,
  SubscribeOptions,
  Subscription,
  SubscriptionStatus
} from './types.js'
export type {
  ClosedEvent,
  ConnectionEstablishedEvent,
  ConversationEvents,
  DebateEvents,
  EventMap,
  HubEvents,
  ResyncEvent,
  SessionKinds,
  SnapshotEvent
} from '../events.js'
