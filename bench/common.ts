/*
 * Shared by the bench's processes: the event every variant sends, the clock,
 * the tiny request/response protocol spoken over each child's IPC channel, what a resume
 * stream reports, and a free port.
 */
import { once } from 'node:events'
import net from 'node:net'

/** Microseconds on CLOCK_MONOTONIC: the same clock in every process on this machine (Linux). */
export function nowUs (): number {
  const [s, ns] = process.hrtime()
  return s * 1e6 + Math.floor(ns / 1e3)
}

/**
 * The payload of every benchmark event: a conversation_token, plus `t`, the time (µs, see
 * {@link nowUs}) the event was due, which the load client subtracts from its arrival time.
 */
export interface BenchPayload {
  participantId: string
  personaSlug: string
  personaName: string
  segment: string
  token: string
  t: number
}

export function payload (n: number, t: number): BenchPayload {
  return { participantId: 'p1', personaSlug: 'ada', personaName: 'Ada', segment: 's' + (n % 100), token: ' tok', t }
}

/** The event type every variant sends. */
export const EVENT = 'conversation_token'

/**
 * The JSON every variant puts in `data:`, in the shape the hub sends: `{ type, ...payload, timestamp }`.
 * (The hub builds its own; the others use this.)
 */
export function eventData (p: BenchPayload): { type: string, timestamp: number } & BenchPayload {
  return { type: EVENT, ...p, timestamp: Date.now() }
}

export interface Request { id: number, op: string, args: Record<string, unknown> }
export interface Response { id: number, ok: boolean, result?: unknown, error?: string }

/** Serves requests arriving on this process's IPC channel. */
export function serveIpc (handlers: Record<string, (args: any) => unknown>): void {
  process.on('message', (msg: Request) => {
    const handler = handlers[msg.op]
    const reply = (r: Omit<Response, 'id'>): void => { process.send?.({ id: msg.id, ...r }) }
    if (handler === undefined) { reply({ ok: false, error: `unknown op ${msg.op}` }); return }
    Promise.resolve().then(() => handler(msg.args)).then(
      (result) => { reply({ ok: true, result }) },
      (err: Error) => { reply({ ok: false, error: err.stack ?? String(err) }) }
    )
  })
  process.on('disconnect', () => process.exit(0))
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** A numeric command-line option given as `--name value`, or `def`. */
export function numberArg (name: string, def: number, argv: readonly string[] = process.argv.slice(2)): number {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 ? Number(argv[i + 1]) : def
}

/** What ai-client.ts reports of one resume (or POST) stream, to ai-resume.ts. */
export interface Stream {
  tag: string
  /** The HTTP status; 0 until the headers came. */
  status: number
  tStart: number
  tHeaders: number
  tFirst: number
  /** The first chunk's `type` (a replay from the start begins with `start`). */
  firstType: string
  /** Chunks received (`data:` frames besides `[DONE]`). */
  chunks: number
  bytes: number
  /** When the count reached each of the marks asked for. */
  marks: Record<number, number>
  /** The first `error` chunk's errorText, and when it came. */
  errorText?: string
  tError: number
  /** `data: [DONE]` seen, and when. */
  done: boolean
  tDone: number
  /** How the response ended: '' while open, 'end' (complete), 'reset' (the connection broke), 'closed' (by us). */
  ended: '' | 'end' | 'reset' | 'closed'
  tEnded: number
  /** The body of a response that was not an event stream (an error's JSON), its first 200 characters. */
  body?: string
}

/** A free TCP port on 127.0.0.1 (for a private redis-server). */
export async function freePort (): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  server.close()
  await once(server, 'close')
  return port
}
