// What a script is: the contract between the simulation engine (simulation.ts) and the two kinds'
// scripts (conversation.ts, debate.ts) — who speaks when, and which events a run sends.
import type { DebatePhase } from '../src/index.js'

/** One event of a map, as a value: `{ type, payload }` with the payload of that type. */
export type EventOf<E> = { [K in keyof E & string]: { type: K, payload: E[K] } }[keyof E & string]

/** A speaker, whatever the kind. */
export interface Speaker {
  participantId: string
  personaSlug: string
  personaName: string
  /** host / guest, or for / against / moderator. */
  role: string
}

/** One turn being spoken. */
export interface Turn {
  turnCount: number
  speaker: Speaker
  /** Debate phase; undefined for conversations. */
  phase: DebatePhase | undefined
  text: string
}

/** What differs between a conversation and a debate: who speaks when, and the events' names and shapes. */
export interface Script<E> {
  readonly title: string
  readonly participants: Speaker[]
  /** Speaker and phase of turn `n` of `total` (1-based). */
  plan: (n: number, total: number) => { speaker: Speaker, phase: DebatePhase | undefined }
  started: () => EventOf<E>
  /** Events before the first token of a turn (speaker or phase change). */
  beforeTurn: (turn: Turn, previous: Turn | undefined) => Array<EventOf<E>>
  token: (turn: Turn, token: string) => EventOf<E>
  utterance: (turn: Turn) => EventOf<E>
  /** Events after a turn (context updates); `summary` is the running summary. */
  afterTurn: (turn: Turn, summary: string) => Array<EventOf<E>>
  paused: (turnCount: number) => EventOf<E>
  resumed: (turnCount: number) => EventOf<E>
  completed: (turnCount: number) => EventOf<E>
}

/** Makes the script of one session; `topic` undefined lets the script choose one with `random`. */
export type ScriptFactory<E> = (sessionId: string, topic: string | undefined, random: () => number) => Script<E>
