/*
 * Regression (found on review): the publish script answers a re-sent (producer, sequence) with the id it
 * stored then, but still applied the stream TTL to both keys afterwards. A close or broadcast re-sent after
 * its session was closed (its reply lost, say) thus undid `PERSIST` (`closedSessionTtl: Infinity`) or the
 * shorter closed TTL. The stream TTL is no longer applied to a closed session's keys.
 */
import t from 'tap'
import { PUBLISH_SCRIPT } from '../../src/backplane/redis-stream.js'
import { redisOrSkip } from '../redis/helper.js'

const redis = await redisOrSkip(t)
const STREAM_TTL = 86_400_000

if (redis !== undefined) {
  const r = redis.client()
  t.teardown(() => { r.disconnect() })

  /** Runs the publish script as the backplane does: one producer, `closing` '' for a broadcast, else the closed TTL. */
  const publish = async (key: string, seq: number, type: string, closing: string): Promise<string> => {
    return await r.eval(PUBLISH_SCRIPT, 2, key, `${key}:producers`, 1000, STREAM_TTL, type, type === '' ? '' : '{}', key, 'producer', seq, 1, 1, 'PUBLISH', closing) as string
  }
  const ttls = async (key: string): Promise<number[]> => [await r.pttl(key), await r.pttl(`${key}:producers`)]

  t.test('closedSessionTtl Infinity: re-sending the close or an earlier broadcast keeps both keys for good', async (t) => {
    const key = 'inf:{conversation:s}'
    const first = await publish(key, 1, 'conversation_token', '')
    const final = await publish(key, 2, 'conversation_completed', '-1')
    t.same(await ttls(key), [-1, -1], 'closed: no TTL')
    t.equal(await publish(key, 2, 'conversation_completed', '-1'), final, 'the close re-sent answers its id')
    t.same(await ttls(key), [-1, -1], 'still no TTL after the close is re-sent')
    t.equal(await publish(key, 1, 'conversation_token', ''), first, 'the broadcast re-sent answers its id')
    t.same(await ttls(key), [-1, -1], 'still no TTL after the broadcast is re-sent')
  })

  t.test('a closed TTL shorter than the stream TTL stays so when the close is re-sent', async (t) => {
    const key = 'short:{conversation:s}'
    await publish(key, 1, 'conversation_token', '')
    await publish(key, 2, '', '60000')
    await publish(key, 2, '', '60000')
    await publish(key, 1, 'conversation_token', '')
    for (const ttl of await ttls(key)) t.ok(ttl > 0 && ttl <= 60_000, `expires with the closed TTL (${ttl})`)
  })

  t.test('an open session\'s re-sent broadcast still renews the stream TTL', async (t) => {
    const key = 'open:{conversation:s}'
    await publish(key, 1, 'conversation_token', '')
    await r.pexpire(key, 1000)
    await r.pexpire(`${key}:producers`, 1000)
    await publish(key, 1, 'conversation_token', '')
    for (const ttl of await ttls(key)) t.ok(ttl > 1000 && ttl <= STREAM_TTL, `the stream TTL again (${ttl})`)
  })
}
