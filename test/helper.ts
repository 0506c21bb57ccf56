/*
 * Shared test helpers: a hub-backed Fastify app, and a real SSE client over a
 * real HTTP connection whose bytes are parsed by eventsource-parser.
 * Every wait is for an event, never for a fixed time.
 */
import Fastify, { type FastifyInstance, type FastifyPluginAsync, type FastifyServerOptions } from 'fastify'
import fastifySseModule from '@fastify/sse'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import net from 'node:net'
import { Writable } from 'node:stream'
import { createParser, type EventSourceMessage, type ParseError } from 'eventsource-parser'
import type { Browser } from 'playwright-core'
import { generate } from 'selfsigned'
import sseHub, { type SseHubOptions } from '../src/index.js'

/**
 * @fastify/sse, for tests of an application's own routes with its `sse` option: the application registers it (the
 * hub does not). A CommonJS module: its default import is the fastify-plugin-wrapped function, whatever its types say.
 */
export const fastifySse = fastifySseModule as unknown as FastifyPluginAsync<{ heartbeatInterval?: number }>

/** A Fastify app with the hub and one stream route per kind: `/conversations/:id/stream`, `/debates/:id/stream`. */
export async function buildApp (options: SseHubOptions = {}, server: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, ...server })
  await app.register(sseHub, options)
  app.get('/conversations/:id/stream', app.sse.stream('conversation'))
  app.get('/debates/:id/stream', app.sse.stream('debate'))
  return app
}

/** Every raw response the app creates from now on, in request order (to spy on or stall them). */
export function rawResponses (app: FastifyInstance): http.ServerResponse[] {
  const raws: http.ServerResponse[] = []
  app.addHook('onRequest', async (request, reply) => { raws.push(reply.raw as http.ServerResponse) })
  return raws
}

/** Listens on a free loopback port; returns the base URL. The app is closed when the test ends. */
export async function listen (app: FastifyInstance, t?: { teardown: (fn: () => unknown) => void }): Promise<string> {
  t?.teardown(() => app.close())
  return app.listen({ port: 0, host: '127.0.0.1' })
}

let tls: Promise<{ key: string, cert: string }> | undefined
/**
 * A self-signed TLS certificate, made once per test process. Clients skip verification, so no names are
 * needed; an EC key, since RSA key generation takes seconds on a busy machine.
 */
export function selfSignedCert (): Promise<{ key: string, cert: string }> {
  tls ??= generate([{ name: 'commonName', value: 'localhost' }], { keyType: 'ec', algorithm: 'sha256' })
    .then((pems) => ({ key: pems.private, cert: pems.cert }))
  return tls
}

/** One parsed SSE message, its data JSON-parsed when it is JSON. */
export interface Received extends EventSourceMessage {
  json: Record<string, unknown>
}

/** What one SSE stream received, parsed by eventsource-parser; the base of the test clients. */
export class SseRecorder {
  readonly events: Received[] = []
  readonly comments: string[] = []
  readonly retries: number[] = []
  readonly parseErrors: ParseError[] = []
  ended = false
  #waiters: Array<() => void> = []
  protected readonly parser = createParser({
    onEvent: (msg) => {
      let json: Record<string, unknown> = {}
      try { json = JSON.parse(msg.data) } catch {}
      this.events.push({ ...msg, json })
      this.wake()
    },
    onComment: (c) => { this.comments.push(c); this.wake() },
    onRetry: (r) => { this.retries.push(r) },
    onError: (e) => { this.parseErrors.push(e) }
  })

  /** Events other than `connection_established`. */
  get received (): Received[] {
    return this.events.filter((e) => e.event !== 'connection_established')
  }

  /** The id this client was given in `connection_established`. */
  get clientId (): string {
    return this.events.find((e) => e.event === 'connection_established')?.json.clientId as string
  }

  /** Runs the waiters of `until`: call after anything that may change a condition. */
  protected wake (): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const w of waiters) w()
  }

  /** Resolves when `predicate` holds; rejects if the stream ends first. */
  async until (predicate: (c: this) => boolean, what = 'condition'): Promise<void> {
    while (!predicate(this)) {
      if (this.ended) throw new Error(`stream ended before ${what}`)
      await new Promise<void>((resolve) => this.#waiters.push(resolve))
    }
  }

  /** Waits for `connection_established`. */
  async connected (): Promise<this> {
    await this.until((c) => c.clientId !== undefined, 'connection_established')
    return this
  }

  /** Waits for `n` events besides `connection_established`. */
  async receive (n: number): Promise<Received[]> {
    await this.until((c) => c.received.length >= n, `${n} events`)
    return this.received
  }

  /** Waits until the stream ends. */
  async end (): Promise<void> {
    await this.until((c) => c.ended, 'end')
  }
}

