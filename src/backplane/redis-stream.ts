/*
 * What the Redis backplane writes and reads: the publish script (append to a session's
 * stream and announce it), stream ids and how they are ordered, and entries as events.
 */
import { createHash } from 'node:crypto'
import type { BackplaneEvent } from './types.js'

/*
 * KEYS[1] the session's stream, KEYS[2] its producers hash ({@link producersKey}). ARGV: maxLen,
 * ttl ms, type, data, channel (the stream's name without any ioredis keyPrefix: channels are not
 * prefixed), producer id, sequence number, the first sequence number of the producer's current run
 * of broadcasts to this session (each run's numbers are consecutive and above those of earlier
 * runs), the oldest sequence number whose reply the producer still waits for, and the command that
 * announces (`PUBLISH`, or `SPUBLISH` on a Redis Cluster: the channel is KEYS[1]'s name, so its slot). Appends and
 * announces in one step, so the channel's order is the stream's order. A (producer, sequence)
 * already stored is not appended again: the script answers with the id it stored then, so a
 * broadcast whose reply was lost can be re-sent. The hash holds `<producer>:<seq>` → id for the
 * broadcasts whose reply may still be missing, and `<producer>` → the range of those sequence
 * numbers, which the next call of the producer prunes.
 * KEYS[3], for a session whose frames are kept ({@link framesKey}), gets each event's frame while they are whole
 * (perf note 45): begun with the stream's first entry, appended while the hash's {@link FRAMES_FIELD} counts every
 * entry of the stream and the stream is not full (`maxLen`: the next entry may trim it); else '' for good (a key
 * that exists, for the reason below). Its checks come before the `XADD`, so a frames key of another type is refused
 * before anything is appended. ARGV[12] is '1' when the frames name their events (an `event:` line).
 * ARGV[11] is '' for a broadcast; for a close, the closed TTL in ms ('-1': none): the final event (when
 * the type is not '') is appended, then the hash's {@link CLOSED_FIELD} set to its id (else the newest id, ''
 * when none), the TTL applied to every key, and `closed\n<id>` announced after the event. A broadcast to a
 * closed session is refused (SSE_HUB_SESSION_CLOSED); a close of one answers its id again. A closed session's
 * keys keep the closed TTL: a re-sent broadcast or close (already stored) does not apply the ttl again. The marker is a
 * field of the producers hash, not a key of its own: a key that never exists would make every call of the
 * script answer TRYAGAIN while its slot migrates between Cluster nodes (a multi-key command whose keys are
 * not all on one side).
 */
export const PUBLISH_SCRIPT = `local p, seq, base, ack = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local function framing (held)
  if held == 0 then return 'SET' end
  if redis.call('STRLEN', KEYS[3]) > 0 then
    if held < tonumber(ARGV[1]) and tonumber(redis.call('HGET', KEYS[2], 'frames')) == held then return 'APPEND' end
  elseif redis.call('EXISTS', KEYS[3]) == 1 then
    return nil
  end
  redis.call('SET', KEYS[3], '')
  return nil
end
local low, high = seq, seq - 1
local range = redis.call('HGET', KEYS[2], p)
if range then
  local i = string.find(range, ' ')
  low, high = tonumber(string.sub(range, 1, i - 1)), tonumber(string.sub(range, i + 1))
  if low < base then
    for n = low, math.min(high, base - 1) do redis.call('HDEL', KEYS[2], p .. ':' .. n) end
    low = base
  end
  while low < ack and low <= high do
    redis.call('HDEL', KEYS[2], p .. ':' .. low)
    low = low + 1
  end
end
local id = redis.call('HGET', KEYS[2], p .. ':' .. seq)
local closing = ARGV[11] ~= ''
if not id then
  local closed = redis.call('HGET', KEYS[2], 'closed')
  if closed then
    if closing then return closed end
    return redis.error_reply('SSE_HUB_SESSION_CLOSED')
  end
  if ARGV[3] ~= '' then
    local framed = KEYS[3] and framing(redis.call('XLEN', KEYS[1]))
    id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 't', ARGV[3], 'd', ARGV[4])
    redis.call(ARGV[10], ARGV[5], id .. '\\n' .. ARGV[3] .. '\\n' .. ARGV[4])
    if framed then
      local d = ARGV[4]
      if string.find(d, '[\\r\\n]') then d = string.gsub(string.gsub(d, '\\r\\n?', '\\n'), '\\n', '\\ndata: ') end
      redis.call(framed, KEYS[3], 'id: ' .. id .. (ARGV[12] == '1' and '\\nevent: ' .. ARGV[3] or '') .. '\\ndata: ' .. d .. '\\n\\n')
      if framed == 'SET' then redis.call('HSET', KEYS[2], 'frames', 1) else redis.call('HINCRBY', KEYS[2], 'frames', 1) end
    end
  else
    local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
    id = newest and newest[1] or ''
  end
  redis.call('HSET', KEYS[2], p .. ':' .. seq, id)
  if low > high then low = seq end
  if seq > high then high = seq end
end
redis.call('HSET', KEYS[2], p, low .. ' ' .. high)
local ended = redis.call('HGET', KEYS[2], 'closed')
if ARGV[2] ~= '0' and not ended then
  for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
end
if closing and not ended then
  redis.call('HSET', KEYS[2], 'closed', id)
  for i = 1, #KEYS do
    if ARGV[11] == '-1' then redis.call('PERSIST', KEYS[i]) else redis.call('PEXPIRE', KEYS[i], ARGV[11]) end
  end
  redis.call(ARGV[10], ARGV[5], 'closed\\n' .. id)
end
return id`
export const PUBLISH_SHA = createHash('sha1').update(PUBLISH_SCRIPT).digest('hex')

