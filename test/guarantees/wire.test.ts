/*
 * Guarantee — wire: for any payload, the bytes the hub sends parse with
 * eventsource-parser with no error, and JSON.parse(data) deep-equals
 * `{ type, ...payload, timestamp }`. No byte of an event name or id can start a new field.
 *
 * Two comparisons, on purpose:
 * - JSON-safe payloads (fc.jsonValue: no NaN, undefined, Date…; its -0 mapped to 0) must come back
 *   deep-strict-equal to what was broadcast. Lone surrogates are JSON-safe: JSON.stringify
 *   escapes them (`\ud800`) and JSON.parse gives the same string back.
 * - Arbitrary JS payloads (with -0, NaN, Infinity, undefined members, sparse arrays, Dates…)
 *   cannot survive JSON unchanged; for them the guarantee is "JSON round-trip semantics":
 *   the client gets exactly JSON.parse(JSON.stringify({ type, ...payload, timestamp })).
 */
import t from 'tap'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { createParser, type EventSourceMessage, type ParseError } from 'eventsource-parser'
import { EventSource } from 'eventsource'
import { dataLines, encodeEvent, eventTypeProblem, isSafeEventId } from '../../src/frame.js'
import { eventJson } from '../../src/frame.js'
import { FST_ERR_SSE_HUB_INVALID_EVENT_TYPE } from '../../src/index.js'
import { buildApp, connect, listen, waitFor } from '../helper.js'

// Many runs, reproducible: a failure prints its seed and counterexample.
const RUNS = Number(process.env.WIRE_RUNS ?? 3000)
// ~10 s alone on 2 cores; more when the suite runs files in parallel. tap's default is 30 s.
t.setTimeout(120_000)

/** One unit of a hostile string: every character the SSE framing or JSON could trip on, then anything. */
const hostileUnit = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '\r', '\n', '\r\n', '\n\r', '\r\r', '\0', '\u2028', '\u2029', '\uFEFF', '\u0085', '\v', '\f', '\t',
      '\uD800', '\uDBFF', '\uDC00', '\uDFFF', // lone surrogates
      '😀', '👩‍👩‍👧‍👦', '🇫🇷', 'e\u0301', '中', 'é',
      ':', ' ', '"', '\\', '\u007f', 'data: x', 'event: x', 'id: 1', 'retry: 1', ': comment'
    )
  },
  { weight: 3, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  { weight: 3, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 1 }) }
)
const hostileString = fc.string({ unit: hostileUnit, maxLength: 24 })
const key = fc.oneof(hostileString, fc.constantFrom('type', 'timestamp', '__proto__', 'constructor', 'toString', ''))
/** fc.jsonValue, with -0 made 0: it generates -0, which JSON writes as 0. */
const jsonValue = fc.jsonValue({ stringUnit: hostileUnit, maxDepth: 5, depthSize: 'small' }).map(noNegativeZero)
function noNegativeZero (v: unknown): unknown {
  if (Object.is(v, -0)) return 0
  if (Array.isArray(v)) return v.map(noNegativeZero)
  // Object.fromEntries defines own properties, so a '__proto__' key stays a key.
  if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, noNegativeZero(x)]))
  return v
}
/** JSON-safe payloads: a plain object, as broadcast takes. */
const jsonPayload = fc.dictionary(key, jsonValue, { maxKeys: 8, noNullPrototype: true })
/** Deep objects and arrays, up to 1,000 levels. */
const deepPayload = fc.tuple(fc.integer({ min: 1, max: 1000 }), hostileString, fc.boolean()).map(([depth, leaf, arrays]) => {
  let v: unknown = leaf
  for (let i = 0; i < depth; i++) v = arrays && i % 2 === 1 ? [v, i] : { [`k${i % 7}`]: v }
  return { deep: v }
})
/** Any JS value JSON.stringify accepts, lossy ones included. */
const lossyPayload = fc.dictionary(key, fc.anything({
  stringUnit: hostileUnit, maxDepth: 4, withDate: true, withSparseArray: true, withBoxedValues: true, withMap: true, withSet: true
}), { maxKeys: 8, noNullPrototype: true })

const CONVERSATION_TYPES = [
  'conversation_started', 'conversation_utterance', 'conversation_token', 'conversation_speaker_changed',
  'conversation_context_updated', 'conversation_paused', 'conversation_resumed', 'conversation_completed', 'conversation_error'
] as const
const validType = fc.oneof(fc.constantFrom(...CONVERSATION_TYPES), hostileString.filter((s) => eventTypeProblem(s) === undefined))
const validId = fc.option(fc.oneof(
  fc.tuple(fc.string({ unit: fc.constantFrom(...'0123456789abcdefghijklmnopqrstuvwxyz'), minLength: 8, maxLength: 14 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }))
    .map(([epoch, n]) => `${epoch}-${n}`),
  fc.string({ unit: 'grapheme-ascii', maxLength: 256 })
), { nil: undefined })
/** A string that contains at least one CR, LF or NUL. */
const fieldBreaker = fc.tuple(hostileString, fc.constantFrom('\r', '\n', '\r\n', '\0'), hostileString).map(([a, b, c]) => a + b + c)

