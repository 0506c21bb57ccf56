import Fastify, { type FastifyPluginAsync } from 'fastify'
import { describe, expect, test } from 'tstyche'
import sseHub, {
  fastifySseHub,
  sseHub as namedSseHub,
  type ConversationEvents,
  type ConversationSSEEventType,
  type DebateEvents,
  type HubStats,
  type MetricsOptions,
  type RejectReason,
  type Rejections,
  type SseHub,
  type SseHubOptions
} from '../../src/index.js'
import { Registry } from 'prom-client'

// An application's own event, added by declaration merging.
declare module '../../src/index.js' {
  interface ConversationEvents {
    poll_opened: { question: string, options: string[] }
  }
}

const app = Fastify()

describe('fastify.sse', () => {
  test('is the typed hub', () => {
    expect(app.sse).type.toBe<SseHub<ConversationEvents, DebateEvents>>()
    expect(app.sse.getStats()).type.toBe<HubStats>()
    expect(app.sse.cleanupStaleConnections()).type.toBe<number>()
  })

  test('register takes the typed options', () => {
    expect(app.register).type.toBeCallableWith(sseHub, { heartbeatInterval: 1000 })
    expect(app.register).type.not.toBeCallableWith(sseHub, { heartbeatInterval: '1000' })
    expect<SseHubOptions>().type.not.toBeAssignableFrom({ nope: true })
  })

  test('the plugin is the default export, `sseHub` and `fastifySseHub`, typed by its options', () => {
    expect(fastifySseHub).type.toBe<FastifyPluginAsync<SseHubOptions>>()
    expect(namedSseHub).type.toBe<typeof sseHub>()
    expect(fastifySseHub).type.toBe<typeof sseHub>()
  })
})

describe('broadcastToConversation', () => {
  test('takes a known event with its payload', () => {
    expect(app.sse.broadcastToConversation('s', 'conversation_token', {
      participantId: 'p', personaSlug: 'a', personaName: 'A', segment: 's', token: 't'
    })).type.toBe<Promise<string>>()
  })

  test('an unknown event type is a compile error', () => {
    expect(app.sse.broadcastToConversation).type.not.toBeCallableWith('s', 'conversation_tokn', {})
    expect(app.sse.broadcastToConversation).type.not.toBeCallableWith('s', 'debate_token', {
      debateId: 'd', participantId: 'p', personaSlug: 'a', turnCount: 1, token: 't'
    })
    expect(app.sse.broadcastToConversation).type.not.toBeCallableWith('s', 'connection_established', {
      clientId: 'c', sessionId: 's', kind: 'conversation'
    })
  })

  test('a wrong payload is a compile error', () => {
    expect(app.sse.broadcastToConversation).type.not.toBeCallableWith('s', 'conversation_token', { token: 't' })
    expect(app.sse.broadcastToConversation).type.not.toBeCallableWith('s', 'conversation_context_updated', {
      sessionId: 's', summary: 'x', turnCount: '1'
    })
    expect(app.sse.broadcastToConversation).type.not.toBeCallableWith('s', 'conversation_paused', {
      sessionId: 's', turnCount: 1, extra: true
    })
  })

  test('an event added by declaration merging is accepted, with its payload checked', () => {
    expect(app.sse.broadcastToConversation).type.toBeCallableWith('s', 'poll_opened', { question: 'q', options: ['a'] })
    expect(app.sse.broadcastToConversation).type.not.toBeCallableWith('s', 'poll_opened', { question: 1, options: [] })
    expect<ConversationSSEEventType>().type.toBeAssignableFrom('poll_opened' as const)
  })
})

describe('broadcastToDebate', () => {
  test('takes debate events only', () => {
    expect(app.sse.broadcastToDebate).type.toBeCallableWith('d', 'debate_phase_changed', { debateId: 'd', from: null, to: 'opening' })
    expect(app.sse.broadcastToDebate).type.not.toBeCallableWith('d', 'debate_phase_changed', { debateId: 'd', from: null, to: 'overtime' })
    expect(app.sse.broadcastToDebate).type.not.toBeCallableWith('d', 'conversation_token', {
      participantId: 'p', personaSlug: 'a', personaName: 'A', segment: 's', token: 't'
    })
  })
})

describe('the design names', () => {
  test('add returns the client id; counts and checks are plain values', () => {
    app.get('/x/:id', async (request, reply) => {
      expect(await app.sse.addConversationClient('s', reply)).type.toBe<string>()
      expect(await app.sse.addDebateClient('s', reply)).type.toBe<string>()
    })
    expect(app.sse.removeConversationClient('s', 'c')).type.toBe<boolean>()
    expect(app.sse.getDebateClientCount('s')).type.toBe<number>()
    expect(app.sse.hasDebateClients('s')).type.toBe<boolean>()
    expect(app.sse.sendConversationHeartbeat('s')).type.toBe<void>()
  })
})

describe('the metrics option', () => {
  test('takes a prom-client Registry, and a prefix', () => {
    expect(app.register).type.toBeCallableWith(sseHub, { metrics: { registry: new Registry() } })
    expect(app.register).type.toBeCallableWith(sseHub, { metrics: { registry: new Registry(), prefix: 'myapp_sse_' } })
    expect<SseHubOptions['metrics']>().type.toBe<MetricsOptions | undefined>()
  })

  test('needs a registry', () => {
    expect(app.register).type.not.toBeCallableWith(sseHub, { metrics: {} })
    expect(app.register).type.not.toBeCallableWith(sseHub, { metrics: { registry: {} } })
    expect(app.register).type.not.toBeCallableWith(sseHub, { metrics: { registry: new Registry(), prefix: 1 } })
  })

  test('getStats() counts rejections by reason', () => {
    expect(app.sse.getStats().rejections).type.toBe<Rejections>()
    expect<keyof Rejections>().type.toBe<RejectReason>()
  })
})
