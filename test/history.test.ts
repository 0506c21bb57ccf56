import t from 'tap'
import fc from 'fast-check'
import { BLOCK_SIZE, History, spareBlocks } from '../src/history.js'

/** The same rules, the obvious way: an array of frames. */
class Model {
  readonly kept: Array<{ seq: number, frame: Buffer }> = []
  constructor (readonly maxEvents: number, readonly maxBytes: number) {}
  push (seq: number, frame: Buffer): void {
    if (this.maxEvents === 0) return
    if (frame.length > this.maxBytes) { this.kept.length = 0; return }
    this.kept.push({ seq, frame })
    while (this.kept.length > this.maxEvents || this.bytes() > this.maxBytes) this.kept.shift()
  }

  bytes (): number { return this.kept.reduce((n, e) => n + e.frame.length, 0) }
  after (seq: number): unknown {
    const at = this.kept.findIndex((e) => e.seq === seq)
    if (at < 0) return { found: false, reason: this.kept.length === 0 || seq < (this.kept[0] as { seq: number }).seq ? 'history_trimmed' : 'unknown_event_id' }
    const rest = this.kept.slice(at + 1)
    return { found: true, frames: Buffer.concat(rest.map((e) => e.frame)).toString('latin1'), events: rest.length }
  }
}

function shown (lookup: ReturnType<History['framesAfter']>): unknown {
  return lookup.found ? { ...lookup, frames: lookup.frames.toString('latin1') } : lookup
}

t.test('keeps what an array of frames would: same replays, same reasons, same sizes (property)', async (t) => {
  const op = fc.oneof(
    { arbitrary: fc.record({ push: fc.integer({ min: 1, max: 3 * BLOCK_SIZE }), fill: fc.integer({ min: 0, max: 255 }) }), weight: 4 },
    { arbitrary: fc.record({ lookBack: fc.integer({ min: -2, max: 40 }) }), weight: 1 }
  )
  fc.assert(fc.property(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 1, max: 8 * BLOCK_SIZE }), fc.array(op, { maxLength: 120 }), (maxEvents, maxBytes, ops) => {
    const h = new History(maxEvents, maxBytes)
    const m = new Model(maxEvents, maxBytes)
    let seq = 0
    for (const o of ops) {
      if ('push' in o) {
        seq += 1 + (o.fill % 3) // gaps, as when other sessions take sequence numbers
        const frame = Buffer.alloc(o.push, o.fill)
        frame[0] = seq % 256 // frames differ, so a wrong offset shows
        h.push(seq, frame)
        m.push(seq, frame)
      } else {
        const target = seq - o.lookBack
        if (JSON.stringify(shown(h.framesAfter(target))) !== JSON.stringify(m.after(target))) return false
      }
      if (h.length !== m.kept.length || h.bytes !== m.bytes()) return false
      if (h.newestSeq !== m.kept.at(-1)?.seq) return false
    }
    return true
  }), { numRuns: 300 })
  t.pass('300 random histories agree with the model')
})

t.test('a replay is a copy: reusing the blocks later does not change it', async (t) => {
  const h = new History(3, 3 * BLOCK_SIZE)
  h.push(1, Buffer.alloc(BLOCK_SIZE, 'a'))
  h.push(2, Buffer.alloc(BLOCK_SIZE, 'b'))
  const replay = h.framesAfter(1)
  t.ok(replay.found)
  for (let seq = 3; seq < 10; seq++) h.push(seq, Buffer.alloc(BLOCK_SIZE, 'z'))
  t.equal(replay.found && replay.frames.toString(), 'b'.repeat(BLOCK_SIZE))
  t.same(h.framesAfter(9), { found: true, frames: Buffer.alloc(0), events: 0 }, 'up to date: nothing to copy')
})

t.test('dropped blocks are reused, and the spare list stops growing at its cap', async (t) => {
  const h = new History(1000, 64 * BLOCK_SIZE)
  for (let seq = 1; seq <= 8; seq++) h.push(seq, Buffer.alloc(BLOCK_SIZE))
  const before = spareBlocks()
  h.clear()
  t.equal(spareBlocks(), before + 8, 'clear gives its blocks back')
  h.push(9, Buffer.alloc(2 * BLOCK_SIZE))
  t.equal(spareBlocks(), before + 6, 'and a new frame takes them first')

  // Fill the spare list past its cap: what cannot be kept is left to the garbage collector.
  const held = [new History(1, BLOCK_SIZE), new History(1, BLOCK_SIZE)]
  for (const x of held) x.push(1, Buffer.alloc(1))
  const many = Array.from({ length: 5000 }, (_, i) => { const x = new History(1, BLOCK_SIZE); x.push(i + 1, Buffer.alloc(1)); return x })
  for (const x of many) x.clear()
  t.equal(spareBlocks(), 4096, 'clear keeps no more than the cap')
  const rolling = new History(2, 2 * BLOCK_SIZE)
  rolling.push(1, Buffer.alloc(BLOCK_SIZE))
  rolling.push(2, Buffer.alloc(BLOCK_SIZE))
  t.equal(spareBlocks(), 4094)
  for (const x of held) x.clear()
  rolling.push(3, Buffer.alloc(BLOCK_SIZE))
  t.equal(spareBlocks(), 4095, 'the block dropped while the list was full was not kept; the new frame took one')
})

t.test('a frame larger than maxBytes empties the history; maxEvents 0 keeps nothing', async (t) => {
  const h = new History(10, 100)
  h.push(1, Buffer.alloc(50))
  h.push(2, Buffer.alloc(101))
  t.equal(h.length, 0)
  t.same(h.framesAfter(1), { found: false, reason: 'history_trimmed' })
  const none = new History(0, 100)
  none.push(1, Buffer.alloc(10))
  t.equal(none.length, 0)
  t.equal(none.newestSeq, undefined)
})