/** What a client decoding UTF-8 sees of a JS string: lone surrogates become U+FFFD. */
const asUtf8 = (s: string): string => Buffer.from(s, 'utf8').toString('utf8')

/** Parses `bytes` as a client would: cut at arbitrary byte offsets, decoded as a UTF-8 stream. */
function parseBytes (bytes: Buffer, cuts: number[] = []): { messages: EventSourceMessage[], errors: ParseError[] } {
  const messages: EventSourceMessage[] = []
  const errors: ParseError[] = []
  const parser = createParser({ onEvent: (m) => { messages.push(m) }, onError: (e) => { errors.push(e) } })
  const decoder = new TextDecoder('utf-8')
  const offsets = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  let from = 0
  for (const at of [...offsets, bytes.length]) {
    parser.feed(decoder.decode(bytes.subarray(from, at), { stream: true }))
    from = at
  }
  parser.feed(decoder.decode())
  return { messages, errors }
}

function expectedJson (type: string, payload: object, timestamp: number): unknown {
  const body: Record<string, unknown> = { type, ...payload, timestamp }
  body.type = type
  return body
}

t.test('pure encoder: JSON-safe payloads, several events per stream, cut anywhere, come back deep-equal', async (t) => {
  const event = fc.record({ id: validId, type: validType, payload: fc.oneof({ weight: 9, arbitrary: jsonPayload }, { weight: 1, arbitrary: deepPayload }), timestamp: fc.nat() })
  t.doesNotThrow(() => fc.assert(fc.property(fc.array(event, { minLength: 1, maxLength: 4 }), fc.array(fc.nat(), { maxLength: 6 }), (events, cuts) => {
    const bytes = Buffer.concat(events.map((e) => encodeEvent(e.id, e.type, eventJson(e.type, e.payload, e.timestamp))))
    const { messages, errors } = parseBytes(bytes, cuts)
    assert.deepEqual(errors, [])
    // As many messages as frames: nothing in a name, id or payload started a new field or event.
    assert.equal(messages.length, events.length)
    events.forEach((e, i) => {
      const m = messages[i] as EventSourceMessage
      assert.equal(m.event, e.type)
      assert.equal(m.id, e.id)
      assert.deepStrictEqual(JSON.parse(m.data), expectedJson(e.type, e.payload, e.timestamp))
    })
  }), { numRuns: RUNS }))
})

t.test('pure encoder: lossy JS payloads come back with JSON round-trip semantics', async (t) => {
  t.doesNotThrow(() => fc.assert(fc.property(validType, lossyPayload, fc.nat(), fc.array(fc.nat(), { maxLength: 4 }), (type, payload, ts, cuts) => {
    const json = eventJson(type, payload, ts)
    const { messages, errors } = parseBytes(encodeEvent('1', type, json), cuts)
    assert.deepEqual(errors, [])
    assert.equal(messages.length, 1)
    assert.deepStrictEqual(JSON.parse((messages[0] as EventSourceMessage).data), JSON.parse(JSON.stringify(expectedJson(type, payload, ts))))
  }), { numRuns: RUNS }))
})

t.test('pure encoder: raw data with any line breaks is split into data lines and joined back with LF', async (t) => {
  t.doesNotThrow(() => fc.assert(fc.property(hostileString, fc.array(fc.nat(), { maxLength: 4 }), (data, cuts) => {
    const { messages, errors } = parseBytes(encodeEvent(undefined, 'raw', data), cuts)
    assert.deepEqual(errors, [])
    assert.equal(messages.length, 1)
    // The SSE spec normalises CR and CRLF to LF; UTF-8 cannot carry a lone surrogate.
    assert.equal((messages[0] as EventSourceMessage).data, asUtf8(data).replace(/\r\n|\r/g, '\n'))
    // Every line of the encoding is a data field.
    for (const line of dataLines(data).split('\n').slice(0, -1)) assert.ok(line.startsWith('data: '))
  }), { numRuns: RUNS }))
})

t.test('names and ids: an accepted one is received exactly; one with CR, LF or NUL is refused', async (t) => {
  t.doesNotThrow(() => fc.assert(fc.property(fc.oneof(hostileString, fieldBreaker), (s) => {
    const typeOk = eventTypeProblem(s) === undefined
    const idOk = isSafeEventId(s)
    if (/[\r\n\0]/.test(s)) {
      assert.equal(typeOk, false)
      assert.equal(idOk, false)
    }
    if (typeOk) {
      const { messages, errors } = parseBytes(encodeEvent(undefined, s, '{}'))
      assert.deepEqual(errors, [])
      assert.equal(messages.length, 1)
      assert.equal(messages[0]?.event, s)
    }
    if (idOk) {
      const { messages, errors } = parseBytes(encodeEvent(s, 'e', '{}'))
      assert.deepEqual(errors, [])
      assert.equal(messages.length, 1)
      assert.equal(messages[0]?.id, s)
      assert.equal(messages[0]?.event, 'e')
    }
  }), { numRuns: RUNS }))
})

