// The simulation engine, one for both kinds: runs a session's script turn by turn, streaming each turn's
// tokens through the hub, and keeps the state the JSON endpoints return.
import type { FastifyBaseLogger } from 'fastify'
import { setTimeout as sleep } from 'node:timers/promises'
import type { DebatePhase, EventMap, SessionKind, SessionRegistry } from '../src/index.js'
import { speakText, summarize, tokenize } from './corpus.js'
import { seededRandom } from './random.js'
import type { EventOf, Script, ScriptFactory, Turn } from './script.js'

/** How one run goes: `launch`'s body with its defaults applied. */
interface RunOptions { turns: number, tokenDelayMs: number, topic: string | undefined }

interface TranscriptEntry {
  turnCount: number
  participantId: string
  speakerName: string
  personaSlug: string
  role: string
  phase?: DebatePhase
  content: string
}

type Status = 'running' | 'paused' | 'completed' | 'stopped' | 'failed'

/** The sessions of one kind and their runs. */
export class Simulations<E extends EventMap<E>> {
  readonly #runs = new Map<string, Simulation<E>>()
  readonly kind: SessionKind
  constructor (readonly registry: SessionRegistry<E>, readonly script: ScriptFactory<E>, readonly maxSessions: number) {
    this.kind = registry.kind
  }

