/*
 * The example server: the design's routes on the in-memory hub, a simulated
 * multi-persona conversation (and debate) that streams tokens, and a live page at `/`.
 *
 *   npm start                      HTTP/1.1 on http://127.0.0.1:3000
 *   HTTP2=1 npm start              HTTP/2 over TLS (self-signed certificate made at start-up), HTTP/1.1 fallback
 *   HTTP2=1 H2C=1 npm start        HTTP/2 over cleartext (h2c; curl --http2-prior-knowledge)
 *   PORT=8080 HOST=0.0.0.0 npm start
 *
 * `build()` returns the Fastify app without listening, for tests.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyServerOptions } from 'fastify'
import fastifyStatic from '@fastify/static'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath, pathToFileURL } from 'node:url'
import path from 'node:path'
import sseHub, {
  type ConversationEvents,
  type ConversationParticipant,
  type DebateEvents,
  type DebateParticipant,
  type DebatePhase,
  type EventMap,
  type SessionKind,
  type SessionRegistry,
  type SseHubOptions,
  redisBackplane
} from './src/index.js'

/** Options of {@link build}. */
export interface BuildOptions {
  /** Fastify's logger option. Default: off. */
  logger?: FastifyServerOptions['logger']
  /** Serve HTTP/2: over TLS when `https` is given, else cleartext (h2c). */
  http2?: boolean
  /** TLS key and certificate (PEM). With `http2`, HTTP/1.1 clients are still accepted. */
  https?: { key: string, cert: string }
  /** Options for the hub (the in-memory default when omitted). */
  hub?: SseHubOptions
  /** Sessions kept per kind; launching past it forgets the oldest finished one (409 when all are active). Default 1000. */
  maxSessions?: number
}

/** The body `launch` accepts; every field optional. */
export interface LaunchBody {
  /** Turns before the session completes. Default 12. */
  turns?: number
  /** Milliseconds between two tokens. Default 60. */
  tokenDelayMs?: number
  /** The conversation's topic or the debate's motion. */
  topic?: string
}

const SESSION_ID = '^[A-Za-z0-9_-]{1,128}$'
const DEFAULT_TURNS = 12
const DEFAULT_TOKEN_DELAY_MS = 60

/** Builds the example app (not listening). */
export async function build (opts: BuildOptions = {}): Promise<FastifyInstance> {
  const serverOptions: Record<string, unknown> = {
    logger: opts.logger ?? false,
    // An unknown field in a launch body is a 400, not silently dropped.
    ajv: { customOptions: { removeAdditional: false } }
  }
  if (opts.http2 === true) {
    serverOptions.http2 = true
    // Before Node 24, close() leaves idle HTTP/2 sessions open (up to http2SessionTimeout, 72 s) unless this is
    // true; then each session closes with GOAWAY once the hub has ended its streams.
    serverOptions.forceCloseConnections = true
  }
  if (opts.https !== undefined) serverOptions.https = opts.http2 === true ? { ...opts.https, allowHTTP1: true } : opts.https
  // One code path for HTTP/1.1 and HTTP/2: the routes below do not depend on the server type.
  const app = Fastify(serverOptions as FastifyServerOptions) as unknown as FastifyInstance

  const hubOptions: SseHubOptions = { ...opts.hub }
  // Scaling past one process: with REDIS_URL set, every instance shares one set of sessions through Redis.
  const redisUrl = process.env.REDIS_URL
  if (hubOptions.backplane === undefined && redisUrl !== undefined && redisUrl !== '') {
    hubOptions.backplane = redisBackplane({ url: redisUrl })
  }
  await app.register(sseHub, hubOptions)

  await app.register(fastifyStatic, { root: fileURLToPath(new URL('./public/', import.meta.url)) })

  const maxSessions = opts.maxSessions ?? 1000
  const conversations = new Simulations<ConversationEvents>(app.sse.conversations, conversationScript, maxSessions)
  const debates = new Simulations<DebateEvents>(app.sse.debates, debateScript, maxSessions)
  registerKind(app, conversations)
  registerKind(app, debates)
  // Stop every run (and its timer) before the hub ends the streams: nothing is broadcast into a closing server.
  app.addHook('preClose', async () => {
    conversations.stopAll()
    debates.stopAll()
  })

  app.get('/api/sse/stats', async () => app.sse.getStats())
  return app
}

