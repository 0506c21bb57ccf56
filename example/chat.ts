// The example's AI chat: the backend of an AI SDK chat that resumes (`useChat({ resume: true })`) on the hub's kind
// `chat` (fastify-sse-hub/ai), its answers made by the simulated model, and each chat's messages as the app saved them.
import { convertToModelMessages, safeValidateUIMessages, streamText, type LanguageModel, type UIMessage } from 'ai'
import type { FastifyInstance, FastifyReply } from 'fastify'
import { randomUUID } from 'node:crypto'
import { chatStreams } from '../src/ai/index.js'
import type { SessionKind } from '../src/index.js'
import { simulatedModel } from './chat-model.js'

/** The hub kind of the chat's answers (the example declares it in the hub's `kinds` option). */
export const CHAT_KIND = 'chat'

/** The body of `POST /api/chat`: what `DefaultChatTransport` sends, and the example's `tokenDelayMs`. */
export interface ChatBody {
  id: string
  messages: UIMessage[]
  trigger?: 'submit-message' | 'regenerate-message'
  messageId?: string
  /** Milliseconds between two words of the answer. Default 40. */
  tokenDelayMs?: number
}

const DEFAULT_TOKEN_DELAY_MS = 40

/**
 * The messages of each chat, as the app saved them: the request's at the start of an answer (a page reloaded
 * mid-answer shows the question), then `onFinish`'s. A database in a real app; here this process's memory, the
 * least recently saved chat forgotten past `max`.
 */
class SavedChats {
  readonly #chats = new Map<string, UIMessage[]>()
  constructor (readonly max: number) {}

  get (id: string): UIMessage[] | undefined {
    return this.#chats.get(id)
  }

  set (id: string, messages: UIMessage[]): void {
    this.#chats.delete(id)
    this.#chats.set(id, messages)
    if (this.#chats.size > this.max) this.#chats.delete(this.#chats.keys().next().value as string)
  }
}

/** Options of {@link registerChat}. */
export interface ChatOptions {
  /** A chat id's rule: the hub's session-id pattern. */
  idPattern: RegExp
  /** Chats whose messages are kept. */
  maxChats: number
  /** Each answer's model, given the request's `tokenDelayMs`. Default: the simulated model (chat-model.ts). */
  model?: (tokenDelayMs: number) => LanguageModel
}

/**
 * Mounts `POST /api/chat`, `GET /api/chat/:id/stream`, `POST /api/chat/:id/stop` and `GET /api/chat/:id` on `app`,
 * whose hub declares the kind {@link CHAT_KIND}.
 */
export function registerChat (app: FastifyInstance, { idPattern, maxChats, model = simulatedModel }: ChatOptions): void {
  // The kind is declared in the hub's `kinds` option; SessionKind types the built-in kinds only.
  const chats = chatStreams(app.sse, { kind: CHAT_KIND as SessionKind })
  const saved = new SavedChats(maxChats)
  const idParams = {
    type: 'object',
    properties: { id: { type: 'string', pattern: idPattern.source } },
    required: ['id']
  } as const
  const chatBody = {
    type: 'object',
    properties: {
      id: { type: 'string', pattern: idPattern.source },
      // The SDK's own validation (safeValidateUIMessages) checks each part; this bounds the shape and the size.
      messages: {
        type: 'array',
        minItems: 1,
        maxItems: 200,
        items: {
          type: 'object',
          properties: {
            id: { type: 'string', minLength: 1, maxLength: 256 },
            role: { enum: ['system', 'user', 'assistant'] },
            parts: { type: 'array', maxItems: 1000, items: { type: 'object', required: ['type'] } }
          },
          required: ['id', 'role', 'parts']
        }
      },
      trigger: { enum: ['submit-message', 'regenerate-message'] },
      messageId: { type: 'string', maxLength: 256 },
      tokenDelayMs: { type: 'integer', minimum: 0, maximum: 10_000 }
    },
    required: ['id', 'messages'],
    additionalProperties: false
  } as const

  app.post<{ Body: ChatBody }>('/api/chat', { schema: { body: chatBody } }, async (request, reply) => {
    const { id, tokenDelayMs = DEFAULT_TOKEN_DELAY_MS } = request.body
    const checked = await safeValidateUIMessages<UIMessage>({ messages: request.body.messages })
    if (!checked.success) return badRequest(reply, `body/messages: ${checked.error.message}`)
    const messages = checked.data
    if (messages.at(-1)?.role !== 'user') return badRequest(reply, 'body/messages: the last message must be the user\'s')
    const prompt = await convertToModelMessages(messages)
    // 409 JSON (FST_ERR_SSE_HUB_ANSWER_IN_PROGRESS) while the chat has an answer in progress; nothing saved then.
    await chats.start(id, (signal) => {
      saved.set(id, messages)
      return streamText({ model: model(tokenDelayMs), messages: prompt, abortSignal: signal }).toUIMessageStream({
        originalMessages: messages,
        // One id for every replay of the answer.
        generateMessageId: randomUUID,
        onFinish: ({ messages }) => { saved.set(id, messages) }
      })
    }, reply)
  })

  app.get('/api/chat/:id/stream', { ...chats.resume(), schema: { params: idParams } })

  app.post<{ Params: { id: string } }>('/api/chat/:id/stop', { schema: { params: idParams } }, async (request) => {
    return { stopped: await chats.stop(request.params.id) }
  })

  app.get<{ Params: { id: string } }>('/api/chat/:id', { schema: { params: idParams } }, async (request, reply) => {
    const messages = saved.get(request.params.id)
    if (messages === undefined) return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `no chat ${request.params.id}` })
    return { id: request.params.id, messages }
  })
}

function badRequest (reply: FastifyReply, message: string): FastifyReply {
  return reply.code(400).send({ statusCode: 400, error: 'Bad Request', message })
}
