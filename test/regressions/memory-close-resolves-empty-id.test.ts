/*
 * Regression (found on review): in memory, `close()` with a final event read the final id from the
 * session after appending it; when the session had no clients and kept nothing of it (`historySize: 0`,
 * or a final frame over `historyBytes`), the append forgot the session, the close made a fresh one, and
 * resolved '' instead of the final event's id. The id now comes from the append, which keeps the session.
 */
import t from 'tap'
import { buildApp, token } from '../helper.js'

const done = { sessionId: 's', turnCount: 1 }

for (const [what, options] of [['historySize 0', { historySize: 0 }], ['a final frame over historyBytes', { historyBytes: 200 }]] as const) {
  t.test(`close with a final event and no clients, ${what}: resolves the final event's id`, async (t) => {
    const app = await buildApp(options)
    t.teardown(() => app.close())
    const before = await app.sse.broadcastToConversation('s', 'conversation_token', token('x'))
    const final = await app.sse.closeConversation('s', 'conversation_completed', { ...done, padding: 'p'.repeat(300) } as typeof done)
    t.not(final, '', 'not the id of a session without events')
    t.not(final, before, 'not the last broadcast\'s id')
    t.equal(app.sse.kind('conversation').lastEventId('s'), final, 'the closed session is kept, with its final id')
    t.equal(await app.sse.closeConversation('s'), final, 'closing again answers the same id')
  })
}
