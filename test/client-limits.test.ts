/* The client limits (src/limits.ts): the 503/429 decision, Retry-After, and the counts they are checked against. */
import t from 'tap'
import type { FastifyReply } from 'fastify'
import { Counters } from '../src/counters.js'
import { ClientLimits } from '../src/limits.js'
import { resolveOptions } from '../src/options.js'

/** The part of a reply the limits read and write: whether it was sent, its address, and its headers. */
function reply (ip = '10.0.0.1', sent = false): FastifyReply & { set: Record<string, string> } {
  const set: Record<string, string> = {}
  return { sent, raw: { headersSent: false }, request: { ip }, set, header (k: string, v: string) { set[k] = v; return this } } as unknown as FastifyReply & { set: Record<string, string> }
}

t.test('maxClients and maxClientsPerSession: 503 with Retry-After, counted as rejected', async (t) => {
  const counters = new Counters()
  const limits = new ClientLimits(resolveOptions({ maxClients: 2, maxClientsPerSession: 1, retryAfter: 9 }))
  t.equal(limits.admit(reply(), 0, counters), undefined, 'no address counted while maxClientsPerIp is off')
  const perSession = reply()
  t.throws(() => limits.admit(perSession, 1, counters), { code: 'FST_ERR_SSE_HUB_TOO_MANY_CLIENTS', message: /maxClientsPerSession/ })
  t.same(perSession.set, { 'retry-after': '9' })
  limits.take(undefined)
  limits.take(undefined)
  t.throws(() => limits.admit(reply(), 0, counters), { code: 'FST_ERR_SSE_HUB_TOO_MANY_CLIENTS', message: /maxClients\)/ })
  limits.give(undefined)
  t.equal(limits.admit(reply(), 0, counters), undefined, 'a place given back is free again')
  t.equal(counters.clientsRejected, 2)
  t.match(counters.rejections, { max_per_session: 1, max_clients: 1 })
})

t.test('maxClientsPerIp: 429 per address; an address leaves the count at zero', async (t) => {
  const counters = new Counters()
  const limits = new ClientLimits(resolveOptions({ maxClientsPerIp: 1 }))
  const ip = limits.admit(reply('10.0.0.1'), 0, counters)
  t.equal(ip, '10.0.0.1')
  limits.take(ip)
  t.throws(() => limits.admit(reply('10.0.0.1'), 0, counters), { code: 'FST_ERR_SSE_HUB_TOO_MANY_CLIENTS_PER_IP', statusCode: 429 })
  t.equal(limits.admit(reply('10.0.0.2'), 0, counters), '10.0.0.2', 'another address is not affected')
  limits.give(ip)
  t.equal(limits.admit(reply('10.0.0.1'), 0, counters), '10.0.0.1')
  t.equal(counters.clientsRejected, 1)
})

t.test('a reply already sent, and any stream once shutting down, are refused first and not counted as rejected', async (t) => {
  const counters = new Counters()
  const limits = new ClientLimits(resolveOptions({}))
  t.throws(() => limits.admit(reply('10.0.0.1', true), 0, counters), { code: 'FST_ERR_SSE_HUB_REPLY_SENT' })
  t.equal(limits.shuttingDown, false)
  limits.shutDown()
  t.equal(limits.shuttingDown, true)
  t.throws(() => limits.admit(reply(), 0, counters), { code: 'FST_ERR_SSE_HUB_SHUTTING_DOWN', statusCode: 503 })
  t.equal(counters.clientsRejected, 0)
})