/** A raw-HTTP SSE client that records everything it receives. */
export class SseClient extends SseRecorder {
  statusCode = 0
  headers: http.IncomingHttpHeaders = {}
  body = ''
  readonly req: http.ClientRequest
  res: http.IncomingMessage | undefined

  /** `options` go to http.get() (e.g. `localAddress`, `agent: false` for a connection of its own). */
  constructor (url: string, headers: Record<string, string> = {}, options: http.RequestOptions = {}) {
    super()
    this.req = http.get(url, { ...options, headers: { accept: 'text/event-stream', ...headers } })
    this.req.on('error', () => { this.ended = true; this.wake() })
    this.req.on('response', (res) => {
      this.res = res
      this.statusCode = res.statusCode ?? 0
      this.headers = res.headers
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        if (this.statusCode === 200) this.parser.feed(chunk)
        else this.body += chunk
        this.wake()
      })
      res.on('close', () => { this.ended = true; this.wake() })
      this.wake()
    })
  }

  /** Waits for the response head. */
  async opened (): Promise<this> {
    await this.until((c) => c.res !== undefined, 'response')
    return this
  }

  /** Waits for the whole (non-SSE) body of an error reply. */
  async errorBody (): Promise<Record<string, unknown>> {
    await this.opened()
    if (!this.res!.complete) await once(this.res!, 'end')
    return JSON.parse(this.body)
  }

  /** Drops the connection from the client side. */
  close (): void {
    this.req.destroy()
  }
}

/** The ids of the events a client received (besides `connection_established`), in order. */
export const ids = (c: SseRecorder): string[] => c.received.map((e) => e.id as string)

/** The `token` of each event a client received, in order; a `resync` shows as `'RESYNC'`. */
export const tokens = (c: SseRecorder): string[] => c.received.map((e) => e.event === 'resync' ? 'RESYNC' : e.json.token as string)

/** Opens an SSE client and waits for its `connection_established`. */
export async function connect (url: string, headers?: Record<string, string>): Promise<SseClient> {
  return new SseClient(url, headers).connected()
}

/** A valid conversation token payload. */
export function token (text: string, n = 0): { participantId: string, personaSlug: string, personaName: string, segment: string, token: string } {
  return { participantId: 'p1', personaSlug: 'ada', personaName: 'Ada', segment: `s${n}`, token: text }
}

/**
 * Resolves once `fn()` (sync or async) is true, checking every few ms; rejects after `ms`. For conditions
 * another process makes true (Redis, Chromium, a child server), where {@link eventually}'s spin would burn CPU.
 * The deadline is a guard against hanging, not a timing assertion.
 */
