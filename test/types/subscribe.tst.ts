import { describe, expect, test } from 'tstyche'
import { EventSource as PackageEventSource } from 'eventsource'
import {
  subscribe,
  type ClosedEvent,
  type ConversationEvents,
  type DebateEvents,
  type EventData,
  type ResyncEvent,
  type SnapshotEvent,
  type StreamRefusedError,
  type Subscription,
  type SubscriptionStatus
} from '../../src/browser/index.js'
import type { ConversationTokenEvent } from '../../src/events.js'

interface TranscriptState { turns: string[] }

describe('subscribe()', () => {
  test('returns the handle', () => {
    const sub = subscribe<ConversationEvents>('/s', {})
    expect(sub).type.toBe<Subscription>()
    expect(sub.status).type.toBe<SubscriptionStatus>()
    expect(sub.lastEventId).type.toBe<string | undefined>()
    expect(sub.close()).type.toBe<void>()
    expect<SubscriptionStatus>().type.toBe<'connecting' | 'open' | 'reconnecting' | 'closed'>()
  })

  test('a handler receives its event\'s payload, with the hub\'s type and timestamp, and the event id', () => {
    subscribe<ConversationEvents>('/s', {
      on: {
        conversation_token (e, meta) {
          expect(e).type.toBe<EventData<ConversationEvents, 'conversation_token'>>()
          expect(e.token).type.toBe<string>()
          expect(e.type).type.toBe<'conversation_token'>()
          expect(e.timestamp).type.toBe<number>()
          expect(meta.id).type.toBe<string>()
        },
        conversation_completed: (e) => { expect(e.turnCount).type.toBe<number>() }
      }
    })
    expect<EventData<ConversationEvents, 'conversation_token'>>().type.toBeAssignableTo<ConversationTokenEvent>()
  })

  test('a handler for an event the map lacks is a compile error', () => {
    expect(subscribe<ConversationEvents>).type.not.toBeCallableWith('/s', { on: { conversation_tokn () {} } })
    expect(subscribe<ConversationEvents>).type.not.toBeCallableWith('/s', { on: { debate_token () {} } })
    expect(subscribe<DebateEvents>).type.toBeCallableWith('/s', { on: { debate_token () {} } })
  })

  test('the hub\'s own events have their own callbacks, not `on` handlers', () => {
    expect(subscribe<ConversationEvents>).type.not.toBeCallableWith('/s', { on: { resync () {} } })
    expect(subscribe<ConversationEvents>).type.not.toBeCallableWith('/s', { on: { closed () {} } })
    expect(subscribe<ConversationEvents>).type.not.toBeCallableWith('/s', { on: { snapshot () {} } })
  })

  test('a handler whose parameter does not take the payload is a compile error', () => {
    expect(subscribe<ConversationEvents>).type.not.toBeCallableWith('/s', {
      on: { conversation_token (e: { token: number }) {} }
    })
    expect(subscribe<ConversationEvents>).type.not.toBeCallableWith('/s', {
      on: { conversation_token (e: { debateId: string }) {} }
    })
    expect(subscribe<ConversationEvents>).type.toBeCallableWith('/s', {
      on: { conversation_token (e: { token: string }) {} }
    })
  })

  test('EventSource\'s own event names cannot be handled as application events', () => {
    interface Odd { error: { x: number }, open: { y: number }, fine: { z: number } }
    expect(subscribe<Odd>).type.not.toBeCallableWith('/s', { on: { error () {} } })
    expect(subscribe<Odd>).type.not.toBeCallableWith('/s', { on: { open () {} } })
    expect(subscribe<Odd>).type.toBeCallableWith('/s', { on: { fine () {} } })
  })

  test('the snapshot\'s state is typed by the second type parameter', () => {
    subscribe<ConversationEvents, TranscriptState>('/s', {
      onSnapshot (state, event) {
        expect(state).type.toBe<TranscriptState>()
        expect(event).type.toBeAssignableTo<SnapshotEvent<TranscriptState>>()
        expect(event.reason).type.toBe<'join' | 'unknown_event_id' | 'history_trimmed'>()
      },
      onResync (event) { expect(event).type.toBeAssignableTo<ResyncEvent>() },
      onClosed (event) { expect(event).type.toBe<ClosedEvent>() },
      onStatus (status) { expect(status).type.toBe<SubscriptionStatus>() },
      onError (error) {
        expect(error).type.toBe<Error | StreamRefusedError>()
        if ('status' in error) expect(error.status).type.toBe<number>()
      }
    })
    expect(subscribe<ConversationEvents, TranscriptState>).type.not.toBeCallableWith('/s', { onSnapshot (state: { turns: number }) {} })
  })

  test('onResync may resolve with the id of the reloaded state', () => {
    expect(subscribe<ConversationEvents>).type.toBeCallableWith('/s', { onResync: async () => 'e-1' })
    expect(subscribe<ConversationEvents>).type.toBeCallableWith('/s', { onResync: async () => {} })
    expect(subscribe<ConversationEvents>).type.not.toBeCallableWith('/s', { onResync: async () => 1 })
  })

  test('takes the browser\'s EventSource and the eventsource package\'s, and a URL', () => {
    expect(subscribe<ConversationEvents>).type.toBeCallableWith('/s', { EventSource: PackageEventSource })
    expect(subscribe<ConversationEvents>).type.toBeCallableWith(new URL('http://h/s'), { EventSource: globalThis.EventSource })
    expect(subscribe<ConversationEvents>).type.not.toBeCallableWith('/s', { EventSource: Map })
  })
})