// ─── Routes (the same for both kinds) ─────────────────────────────────────────

const idParams = {
  type: 'object',
  properties: { id: { type: 'string', pattern: SESSION_ID } },
  required: ['id']
} as const

const launchSchema = {
  params: idParams,
  body: {
    type: ['object', 'null'],
    properties: {
      turns: { type: 'integer', minimum: 1, maximum: 500 },
      tokenDelayMs: { type: 'integer', minimum: 0, maximum: 10_000 },
      topic: { type: 'string', minLength: 1, maxLength: 200 }
    },
    additionalProperties: false
  }
} as const

function registerKind<E extends EventMap<E>> (app: FastifyInstance, sims: Simulations<E>): void {
  const base = `/api/${sims.kind === 'conversation' ? 'conversations' : 'debates'}/sessions`

  // Mounting a stream endpoint is one line.
  app.get(`${base}/:id/stream`, app.sse.stream(sims.kind))

  app.get(base, async () => ({ sessions: sims.list() }))

  app.get<{ Params: { id: string } }>(`${base}/:id`, { schema: { params: idParams } }, async (request, reply) => {
    const sim = sims.get(request.params.id)
    if (sim === undefined) return notFound(reply, sims.kind, request.params.id)
    return sim.toJSON()
  })

  app.post<{ Params: { id: string }, Body: LaunchBody | null }>(`${base}/:id/launch`, { schema: launchSchema }, async (request, reply) => {
    const { id } = request.params
    const current = sims.get(id)
    if (current !== undefined && current.active) {
      return reply.code(409).send({ statusCode: 409, error: 'Conflict', message: `${sims.kind} ${id} is already ${current.status}` })
    }
    if (!sims.makeRoom(id)) {
      return reply.code(409).send({ statusCode: 409, error: 'Conflict', message: `${sims.maxSessions} ${sims.kind} sessions are running; try again later` })
    }
    const body = request.body ?? {}
    const sim = sims.launch(id, {
      turns: body.turns ?? DEFAULT_TURNS,
      tokenDelayMs: body.tokenDelayMs ?? DEFAULT_TOKEN_DELAY_MS,
      topic: body.topic
    }, request.log)
    return reply.code(202).send(sim.toJSON())
  })

  for (const action of ['pause', 'resume'] as const) {
    app.post<{ Params: { id: string } }>(`${base}/:id/${action}`, { schema: { params: idParams } }, async (request, reply) => {
      const sim = sims.get(request.params.id)
      if (sim === undefined) return notFound(reply, sims.kind, request.params.id)
      const done = action === 'pause' ? await sim.pause() : await sim.resume()
      if (!done) {
        return reply.code(409).send({ statusCode: 409, error: 'Conflict', message: `cannot ${action} a ${sim.status} ${sims.kind}` })
      }
      return sim.toJSON()
    })
  }
}

function notFound (reply: FastifyReply, kind: SessionKind, id: string): FastifyReply {
  return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `no ${kind} session ${id}` })
}

// ─── The simulation: one runner for both kinds ────────────────────────────────

/** One event of a map, as a value: `{ type, payload }` with the payload of that type. */
type EventOf<E> = { [K in keyof E & string]: { type: K, payload: E[K] } }[keyof E & string]

/** A speaker, whatever the kind. */
interface Speaker {
  participantId: string
  personaSlug: string
  personaName: string
  /** host / guest, or for / against / moderator. */
  role: string
}

/** One turn being spoken. */
interface Turn {
  turnCount: number
  speaker: Speaker
  /** Debate phase; undefined for conversations. */
  phase: DebatePhase | undefined
  text: string
}

/** What differs between a conversation and a debate: who speaks when, and the events' names and shapes. */
interface Script<E> {
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

type ScriptFactory<E> = (sessionId: string, topic: string | undefined, random: () => number) => Script<E>

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
class Simulations<E extends EventMap<E>> {
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

  launch (id: string, options: RunOptions, log: FastifyInstance['log']): Simulation<E> {
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
      await this.#emit(this.script.completed(this.turnCount), () => {
        this.status = 'completed'
        this.completedAt = Date.now()
      })
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

