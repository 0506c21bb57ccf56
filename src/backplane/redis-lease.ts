/*
 * The Redis backplane's producer leases and shared values: the lease is three fields of the session's
 * producers hash (so it shares the session's slot and lives as long as its keys), read and written by one
 * script that tells time by Redis's clock; a shared value is a key of its own.
 */
import { createHash } from 'node:crypto'
import { runScript, unavailable } from './redis-connection.js'
import { producersKey, streamKey } from './redis-stream.js'
import type { Commands, Topology } from './redis-topology.js'
import type { LeaseOp, LeaseState, ProducerNotice } from './types.js'

/** The messages on a session's channel about its producer: its lease taken, a stop asked. */
export const PRODUCER_NOTICES: ReadonlySet<string> = new Set<ProducerNotice>(['leased', 'stop'])

/*
 * KEYS[1] the session's producers hash. ARGV: op (a LeaseOp, 'state' or 'stop'), holder, ttl ms, the stream
 * TTL ms ('0': none; given to a hash the lease creates), the session's channel, the command that announces.
 * Fields: `lease` the holder ('' once lapsed), `lease:until` its expiry (ms, Redis's clock), `lease:stop` set
 * when a stop was asked, `lease:grace` once a lapse was forgiven (see LeaseOp 'lapse'; a renewal clears it).
 * `state` answers `none`, `lapsed`, `closed` or `held <remaining ms>`. `take`, a renewal that takes the lease again
 * (Redis lost it), and `stop` announce themselves on the channel (PRODUCER_NOTICES); a hash they create gets the
 * stream's TTL.
 */
const LEASE_SCRIPT = `local op, holder, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local h = KEYS[1]
if op ~= 'release' and redis.call('HEXISTS', h, 'closed') == 1 then return 'closed' end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('HGET', h, 'lease')
local left = tonumber(redis.call('HGET', h, 'lease:until') or '0') - now
local live = cur and cur ~= '' and left > 0
if op == 'state' then
  if not cur then return 'none' end
  if not live then return 'lapsed' end
  return 'held ' .. left
elseif op == 'take' or op == 'renew' then
  if op == 'take' and live and cur ~= holder then return 'held' end
  if op == 'renew' and cur and cur ~= holder then return 'lost' end
  local fresh = redis.call('EXISTS', h) == 0
  redis.call('HSET', h, 'lease', holder, 'lease:until', now + ttl)
  redis.call('HDEL', h, 'lease:grace')
  if op == 'take' then redis.call('HDEL', h, 'lease:stop') end
  if fresh and ARGV[4] ~= '0' then redis.call('PEXPIRE', h, ARGV[4]) end
  if op == 'take' or not cur then redis.call(ARGV[6], ARGV[5], 'leased') end
  if op == 'take' then return 'taken' end
  if redis.call('HEXISTS', h, 'lease:stop') == 1 then return 'stop' end
  return 'renewed'
elseif op == 'release' then
  if cur == holder then redis.call('HDEL', h, 'lease', 'lease:until', 'lease:stop', 'lease:grace') end
  return 'released'
elseif op == 'lapse' then
  if not cur then return 'none' end
  if live then return 'held ' .. left end
  if holder == 'grace' and cur ~= '' and redis.call('HEXISTS', h, 'lease:grace') == 0 then
    redis.call('HSET', h, 'lease:until', now + ttl, 'lease:grace', '1')
    return 'held ' .. ttl
  end
  redis.call('HSET', h, 'lease', '')
  return 'lapsed'
end
if not live then return 'none' end
redis.call('HSET', h, 'lease:stop', '1')
redis.call(ARGV[6], ARGV[5], 'stop')
return 'stopping'`
const LEASE_SHA = createHash('sha1').update(LEASE_SCRIPT).digest('hex')

/*
 * KEYS[1] the value's key. ARGV: expected ('' with ARGV[2] '0': none), '1' when there is an expected value,
 * the new value ('' with ARGV[4] '0': delete), '1' when there is one, ttl ms. Answers 1 when it swapped.
 */
const SWAP_SCRIPT = `local cur = redis.call('GET', KEYS[1])
if ARGV[2] == '1' then
  if cur ~= ARGV[1] then return 0 end
elseif cur then
  return 0
end
if ARGV[4] == '1' then redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[5]) else redis.call('DEL', KEYS[1]) end
return 1`
const SWAP_SHA = createHash('sha1').update(SWAP_SCRIPT).digest('hex')

/** The lease and shared-value commands of one Redis backplane. */
export class RedisLeases {
  constructor (
    private readonly keyPrefix: string,
    private readonly streamTtl: number,
    private readonly topology: () => Topology
  ) {}

  /** One call to Redis; `FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE` when it cannot be made or answered. */
  async #call<T>(send: (cmd: Commands, announce: string) => Promise<T>): Promise<T> {
    const topology = this.topology()
    try {
      if (!topology.ready) throw new Error('Redis connection is not ready')
      return await send(topology.cmd, topology.announce)
    } catch (err) {
      throw unavailable(err)
    }
  }

  async #lease (op: LeaseOp | 'state' | 'stop', kind: string, sessionId: string, holder: string, ttlMs: number): Promise<string> {
    const key = streamKey(this.keyPrefix, kind, sessionId)
    return await this.#call(async (cmd, announce) => await runScript(cmd, LEASE_SHA, LEASE_SCRIPT, producersKey(key), [op, holder, ttlMs, this.streamTtl, key, announce]) as string)
  }

  lease (op: LeaseOp, kind: string, sessionId: string, holder: string, ttlMs: number): Promise<string> {
    return this.#lease(op, kind, sessionId, holder, ttlMs)
  }

  async leaseState (kind: string, sessionId: string): Promise<LeaseState> {
    const answer = await this.#lease('state', kind, sessionId, '', 0)
    if (answer.startsWith('held ')) return { state: 'held', remainingMs: Number(answer.slice(5)) }
    return { state: answer as 'none' | 'lapsed' | 'closed' }
  }

  async stopProducer (kind: string, sessionId: string): Promise<boolean> {
    return await this.#lease('stop', kind, sessionId, '', 0) === 'stopping'
  }

  async readValue (name: string): Promise<string | undefined> {
    return await this.#call(async (cmd) => await cmd.get(this.#valueKey(name))) ?? undefined
  }

  async swapValue (name: string, expected: string | undefined, value: string | undefined, ttlMs: number): Promise<boolean> {
    const args = [expected ?? '', expected === undefined ? '0' : '1', value ?? '', value === undefined ? '0' : '1', ttlMs]
    return await this.#call(async (cmd) => await runScript(cmd, SWAP_SHA, SWAP_SCRIPT, this.#valueKey(name), args)) === 1
  }

  #valueKey (name: string): string {
    return `${this.keyPrefix}value:{${name}}`
  }
}
