/*
 * The subscriber's order of event ids (src/browser/id-order.ts): the in-memory hub's `<epoch>-<n>`, Redis stream
 * ids `<ms>-<seq>`, and what cannot be compared. Checked against ids made by the hub's own code, not only by hand.
 */
import t from 'tap'
import fc from 'fast-check'
import { compareEventIds, isNewerEventId } from '../../src/browser/id-order.js'
import { EventIds } from '../../src/event-ids.js'
import { compareStreamIds } from '../../src/backplane/redis-stream.js'

t.test('in-memory ids of one hub start: ordered by their sequence number', async (t) => {
  const ids = new EventIds()
  const made = [1, 2, 9, 10, 11, 99, 100, 12345].map((n) => ids.format(n))
  for (let i = 0; i < made.length; i++) {
    for (let j = 0; j < made.length; j++) {
      t.equal(Math.sign(compareEventIds(made[i]!, made[j]!)!), Math.sign(i - j), `${made[i]} vs ${made[j]}`)
    }
  }
})

t.test('ids of two hub starts (two epochs) cannot be compared: each is news to the other', async (t) => {
  const a = new EventIds('lq2x1abc')
  const b = new EventIds('lq2x9def')
  t.equal(compareEventIds(a.format(5), b.format(1)), undefined)
  t.equal(isNewerEventId(b.format(1), a.format(5)), true)
})

t.test('Redis stream ids: the same order as the backplane\'s own comparison', async (t) => {
  const part = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }))
  const id = fc.tuple(part, part).map(([ms, seq]) => `${ms}-${seq}`)
  fc.assert(fc.property(id, id, (x, y) => Math.sign(compareEventIds(x, y)!) === Math.sign(compareStreamIds(x, y))))
  t.equal(compareEventIds('1700000000000-5', '1700000000001-0'), -1)
  t.equal(compareEventIds('1700000000001-0', '1700000000000-5'), 1)
  t.equal(compareEventIds('9-0', '10-0'), -1)
})

t.test('other forms compare only as equal or not comparable', async (t) => {
  t.equal(compareEventIds('abc', 'abc'), 0)
  t.equal(compareEventIds('abc', 'abd'), undefined)
  t.equal(compareEventIds('-5', 'x-5'), undefined, 'no head')
  t.equal(compareEventIds('x-05', 'x-5'), undefined, 'a tail with a leading zero is not a number of the hub')
  t.equal(compareEventIds('x-5', 'x-'), undefined)
  t.equal(isNewerEventId('abc', 'abc'), false)
  t.equal(isNewerEventId('abc', 'abd'), true)
  t.equal(isNewerEventId('x-1', undefined), true)
  t.equal(isNewerEventId('x-1', 'x-2'), false)
  t.equal(isNewerEventId('x-3', 'x-2'), true)
})
