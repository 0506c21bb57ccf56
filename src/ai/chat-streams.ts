/*
 * `chatStreams()`: an AI SDK chat's answers as sessions of one kind — `start` pipes an answer and streams it to
 * the POST, `resume()` serves `GET …/:id/stream` (204, or the answer from its start), `stop` aborts it.
 */
import type { InferUIMessageChunk, UIMessage } from 'ai'
import type { FastifyReply, RouteHandlerMethod, RouteShorthandOptions } from 'fastify'
import { randomUUID } from 'node:crypto'
import { FST_ERR_SSE_HUB_ANSWER_IN_PROGRESS, FST_ERR_SSE_HUB_INVALID_OPTION, FST_ERR_SSE_HUB_INVALID_SESSION_ID } from '../errors.js'
import type { SessionKind } from '../events.js'
import type { SseHub } from '../hub.js'
import type { PipedEvent, PipeSource } from '../pipe.js'
import type { SessionRegistry } from '../registry.js'
import { ActiveAnswers } from './answers.js'
import { ERROR_TEXTS, errorChunkJson, UI_MESSAGE_STREAM_FORMAT } from './wire-format.js'

/** Options of {@link chatStreams}. */
export interface ChatStreamsOptions {
  /** The kind (declared in the hub's `kinds` option) whose sessions are the answers; it speaks the UI message stream. */
  kind: SessionKind
  /**
   * An answer longer than this (its events' encoded bytes) ends with an `error` chunk, so that a client resuming
   * gets all of it or is told. At most, and by default, the hub's `historyBytes`.
   */
  maxAnswerBytes?: number
  /**
   * An answer of more chunks than this ends with an `error` chunk. At most, and by default, the hub's `historySize`,
   * or the Redis backplane's `maxLen` when smaller.
   */
  maxAnswerChunks?: number
  /** The route parameter of {@link ChatStreams.resume} holding the chat id. Default `'id'`. */
  param?: string
}

/**
 * The event map of an answers kind, for `interface SessionKinds { answer: AnswerEvents }`: its events are the
 * answer's chunks, by chunk type.
 */
export interface AnswerEvents { [chunkType: string]: object }

/** What the application's `produce` returns: `streamText(…).toUIMessageStream(…)`, or any source of chunks. */
export type ChunkSource<M extends UIMessage> = PipeSource<InferUIMessageChunk<M>>

/** The answers of one chat kind; `M` is the application's `UIMessage` (its metadata, data parts and tools). */
export interface ChatStreams<M extends UIMessage = UIMessage> {
  /**
   * Starts the chat's next answer: calls `produce(signal)` (pass `signal` as `streamText`'s `abortSignal`),
   * appends its chunks to a new answer session, and streams that answer to `reply` as a UI message stream
   * (the sender is one viewer among others: its disconnect stops nothing). Resolves once the reply is streaming.
   * Rejects with `FST_ERR_SSE_HUB_ANSWER_IN_PROGRESS` (409) when the chat has an answer in progress.
   */
  start (chatId: string, produce: (signal: AbortSignal) => ChunkSource<M>, reply: FastifyReply): Promise<void>
  /**
   * Route options for `GET …/:id/stream` (`DefaultChatTransport`'s resume): 204 when the chat has no answer in
   * progress, else the answer from its start (after `Last-Event-ID` when one is sent), then live, then
   * `data: [DONE]` and the end of the response.
   */
  resume (): RouteShorthandOptions & { handler: RouteHandlerMethod }
  /** Stops the chat's answer in progress (it ends with an `abort` chunk); resolves false when there was none. */
  stop (chatId: string): Promise<boolean>
}

// A chat id is a key of the mapping (and, with Redis, part of a key): printable ASCII, bounded.
const CHAT_ID = /^[\x21-\x7e]{1,256}$/

const UI_MESSAGE_STREAM_HEADER = 'x-vercel-ai-ui-message-stream'

/** An upper bound of an event's frame besides its JSON: `id: <id>\nevent: <type>\ndata: …\n\n`. */
const FRAME_BYTES = 64

/**
 * The answers of an AI SDK chat, resumable from any instance: `const chats = chatStreams(fastify.sse, { kind: 'chat' })`.
 * The kind must be declared in the hub's `kinds` option, and is given to answers only.
 */
