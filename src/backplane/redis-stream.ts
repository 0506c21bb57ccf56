/*
 * What the Redis backplane writes and reads: the publish script (append to a session's
 * stream and announce it), stream ids and how they are ordered, and entries as events.
 */
import { createHash } from 'node:crypto'
import type { BackplaneEvent } from './types.js'

/*
 * KEYS[1] the session's stream. ARGV: maxLen, ttl ms, type, data, channel (the stream's
 * name without any ioredis keyPrefix: channels are not prefixed). Append and announce
 * in one step, so the channel's order is the stream's order.
 */
export const PUBLISH_SCRIPT = `local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 't', ARGV[3], 'd', ARGV[4])
if ARGV[2] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
redis.call('PUBLISH', ARGV[5], id .. '\\n' .. ARGV[3] .. '\\n' .. ARGV[4])
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

/** A stream entry as ioredis returns it from XRANGE and XREVRANGE. */
export type Entry = [id: string, fields: string[]]

export function toEvent (entry: Entry): BackplaneEvent {
  // The publish script writes the fields in this order: t, d.
  return { id: entry[0], type: entry[1][1] as string, data: entry[1][3] as string }
}

/** A session's stream key, which is also its channel's name. */
export function streamKey (keyPrefix: string, kind: string, sessionId: string): string {
  return `${keyPrefix}${kind}:${sessionId}`
}
