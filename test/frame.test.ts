import t from 'tap'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import fc from 'fast-check'
import { HEARTBEAT_FRAME, dataLines, encodeEvent, encodeJsonEvent, establishedJson, eventJson, eventTypeProblem, isSafeEventId, retryField } from '../src/frame.js'

function parse (bytes: Buffer): { events: EventSourceMessage[], comments: string[], retries: number[], errors: unknown[] } {
  const out = { events: [] as EventSourceMessage[], comments: [] as string[], retries: [] as number[], errors: [] as unknown[] }
  const p = createParser({
    onEvent: (e) => out.events.push(e),
    onComment: (c) => out.comments.push(c),
    onRetry: (r) => out.retries.push(r),
    onError: (e) => out.errors.push(e)
  })
  p.feed(bytes.toString('utf8'))
  return out
}

t.test('data is split on CR, LF and CRLF and parses back joined by LF', async (t) => {
  t.equal(dataLines('one'), 'data: one\n')
  t.equal(dataLines('a\rb\nc\r\nd'), 'data: a\ndata: b\ndata: c\ndata: d\n')
  t.equal(dataLines(''), 'data: \n')
  const { events, errors } = parse(encodeEvent('7', 'x', 'a\rb\nc\r\n\u2028\0end'))
  t.same(errors, [])
  t.same(events, [{ id: '7', event: 'x', data: 'a\nb\nc\n\u2028\0end' }])
})

t.test('an event without id keeps the client id; an empty id resets it', async (t) => {
  t.equal(encodeEvent(undefined, 'x', '1').toString(), 'event: x\ndata: 1\n\n')
  t.equal(encodeEvent('', 'x', '1').toString(), 'id:\nevent: x\ndata: 1\n\n')
  t.same(parse(encodeEvent('', 'x', '1')).events, [{ id: '', event: 'x', data: '1' }])
})

t.test('retry and heartbeat frames', async (t) => {
  const r = parse(Buffer.concat([Buffer.from(retryField(1500.7)), HEARTBEAT_FRAME]))
  t.same(r.retries, [1500])
  t.same(r.comments, [''])
  t.same(r.events, [])
})

t.test('event JSON is { type, ...payload, timestamp } and a payload cannot override type or timestamp', async (t) => {
  t.equal(eventJson('e', { a: 1 }, 5), '{"type":"e","a":1,"timestamp":5}')
  t.equal(eventJson('e', { type: 'evil', timestamp: 1, b: 2 }, 5), '{"type":"e","timestamp":5,"b":2}')
})

t.test('event type checks', async (t) => {
  t.equal(eventTypeProblem('conversation_token'), undefined)
  t.equal(eventTypeProblem('with space and ünïcode'), undefined)
  t.equal(eventTypeProblem(1), 'it is not a string')
  t.equal(eventTypeProblem(''), 'it is empty')
  t.equal(eventTypeProblem('x'.repeat(129)), 'it is longer than 128 characters')
  for (const c of ['\r', '\n', '\0']) t.equal(eventTypeProblem(`a${c}data: x`), 'it contains CR, LF or NUL')
})

t.test('event id checks: printable ASCII, bounded', async (t) => {
  t.ok(isSafeEventId('abc-12'))
  t.ok(isSafeEventId(''))
  t.notOk(isSafeEventId(12))
  t.notOk(isSafeEventId('a\nb'))
  t.notOk(isSafeEventId('é'))
  t.notOk(isSafeEventId('x'.repeat(257)))
})

t.test('connection_established JSON, written out, is what eventJson makes of the same fields', async (t) => {
  const ids = ['a', 'conv_1-2', 'with "quotes" and \\ backslash', 'ünïcödé 👋', '\u2028\u2029', '</script>']
  for (const sessionId of ids) {
    for (const kind of ['conversation', 'debate']) {
      const clientId = '6f1c1d2e-8a4b-4c3d-9e0f-123456789abc'
      t.equal(establishedJson(clientId, sessionId, kind, 1700000000123), eventJson('connection_established', { clientId, sessionId, kind }, 1700000000123), sessionId)
    }
  }
})

t.test('the JSON fast path frames exactly what the general encoder does, for any JSON (property)', async (t) => {
  fc.assert(fc.property(fc.jsonValue(), fc.option(fc.string({ unit: fc.constantFrom('a', '-', '0', ' ') }), { nil: undefined }), (value, id) => {
    const json = JSON.stringify(value)
    return encodeJsonEvent(id, 'conversation_token', json).equals(encodeEvent(id, 'conversation_token', json))
  }), { numRuns: 500 })
  // The characters JSON.stringify must escape for the fast path to be right, and what it may leave raw.
  const json = JSON.stringify({ s: 'a\rb\nc\r\nd\u2028\u2029\0' })
  t.same(parse(encodeJsonEvent('1', 'x', json)).events.map((e) => e.data), [json])
  t.pass('500 random JSON values framed alike')
})
