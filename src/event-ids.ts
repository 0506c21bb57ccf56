/*
 * The hub's sequence numbers, which both event logs draw from (the backplane log numbers the events it delivers
 * with them, in the order they reach this process), and the in-memory log's ids made from them, `<epoch>-<seq>`:
 * formatting and parsing, nothing else. The epoch changes with every hub start, so an id from before a restart
 * is recognised as unknown, never misread.
 */
import { randomBytes } from 'node:crypto'

// What follows the epoch: a positive integer without leading zeros that a double holds exactly.
const SEQ = /^[1-9][0-9]{0,15}$/

/** A fresh epoch: the start time in base 36 and four random hex digits. */
export function newEpoch (): string {
  return Date.now().toString(36) + randomBytes(2).toString('hex')
}

/**
 * The sequence numbers of one hub and the ids made from them. Numbers increase across every session
 * and kind of the hub, so no two events share an id, and a client's place in a session is one number.
 */
export class EventIds {
  readonly #prefix: string
  #seq = 0

  constructor (epoch: string = newEpoch()) {
    this.#prefix = epoch + '-'
  }

  /** The next sequence number. */
  next (): number {
    return ++this.#seq
  }

  /** The id of a sequence number. */
  format (seq: number): string {
    return this.#prefix + seq
  }

  /** The sequence number of an id this hub made; undefined for any other string. */
  parse (id: string): number | undefined {
    if (!id.startsWith(this.#prefix)) return undefined
    const digits = id.slice(this.#prefix.length)
    return SEQ.test(digits) ? Number(digits) : undefined
  }
}
