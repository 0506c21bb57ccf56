/*
 * Regression (found on review): the `snapshot` hook's answer was used unchecked. `null` failed with a bare
 * TypeError; `{ state }` without `lastEventId` opened a stream whose `snapshot` event had no `id:`, and the
 * client then missed the events the state did not include. An answer that is neither undefined nor an object
 * with a string `lastEventId` is now refused with FST_ERR_SSE_HUB_INVALID_PAYLOAD: a 500 JSON reply before
 * any SSE byte, logged, and nothing of the client left behind.
 */
import t from 'tap'
import { SseClient, buildApp, connect, listen } from '../helper.js'

const answers: Array<[string, unknown]> = [
  ['null', null],
  ['{ state } without lastEventId', { state: {} }],
  ['a lastEventId that is not a string', { state: {}, lastEventId: 5 }],
  ['a string', 'state']
]

for (const [what, answer] of answers) {
  for (const async of [false, true]) {
    t.test(`a hook answering ${what}${async ? ' (async)' : ''}: a logged 500 JSON reply, no stream`, async (t) => {
      const logs: Array<Record<string, unknown>> = []
      let give: unknown = answer
      const app = await buildApp(
        { snapshot: (async ? async () => give : () => give) as never },
        { logger: { level: 'error', stream: { write (line: string) { logs.push(JSON.parse(line)) } } } }
      )
      const url = await listen(app, t)
      for (const headers of [{}, { 'last-event-id': 'unknown' }] as Array<Record<string, string>>) {
        const c = new SseClient(`${url}/conversations/s/stream`, headers)
        t.match(await c.errorBody(), { statusCode: 500, code: 'FST_ERR_SSE_HUB_INVALID_PAYLOAD', message: /snapshot/ })
        t.match(c.headers['content-type'], /application\/json/, 'not an event stream')
      }
      t.equal(logs.filter((l) => (l.err as { code?: string } | undefined)?.code === 'FST_ERR_SSE_HUB_INVALID_PAYLOAD').length, 2, 'each refusal is logged')
      t.equal(app.sse.getStats().clients, 0, 'nothing left of the refused clients')
      give = undefined
      const fine = await connect(`${url}/conversations/s/stream`)
      t.equal(app.sse.kind('conversation').count('s'), 1, 'the session still opens')
      fine.close()
    })
  }
}