// A stream id as Redis makes them; both parts must be exact JavaScript integers to be compared.
const STREAM_ID = /^(\d{1,16})-(\d{1,16})$/

/** A stream id's milliseconds part: when Redis appended the entry. */
export function streamIdTime (id: string): number {
  return Number(id.slice(0, id.indexOf('-')))
}

/** Orders two stream ids (`'' ` counts as `0-0`). */
export function compareStreamIds (a: string, b: string): number {
  const i = a.indexOf('-')
  const j = b.indexOf('-')
  const d = Number(a.slice(0, i)) - Number(b.slice(0, j))
  return d !== 0 ? d : Number(a.slice(i + 1)) - Number(b.slice(j + 1))
}

export function isStreamId (id: string): boolean {
  const m = STREAM_ID.exec(id)
  return m !== null && Number.isSafeInteger(Number(m[1])) && Number.isSafeInteger(Number(m[2]))
}

/*
 * KEYS[1] the session's stream, ARGV[1] the first id (inclusive; '-': the oldest). Every entry from there as one
 * string, `<id>\n<type>\n<data>` (a channel message's layout): 7 RESP values per entry become 1, which ioredis
 * decodes several times faster (perf note 44).
 */
export const REPLAY_SCRIPT = `local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+')
local out = {}
for i = 1, #entries do
  local f = entries[i][2]
  out[i] = entries[i][1] .. '\\n' .. f[2] .. '\\n' .. f[4]
end
return out`
export const REPLAY_SHA = createHash('sha1').update(REPLAY_SCRIPT).digest('hex')

/** An event as {@link REPLAY_SCRIPT} answers it. */
export function replayedEvent (line: string): BackplaneEvent {
  const a = line.indexOf('\n')
  const b = line.indexOf('\n', a + 1)
  return { id: line.slice(0, a), type: line.slice(a + 1, b), data: line.slice(b + 1) }
}

/** A stream entry as ioredis returns it from XRANGE and XREVRANGE. */
export type Entry = [id: string, fields: string[]]

export function toEvent (entry: Entry): BackplaneEvent {
  // The publish script writes the fields in this order: t, d.
  return { id: entry[0], type: entry[1][1] as string, data: entry[1][3] as string }
}

/**
 * Where the publish script records, per session, which (producer, sequence number) it stored under
 * which id: beside the stream, with the stream's TTL.
 */
export function producersKey (streamKey: string): string {
  return `${streamKey}:producers`
}

/**
 * Where the publish script keeps, for a session of a kind whose frames are kept (`Backplane.keepFrames`), every
 * event's frame as the hub encodes it, one after another: beside the stream, with the stream's TTL.
 */
export function framesKey (streamKey: string): string {
  return `${streamKey}:frames`
}

/** The field of a session's producers hash that counts the frames kept ({@link framesKey}). */
export const FRAMES_FIELD = 'frames'

/**
 * The field of a session's producers hash that holds its final id once it is closed (producer ids are
 * UUIDs, so no producer's field is named so). The hash then lives as long as the closed session.
 */
export const CLOSED_FIELD = 'closed'

/** A channel message that says the session was closed: this, then the final id. */
export const CLOSED_NOTICE = 'closed\n'

/**
 * A session's stream key, which is also its channel's name. `kind:sessionId` is its hash tag, so on a
 * Redis Cluster every key derived from it by a suffix ({@link producersKey}) and its channel share
 * one slot: the publish script touches one shard.
 */
export function streamKey (keyPrefix: string, kind: string, sessionId: string): string {
  return `${keyPrefix}{${kind}:${sessionId}}`
}