  async #emit (ev: EventOf<E>, apply?: () => void): Promise<void> {
    this.#abort.signal.throwIfAborted()
    const id = await this.registry.broadcast(this.sessionId, ev.type, ev.payload)
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

// ─── The two scripts ──────────────────────────────────────────────────────────

const HOST: ConversationParticipant = { participantId: 'p-host', personaSlug: 'rae-okafor', personaName: 'Rae Okafor', isHost: true }
const GUESTS: ConversationParticipant[] = [
  { participantId: 'p-ada', personaSlug: 'ada-lovelace', personaName: 'Ada Lovelace', isHost: false },
  { participantId: 'p-feynman', personaSlug: 'richard-feynman', personaName: 'Richard Feynman', isHost: false },
  { participantId: 'p-hypatia', personaSlug: 'hypatia', personaName: 'Hypatia of Alexandria', isHost: false }
]
const TOPICS = ['Can a machine be creative?', 'What makes an explanation good?', 'Should science ever be secret?']

const asSpeaker = (p: ConversationParticipant): Speaker => ({ participantId: p.participantId, personaSlug: p.personaSlug, personaName: p.personaName, role: p.isHost ? 'host' : 'guest' })

const conversationScript: ScriptFactory<ConversationEvents> = (sessionId, topic, random) => {
  const title = topic ?? pick(TOPICS, random)
  const people = [HOST, ...GUESTS]
  return {
    title,
    participants: people.map(asSpeaker),
    // The host opens and closes, and comes back after every two guests.
    plan: (n, total) => {
      if (n === 1 || (n === total && total > 1)) return { speaker: asSpeaker(HOST), phase: undefined }
      const k = n - 2
      if (k % 3 === 2) return { speaker: asSpeaker(HOST), phase: undefined }
      const guest = GUESTS[(Math.floor(k / 3) * 2 + (k % 3)) % GUESTS.length] as ConversationParticipant
      return { speaker: asSpeaker(guest), phase: undefined }
    },
    started: () => ({ type: 'conversation_started', payload: { sessionId, topic: title, participants: people } }),
    beforeTurn: (turn) => [{
      type: 'conversation_speaker_changed',
      payload: { sessionId, speakerId: turn.speaker.participantId, speakerName: turn.speaker.personaName, personaSlug: turn.speaker.personaSlug }
    }],
    token: (turn, token) => ({
      type: 'conversation_token',
      payload: { participantId: turn.speaker.participantId, personaSlug: turn.speaker.personaSlug, personaName: turn.speaker.personaName, segment: `turn-${turn.turnCount}`, token }
    }),
    utterance: (turn) => ({
      type: 'conversation_utterance',
      payload: { sessionId, speakerName: turn.speaker.personaName, personaSlug: turn.speaker.personaSlug, content: turn.text, isHost: turn.speaker.role === 'host', turnCount: turn.turnCount, timestamp: Date.now() }
    }),
    // The running summary after every second turn.
    afterTurn: (turn, summary) => turn.turnCount % 2 === 0
      ? [{ type: 'conversation_context_updated', payload: { sessionId, summary, turnCount: turn.turnCount } }]
      : [],
    paused: (turnCount) => ({ type: 'conversation_paused', payload: { sessionId, turnCount, reason: 'requested' } }),
    resumed: (turnCount) => ({ type: 'conversation_resumed', payload: { sessionId, turnCount } }),
    completed: (turnCount) => ({ type: 'conversation_completed', payload: { sessionId, turnCount, reason: 'finished' } })
  }
}

const DEBATERS: DebateParticipant[] = [
  { participantId: 'd-mod', personaSlug: 'june-park', personaName: 'June Park', position: 'moderator' },
  { participantId: 'd-for', personaSlug: 'marcus-aurelius', personaName: 'Marcus Aurelius', position: 'for' },
  { participantId: 'd-against', personaSlug: 'mary-wollstonecraft', personaName: 'Mary Wollstonecraft', position: 'against' }
]
const MOTIONS = ['This house would ban cars from city centres', 'This house believes AI should have a vote', 'This house would abolish homework']
const PHASES: DebatePhase[] = ['opening', 'rebuttal', 'crossfire', 'closing']

const debateScript: ScriptFactory<DebateEvents> = (debateId, topic, random) => {
  const motion = topic ?? pick(MOTIONS, random)
  const speakers = DEBATERS.map((d) => ({ participantId: d.participantId, personaSlug: d.personaSlug, personaName: d.personaName, role: d.position }))
  const [moderator, pro, con] = speakers as [Speaker, Speaker, Speaker]
  const position = (s: Speaker): DebateParticipant['position'] => s.role as DebateParticipant['position']
  return {
    title: motion,
    participants: speakers,
    // The moderator opens; then for and against alternate through the four phases.
    plan: (n, total) => ({
      speaker: n === 1 && total > 2 ? moderator : ((total > 2 ? n : n + 1) % 2 === 0 ? pro : con),
      phase: PHASES[Math.min(PHASES.length - 1, Math.floor(((n - 1) * PHASES.length) / total))] as DebatePhase
    }),
    started: () => ({ type: 'debate_started', payload: { debateId, motion, participants: DEBATERS, phase: 'opening' } }),
    beforeTurn: (turn, previous) => turn.phase === previous?.phase
      ? []
      : [{ type: 'debate_phase_changed', payload: { debateId, from: previous?.phase ?? null, to: turn.phase as DebatePhase } }],
    token: (turn, token) => ({
      type: 'debate_token',
      payload: { debateId, participantId: turn.speaker.participantId, personaSlug: turn.speaker.personaSlug, turnCount: turn.turnCount, token }
    }),
    utterance: (turn) => ({
      type: 'debate_utterance',
      payload: {
        debateId,
        participantId: turn.speaker.participantId,
        speakerName: turn.speaker.personaName,
        personaSlug: turn.speaker.personaSlug,
        position: position(turn.speaker),
        phase: turn.phase as DebatePhase,
        content: turn.text,
        turnCount: turn.turnCount
      }
    }),
    afterTurn: () => [],
    paused: (turnCount) => ({ type: 'debate_paused', payload: { debateId, turnCount, reason: 'requested' } }),
    resumed: (turnCount) => ({ type: 'debate_resumed', payload: { debateId, turnCount } }),
    completed: (turnCount) => ({ type: 'debate_completed', payload: { debateId, turnCount, winner: pick(['for', 'against', 'draw'] as const, random) } })
  }
}

// ─── Text ─────────────────────────────────────────────────────────────────────

// Lines per persona (by slug), falling back to the role's lines.
const LINES: Record<string, string[]> = {
  host: [
    'Welcome back to Open Circuit, the show where great minds argue in good faith.',
    'That is a bold claim, so let me push on it a little.',
    'Let us bring in another voice here.',
    'Our listeners will want a concrete example of that.',
    'Thank you all: a lively hour, and plenty to think about.',
    'So where exactly do the two of you disagree?'
  ],
  'ada-lovelace': [
    'The engine weaves algebraic patterns just as the loom weaves flowers and leaves.',
    'A machine can only do what we know how to order it to perform, at least for now.',
    'Poetry and mathematics are closer cousins than most people think.',
    'I would start from what the machine is actually doing, step by step.',
    'Imagination is the discovering faculty, pre-eminently.'
  ],
  'richard-feynman': [
    'Nature does not care about our categories; it only cares about what works.',
    'If you cannot explain it to a first-year student, you do not understand it yet.',
    'Every answer opens two new questions, and that is the fun of it.',
    'Here is a small experiment anyone could try at home tonight.',
    'The first principle is that you must not fool yourself, and you are the easiest person to fool.'
  ],
  hypatia: [
    'We should test the idea against the stars before we trust it on the ground.',
    'Reserve your right to think, for even to think wrongly is better than not to think at all.',
    'The geometry of the question matters more than its rhetoric.',
    'I am not sure I agree; the evidence points the other way.',
    'Teach the method, and the answers will follow.'
  ],
  for: [
    'The evidence is plain: the status quo has failed the people it claims to serve.',
    'My opponent mistakes the comfortable for the right.',
    'Consider the cost of doing nothing, measured over a single generation.',
    'Virtue is not a feeling; it is what we choose to build.'
  ],
  against: [
    'A sweeping ban punishes the many for the faults of the few.',
    'Reason demands that we ask who bears the burden of this motion.',
    'The proposition offers a slogan where a plan should be.',
    'Liberty, once surrendered for convenience, is rarely returned.'
  ],
  moderator: [
    'Welcome to the chamber: tonight we debate the motion before us.',
    'Speakers will keep to time, and the audience will keep to silence.'
  ]
}

/** The words of one turn: a few sentences in the speaker's voice, deterministic per session and turn. */
function speakText (kind: SessionKind, speaker: Speaker, title: string, n: number, total: number): string {
  const random = seededRandom(`${kind}:${speaker.participantId}:${title}:${n}`)
  const host = LINES.host as string[]
  if (speaker.role === 'host' && n === 1) return `${host[0] as string} Today's question: ${title} ${host[2] as string}`
  if (speaker.role === 'host' && n === total) return host[4] as string
  const lines = [...(LINES[speaker.personaSlug] ?? LINES[speaker.role] as string[])]
  const count = 2 + Math.floor(random() * 2)
  const out: string[] = []
  // Distinct sentences within a turn.
  for (let i = 0; i < count && lines.length > 0; i++) out.push(lines.splice(Math.floor(random() * lines.length), 1)[0] as string)
  return out.join(' ')
}

/** Word tokens; each after the first keeps its leading space, so joining them gives back the text. */
function tokenize (text: string): string[] {
  return text.match(/\s*\S+/g) ?? []
}

function summarize (summary: string, turn: Turn): string {
  const gist = turn.text.split(/\s+/).slice(0, 8).join(' ')
  const line = `${turn.speaker.personaName} (turn ${turn.turnCount}): ${gist}…`
  // Keep the last four turns' gists: a summary, not a second transcript.
  return [...summary.split('\n').filter(Boolean), line].slice(-4).join('\n')
}

function pick<T> (items: readonly T[], random: () => number): T {
  return items[Math.floor(random() * items.length)] as T
}

/** mulberry32 over a string hash: the same session id gives the same run. */
function seededRandom (seed: string): () => number {
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

// ─── Running it ───────────────────────────────────────────────────────────────

/** A self-signed certificate for 127.0.0.1 / localhost, made in memory (never written to disk). */
export async function selfSignedCert (): Promise<{ key: string, cert: string }> {
  const { generate } = await import('selfsigned')
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] }]
  } as Parameters<typeof generate>[1])
  return { key: pems.private, cert: pems.cert }
}

