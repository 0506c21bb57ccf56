/*
 * Producer leases in one process (the in-memory hub): every producer runs here, so there is nothing to take,
 * renew or watch; shared values are this process's map.
 */
import type { Leases } from './types.js'

interface Held {
  readonly value: string
  /** When it expires (ms since the epoch). */
  readonly until: number
}

export class MemoryLeases implements Leases {
  readonly #values = new Map<string, Held>()

  constructor (private readonly now: () => number) {}

  async take (): Promise<void> {}
  release (): void {}
  async stopElsewhere (): Promise<boolean> { return false }
  async heldElsewhere (): Promise<boolean> { return false }
  stop (): void {}

  async readValue (name: string): Promise<string | undefined> {
    const held = this.#values.get(name)
    if (held !== undefined && held.until <= this.now()) this.#values.delete(name)
    return this.#values.get(name)?.value
  }

  async swapValue (name: string, expected: string | undefined, value: string | undefined, ttlMs: number): Promise<boolean> {
    if (await this.readValue(name) !== expected) return false
    if (value === undefined) this.#values.delete(name)
    else this.#values.set(name, { value, until: this.now() + ttlMs })
    return true
  }
}
