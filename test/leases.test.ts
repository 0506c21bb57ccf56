/*
 * The lease bookkeeping of one process (src/leases/), step by step on a scripted backplane and fake timers: each
 * answer a renewal or a look at a lease can get, Redis failing meanwhile, and the stops waiting for a close. The
 * same on a real Redis, across instances: test/redis/leases.test.ts and test/ai/instances.test.ts.
 */
import t from 'tap'
import FakeTimers from '@sinonjs/fake-timers'
import type { FastifyBaseLogger } from 'fastify'
import type { Backplane, LeaseOp, LeaseState } from '../src/index.js'
import { BackplaneLeases } from '../src/leases/backplane.js'
import { MemoryLeases } from '../src/leases/memory.js'
import type { Session } from '../src/session.js'

const LEASE_MS = 600
const TICK = LEASE_MS / 6

/** A backplane whose lease commands answer what the test says (`next`), and that records them. */
function scripted (): { backplane: Backplane, calls: string[], next: Array<(op: LeaseOp) => Promise<string>>, stop: { answer: boolean } } {
  const calls: string[] = []
  const next: Array<(op: LeaseOp) => Promise<string>> = []
  const stop = { answer: true }
  const backplane = {
    subscribe: async (kind: string, id: string) => { calls.push(`subscribe ${id}`) },
    unsubscribe: (kind: string, id: string) => { calls.push(`unsubscribe ${id}`) },
    lease: async (op: LeaseOp, kind: string, id: string, holder: string) => {
      calls.push(`${op} ${id}${holder === 'grace' ? ' grace' : ''}`)
      const answer = next.shift()
      if (answer === undefined) throw new Error(`no answer scripted for ${op}`)
      return await answer(op)
    },
    leaseState: async (): Promise<LeaseState> => ({ state: 'held', remainingMs: 1 }),
    stopProducer: async () => stop.answer
  } as unknown as Backplane
  return { backplane, calls, next, stop }
}

function logger (): { log: FastifyBaseLogger, lines: Array<[string, string]> } {
  const lines: Array<[string, string]> = []
  const log = { warn: (_: unknown, msg: string) => { lines.push(['warn', msg]) }, debug: (_: unknown, msg: string) => { lines.push(['debug', msg]) } }
  return { log: log as unknown as FastifyBaseLogger, lines }
}

/** Ticks until the backplane got `what` once more. */
async function nextCall (clock: ReturnType<typeof FakeTimers.install>, calls: string[], what: string): Promise<void> {
  const count = (): number => calls.filter((c) => c === what).length
  const before = count()
  while (count() === before) await clock.tickAsync(TICK)
}

const answer = (a: string) => async () => a
const fail = async (): Promise<string> => { throw new Error('Redis unreachable') }
const session = (id: string): Session => ({ kind: 'conversation', id, clients: new Map([['c', {}]]), joins: new Set(), closed: undefined }) as unknown as Session

