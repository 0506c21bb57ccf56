/*
 * The example server's entry: builds the app and starts it. The design's routes on the in-memory hub, a simulated
 * multi-persona conversation (and debate) that streams tokens, and a live page at `/`; an AI SDK chat that resumes
 * (fastify-sse-hub/ai, a simulated model) at `/chat.html`. The pieces are in example/ (routes.ts, simulation.ts and
 * its scripts, chat.ts and chat-model.ts, corpus.ts, tls.ts; chat-page.ts is the chat page's script).
 *
 *   npm start                      HTTP/1.1 on http://127.0.0.1:3000
 *   HTTP2=1 npm start              HTTP/2 over TLS (self-signed certificate made at start-up), HTTP/1.1 fallback
 *   HTTP2=1 H2C=1 npm start        HTTP/2 over cleartext (h2c; curl --http2-prior-knowledge)
 *   PORT=8080 HOST=0.0.0.0 npm start
 *   METRICS=1 npm start            also GET /metrics: the hub's Prometheus metrics (example/metrics.ts)
 *
 * `build()` returns the Fastify app without listening, for tests.
 */
import type { LanguageModel } from 'ai'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import fastifyStatic from '@fastify/static'
import { existsSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import path from 'node:path'
import sseHub, { backplaneFromEnv, type ConversationEvents, type DebateEvents, type SessionKind, type SseHubOptions } from './src/index.js'
import { resolveOptions } from './src/options.js'
import { CHAT_KIND, registerChat } from './example/chat.js'
import { conversationScript } from './example/conversation.js'
import { debateScript } from './example/debate.js'
import { metricsRegistry, registerMetricsRoute } from './example/metrics.js'
import { registerKind } from './example/routes.js'
import { Simulations } from './example/simulation.js'
import { selfSignedCert } from './example/tls.js'

export type { ChatBody } from './example/chat.js'
export type { LaunchBody } from './example/routes.js'

/** The chat page's script as `npm run build:example` bundles it (served from public/). */
export const CHAT_PAGE_BUNDLE = fileURLToPath(new URL('./public/build/chat.js', import.meta.url))

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
  /**
   * Sessions kept per kind; launching past it forgets the oldest finished one (409 when all are active). Default 1000.
   * Also the chats whose messages are kept.
   */
  maxSessions?: number
  /** Serve the hub's Prometheus metrics at `GET /metrics`. Default false. */
  metrics?: boolean
  /** The chat's model per answer, given the request's `tokenDelayMs`. Default: the simulated one (example/chat-model.ts). */
  chatModel?: (tokenDelayMs: number) => LanguageModel
}

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

  // Scaling past one process: with REDIS_URL (or REDIS_CLUSTER_NODES) set, every instance shares one set of sessions through Redis.
  const hubOptions: SseHubOptions = { ...opts.hub, backplane: opts.hub?.backplane ?? backplaneFromEnv() }
  // The chat's answers are sessions of a kind of their own.
  if (hubOptions.kinds?.includes(CHAT_KIND) !== true) hubOptions.kinds = [...hubOptions.kinds ?? [], CHAT_KIND]
  // A late joiner's first event: the run's state (transcript, participants, the turn being spoken so far).
  const runs: Partial<Record<SessionKind, Simulations<ConversationEvents> | Simulations<DebateEvents>>> = {}
  hubOptions.snapshot ??= (kind, sessionId) => runs[kind]?.get(sessionId)?.snapshot()
  const registry = opts.metrics === true ? metricsRegistry() : undefined
  if (registry !== undefined) hubOptions.metrics = { registry }
  await app.register(sseHub, hubOptions)
  if (registry !== undefined) registerMetricsRoute(app, registry)

  await app.register(fastifyStatic, { root: fileURLToPath(new URL('./public/', import.meta.url)) })
  // The page's subscriber: the package's own `fastify-sse-hub/client`, as built (plain ESM, no bundler).
  const client = fileURLToPath(new URL('./dist/browser/', import.meta.url))
  if (!existsSync(path.join(client, 'index.js'))) throw new Error(`the built client is missing (${client}): run npm run build first`)
  await app.register(fastifyStatic, { root: client, prefix: '/client/', decorateReply: false })
  // The chat page's script, bundled by `npm run build:example` (scripts/bundle-chat-page.ts) into public/build/.
  if (!existsSync(CHAT_PAGE_BUNDLE)) throw new Error(`the chat page's bundle is missing (${CHAT_PAGE_BUNDLE}): run npm run build:example first`)

  const maxSessions = opts.maxSessions ?? 1000
  const conversations = new Simulations<ConversationEvents>(app.sse.conversations, conversationScript, maxSessions)
  const debates = new Simulations<DebateEvents>(app.sse.debates, debateScript, maxSessions)
  runs.conversation = conversations
  runs.debate = debates
  // The hub's session-id rule (its default unless `opts.hub` sets one) checks the ids of the JSON routes too.
  const { sessionIdPattern } = resolveOptions(hubOptions)
  registerKind(app, conversations, sessionIdPattern)
  registerKind(app, debates, sessionIdPattern)
  registerChat(app, { idPattern: sessionIdPattern, maxChats: maxSessions, model: opts.chatModel })
  // Stop every run (and its timer) before the hub ends the streams: nothing is broadcast into a closing server.
  app.addHook('preClose', async () => {
    conversations.stopAll()
    debates.stopAll()
  })

  app.get('/api/sse/stats', async () => app.sse.getStats())
  return app
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
    metrics: flag('metrics', 'METRICS'),
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
