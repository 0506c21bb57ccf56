// The chat's simulated language model: an AI SDK `LanguageModelV4` (no API key, no network) whose answer to the
// last user message is made from the corpus and streamed word by word, a delay apart, until the call's signal aborts.
import type { LanguageModel } from 'ai'
import { setTimeout as sleep } from 'node:timers/promises'
import { answerText, tokenize } from './corpus.js'

/** The AI SDK's model interface this implements (`ai` types it; the spec is `@ai-sdk/provider`'s). */
type LanguageModelV4 = Extract<LanguageModel, { specificationVersion: 'v4' }>
type CallOptions = Parameters<LanguageModelV4['doStream']>[0]
type StreamPart = Awaited<ReturnType<LanguageModelV4['doStream']>>['stream'] extends ReadableStream<infer P> ? P : never

const TEXT_ID = 'answer'

/** The text of the prompt's last user message. */
function lastQuestion (prompt: CallOptions['prompt']): string {
  const last = [...prompt].reverse().find((m) => m.role === 'user')
  if (last === undefined || last.role !== 'user') return ''
  return last.content.map((p) => p.type === 'text' ? p.text : '').join('')
}

/** Token usage as the spec counts it: one input "token" per word of the question, one output token per word sent. */
function usage (question: string, sent: number): { inputTokens: { total: number, noCache: number, cacheRead: number, cacheWrite: number }, outputTokens: { total: number, text: number, reasoning: number } } {
  const input = tokenize(question).length
  return {
    inputTokens: { total: input, noCache: input, cacheRead: 0, cacheWrite: 0 },
    outputTokens: { total: sent, text: sent, reasoning: 0 }
  }
}

/**
 * A model that answers from the corpus: `stream-start`, one text part a word per `text-delta` (`tokenDelayMs` before
 * each), `finish`. When the call's `abortSignal` aborts, the stream stops at once (no more words, no timer left).
 */
export function simulatedModel (tokenDelayMs: number): LanguageModelV4 {
  return {
    specificationVersion: 'v4',
    provider: 'fastify-sse-hub-example',
    modelId: 'corpus',
    supportedUrls: {},

    async doGenerate (options) {
      const question = lastQuestion(options.prompt)
      const text = answerText(question)
      return {
        content: [{ type: 'text', text }],
        finishReason: { unified: 'stop', raw: 'stop' },
        usage: usage(question, tokenize(text).length),
        warnings: []
      }
    },

    async doStream (options) {
      const question = lastQuestion(options.prompt)
      const words = tokenize(answerText(question))
      const signal = options.abortSignal
      let next = 0
      let started = false
      const stream = new ReadableStream<StreamPart>({
        async pull (controller) {
          if (!started) {
            started = true
            controller.enqueue({ type: 'stream-start', warnings: [] })
            controller.enqueue({ type: 'text-start', id: TEXT_ID })
            return
          }
          if (next < words.length) {
            try {
              signal?.throwIfAborted()
              if (tokenDelayMs > 0) await sleep(tokenDelayMs, undefined, signal === undefined ? {} : { signal })
            } catch (err) {
              // Aborted: streamText ends the answer with its `abort` chunk; the model just stops.
              controller.error(err)
              return
            }
            controller.enqueue({ type: 'text-delta', id: TEXT_ID, delta: words[next++] as string })
            return
          }
          controller.enqueue({ type: 'text-end', id: TEXT_ID })
          controller.enqueue({ type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage: usage(question, words.length) })
          controller.close()
        }
      })
      return { stream }
    }
  }
}
