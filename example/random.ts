// Seeded randomness for the simulation: the same session id always plays out the same way.

/** mulberry32 over a string hash: the same seed gives the same sequence. */
export function seededRandom (seed: string): () => number {
  let h = 1779033703
  for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 3432918353)
  let a = h >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** One of `items`, chosen by `random`. */
export function pick<T> (items: readonly T[], random: () => number): T {
  return items[Math.floor(random() * items.length)] as T
}
