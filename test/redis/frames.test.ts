/*
 * The frames a Redis backplane keeps for a kind whose clients read sessions from the start (`keepFrames`, perf
 * note 45): byte for byte what the hub encodes, whole or not at all, with the stream's TTL; a read from the start
 * falls back to the events whenever they are not whole or not within the replay's bounds.
 */
import type { FastifyBaseLogger } from 'fastify'
import t, { type Test } from 'tap'
import type { Redis } from 'ioredis'
import { framesKey, streamKey } from '../../src/backplane/redis-stream.js'
import type { Backplane, BackplaneRead } from '../../src/backplane/types.js'
import { encodeEvent } from '../../src/frame.js'
import { redisBackplane, type RedisBackplaneOptions } from '../../src/index.js'
import { redisOrSkip, ReplyCutter, type RedisServer } from './helper.js'

const KIND = 'answer'
const WHOLE = { events: 100, bytes: 1 << 20 }
const EVENTS: Array<[type: string, data: string]> = [
  ['start', '{"type":"start","messageId":"m1"}'],
  ['text-delta', '{"type":"text-delta","id":"t","delta":"é — 😀"}'],
  ['text-delta', 'a\r\nb\rc\nd'],
  ['finish', '{"type":"finish"}']
]

const key = (sessionId: string, kind = KIND): string => streamKey('sse-hub:', kind, sessionId)

/**
 * A started Redis backplane (on `url`, by default `redis`'s) keeping the frames of {@link KIND} (with `event:` lines
 * when `named`), stopped when the test ends; and a client of `redis`.
 */
async function setup (t: Test, redis: RedisServer, options: Omit<RedisBackplaneOptions, 'url'> = {}, url = redis.url, named = false): Promise<{ bp: Backplane, r: Redis }> {
  const bp = redisBackplane({ url, connectTimeout: 2000, ...options })
  bp.keepFrames(KIND, named)
  await bp.start({ deliver () {}, resync () {}, closed () {}, producer () {}, logger: { error () {}, warn () {}, info () {} } as unknown as FastifyBaseLogger })
  const r = redis.client()
  t.teardown(async () => {
    r.disconnect()
    await bp.stop()
  })
  return { bp, r }
}

async function publishAll (bp: Backplane, sessionId: string, events = EVENTS, kind = KIND): Promise<string[]> {
  const ids: string[] = []
  for (const [type, data] of events) ids.push(await bp.publish(kind, sessionId, type, data))
  return ids
}

const encoded = (ids: string[], events = EVENTS, named = false): Buffer => Buffer.concat(events.map(([type, data], i) => encodeEvent(ids[i], type, data, named)))

function eventsOf (read: BackplaneRead): string[] {
  if (!read.found || !('events' in read)) throw new Error(`not events: ${JSON.stringify(read)}`)
  return read.events.map((e) => e.id)
}

t.test('kept: a read from the start is the frames the hub encodes (here unnamed; data split on CR, LF, CRLF), their count and newest id', async (t) => {
  const redis = await redisOrSkip(t)
  if (redis === undefined) return
  const { bp, r } = await setup(t, redis)
  const ids = await publishAll(bp, 's1')
  const read = await bp.read(KIND, 's1', undefined, WHOLE)
  t.ok('frames' in read, 'the frames')
  if (!('frames' in read)) return
  t.same(read.frames, encoded(ids))
  t.equal(read.count, EVENTS.length)
  t.equal(read.newestId, ids[3])
  t.same(eventsOf(await bp.read(KIND, 's1', undefined)), ids, 'without bounds: the events')
  t.same(eventsOf(await bp.read(KIND, 's1', ids[1])), ids.slice(2), 'after an id: the events after it')

  const other = await publishAll(bp, 'c1', EVENTS, 'conversation')
  t.same(eventsOf(await bp.read('conversation', 'c1', undefined, WHOLE)), other, "a kind whose frames are not kept: the events")
  t.equal(await r.exists(framesKey(key('c1', 'conversation'))), 0, 'and no frames key')
  t.same(eventsOf(await bp.read(KIND, 'none', undefined, WHOLE)), [], 'a session without events: none')
})

t.test('named: the frames carry the `event:` lines too, as the hub writes them for its own kinds', async (t) => {
  const redis = await redisOrSkip(t)
  if (redis === undefined) return
  const { bp } = await setup(t, redis, {}, redis.url, true)
  const ids = await publishAll(bp, 'named')
  const read = await bp.read(KIND, 'named', undefined, WHOLE)
  t.same('frames' in read && read.frames, encoded(ids, EVENTS, true))
  t.match(String('frames' in read && read.frames), /^id: \S+\nevent: start\ndata: /)
})

t.test("beyond the replay's bounds, the events (which the hub trims to them)", async (t) => {
  const redis = await redisOrSkip(t)
  if (redis === undefined) return
  const { bp } = await setup(t, redis)
  const ids = await publishAll(bp, 's2')
  t.same(eventsOf(await bp.read(KIND, 's2', undefined, { events: 3, bytes: WHOLE.bytes })), ids, 'more events than a replay sends')
  t.same(eventsOf(await bp.read(KIND, 's2', undefined, { events: 100, bytes: 100 })), ids, 'more bytes')
})