  /** Makes room for one more session by forgetting the oldest finished one; false when every session is active. */
  makeRoom (id: string): boolean {
    if (this.#runs.has(id) || this.#runs.size < this.maxSessions) return true
    for (const [key, sim] of this.#runs) {
      if (!sim.active) {
        this.#runs.delete(key)
        return true
      }
    }
    return false
  }

  get (id: string): Simulation<E> | undefined { return this.#runs.get(id) }

  list (): Array<{ sessionId: string, status: Status, turnCount: number, totalTurns: number, title: string }> {
    return [...this.#runs.values()].map((s) => ({ sessionId: s.sessionId, status: s.status, turnCount: s.turnCount, totalTurns: s.totalTurns, title: s.script.title }))
  }

  launch (id: string, options: RunOptions, log: FastifyBaseLogger): Simulation<E> {
    const sim = new Simulation(this.kind, id, this.script(id, options.topic, seededRandom(id)), this.registry, options)
    // Re-inserted at the end: the map's order is launch order, oldest first.
    this.#runs.delete(id)
    this.#runs.set(id, sim)
    sim.run().catch((err: unknown) => { log.error({ err, sessionId: id }, 'simulation failed') })
    return sim
  }

  stopAll (): void {
    for (const sim of this.#runs.values()) sim.stop()
  }
}

/** One run of a session: streams its turns token by token, and keeps the state the JSON endpoint returns. */
class Simulation<E extends EventMap<E>> {
  status: Status = 'running'
  turnCount = 0
  readonly totalTurns: number
  readonly transcript: TranscriptEntry[] = []
  current: Turn | undefined
  /** Tokens of the current turn sent so far. */
  partial = ''
  summary = ''
  phase: DebatePhase | undefined
  /** Id of the newest event applied to this state: a client that loads the state resumes after it. */
  lastEventId: string | null = null
  readonly startedAt = Date.now()
  completedAt: number | null = null
  readonly #abort = new AbortController()
  #wake: (() => void) | undefined

  constructor (
    readonly kind: SessionKind,
    readonly sessionId: string,
    readonly script: Script<E>,
    readonly registry: SessionRegistry<E>,
    readonly options: RunOptions
  ) {
    this.totalTurns = options.turns
  }

  /** Running or paused. */
  get active (): boolean { return this.status === 'running' || this.status === 'paused' }

  async run (): Promise<void> {
    try {
      await this.#emit(this.script.started())
      let previous: Turn | undefined
      for (let n = 1; n <= this.totalTurns; n++) {
        const { speaker, phase } = this.script.plan(n, this.totalTurns)
        const turn: Turn = { turnCount: n, speaker, phase, text: speakText(this.kind, speaker, this.script.title, n, this.totalTurns) }
        for (const ev of this.script.beforeTurn(turn, previous)) await this.#emit(ev)
        this.current = turn
        this.phase = phase
        this.partial = ''
        for (const token of tokenize(turn.text)) {
          await this.#tick()
          await this.#emit(this.script.token(turn, token), () => { this.partial += token })
        }
        await this.#tick()
        await this.#emit(this.script.utterance(turn), () => {
          this.transcript.push({
            turnCount: n,
            participantId: speaker.participantId,
            speakerName: speaker.personaName,
            personaSlug: speaker.personaSlug,
            role: speaker.role,
            ...(phase === undefined ? {} : { phase }),
            content: turn.text
          })
          this.turnCount = n
          this.current = undefined
          this.partial = ''
        })
        this.summary = summarize(this.summary, turn)
        for (const ev of this.script.afterTurn(turn, this.summary)) await this.#emit(ev)
        previous = turn
      }
      // The final event and the end of the session in one step: the hub sends `closed` after it, and a client
      // that has everything gets 204 from then on, so pages stop reconnecting.
      await this.#emit(this.script.completed(this.turnCount), () => {
        this.status = 'completed'
        this.completedAt = Date.now()
      }, true)
    } catch (err) {
      if (this.#abort.signal.aborted) return
      this.status = 'failed'
      throw err
    }
  }

  /** Waits one token delay, then as long as the run is paused. Throws once the run is stopped. */
  async #tick (): Promise<void> {
    await sleep(this.options.tokenDelayMs, undefined, { signal: this.#abort.signal })
    while (this.status === 'paused') {
      await new Promise<void>((resolve) => { this.#wake = resolve })
    }
    this.#abort.signal.throwIfAborted()
  }

  /** Broadcasts `ev` (with `last`: closes the session with it), then applies it to the state. */
  async #emit (ev: EventOf<E>, apply?: () => void, last = false): Promise<void> {
    this.#abort.signal.throwIfAborted()
    const id = last
      ? await this.registry.close(this.sessionId, ev.type, ev.payload)
      : await this.registry.broadcast(this.sessionId, ev.type, ev.payload)
    // State and id change together, so a client that loads the state knows exactly where the stream resumes.
    apply?.()
    this.lastEventId = id
  }

  /** Stops the run after the token in flight; false when it is not running. */
  async pause (): Promise<boolean> {
    if (this.status !== 'running') return false
    this.status = 'paused'
    await this.#emit(this.script.paused(this.turnCount))
    return true
  }

  /** Continues a paused run; false when it is not paused. */
  async resume (): Promise<boolean> {
    if (this.status !== 'paused') return false
    this.status = 'running'
    await this.#emit(this.script.resumed(this.turnCount))
    this.#wake?.()
    return true
  }

  stop (): void {
    if (!this.active) return
    this.status = 'stopped'
    this.#abort.abort()
    this.#wake?.()
  }

  /**
   * The hub's `snapshot` for a client joining now: this state and the id of the newest event it includes. The two
   * change together (see #emit), so the events after that id are exactly what the state lacks.
   */
  snapshot (): { state: Record<string, unknown>, lastEventId: string } {
    return { state: this.toJSON(), lastEventId: this.lastEventId ?? '' }
  }

  toJSON (): Record<string, unknown> {
    const c = this.current
    return {
      kind: this.kind,
      sessionId: this.sessionId,
      status: this.status,
      title: this.script.title,
      participants: this.script.participants,
      turnCount: this.turnCount,
      totalTurns: this.totalTurns,
      tokenDelayMs: this.options.tokenDelayMs,
      phase: this.phase ?? null,
      summary: this.summary,
      transcript: this.transcript,
      current: c === undefined
        ? null
        : { turnCount: c.turnCount, participantId: c.speaker.participantId, speakerName: c.speaker.personaName, personaSlug: c.speaker.personaSlug, role: c.speaker.role, phase: c.phase ?? null, partial: this.partial },
      lastEventId: this.lastEventId,
      startedAt: this.startedAt,
      completedAt: this.completedAt
    }
  }
}