t.test('a producer here: taking, renewing, and each answer a renewal gets', async (t) => {
  const clock = FakeTimers.install({ toFake: ['setInterval', 'clearInterval', 'Date'] })
  t.teardown(() => clock.uninstall())
  const { backplane, calls, next } = scripted()
  const { log, lines } = logger()
  const leases = new BackplaneLeases(backplane, LEASE_MS, async () => {}, log, Date.now)

  next.push(fail)
  await t.rejects(leases.take('conversation', 'a', () => {}), /unreachable/, 'a lease that cannot be taken rejects')
  t.same(calls.splice(0), ['subscribe a', 'take a', 'unsubscribe a'], 'and follows the session no more')
  next.push(answer('held'), answer('closed'))
  await t.rejects(leases.take('conversation', 'a', () => {}), { code: 'FST_ERR_SSE_HUB_ALREADY_PIPED' })
  await t.rejects(leases.take('conversation', 'a', () => {}), { code: 'FST_ERR_SSE_HUB_SESSION_CLOSED' })
  calls.length = 0

  let stops = 0
  next.push(answer('taken'))
  await leases.take('conversation', 'a', () => { stops++ })
  // A renewal that takes long is not sent again meanwhile.
  let slow!: (a: string) => void
  next.push(async () => await new Promise<string>((resolve) => { slow = resolve }))
  await clock.tickAsync(LEASE_MS / 3 + TICK)
  await clock.tickAsync(TICK)
  t.same(calls.filter((c) => c === 'renew a'), ['renew a'], 'one renewal at a time')
  slow('renewed')
  next.push(fail)
  await nextCall(clock, calls, 'renew a')
  t.match(lines.at(-1), ['debug', /renewal failed/], 'a failed renewal is retried at the next tick')
  next.push(answer('stop'))
  await nextCall(clock, calls, 'renew a')
  t.equal(stops, 1, 'a stop asked through the lease (its notice missed) stops the producer')
  next.push(answer('lost'))
  await nextCall(clock, calls, 'renew a')
  t.equal(stops, 2, 'so does a lost lease')
  t.match(lines.at(-1), ['warn', /lease was lost/])
  await clock.tickAsync(LEASE_MS)
  t.equal(calls.filter((c) => c === 'renew a').length, 4, 'a lost lease is renewed no more')
  leases.notice('conversation', 'a', 'stop')
  t.equal(stops, 3, 'a stop notice stops the producer')
  next.push(answer('taken'))
  await leases.take('conversation', 'c', () => { stops++ })
  next.push(answer('closed'))
  await nextCall(clock, calls, 'renew c')
  t.equal(stops, 4, 'a session closed under a renewal: the producer is told, nothing logged')
  t.match(lines.at(-1), ['warn', /lease was lost/])
  leases.release('conversation', 'c', true)

  next.push(fail)
  calls.length = 0
  leases.release('conversation', 'a', true)
  leases.release('conversation', 'a', true)
  t.same(calls, ['unsubscribe a', 'release a'], 'released once; a failed release is harmless (the session is closed)')
  next.push(answer('taken'))
  await leases.take('conversation', 'b', () => {})
  calls.length = 0
  leases.release('conversation', 'b', false)
  t.same(calls, ['unsubscribe b'], 'a session that could not be closed keeps its lease until it lapses')
  await clock.tickAsync(TICK)
  leases.stop()
})

t.test('the sessions watched here: each answer a look at a lease gets', async (t) => {
  const clock = FakeTimers.install({ toFake: ['setInterval', 'clearInterval', 'Date'] })
  t.teardown(() => clock.uninstall())
  const { backplane, calls, next } = scripted()
  const { log, lines } = logger()
  const lapsed: string[] = []
  const leases = new BackplaneLeases(backplane, LEASE_MS, async (kind, id) => { lapsed.push(id) }, log, Date.now)

  const s = session('w')
  leases.watch(s)
  next.push(answer('held 200'))
  await nextCall(clock, calls, 'lapse w')
  t.equal(Date.now(), TICK, 'a new watch looks at the next tick')
  next.push(answer('none'))
  await nextCall(clock, calls, 'lapse w')
  t.equal(Date.now(), 4 * TICK, 'then when the lease would lapse unless renewed')
  await clock.tickAsync(LEASE_MS * 4)
  t.same(calls.filter((c) => c === 'lapse w').length, 2, 'a session without a producer sleeps')
  next.push(answer('none'))
  await nextCall(clock, calls, 'lapse w')
  t.equal(Date.now(), 4 * TICK + 5 * LEASE_MS, 'five leases long')

  // A notice that crosses a look answering none is not lost.
  let crossing!: (a: string) => void
  leases.notice('conversation', 'w', 'leased')
  next.push(async () => await new Promise<string>((resolve) => { crossing = resolve }))
  await nextCall(clock, calls, 'lapse w')
  leases.notice('conversation', 'w', 'leased')
  leases.notice('conversation', 'elsewhere', 'leased')
  crossing('none')
  const crossed = Date.now()
  next.push(fail)
  await nextCall(clock, calls, 'lapse w')
  t.ok(Date.now() - crossed <= LEASE_MS + TICK, 'looked at again within a lease')
  t.match(lines.at(-1), ['debug', /could not be looked at/], 'a failed look is retried')
  next.push(answer('lapsed'))
  await nextCall(clock, calls, 'lapse w grace')
  await clock.tickAsync(0)
  t.same(lapsed, ['w'], 'after a failed look, with grace asked; a lapsed lease closes the session')
  t.match(lines.at(-1), ['warn', /stopped renewing its lease/])

  const again = session('again')
  leases.watch(again)
  next.push(answer('none'))
  await nextCall(clock, calls, 'lapse again')
  const woken = Date.now()
  leases.watch(again)
  next.push(answer('held 100'))
  await nextCall(clock, calls, 'lapse again')
  t.ok(Date.now() - woken <= LEASE_MS + TICK, 'a new client of a sleeping watch: looked at within a lease')
  leases.closed('conversation', 'again')

  const gone = session('gone')
  leases.watch(gone)
  gone.clients.clear()
  const closed = session('closed')
  leases.watch(closed)
  closed.closed = ''
  next.push(answer('closed'))
  const last = session('last')
  leases.watch(last)
  calls.length = 0
  await clock.tickAsync(TICK)
  t.same(calls, ['lapse last'], 'sessions nobody here waits on are no longer watched')
  leases.closed('conversation', 'nobody')
  await clock.tickAsync(TICK)
  leases.stop()
})