async function main (): Promise<void> {
  const flag = (name: string, env: string): boolean => process.argv.includes(`--${name}`) || ['1', 'true', 'yes'].includes(String(process.env[env]).toLowerCase())
  const http2 = flag('http2', 'HTTP2')
  const h2c = flag('h2c', 'H2C')
  const useHttp2 = http2 || h2c
  const tls = useHttp2 && !h2c ? await selfSignedCert() : undefined
  const app = await build({
    logger: { level: process.env.LOG_LEVEL ?? 'info' },
    http2: useHttp2,
    ...(tls === undefined ? {} : { https: tls })
  })

  let closing = false
  const shutdown = (signal: string): void => {
    if (closing) {
      app.log.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    closing = true
    app.log.info({ signal }, 'closing: ending open streams')
    // A guard only: close() normally resolves at once, since the hub ends every stream in preClose.
    setTimeout(() => { app.log.error('close timed out'); process.exit(1) }, 10_000).unref()
    app.close().then(() => process.exit(0), (err: unknown) => {
      app.log.error({ err }, 'close failed')
      process.exit(1)
    })
  }
  process.on('SIGINT', shutdown)
  process.on('SIGTERM', shutdown)

  const port = Number(process.env.PORT ?? 3000)
  const host = process.env.HOST ?? '127.0.0.1'
  const url = await app.listen({ port, host })
  const protocol = !useHttp2 ? 'HTTP/1.1' : tls === undefined ? 'HTTP/2 cleartext, h2c' : 'HTTP/2 over TLS with a self-signed certificate, HTTP/1.1 fallback'
  // One plain line for people and scripts (the tests read the URL from it).
  process.stdout.write(`example server listening on ${url} (${protocol}, pid ${process.pid})\n`)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
}
