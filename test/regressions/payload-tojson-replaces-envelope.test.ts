/*
 * Regression: a payload with an own `toJSON` method (e.g. a spread-in object or an
 * object typed wider than its event's payload) replaced the whole JSON of the event,
 * so clients got a forged `type` and no `timestamp`. The envelope is now always
 * `{ type, ...payload, timestamp }`; an own toJSON function is left out like any
 * function, and a `toJSON` member that is data is kept.
 */
import t from 'tap'
import { eventJson } from '../../src/frame.js'
import { buildApp, connect, listen, token } from '../helper.js'

t.test('an own toJSON method cannot replace the envelope', async (t) => {
  const forged = { ...token('a'), toJSON: () => ({ type: 'conversation_completed', forged: true }) }
  t.same(JSON.parse(eventJson('conversation_token', forged, 7)), { type: 'conversation_token', ...token('a'), timestamp: 7 })
  t.same(JSON.parse(eventJson('x', { toJSON: 'data' }, 7)), { type: 'x', toJSON: 'data', timestamp: 7 }, 'a toJSON that is data stays')

  const app = await buildApp()
  const url = await listen(app, t)
  const c = await connect(`${url}/conversations/s/stream`)
  await app.sse.broadcastToConversation('s', 'conversation_token', forged)
  const [e] = await c.receive(1)
  t.equal(e?.json.type, 'conversation_token')
  t.equal(typeof e?.json.timestamp, 'number')
  t.notOk('forged' in (e?.json ?? {}))
})
