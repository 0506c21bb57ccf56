/*
 * The order of the hub's event ids, as far as a subscriber can know it: which of two ids is newer, or that
 * they cannot be compared. Pure string work, no I/O.
 */

// A decimal integer without leading zeros: comparing two is comparing lengths, then characters.
const DECIMAL = /^(?:0|[1-9][0-9]*)$/

/** `<head>-<tail>` at the last dash, the tail a decimal integer; undefined for another form. */
function split (id: string): [head: string, tail: string] | undefined {
  const dash = id.lastIndexOf('-')
  if (dash <= 0) return undefined
  const tail = id.slice(dash + 1)
  return DECIMAL.test(tail) ? [id.slice(0, dash), tail] : undefined
}

/** -1 or 1 for two different decimals (equal ids never get here). */
function compareDecimal (a: string, b: string): number {
  if (a.length !== b.length) return a.length < b.length ? -1 : 1
  return a < b ? -1 : 1
}

/**
 * Compares two event ids of the hub: negative when `a` is older, positive when newer, 0 when equal,
 * `undefined` when they cannot be compared.
 *
 * The two forms the hub makes: the in-memory hub's `<epoch>-<n>` (one epoch per hub start; `n` grows) and the
 * Redis backplane's stream ids `<ms>-<seq>`. Ids with the same head compare by their tails; ids whose heads are
 * both decimal (Redis) compare by head, then tail. Anything else (two epochs: another hub start; another form)
 * is not comparable: the hub answers such a client with `snapshot` or `resync`, which start a new history.
 */
export function compareEventIds (a: string, b: string): number | undefined {
  if (a === b) return 0
  const x = split(a)
  const y = split(b)
  if (x === undefined || y === undefined) return undefined
  if (x[0] === y[0]) return compareDecimal(x[1], y[1])
  // Different decimal heads are different numbers: the head decides.
  if (DECIMAL.test(x[0]) && DECIMAL.test(y[0])) return compareDecimal(x[0], y[0])
  return undefined
}

/** True when an event with id `id` comes after `than` (or cannot be ordered against it, or nothing came before). */
export function isNewerEventId (id: string, than: string | undefined): boolean {
  if (than === undefined) return true
  const order = compareEventIds(id, than)
  return order === undefined || order > 0
}
