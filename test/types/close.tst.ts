import Fastify from 'fastify'
import { describe, expect, test } from 'tstyche'
import sseHub, { type SessionSnapshot, type SnapshotHook, type SseHubOptions } from '../../src/index.js'

const app = Fastify()

describe('closeConversation, closeDebate and a registry\'s close', () => {
  test('take a final event typed like a broadcast, or none, and resolve with its id', () => {
    expect(app.sse.closeConversation('s')).type.toBe<Promise<string>>()
    expect(app.sse.closeConversation).type.toBeCallableWith('s', 'conversation_completed', { sessionId: 's', turnCount: 3 })
    expect(app.sse.closeConversation).type.not.toBeCallableWith('s', 'conversation_completed', { sessionId: 's' })
    expect(app.sse.closeConversation).type.not.toBeCallableWith('s', 'no_such_event', {})
    expect(app.sse.closeConversation).type.not.toBeCallableWith('s', 'conversation_completed')
    expect(app.sse.closeDebate).type.toBeCallableWith('d', 'debate_paused', { debateId: 'd', turnCount: 1 })
    expect(app.sse.closeDebate).type.not.toBeCallableWith('d', 'conversation_completed', { sessionId: 'd', turnCount: 1 })
    expect(app.sse.kind('conversation').close).type.toBeCallableWith('s', 'conversation_completed', { sessionId: 's', turnCount: 3 })
    expect(app.sse.kind('conversation').close).type.not.toBeCallableWith('s', 'conversation_completed', { turnCount: 3 })
  })
})

describe('lastEventId', () => {
  test('is synchronous: a string, or undefined when there is none', () => {
    expect(app.sse.kind('debate').lastEventId('d')).type.toBe<string | undefined>()
  })
})

describe('the snapshot option', () => {
  test('returns { state, lastEventId } or undefined, sync or async', () => {
    expect(app.register).type.toBeCallableWith(sseHub, { snapshot: () => undefined })
    expect(app.register).type.toBeCallableWith(sseHub, { snapshot: () => ({ state: { tokens: [] }, lastEventId: '' }) })
    expect(app.register).type.toBeCallableWith(sseHub, { snapshot: async (kind: string, sessionId: string) => ({ state: sessionId, lastEventId: kind }) })
    expect(app.register).type.not.toBeCallableWith(sseHub, { snapshot: () => ({ state: 1 }) })
    expect(app.register).type.not.toBeCallableWith(sseHub, { snapshot: () => ({ state: 1, lastEventId: 2 }) })
    expect<SnapshotHook>().type.toBeAssignableTo<SseHubOptions['snapshot']>()
    expect<SessionSnapshot>().type.toBe<{ state: unknown, lastEventId: string }>()
  })

  test('closedSessionTtl is a number of ms', () => {
    expect(app.register).type.toBeCallableWith(sseHub, { closedSessionTtl: 1000 })
    expect(app.register).type.not.toBeCallableWith(sseHub, { closedSessionTtl: '1h' })
  })
})
