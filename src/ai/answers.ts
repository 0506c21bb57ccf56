/*
 * Which answer a chat has in progress: the chat → answer mapping `chatStreams` keeps. One implementation per
 * event log: this process's map (in memory) here.
 */

/** The chats' answers in progress. */
export interface ActiveAnswers {
  /** The answer (its session id) the chat has in progress; undefined when none. */
  get (chatId: string): Promise<string | undefined>
  /** Records `answerId` as the chat's answer in progress, unless it has one: then false. */
  claim (chatId: string, answerId: string): Promise<boolean>
  /** Forgets the chat's answer in progress if it is `answerId`. */
  release (chatId: string, answerId: string): Promise<void>
}

/** The answers in progress of this process's chats (the in-memory hub). */
export class MemoryAnswers implements ActiveAnswers {
  readonly #answers = new Map<string, string>()

  async get (chatId: string): Promise<string | undefined> {
    return this.#answers.get(chatId)
  }

  async claim (chatId: string, answerId: string): Promise<boolean> {
    if (this.#answers.has(chatId)) return false
    this.#answers.set(chatId, answerId)
    return true
  }

  async release (chatId: string, answerId: string): Promise<void> {
    if (this.#answers.get(chatId) === answerId) this.#answers.delete(chatId)
  }
}
