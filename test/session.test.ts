/* A session's send (src/session.ts): held for joining clients, queued for connected ones, `done` when written. */
import t from 'tap'
import { Outgoing } from '../src/batch.js'
import { Join, Session, type RetainedEvents } from '../src/session.js'
import type { FanOutHost } from '../src/fanout.js'
import { LIVE_ONLY } from '../src/event-log/types.js'
import { Counters } from '../src/counters.js'
import { SessionBudget, Sessions } from '../src/sessions.js'

const nothing: RetainedEvents = { length: 0, bytes: 0, clear () {} }
const host = { tuning: { sliceMs: 3, checkEvery: 32 }, maxQueuedBytes: 1 << 20, period: 0, write () {} } as unknown as FanOutHost

t.test('without clients, a frame is held for each joining client and its broadcast is done at once', async (t) => {
  const s = new Session('s', 'conversation', nothing, host, 1)
  const join = new Join()
  s.joins.add(join)
  const o = new Outgoing(7, Buffer.from('x'))
  let done = 0
  s.send(o, 5, () => { done++ })
  t.same(join.held, [o])
  t.equal(done, 1)
  t.equal(s.lastSeq, 7)
  t.equal(s.lastActivity, 5)
  t.equal(s.streams, 1)
  s.send(new Outgoing(0, Buffer.from(':')), 6)
  t.equal(s.lastSeq, 7, 'a frame every client gets (seq 0) is not an event of the session')
  t.equal(join.held.length, 2)
})

t.test('a replay without a join ends none; a session forgotten twice is forgotten once', async (t) => {
  const s = new Session('s', 'conversation', nothing, host, 1)
  const join = new Join()
  s.joins.add(join)
  LIVE_ONLY.endJoin(s)
  t.equal(s.joins.size, 1, 'a synchronous replay holds nothing for anyone')
  t.same(LIVE_ONLY.frames, [])

  const counters = new Counters()
  const budget = new SessionBudget(10, 1000, 1000)
  const sessions = new Sessions('conversation', counters, budget, (id) => new Session(id, 'conversation', nothing, host, 1), () => {})
  const made = sessions.obtain('a', false) as Session
  t.equal(sessions.size, 1)
  sessions.forget(made)
  sessions.forget(made)
  t.equal(sessions.size, 0)
  t.ok(budget.makeRoom(), 'the budget counted it once')
  const again = sessions.obtain('a', false) as Session
  t.not(again, made, 'a new session under the same id')
  sessions.forget(made)
  t.equal(sessions.get('a'), again, 'forgetting the old one leaves the new one alone')
})