export async function waitFor (fn: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!await fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** Resolves once `fn()` is true, checking again after each turn of the event loop's I/O phase. */
export async function eventually (fn: () => boolean, what: string, limit = 10_000): Promise<void> {
  for (let i = 0; !fn(); i++) {
    if (i >= limit) throw new Error(`never happened: ${what}`)
    await new Promise((resolve) => setImmediate(resolve))
  }
}

/** An SSE stream read over an HTTP/2 session (node:http2), recording what it receives like {@link SseClient}. */
export class H2SseStream extends SseRecorder {
  headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader = {}
  body = ''
  /** True when the server ended the stream with END_STREAM (not a reset). */
  endedCleanly = false
  readonly stream: http2.ClientHttp2Stream

  constructor (session: http2.ClientHttp2Session, path: string, headers: Record<string, string> = {}) {
    super()
    this.stream = session.request({ ':path': path, accept: 'text/event-stream', ...headers })
    this.stream.setEncoding('utf8')
    this.stream.on('response', (h) => { this.headers = h; this.wake() })
    this.stream.on('data', (chunk: string) => {
      if (this.headers[':status'] === 200) this.parser.feed(chunk)
      else this.body += chunk
      this.wake()
    })
    this.stream.on('end', () => { this.endedCleanly = this.stream.rstCode === undefined || this.stream.rstCode === http2.constants.NGHTTP2_NO_ERROR })
    this.stream.on('error', () => {})
    this.stream.on('close', () => { this.ended = true; this.wake() })
  }
}

/** How many connections the server holds now. */
export async function connectionCount (server: http.Server): Promise<number> {
  return new Promise<number>((resolve, reject) => { server.getConnections((err, n) => { if (err !== null) reject(err); else resolve(n) }) })
}

/**
 * Resolves once the server holds no connection (an aborted request may still be in flight until then).
 * Idle keep-alive connections, left by streams the server ended, are closed as Fastify's close() would.
 */
export async function noConnections (server: http.Server): Promise<void> {
  for (let i = 0; i < 100_000; i++) {
    server.closeIdleConnections()
    if (await connectionCount(server) === 0) return
    await new Promise((resolve) => setImmediate(resolve))
  }
  throw new Error('the server kept connections open')
}

/**
 * A raw TCP peer that opens the stream at `path` of the server at base URL `url`, reads until
 * `connection_established`, then stops reading for good (a slow or half-open client). Its socket
 * errors are ignored; the caller destroys it.
 */
export async function stalledPeer (url: string, path: string): Promise<net.Socket> {
  const socket = net.connect(Number(new URL(url).port), '127.0.0.1')
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`)
  let seen = ''
  await new Promise<void>((resolve, reject) => {
    socket.on('error', reject)
    socket.on('data', (chunk: Buffer) => {
      seen += chunk.toString('latin1')
      if (seen.includes('event: connection_established')) {
        socket.pause()
        socket.removeAllListeners('data')
        resolve()
      }
    })
  })
  socket.on('error', () => {})
  return socket
}

/**
 * A round-robin TCP proxy on a free loopback port, as a load balancer without sticky sessions: each
 * new connection goes to the next of `upstreams` (base URLs). Closed, with its connections, when the test ends.
 */
export async function roundRobinProxy (upstreams: readonly string[], t: { teardown: (fn: () => unknown) => void }): Promise<string> {
  const ports = upstreams.map((u) => Number(new URL(u).port))
  const sockets = new Set<net.Socket>()
  let next = 0
  const server = net.createServer((client) => {
    const upstream = net.connect(ports[next++ % ports.length] as number, '127.0.0.1')
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => {})
      s.on('close', () => {
        sockets.delete(s)
        client.destroy()
        upstream.destroy()
      })
    }
    client.pipe(upstream).pipe(client)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    for (const s of sockets) s.destroy()
    server.close()
    await once(server, 'close')
  })
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
}

/**
 * Process warnings that come from the test tooling, not from the hub: "no warning" checks look at the rest.
 * Matched exactly, by name, code and message, so that any other warning, from the hub or its dependencies, still fails:
 * - DEP0205 (Node >= 26): tap's loaders (@tapjs/typescript's ts-node, @tapjs/mock, @tapjs/processinfo) install their
 *   ESM hooks with `module.register()`, which Node 26 deprecates. Emitted once per process, when the test file is
 *   loaded; the hub never calls `module.register()`.
 */
const TOOLING_WARNINGS: ReadonlyArray<{ name: string, code: string, message: string }> = [
  { name: 'DeprecationWarning', code: 'DEP0205', message: '`module.register()` is deprecated. Use `module.registerHooks()` instead.' }
]

/** True when `warning` (from `process.on('warning')`) is one of {@link TOOLING_WARNINGS}. */
export function isToolingWarning (warning: Error & { code?: string }): boolean {
  return TOOLING_WARNINGS.some((w) => warning.name === w.name && warning.code === w.code && warning.message === w.message)
}

/** The part of a tap test the component helpers use. */
export interface TapLike {
  test: (name: string, extra: { skip: string }, cb: () => void) => unknown
  teardown: (fn: () => unknown) => void
  fail: (msg: string) => void
}

/**
 * A real component (`what`) could not start: a loud skip, or a failure when the environment variable `require` is
 * '1' (CI sets it, so a missing component fails CI instead of skipping). `install` says how to get it.
 */
export function componentMissing (t: TapLike, what: string, err: unknown, install: string, require: string): void {
  const reason = `SKIPPING the ${what}: it could not be started (${(err as Error).message}). ${install}, or set ${require}=1 to make this a failure.`
  if (process.env[require] === '1') {
    t.fail(reason.replace('SKIPPING', 'FAILING'))
  } else {
    console.error(`\n*** ${reason}\n`)
    t.test(what, { skip: reason }, () => {})
  }
}

/**
 * One request to a {@link scriptedSseServer}: what the client sent, and the raw response the test writes exact
 * SSE bytes to (a protocol client tested against frames the hub does not send yet, or sends only in rare cases).
 */
export class ScriptedStream {
  /** Resolves when the response's connection closes (the client went away, or the server ended it). */
  readonly closed: Promise<void>
  constructor (readonly lastEventId: string | undefined, readonly url: string, readonly raw: http.ServerResponse) {
    this.closed = new Promise((resolve) => { raw.on('close', () => { resolve() }) })
  }

  /** Answers 200 as an event stream, with a `retry:` of 10 ms, then `text`. */
  open (text = ''): void {
    this.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    this.raw.write('retry: 10\n\n' + text)
  }

  /** Writes one event: `id:` when `id` is given (`''` writes `id:` alone), `event:`, `data:` as JSON (a string as is). */
  event (type: string, data: unknown, id?: string): void {
    const idLine = id === undefined ? '' : (id === '' ? 'id:\n' : `id: ${id}\n`)
    this.raw.write(`${idLine}event: ${type}\ndata: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`)
  }

  /** Ends the response cleanly. */
  end (): void { this.raw.end() }

  /** Answers `status` with an empty body instead of a stream (204 No Content: "stop reconnecting"). */
  refuse (status: number): void {
    this.raw.writeHead(status)
    this.raw.end()
  }
}

/**
 * A Fastify server of the test's own, on a free port, whose `GET /stream` hands each request to the test as a
 * {@link ScriptedStream} (in arrival order) and writes nothing by itself. Closed, its connections with it, when the test ends.
 */
export async function scriptedSseServer (t: { teardown: (fn: () => unknown) => void }): Promise<{ url: string, streams: ScriptedStream[], stream: (n: number) => Promise<ScriptedStream> }> {
  const app = Fastify({ logger: false, forceCloseConnections: true })
  const streams: ScriptedStream[] = []
  app.get('/stream', (request, reply) => {
    reply.hijack()
    const header = request.headers['last-event-id']
    streams.push(new ScriptedStream(typeof header === 'string' ? header : undefined, request.url, reply.raw))
  })
  const url = await listen(app, t) + '/stream'
  /** The `n`th request (1-based), once it has arrived. */
  const stream = async (n: number): Promise<ScriptedStream> => {
    await waitFor(() => streams.length >= n, `request ${n} to the scripted stream`)
    return streams[n - 1]!
  }
  return { url, streams, stream }
}

/** A pino destination that keeps every line it is given. */
export function lines (): { stream: Writable, logged: Array<Record<string, unknown>> } {
  const logged: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') logged.push(JSON.parse(line))
      done()
    }
  })
  return { stream, logged }
}

/**
 * A Node process running the TypeScript `script`, with this process's loaders (under tap: its TypeScript loader and
 * coverage; else tsx) and `preload` modules first; its stdout piped; ended when the test ends.
 */
export function spawnScript (t: { teardown: (fn: () => unknown) => void }, script: string, env: NodeJS.ProcessEnv, preload: string[] = []): ChildProcess {
  const loader = process.execArgv.some((a) => a.includes('@tapjs/typescript')) ? process.execArgv : ['--import', 'tsx']
  const child = spawn(process.execPath, [...loader, ...preload.flatMap((p) => ['--import', p]), script], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    await exited
  })
  return child
}

/** The Chromium the browser tests drive: `CHROMIUM_PATH`, else the Debian package's (`apt-get install -y chromium`). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--ignore-certificate-errors'
]

/**
 * Headless Chromium for a file's browser tests: playwright-core driving the system binary (it downloads none),
 * launched before the file's first test and closed after its last. The returned function gives the browser once
 * launched. Without a binary, undefined after a loud skip of the whole file, or a failure with
 * SSE_HUB_REQUIRE_BROWSER=1 (CI sets it). playwright-core is loaded only here, by the files that use it.
 */
export function chromiumOrSkip (t: { before: (fn: () => unknown) => void, teardown: (fn: () => unknown) => void, fail: (msg: string) => void, plan: (n: number, why: string) => void }): (() => Browser) | undefined {
  if (!existsSync(CHROMIUM)) {
    const reason = `BROWSER TESTS SKIPPED: no chromium at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)`
    if (process.env.SSE_HUB_REQUIRE_BROWSER === '1') {
      t.fail(`${reason}, and SSE_HUB_REQUIRE_BROWSER=1 requires them`)
    } else {
      console.error(`\n*** ${reason} ***\n`)
      t.plan(0, reason)
    }
    return undefined
  }
  let browser: Browser | undefined
  t.before(async () => {
    const { chromium } = await import('playwright-core')
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS })
  })
  t.teardown(async () => { await browser?.close() })
  return () => browser as Browser
}
