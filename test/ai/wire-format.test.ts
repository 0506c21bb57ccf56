/* The UI message stream wire format (src/ai/wire-format.ts) on its own: chunk data, its refusals, and its replays. */
import t from 'tap'
import type { FastifyRequest } from 'fastify'
import { FST_ERR_SSE_HUB_INVALID_EVENT_TYPE, FST_ERR_SSE_HUB_INVALID_PAYLOAD } from '../../src/index.js'
import { ERROR_TEXTS, UI_MESSAGE_STREAM_FORMAT as format } from '../../src/ai/wire-format.js'
import { FROM_START, Welcome, type EventLog } from '../../src/event-log/types.js'
import { Join, type Session } from '../../src/session.js'

t.test("an event's data is the chunk as given, its type first and the event's", async (t) => {
  t.equal(format.eventJson('text-delta', { id: 't', delta: 'hi', type: 'text-delta' }, 1), '{"type":"text-delta","id":"t","delta":"hi"}')
  t.equal(format.eventJson('finish', { type: 'other' }, 1), '{"type":"finish"}')
  t.equal(format.eventJson('data-x', { data: 1, toJSON: () => 'replaced' }, 1), '{"type":"data-x","data":1}', 'an own toJSON cannot replace the chunk')
})

t.test('a bad type or a payload JSON cannot carry is refused', async (t) => {
  t.throws(() => format.eventJson('a\nb', {}, 1), FST_ERR_SSE_HUB_INVALID_EVENT_TYPE)
  for (const payload of [null, [], 'x']) t.throws(() => format.eventJson('start', payload, 1), FST_ERR_SSE_HUB_INVALID_PAYLOAD)
  const circular: Record<string, unknown> = {}
  circular.self = circular
  t.throws(() => format.eventJson('data-x', circular, 1), { code: 'FST_ERR_SSE_HUB_INVALID_PAYLOAD', message: /JSON cannot encode it/ })
})

t.test('what the hub says on this wire is chunks: no greeting, [DONE], error and abort chunks', async (t) => {
  t.equal(format.greeting({} as never, 'c', 's', 'chat', 1), '')
  t.equal(format.end('s', '1', 1).toString(), 'data: [DONE]\n\n')
  t.equal(format.resync('s', '1', 'history_trimmed', 1).toString(), `data: {"type":"error","errorText":"${ERROR_TEXTS.lost}"}\n\n`)
  t.same(format.failed('s', 'stopped', 1), { type: 'abort', json: '{"type":"abort"}' })
  t.same(JSON.parse(format.failed('s', 'lease_lapsed', 1).json), { type: 'error', errorText: ERROR_TEXTS.lease_lapsed })
  t.same(JSON.parse(format.failed('s', 'source_error', 1).json), { type: 'error', errorText: ERROR_TEXTS.source_error })
})

t.test("a replay: from the start without Last-Event-ID, after it with one; an asynchronous log's resync becomes an error chunk", async (t) => {
  const asked: unknown[] = []
  const join = new Join()
  const log = {
    welcome (s: Session, id: string | undefined | typeof FROM_START) {
      asked.push(id)
      return Promise.resolve(new Welcome('resync', [Buffer.from('hub resync')], 0, undefined, join, 'unknown_event_id'))
    }
  } as unknown as EventLog
  const request = (headers: Record<string, string>): FastifyRequest => ({ headers, query: {} }) as unknown as FastifyRequest
  const replay = await format.welcome({} as Session, request({ 'last-event-id': 'x' }), {} as never, log)
  t.same(replay.frames.map(String), [`data: {"type":"error","errorText":"${ERROR_TEXTS.lost}"}\n\n`])
  t.equal(replay.join, join, 'the join the log holds stays with the answer')
  t.equal(replay.outcome, 'resync')
  await format.welcome({} as Session, request({}), {} as never, log)
  t.same(asked, ['x', FROM_START])
})