t.test('names: broadcast refuses CR, LF and NUL synchronously with FST_ERR_SSE_HUB_INVALID_EVENT_TYPE, sending nothing', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const c = await connect(`${url}/conversations/w/stream`)
  let refused = 0
  t.doesNotThrow(() => fc.assert(fc.property(fieldBreaker, jsonPayload, (type, payload) => {
    assert.throws(() => app.sse.broadcastToConversation('w', type as never, payload as never), (err: unknown) => {
      assert.ok(err instanceof FST_ERR_SSE_HUB_INVALID_EVENT_TYPE)
      assert.equal((err as { code: string }).code, 'FST_ERR_SSE_HUB_INVALID_EVENT_TYPE')
      return true
    })
    refused++
  }), { numRuns: RUNS }))
  t.equal(app.sse.getStats().broadcasts, 0, 'nothing was broadcast')
  // A valid event after all the refusals is the first and only one the client gets.
  await app.sse.broadcastToConversation('w', 'conversation_paused', { sessionId: 'w', turnCount: 1 })
  const [only] = await c.receive(1)
  t.equal(c.received.length, 1)
  t.equal(only?.event, 'conversation_paused')
  t.equal(c.parseErrors.length, 0)
  t.equal(refused, RUNS)
})

t.test('real HTTP: generated payloads broadcast to a raw client and a real EventSource arrive intact, in order', async (t) => {
  const N = Number(process.env.WIRE_HTTP_RUNS ?? 300)
  const app = await buildApp({ maxEventBytes: 16 * 2 ** 20, maxBufferedBytes: 64 * 2 ** 20, historyBytes: 16 * 2 ** 20 })
  const url = await listen(app, t)
  const raw = await connect(`${url}/conversations/h/stream`)
  const es = new EventSource(`${url}/conversations/h/stream`)
  t.teardown(() => { es.close() })
  const esData: string[] = []
  let esErrors = 0
  es.addEventListener('error', () => { esErrors++ })
  await new Promise<void>((resolve) => { es.addEventListener('open', () => { resolve() }, { once: true }) })
  await new Promise<void>((resolve) => {
    es.addEventListener('connection_established', () => { resolve() }, { once: true })
  })

  const sent: Array<{ id: string, type: string, payload: object, lossy: boolean, before: number, after: number }> = []
  const safe = fc.sample(fc.tuple(validType.filter((s) => !['resync', 'connection_established', 'error', 'open'].includes(s)), fc.oneof({ weight: 9, arbitrary: jsonPayload }, { weight: 1, arbitrary: deepPayload })), { numRuns: N, seed: 42 })
  const lossy = fc.sample(fc.tuple(fc.constantFrom(...CONVERSATION_TYPES), lossyPayload), { numRuns: Math.ceil(N / 3), seed: 43 })
  const all = [...safe.map(([type, payload]) => ({ type, payload, lossy: false })), ...lossy.map(([type, payload]) => ({ type, payload, lossy: true }))]
  const types = new Set(all.map((e) => e.type))
  for (const type of types) es.addEventListener(type, (e) => { esData.push(e.data) })
  for (const e of all) {
    const before = Date.now()
    const id = await app.sse.broadcastToConversation('h', e.type as never, e.payload as never)
    sent.push({ id, ...e, before, after: Date.now() })
  }
  await raw.receive(sent.length)
  await waitFor(() => esData.length >= sent.length || esErrors > 0, 'every event through EventSource (or an error)')
  t.equal(raw.parseErrors.length, 0, 'no parse error')
  t.equal(esErrors, 0, 'EventSource saw no error')
  t.equal(raw.received.length, sent.length)
  let mismatches = 0
  sent.forEach((s, i) => {
    const m = raw.received[i]
    const got = JSON.parse(m?.data ?? 'null')
    const ts = got.timestamp as number
    const want = s.lossy ? JSON.parse(JSON.stringify(expectedJson(s.type, s.payload, ts))) : expectedJson(s.type, s.payload, ts)
    try {
      assert.equal(m?.id, s.id)
      assert.equal(m?.event, s.type)
      assert.ok(ts >= s.before && ts <= s.after, 'timestamp is the hub\'s, taken at broadcast')
      assert.deepStrictEqual(got, want)
      assert.deepStrictEqual(JSON.parse(esData[i] as string), got)
    } catch (err) {
      if (mismatches++ === 0) t.fail(`event ${i} differs`, { error: err })
    }
  })
  t.equal(mismatches, 0, `all ${sent.length} events identical on the raw client and EventSource`)
})
