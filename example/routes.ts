// The example's HTTP routes for one session kind: the SSE stream, the session list, a session's JSON state,
// and launch / pause / resume, all under /api/{conversations,debates}/sessions.
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { EventMap, SessionKind } from '../src/index.js'
import type { Simulations } from './simulation.js'

/** The body `launch` accepts; every field optional. */
export interface LaunchBody {
  /** Turns before the session completes. Default 12. */
  turns?: number
  /** Milliseconds between two tokens. Default 60. */
  tokenDelayMs?: number
  /** The conversation's topic or the debate's motion. */
  topic?: string
}

const DEFAULT_TURNS = 12
const DEFAULT_TOKEN_DELAY_MS = 60

const launchBody = {
  type: ['object', 'null'],
  properties: {
    turns: { type: 'integer', minimum: 1, maximum: 500 },
    tokenDelayMs: { type: 'integer', minimum: 0, maximum: 10_000 },
    topic: { type: 'string', minLength: 1, maxLength: 200 }
  },
  additionalProperties: false
} as const

/**
 * Mounts the routes of `sims`'s kind on `app`. `sessionIdPattern` is the hub's (its option or default): the JSON
 * routes refuse, with a 400 before any work, the ids the stream route refuses (a RegExp's flags do not carry over).
 */
export function registerKind<E extends EventMap<E>> (app: FastifyInstance, sims: Simulations<E>, sessionIdPattern: RegExp): void {
  const base = `/api/${sims.kind === 'conversation' ? 'conversations' : 'debates'}/sessions`
  const idParams = {
    type: 'object',
    properties: { id: { type: 'string', pattern: sessionIdPattern.source } },
    required: ['id']
  } as const

  // Mounting a stream endpoint is one line.
  app.get(`${base}/:id/stream`, app.sse.stream(sims.kind))

  app.get(base, async () => ({ sessions: sims.list() }))

  app.get<{ Params: { id: string } }>(`${base}/:id`, { schema: { params: idParams } }, async (request, reply) => {
    const sim = sims.get(request.params.id)
    if (sim === undefined) return notFound(reply, sims.kind, request.params.id)
    return sim.toJSON()
  })

  app.post<{ Params: { id: string }, Body: LaunchBody | null }>(`${base}/:id/launch`, { schema: { params: idParams, body: launchBody } }, async (request, reply) => {
    const { id } = request.params
    const current = sims.get(id)
    if (current !== undefined && current.active) {
      return reply.code(409).send({ statusCode: 409, error: 'Conflict', message: `${sims.kind} ${id} is already ${current.status}` })
    }
    // A completed run closed its session: the hub keeps it readable (closedSessionTtl) and refuses new events.
    if (current !== undefined && current.status === 'completed') {
      return reply.code(409).send({ statusCode: 409, error: 'Conflict', message: `${sims.kind} ${id} is completed and closed; launch another session` })
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
