import Fastify from 'fastify'
import { describe, expect, test } from 'tstyche'
import sseHub, { type ConversationEvents, type SessionKind, type SessionRegistry } from '../../src/index.js'

interface PollEvents {
  vote_cast: { option: string, votes: number }
}

// An application's own kind, typed by declaration merging (and declared at runtime with the `kinds` option).
declare module '../../src/index.js' {
  interface SessionKinds {
    poll: PollEvents
  }
}

const app = Fastify()
await app.register(sseHub, { kinds: ['poll'] })

describe('kind()', () => {
  test('returns the registry typed by the kind\'s event map', () => {
    expect(app.sse.kind('poll')).type.toBe<SessionRegistry<PollEvents>>()
    expect(app.sse.kind('conversation')).type.toBe<SessionRegistry<ConversationEvents>>()
  })

  test('an undeclared kind is a compile error', () => {
    expect(app.sse.kind).type.not.toBeCallableWith('nope')
    expect(app.sse.stream).type.not.toBeCallableWith('nope')
    expect<SessionKind>().type.toBeAssignableFrom('poll' as const)
  })

  test('a merged kind\'s events are checked like the design\'s', () => {
    expect(app.sse.kind('poll').broadcast('p', 'vote_cast', { option: 'a', votes: 1 })).type.toBe<Promise<string>>()
    expect(app.sse.kind('poll').broadcast).type.not.toBeCallableWith('p', 'vote_cats', { option: 'a', votes: 1 })
    expect(app.sse.kind('poll').broadcast).type.not.toBeCallableWith('p', 'vote_cast', { option: 'a', votes: '1' })
    expect(app.sse.kind('poll').broadcast).type.not.toBeCallableWith('p', 'conversation_token', {
      participantId: 'p', personaSlug: 'a', personaName: 'A', segment: 's', token: 't'
    })
  })

  test('stream() takes every declared kind', () => {
    expect(app.sse.stream).type.toBeCallableWith('poll')
    expect(app.sse.stream).type.toBeCallableWith('debate', { param: 'debateId' })
  })

  test('the kinds option takes names', () => {
    expect(app.register).type.toBeCallableWith(sseHub, { kinds: ['poll'], maxSessions: 10 })
    expect(app.register).type.not.toBeCallableWith(sseHub, { kinds: 'poll' })
  })
})
