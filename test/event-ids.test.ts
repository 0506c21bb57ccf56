/* The in-memory hub's event ids (src/event-ids.ts): formatting, parsing, and nothing else parsed. */
import t from 'tap'
import fc from 'fast-check'
import { EventIds, newEpoch } from '../src/event-ids.js'

t.test('ids are <epoch>-<seq>, sequence numbers increase, and parse() reads back exactly what format() made', async (t) => {
  const ids = new EventIds('abc')
  t.equal(ids.next(), 1)
  t.equal(ids.next(), 2)
  t.equal(ids.format(2), 'abc-2')
  t.equal(ids.parse('abc-2'), 2)
  fc.assert(fc.property(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), (n) => ids.parse(ids.format(n)) === n))
})

t.test('parse() refuses every id this hub did not make', async (t) => {
  const ids = new EventIds('abc')
  for (const id of ['', 'abc', 'abc-', 'abc-0', 'abc-01', 'abc-1.5', 'abc--1', 'abc-1e3', 'abc-12345678901234567', 'xyz-1', 'abc-1 ', ' abc-1']) {
    t.equal(ids.parse(id), undefined, JSON.stringify(id))
  }
  t.equal(new EventIds('other').parse('abc-1'), undefined, 'another epoch: another start of the hub')
})

t.test('every start has its own epoch', async (t) => {
  const a = newEpoch()
  t.match(a, /^[0-9a-z]+[0-9a-f]{4}$/)
  t.equal(new EventIds().parse(`${a}-1`), undefined)
})
