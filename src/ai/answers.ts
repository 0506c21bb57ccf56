/*
 * Which answer a chat has in progress: the chat → answer mapping `chatStreams` keeps in the hub's shared values
 * (this process's map, or Redis), and the answer's producer, which must still run (its lease held) for the
 * answer to be in progress: a mapping left by a process that died names an answer no longer in progress.
 */
import type { SharedValues } from '../leases/types.js'

// An answer's mapping is dropped at its end; this bounds one its process could not drop (it died).
const MAPPING_TTL_MS = 86_400_000

export class ActiveAnswers {
  constructor (
    /** The chats' kind: its chat ids are its own. */
    private readonly kind: string,
    private readonly values: SharedValues,
    /** Whether the answer's producer runs, here or in another process. */
    private readonly producing: (answerId: string) => Promise<boolean>
  ) {}

  /** The answer (its session id) the chat has in progress; undefined when none. */
  async get (chatId: string): Promise<string | undefined> {
    const answerId = await this.values.readValue(this.#name(chatId))
    return answerId !== undefined && await this.producing(answerId) ? answerId : undefined
  }

  /**
   * Records `answerId`, whose producer runs already (so that no other process takes it for a dead one's), as
   * the chat's answer in progress, unless it has one: then false.
   */
  async claim (chatId: string, answerId: string): Promise<boolean> {
    const name = this.#name(chatId)
    const current = await this.values.readValue(name)
    if (current !== undefined && await this.producing(current)) return false
    // Unless another start took it meanwhile.
    return await this.values.swapValue(name, current, answerId, MAPPING_TTL_MS)
  }

  #name (chatId: string): string {
    return `answer:${this.kind}:${chatId}`
  }

  /** Forgets the chat's answer in progress if it is `answerId`. */
  async release (chatId: string, answerId: string): Promise<void> {
    await this.values.swapValue(this.#name(chatId), answerId, undefined, 0)
  }
}

