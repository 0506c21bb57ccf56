/*
 * The Redis backplane's feeds (src/backplane/redis-feeds.ts) against a real redis-server, with the
 * subscriptions scripted: whether a session's last client leaves before or after its resubscription
 * answers depends on two connections' timing, so here the test decides the order.
 */
import t from 'tap'
import type { FastifyBaseLogger } from 'fastify'
import { Feeds } from '../../src/backplane/redis-feeds.js'
import type { Topology } from '../../src/backplane/redis-topology.js'
import { initialBackplaneStats, type BackplaneEvent } from '../../src/backplane/types.js'
import { redisOrSkip } from './helper.js'

const redis = await redisOrSkip(t)

/** A one-server topology on a real connection whose subscriptions the test scripts. */
function oneServer (cmd: Topology['cmd'], subscriptions: Pick<Topology, 'subscribe'> & Partial<Pick<Topology, 'unsubscribe'>>): Topology {
  return { announce: 'PUBLISH', window: Infinity, cmd, ready: true, connect: async () => {}, refresh: async () => {}, unsubscribe: () => {}, stop: () => {}, ...subscriptions }
}

if (redis !== undefined) {
  t.test('a session whose last client left while its catch-up was read is skipped: nothing delivered, nothing held', async (t) => {
    const cmd = redis.client()
    t.teardown(() => cmd.disconnect())
    const key = 'sse-hub:{conversation:gone}'
    await cmd.xadd(key, '*', 't', 'conversation_token', 'd', '{}')
    let release = (): void => {}
    let subscribes = 0
    const topology = oneServer(cmd, {
      // The first subscription answers at once; the resubscription when the test releases it.
      subscribe: async () => { if (subscribes++ > 0) await new Promise<void>((resolve) => { release = resolve }) }
    })
    const delivered: BackplaneEvent[] = []
    const errors: Error[] = []
    const stats = initialBackplaneStats('redis', true)
    const feeds = new Feeds('sse-hub:', stats, (err) => { errors.push(err) })
    feeds.attach({ deliver: (_k, _s, e) => { delivered.push(e) }, resync: () => { t.fail('no resync') }, closed: () => { t.fail('not closed') }, producer: () => {}, logger: {} as FastifyBaseLogger }, topology)
    await feeds.subscribe('conversation', 'gone')
    // The subscriber is lost; an event is appended meanwhile; the catch-up pass resubscribes.
    feeds.onSubClose()
    await cmd.xadd(key, '*', 't', 'conversation_token', 'd', '{"n":1}')
    feeds.recover()
    await new Promise((resolve) => setImmediate(resolve))
    t.equal(subscribes, 2, 'the catch-up pass waits for its resubscription')
    feeds.unsubscribe('conversation', 'gone')
    release()
    await new Promise((resolve) => setImmediate(resolve))
    await cmd.ping() // the pass's reads are answered before this
    await new Promise((resolve) => setImmediate(resolve))
    t.same(delivered, [], 'the event it missed is not delivered: its clients are gone')
    t.same(errors, [])
    t.equal(stats.catchUps, 0)
    t.equal(feeds.recoverWanted, false, 'and the pass is done')
  })

  t.test('a subscription made after its session\'s last client left is undone; one the session needs again is kept', async (t) => {
    const cmd = redis.client()
    t.teardown(() => cmd.disconnect())
    const calls: string[] = []
    const gates: Array<() => void> = []
    const topology = oneServer(cmd, {
      subscribe: async (channel) => {
        await new Promise<void>((resolve) => { gates.push(resolve) })
        calls.push(`subscribed ${channel}`)
      },
      unsubscribe: (channel) => { calls.push(`unsubscribe ${channel}`) }
    })
    const feeds = new Feeds('sse-hub:', initialBackplaneStats('redis', true), (err) => { t.error(err) })
    feeds.attach({ deliver: () => {}, resync: () => {}, closed: () => {}, producer: () => {}, logger: {} as FastifyBaseLogger }, topology)
    const left = feeds.subscribe('conversation', 'left')
    feeds.unsubscribe('conversation', 'left')
    ;(gates.shift() as () => void)()
    await left
    t.same(calls, ['unsubscribe sse-hub:{conversation:left}', 'subscribed sse-hub:{conversation:left}', 'unsubscribe sse-hub:{conversation:left}'],
      'undone once made: the unsubscription sent while it was being made may have come first')

    calls.length = 0
    const first = feeds.subscribe('conversation', 'back')
    feeds.unsubscribe('conversation', 'back')
    const again = feeds.subscribe('conversation', 'back')
    for (const open of gates.splice(0)) open()
    await Promise.all([first, again])
    t.same(calls.filter((c) => c.startsWith('unsubscribe')), ['unsubscribe sse-hub:{conversation:back}'], 'followed again: the subscription stays')
    t.equal(calls.at(-1), 'subscribed sse-hub:{conversation:back}')
  })
}