export function chatStreams<M extends UIMessage = UIMessage> (hub: SseHub, options: ChatStreamsOptions): ChatStreams<M> {
  const registry = hub.kind(options.kind) as SessionRegistry<AnswerEvents>
  const limits = registry.replayLimits
  const maxBytes = limit(options.maxAnswerBytes, 'maxAnswerBytes', 1024, limits.bytes)
  const maxChunks = limit(options.maxAnswerChunks, 'maxAnswerChunks', 2, limits.events)
  const param = options.param ?? 'id'
  registry.useWireFormat(UI_MESSAGE_STREAM_FORMAT)
  const answers = new ActiveAnswers(options.kind, registry.sharedValues, (answerId) => registry.producing(answerId))
  const tooLong = { type: 'error', payload: { type: 'error', errorText: ERROR_TEXTS.too_long } }
  const reserve = Buffer.byteLength(errorChunkJson(ERROR_TEXTS.too_long)) + FRAME_BYTES

  /** The chunks of `source` while the answer fits, then (when it does not) the `error` chunk that says so. */
  async function * bounded (source: ChunkSource<M>): AsyncGenerator<PipedEvent<AnswerEvents>> {
    let bytes = reserve
    let chunks = 1
    for await (const chunk of source as AsyncIterable<InferUIMessageChunk<M>>) {
      bytes += Buffer.byteLength(JSON.stringify(chunk)) + FRAME_BYTES
      if (++chunks > maxChunks || bytes > maxBytes) {
        yield tooLong
        return
      }
      yield { type: chunk.type, payload: chunk }
    }
  }

  return {
    async start (chatId, produce, reply) {
      checkChatId(chatId)
      const answerId = randomUUID()
      let settle!: (claimed: boolean) => void
      const claimed = new Promise<boolean>((resolve) => { settle = resolve })
      // The answer's lease is taken before the chat is mapped to it: a mapped answer always has a producer.
      const run = registry.pipe(answerId, async function * answer (signal) {
        const ok = await answers.claim(chatId, answerId)
        settle(ok)
        if (ok) yield * bounded(produce(signal))
      })
      // Not claimed: the pipe failed (its error is thrown), or ended (empty) as the chat has an answer in progress.
      const failed = run.then(() => undefined, (err: unknown) => err)
      if (!await Promise.race([claimed, failed.then(() => false)])) {
        const err = await failed
        throw err ?? new FST_ERR_SSE_HUB_ANSWER_IN_PROGRESS(JSON.stringify(chatId))
      }
      failed.then((err) => {
        if (err !== undefined) reply.log.error({ err, chatId, answerId }, 'sse-hub: an answer failed')
        return answers.release(chatId, answerId)
      }).catch((err: unknown) => { reply.log.warn({ err, chatId, answerId }, 'sse-hub: an answer ended, but its chat could not be told') })
      reply.header(UI_MESSAGE_STREAM_HEADER, 'v1')
      try {
        // The sender is one viewer among others: it gets the answer from its start.
        await registry.add(answerId, reply)
      } catch (err) {
        // Refused before its stream began (a limit, say): the answer is not made for nobody.
        await registry.stop(answerId)
        throw err
      }
    },

    resume () {
      return {
        exposeHeadRoute: false,
        handler: async function sseHubResumeAnswer (request, reply) {
          const chatId = (request.params as Record<string, string | undefined>)[param] as string
          checkChatId(chatId)
          const answerId = await answers.get(chatId)
          if (answerId === undefined) return reply.code(204).send()
          reply.header(UI_MESSAGE_STREAM_HEADER, 'v1')
          await registry.add(answerId, reply)
        }
      }
    },

    async stop (chatId) {
      checkChatId(chatId)
      const answerId = await answers.get(chatId)
      return answerId === undefined ? false : await registry.stop(answerId)
    }
  }
}

function checkChatId (chatId: unknown): asserts chatId is string {
  if (typeof chatId !== 'string' || !CHAT_ID.test(chatId)) throw new FST_ERR_SSE_HUB_INVALID_SESSION_ID('chat id: 1 to 256 printable ASCII characters')
}

/** An answer limit: `given` within [min, max], or `max` when not given. */
function limit (given: number | undefined, name: string, min: number, max: number): number {
  if (max < min) throw new FST_ERR_SSE_HUB_INVALID_OPTION(`'${name}': the hub's history holds too little for an answer (${max}; at least ${min})`)
  if (given === undefined) return max
  if (!Number.isInteger(given) || given < min || given > max) throw new FST_ERR_SSE_HUB_INVALID_OPTION(`'${name}': must be an integer from ${min} to ${max} (the hub's history)`)
  return given
}
