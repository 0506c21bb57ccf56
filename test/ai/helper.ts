/*
 * Helpers of the AI SDK tests: an app with a chat (the SDK's mock model, the three routes of `fastify-sse-hub/ai`,
 * the messages saved in `onFinish`), a model whose stream waits at a gate (or any model's, held), and the SDK's own
 * chat client.
 */
import { AbstractChat, convertToModelMessages, DefaultChatTransport, simulateReadableStream, streamText, type ChatState, type ChatStatus, type LanguageModel, type UIMessage } from 'ai'
import { MockLanguageModelV4 } from 'ai/test'
import type { FastifyInstance } from 'fastify'
import { randomUUID } from 'node:crypto'
import { chatStreams, type ChatStreams, type ChatStreamsOptions } from '../../src/ai/index.js'
import { redisBackplane, type SseHubOptions } from '../../src/index.js'
import type { ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { buildApp, eventually, listen, spawnScript } from '../helper.js'
import { RedisCluster } from '../redis/helper.js'

/** A chat's state kept in plain fields (what a framework's reactive state does, without a framework). */
class PlainState implements ChatState<UIMessage> {
  status: ChatStatus = 'ready'
  error: Error | undefined = undefined
  constructor (public messages: UIMessage[]) {}
  pushMessage = (m: UIMessage): void => { this.messages = [...this.messages, m] }
  popMessage = (): void => { this.messages = this.messages.slice(0, -1) }
  replaceMessage = (i: number, m: UIMessage): void => { this.messages = this.messages.map((old, j) => j === i ? m : old) }
  snapshot = <T>(thing: T): T => structuredClone(thing)
}

/** The SDK's framework-agnostic chat (`AbstractChat`) with `DefaultChatTransport` against `${url}/api/chat`. */
export class TestChat extends AbstractChat<UIMessage> {
  constructor (url: string, id: string, messages: UIMessage[] = [], fetch?: typeof globalThis.fetch) {
    super({ id, state: new PlainState(messages), transport: new DefaultChatTransport({ api: `${url}/api/chat`, fetch }) })
  }

  get answer (): UIMessage | undefined {
    return [...this.messages].reverse().find((m) => m.role === 'assistant')
  }
}

/** A model's stream: `text` as one text part, a word per delta; `gate(i)` (when given) is awaited before chunk `i`. */
export function mockModel (words: string[], gate?: (i: number) => Promise<void> | undefined): MockLanguageModelV4 {
  return new MockLanguageModelV4({
    doStream: async () => {
      let i = 0
      return {
        stream: simulateReadableStream({
          chunks: [
            { type: 'stream-start', warnings: [] },
            { type: 'text-start', id: 't' },
            ...words.map((w) => ({ type: 'text-delta' as const, id: 't', delta: w })),
            { type: 'text-end', id: 't' },
            {
              type: 'finish',
              finishReason: { unified: 'stop', raw: 'stop' },
              usage: { inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: words.length, text: words.length, reasoning: 0 } }
            }
          ],
          _internal: { delay: async () => { await gate?.(i++) } }
        })
      }
    }
  })
}

type LanguageModelV4 = Extract<LanguageModel, { specificationVersion: 'v4' }>

/**
 * `model` with its stream held before its `n`th text delta (1-based) until `wait` resolves or the call is aborted: an
 * answer in progress for as long as a test needs.
 */
export function heldAt (model: LanguageModelV4, n: number, wait: Promise<void>): LanguageModelV4 {
  return {
    ...model,
    doStream: async (options) => {
      const result = await model.doStream(options)
      const signal = options.abortSignal
      const aborted = new Promise<void>((resolve) => { signal?.addEventListener('abort', () => { resolve() }, { once: true }) })
      let deltas = 0
      const hold = new TransformStream({
        async transform (part, controller) {
          if (part.type === 'text-delta' && ++deltas === n) await Promise.race([wait, aborted])
          controller.enqueue(part)
        }
      })
      return { ...result, stream: result.stream.pipeThrough(hold) }
    }
  }
}

/** A gate: `wait` resolves once `open()` is called. */
export function gate (): { wait: Promise<void>, open: () => void } {
  let open!: () => void
  const wait = new Promise<void>((resolve) => { open = resolve })
  return { wait, open }
}

export interface ChatApp {
  app: FastifyInstance
  chats: ChatStreams
  /** What `onFinish` saved per chat: the persisted truth. */
  saved: Map<string, UIMessage[]>
  /** Each answer's signal, per chat, as `produce` was given it. */
  signals: Map<string, AbortSignal>
}

