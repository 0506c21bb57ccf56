import t from 'tap'
import { buildApp, connect, listen, token } from './helper.js'

t.test('a client receives a broadcast', async (t) => {
  const app = await buildApp()
  const url = await listen(app, t)
  const c = await connect(`${url}/conversations/s1/stream`)
  await app.sse.broadcastToConversation('s1', 'conversation_token', token('hi'))
  const [e] = await c.receive(1)
  t.equal(e?.event, 'conversation_token')
  t.equal(e?.json.token, 'hi')
})