t.test('a stop of a producer elsewhere waits for the close', async (t) => {
  const clock = FakeTimers.install({ toFake: ['setInterval', 'clearInterval', 'Date'] })
  t.teardown(() => clock.uninstall())
  const { backplane, calls, next, stop } = scripted()
  const leases = new BackplaneLeases(backplane, LEASE_MS, async () => {}, logger().log, Date.now)

  stop.answer = false
  t.equal(await leases.stopElsewhere('conversation', 'x'), false, 'nothing runs')
  stop.answer = true
  const stopping = leases.stopElsewhere('conversation', 'x')
  await clock.tickAsync(0)
  leases.closed('conversation', 'x')
  t.equal(await stopping, true, 'the close notice ends the wait')
  t.same(calls.filter((c) => c.startsWith('subscribe') || c.startsWith('unsubscribe')), ['subscribe x', 'unsubscribe x', 'subscribe x', 'unsubscribe x'])

  // Notices missed: the stop looks at the lease every tick.
  next.push(answer('held 500'))
  const looking = leases.stopElsewhere('conversation', 'y')
  await nextCall(clock, calls, 'lapse y')
  next.push(answer('none'))
  await nextCall(clock, calls, 'lapse y')
  t.equal(await looking, true, 'a lease no longer held ends the wait')
  t.equal(await leases.heldElsewhere('conversation', 'y'), true)

  const closing = leases.stopElsewhere('conversation', 'z')
  await clock.tickAsync(0)
  leases.stop()
  t.equal(await closing, true, 'the hub closing ends the wait')
})

t.test('in memory: nothing to take or watch; shared values expire', async (t) => {
  let now = 0
  const leases = new MemoryLeases(() => now)
  await leases.take()
  leases.release()
  leases.stop()
  t.equal(await leases.stopElsewhere(), false)
  t.equal(await leases.heldElsewhere(), false)
  t.equal(await leases.swapValue('k', undefined, 'v1', 100), true)
  t.equal(await leases.swapValue('k', undefined, 'v2', 100), false, 'a swap from the wrong value is refused')
  t.equal(await leases.readValue('k'), 'v1')
  now = 100
  t.equal(await leases.readValue('k'), undefined, 'expired')
  t.equal(await leases.swapValue('k', undefined, 'v3', 100), true)
  t.equal(await leases.swapValue('k', 'v3', undefined, 0), true)
  t.equal(await leases.readValue('k'), undefined, 'deleted')
})
