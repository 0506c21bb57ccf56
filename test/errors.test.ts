import t from 'tap'
import * as hub from '../src/index.js'

t.test('every exported FST_ERR_SSE_HUB_* code equals its export name', async (t) => {
  const entries = Object.entries(hub).filter(([k]) => k.startsWith('FST_ERR_SSE_HUB_'))
  t.ok(entries.length >= 9, 'the errors are exported from the package entry')
  for (const [key, Ctor] of entries) {
    const err = new (Ctor as new (...a: unknown[]) => Error & { code: string, statusCode?: number })('x', 1)
    t.equal(err.code, key, key)
    t.ok(err instanceof Error, `${key} is an Error`)
    t.ok(err.message.startsWith('fastify-sse-hub: '), `${key} names the plugin`)
  }
})

t.test('client-facing errors carry the HTTP status they are answered with', async (t) => {
  t.equal(new hub.FST_ERR_SSE_HUB_INVALID_SESSION_ID('x').statusCode, 400)
  t.equal(new hub.FST_ERR_SSE_HUB_UNAUTHORIZED().statusCode, 401)
  t.equal(new hub.FST_ERR_SSE_HUB_FORBIDDEN().statusCode, 403)
  t.equal(new hub.FST_ERR_SSE_HUB_TOO_MANY_CLIENTS('maxClients').statusCode, 503)
  t.equal(new hub.FST_ERR_SSE_HUB_SHUTTING_DOWN().statusCode, 503)
  t.equal(new hub.FST_ERR_SSE_HUB_NOT_ACCEPTABLE().statusCode, 406)
})

t.test('an invalid payload error keeps its cause', async (t) => {
  const cause = new TypeError('circular')
  const err = new hub.FST_ERR_SSE_HUB_INVALID_PAYLOAD('bad', { cause })
  t.equal(err.cause, cause)
  t.match(err.message, /invalid payload: bad/)
})
