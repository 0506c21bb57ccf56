/*
 * Regression (found by test/guarantee-wire.test.ts): an event type holding a lone
 * surrogate (e.g. 'x\uD800') passed validation, and UTF-8 encoding turned it into
 * U+FFFD on the wire, so clients listening for the broadcast name never got the
 * event. Such a type is now refused like one with CR, LF or NUL.
 */
import t from 'tap'
import { FST_ERR_SSE_HUB_INVALID_EVENT_TYPE } from '../../src/index.js'
import { eventTypeProblem } from '../../src/frame.js'
import { buildApp, connect, listen } from '../helper.js'

t.test('an event type with a lone surrogate is refused; a valid pair is not', async (t) => {
  t.match(eventTypeProblem('x\uD800'), /lone surrogate/)
  t.match(eventTypeProblem('\uDFFFx'), /lone surrogate/)
  t.equal(eventTypeProblem('x\uD83D\uDE00'), undefined, 'an emoji (a valid surrogate pair) is fine')

  const app = await buildApp()
  const url = await listen(app, t)
  const c = await connect(`${url}/conversations/s/stream`)
  t.throws(() => app.sse.broadcastToConversation('s', 'conversation_\uD800' as never, {} as never), FST_ERR_SSE_HUB_INVALID_EVENT_TYPE)
  t.equal(app.sse.getStats().broadcasts, 0)
  await app.sse.broadcastToConversation('s', 'conversation_\uD83D\uDE00' as never, {} as never)
  const [e] = await c.receive(1)
  t.equal(e?.event, 'conversation_\uD83D\uDE00', 'the name arrives exactly as broadcast')
})