/**
 * An app with the hub (kind `chat`) and the routes `POST /api/chat`, `GET /api/chat/:id/stream`,
 * `POST /api/chat/:id/stop`; `model()` makes each answer's model.
 */
export async function chatApp (model: () => MockLanguageModelV4, hub: SseHubOptions = {}, options: Partial<ChatStreamsOptions> = {}): Promise<ChatApp> {
  const app = await buildApp({ kinds: ['chat'], ...hub })
  const chats = chatStreams(app.sse, { kind: 'chat' as 'conversation', ...options })
  const saved = new Map<string, UIMessage[]>()
  const signals = new Map<string, AbortSignal>()
  app.post('/api/chat', async (request, reply) => {
    const { id, messages } = request.body as { id: string, messages: UIMessage[] }
    const prompt = await convertToModelMessages(messages)
    await chats.start(id, (signal) => {
      signals.set(id, signal)
      return streamText({ model: model(), messages: prompt, abortSignal: signal }).toUIMessageStream({
        originalMessages: messages,
        generateMessageId: randomUUID,
        onFinish: ({ messages }) => { saved.set(id, messages) }
      })
    }, reply)
  })
  app.get('/api/chat/:id/stream', chats.resume())
  app.post('/api/chat/:id/stop', async (request) => ({ stopped: await chats.stop((request.params as { id: string }).id) }))
  return { app, chats, saved, signals }
}

/** The user's message that starts an answer. */
export function userMessage (text: string): UIMessage {
  return { id: randomUUID(), role: 'user', parts: [{ type: 'text', text }] }
}

/** The text of a message's text parts. */
export function text (m: UIMessage | undefined): string {
  return (m?.parts ?? []).map((p) => p.type === 'text' ? p.text : '').join('')
}

/** A {@link chatApp} on the Redis backplane of `redis` (a server or a cluster), listening on a free port until the test ends. */
export async function chatInstance (
  t: { teardown: (fn: () => unknown) => void },
  redis: { readonly url: string } | RedisCluster,
  model: () => MockLanguageModelV4,
  hub: SseHubOptions = {}
): Promise<ChatApp & { url: string }> {
  const where = redis instanceof RedisCluster ? { cluster: redis.nodes } : { url: redis.url }
  const chat = await chatApp(model, { backplane: redisBackplane({ ...where, connectTimeout: 2000 }), ...hub })
  return { ...chat, url: await listen(chat.app, t) }
}

/** Resolves once the chat's answer has begun. */
export async function waitStreaming (chat: TestChat): Promise<void> {
  await eventually(() => text(chat.answer) !== '', 'the answer started')
}

/**
 * A chat instance in a process of its own (fixtures/chat-instance.ts) on the Redis or cluster `redis`, with
 * `leaseMs`, whose model streams `words` words (three at once, then one every 20 ms): the producer a test kills.
 */
export async function producerProcess (
  t: { teardown: (fn: () => unknown) => void },
  redis: { readonly url: string } | RedisCluster,
  leaseMs: number,
  words: number
): Promise<{ child: ChildProcess, url: string }> {
  const where = redis instanceof RedisCluster ? { REDIS_CLUSTER_NODES: redis.nodes.map((n) => `${n.host}:${n.port}`).join(',') } : { REDIS_URL: redis.url }
  const script = fileURLToPath(new URL('./fixtures/chat-instance.ts', import.meta.url))
  const child = spawnScript(t, script, { ...where, LEASE_MS: String(leaseMs), WORDS: String(words), SSE_HUB_TEST_INSTANCE: '1' })
  for await (const line of createInterface({ input: child.stdout! })) return { child, url: (JSON.parse(line) as { url: string }).url }
  throw new Error('the chat instance exited before listening')
}

/**
 * A send on `from` and a fresh Chat resuming the same answer on `to` (with the question, as a reloaded page has it),
 * both under way; `ended` settles once both have ended.
 */
export async function sendAndResume (from: string, to: string, chatId: string, question: UIMessage): Promise<{ sender: TestChat, viewer: TestChat, ended: Promise<unknown> }> {
  const sender = new TestChat(from, chatId)
  const sending = sender.sendMessage(question)
  await waitStreaming(sender)
  const viewer = new TestChat(to, chatId, [question])
  const viewing = viewer.resumeStream()
  await waitStreaming(viewer)
  return { sender, viewer, ended: Promise.all([sending, viewing]) }
}