t.test('whole or not at all: a full stream empties them for good, lost ones are not begun again mid-session', async (t) => {
  const redis = await redisOrSkip(t)
  if (redis === undefined) return
  const { bp, r } = await setup(t, redis, { maxLen: 3 })
  const ids = await publishAll(bp, 'full', EVENTS.slice(0, 3))
  t.ok('frames' in await bp.read(KIND, 'full', undefined, WHOLE), 'the stream holds maxLen entries: kept')
  ids.push(...await publishAll(bp, 'full', EVENTS.slice(3)))
  t.equal(await r.get(framesKey(key('full'))), '', 'the next entry would trim the stream: emptied')
  ids.push(...await publishAll(bp, 'full', EVENTS.slice(0, 1)))
  t.equal(await r.get(framesKey(key('full'))), '', 'and not appended again')
  t.same(eventsOf(await bp.read(KIND, 'full', undefined, WHOLE)), ids.slice(-(await r.xlen(key('full')))), 'a read from the start: the events retained')

  await publishAll(bp, 'lost', EVENTS.slice(0, 2))
  await r.del(framesKey(key('lost')))
  await publishAll(bp, 'lost', EVENTS.slice(2))
  t.equal(await r.get(framesKey(key('lost'))), '', 'lost (evicted, say): not begun again with a later event (a key that exists: a Cluster slot migrates)')
  t.equal(eventsOf(await bp.read(KIND, 'lost', undefined, WHOLE)).length, EVENTS.length, 'the events')

  await publishAll(bp, 'gone', EVENTS.slice(0, 2))
  await r.del(key('gone'))
  t.same(eventsOf(await bp.read(KIND, 'gone', undefined, WHOLE)), [], 'frames without their stream (evicted, say): not sent')
})

t.test('an entry appended without its frame (an instance that does not keep them): the frames are not whole, and not sent', async (t) => {
  const redis = await redisOrSkip(t)
  if (redis === undefined) return
  const { bp, r } = await setup(t, redis)
  const plain = redisBackplane({ url: redis.url, connectTimeout: 2000 })
  await plain.start({ deliver () {}, resync () {}, closed () {}, producer () {}, logger: {} as FastifyBaseLogger })
  t.teardown(() => plain.stop())
  const ids = await publishAll(bp, 'mixed', EVENTS.slice(0, 2))
  ids.push(...await publishAll(plain, 'mixed', EVENTS.slice(2, 3), KIND))
  t.same(eventsOf(await bp.read(KIND, 'mixed', undefined, WHOLE)), ids, 'one frame short of the stream: the events')
  ids.push(...await publishAll(bp, 'mixed', EVENTS.slice(3)))
  t.equal(await r.get(framesKey(key('mixed'))), '', 'and emptied for good by the next one')
  t.same(eventsOf(await bp.read(KIND, 'mixed', undefined, WHOLE)), ids)
})

t.test('a broadcast whose reply was lost is re-sent: its frame is appended once', async (t) => {
  const redis = await redisOrSkip(t)
  if (redis === undefined) return
  const cutter = await ReplyCutter.start(redis, t)
  const { bp } = await setup(t, redis, {}, cutter.url)
  const ids = await publishAll(bp, 'resent', EVENTS.slice(0, 1))
  const cut = cutter.cutAfter('evalsha')
  const resent = bp.publish(KIND, 'resent', ...(EVENTS[1] as [string, string]))
  await cut
  ids.push(await resent)
  const read = await bp.read(KIND, 'resent', undefined, WHOLE)
  t.same('frames' in read && read.frames, encoded(ids, EVENTS.slice(0, 2)))
})

t.test('a frames key of another type: a broadcast is refused before anything is appended', async (t) => {
  const redis = await redisOrSkip(t)
  if (redis === undefined) return
  const { bp, r } = await setup(t, redis)
  await publishAll(bp, 'typed', EVENTS.slice(0, 1))
  await r.del(framesKey(key('typed')))
  await r.hset(framesKey(key('typed')), 'f', 'v')
  await t.rejects(bp.publish(KIND, 'typed', 'finish', '{}'), { code: 'FST_ERR_SSE_HUB_BROADCAST_FAILED', message: /WRONGTYPE/ })
  t.equal(await r.xlen(key('typed')), 1, 'nothing appended')
  await t.rejects(bp.read(KIND, 'typed', undefined, WHOLE), { code: 'FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE' }, 'a read from the start rejects')
})

t.test("the stream's TTL, then the closed session's; a close without a final event adds no frame", async (t) => {
  const redis = await redisOrSkip(t)
  if (redis === undefined) return
  const { bp, r } = await setup(t, redis, { streamTtl: 60_000 })
  const ids = await publishAll(bp, 'ttl', EVENTS.slice(0, 2))
  const ttl = await r.pttl(framesKey(key('ttl')))
  t.ok(ttl > 50_000 && ttl <= 60_000, `the stream's TTL (${ttl} ms)`)
  ids.push(await bp.closeSession(KIND, 'ttl', 'finish', '{"type":"finish"}', 5000))
  const closedTtl = await r.pttl(framesKey(key('ttl')))
  t.ok(closedTtl > 0 && closedTtl <= 5000, `the closed TTL (${closedTtl} ms)`)
  const read = await bp.read(KIND, 'ttl', undefined, WHOLE)
  t.same('frames' in read && read.frames, encoded(ids, [...EVENTS.slice(0, 2), ['finish', '{"type":"finish"}']]), 'the final event is the last frame')

  const one = await publishAll(bp, 'kept', EVENTS.slice(0, 1))
  await bp.closeSession(KIND, 'kept', undefined, undefined, Infinity)
  t.equal(await r.pttl(framesKey(key('kept'))), -1, 'closed for good: no TTL')
  t.same(await r.getBuffer(framesKey(key('kept'))), encoded(one, EVENTS.slice(0, 1)), 'one frame')
})
