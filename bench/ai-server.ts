/*
 * A chat server of the ai-resume scenario, its own process (bench/ai-resume.ts starts two per variant, both on one
 * private Redis):
 *   node bench/.build/bench/ai-server.js <hub|resumable-stream> <redis url> <leaseMs> <maxLen>
 * Both variants serve the same routes, as an AI SDK app does:
 *   POST /api/chat               { id, deltas, pace, hold }: a synthetic answer (no model), streamed to the POST
 *   GET  /api/chat/:id/stream    204 when the chat has no answer in progress, else the answer from its start, then live
 * The answer is the UI message stream of `deltas` text deltas: start, start-step, text-start, N× text-delta,
 * text-end, finish-step, finish (and `data: [DONE]`), the deltas at `pace` per second (0: as fast as it goes), held
 * before the deltas (`hold: 'head'`) or after them (`hold: 'deltas'`) until the orchestrator says `release`.
 *
 * hub: `chatStreams(fastify.sse, { kind: 'chat' })` with `redisBackplane({ url })`.
 * resumable-stream: the AI SDK docs' recipe ("Chatbot Resume Streams") on Fastify: the POST pipes the answer with
 * `pipeUIMessageStreamToResponse` and hands its SSE copy (`consumeSseStream`) to `createNewResumableStream`, then
 * records the chat's active stream id (here in the same Redis, as the app's chat store); the GET reads that id,
 * 204 when none, else `resumeExistingStream` (204 when it answers null or undefined). The id is cleared when the
 * answer ends, as the docs' `onEnd` does.
 */
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { setImmediate as turn } from 'node:timers/promises'
import { pipeUIMessageStreamToResponse, UI_MESSAGE_STREAM_HEADERS, type UIMessageChunk } from 'ai'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { createResumableStreamContext } from 'resumable-stream/ioredis'
import { chatStreams } from '../src/ai/index.js'
import sseHub, { redisBackplane } from '../src/index.js'
import { serveIpc, sleep } from './common.js'

const [variant = '', redisUrl = '', leaseArg = '', maxLenArg = ''] = process.argv.slice(2)
if (variant !== 'hub' && variant !== 'resumable-stream') throw new Error(`bad variant ${variant}`)
const leaseMs = Number(leaseArg)
const maxLen = Number(maxLenArg)

/** What the POST asks for. */
interface AnswerSpec { id: string, deltas: number, pace: number, hold: 'none' | 'head' | 'deltas' }

const WORDS = [' the', ' answer', ' is', ' streamed', ' token', ' by', ' token,', ' resumably', ' —', ' forty-two.']

/** Held answers, by chat id: what `release` opens; and the chats released before their answer got there. */
const gates = new Map<string, () => void>()
const released = new Set<string>()
/** Chats whose answer this process started and whose GET route now finds it (the POST handler got that far). */
const mapped = new Set<string>()

async function hold (chatId: string): Promise<void> {
  if (released.delete(chatId)) return
  await new Promise<void>((resolve) => { gates.set(chatId, resolve) })
  gates.delete(chatId)
}

/** The synthetic answer. */
async function * answer (spec: AnswerSpec, signal?: AbortSignal): AsyncGenerator<UIMessageChunk> {
  yield { type: 'start', messageId: `msg-${spec.id}` }
  yield { type: 'start-step' }
  yield { type: 'text-start', id: 't' }
  if (spec.hold === 'head') await hold(spec.id)
  const t0 = performance.now()
  for (let i = 0; i < spec.deltas; i++) {
    if (signal?.aborted === true) return
    if (spec.pace > 0) {
      const wait = t0 + i * 1000 / spec.pace - performance.now()
      if (wait >= 1) await sleep(wait)
    } else if (i % 50 === 49) {
      // As fast as it goes, yet a turn of the event loop now and then, as a model's stream gives.
      await turn()
    }
    yield { type: 'text-delta', id: 't', delta: WORDS[i % WORDS.length] as string }
  }
  if (spec.hold === 'deltas') await hold(spec.id)
  yield { type: 'text-end', id: 't' }
  yield { type: 'finish-step' }
  yield { type: 'finish', finishReason: 'stop' }
}

/** An async iterator as a ReadableStream (`ReadableStream.from`, which Node 20's types lack). */
function readable<T> (it: AsyncGenerator<T>): ReadableStream<T> {
  return new ReadableStream<T>({
    async pull (controller) {
      const { done, value } = await it.next()
      if (done === true) controller.close()
      else controller.enqueue(value)
    },
    async cancel () { await it.return(undefined) }
  })
}

const app: FastifyInstance = Fastify({ logger: false, bodyLimit: 4096 })
const closers: Array<() => Promise<unknown> | void> = []

if (variant === 'hub') {
  await app.register(sseHub, {
    kinds: ['chat'],
    // An answer of 2,000 chunks and more must fit the Redis stream (`maxLen`, default 1000) and the history: a resume
    // on another instance replays the answer from the stream.
    backplane: redisBackplane({ url: redisUrl, maxLen }),
    leaseMs,
    historySize: 8192,
    historyBytes: 4 * 1024 * 1024,
    maxBufferedBytes: 4 * 1024 * 1024
  })
  const chats = chatStreams(app.sse, { kind: 'chat' as 'conversation' })
  app.post('/api/chat', async (request, reply) => {
    const spec = request.body as AnswerSpec
    await chats.start(spec.id, (signal) => answer(spec, signal), reply)
    mapped.add(spec.id)
  })
  app.get('/api/chat/:id/stream', chats.resume())
} else {
  const publisher = new Redis(redisUrl)
  const subscriber = new Redis(redisUrl)
  closers.push(() => { publisher.disconnect(); subscriber.disconnect() })
  // A server, not a serverless function: nothing to keep alive (`waitUntil: null`, as its types say).
  const streams = createResumableStreamContext({ waitUntil: null, publisher, subscriber })
  /** The app's chat store: the chat's active stream id. */
  const activeKey = (chatId: string): string => `bench-chat:${chatId}:activeStreamId`
  app.post('/api/chat', async (request, reply) => {
    const spec = request.body as AnswerSpec
    // Clear any previous active stream (the docs' `saveChat({ id, messages, activeStreamId: null })`).
    await publisher.del(activeKey(spec.id))
    const chunks = readable(answer(spec)).pipeThrough(new TransformStream<UIMessageChunk, UIMessageChunk>({
      // The docs' `onEnd`: the chat has no active stream once its answer ended.
      flush: async () => { await publisher.del(activeKey(spec.id)) }
    }))
    reply.hijack()
    await pipeUIMessageStreamToResponse({
      response: reply.raw,
      stream: chunks,
      consumeSseStream: async ({ stream }) => {
        try {
          const streamId = randomUUID()
          await streams.createNewResumableStream(streamId, () => stream)
          await publisher.set(activeKey(spec.id), streamId)
          mapped.add(spec.id)
        } catch (err) {
          console.error(`resumable-stream: the answer of ${spec.id} could not be made resumable: ${String(err)}`)
        }
      }
    })
  })
  app.get('/api/chat/:id/stream', async (request, reply) => {
    const { id } = request.params as { id: string }
    const streamId = await publisher.get(activeKey(id))
    if (streamId === null) return await reply.code(204).send()
    const stream = await streams.resumeExistingStream(streamId)
    if (stream === null || stream === undefined) return await reply.code(204).send()
    // What `new Response(stream, { headers: UI_MESSAGE_STREAM_HEADERS })` does in the docs' route.
    reply.hijack()
    const res = reply.raw
    res.writeHead(200, UI_MESSAGE_STREAM_HEADERS)
    const reader = stream.getReader()
    const cancel = (): void => { reader.cancel().catch(() => {}) }
    res.once('close', cancel)
    try {
      for (;;) {
        const { done, value } = await reader.read()
        if (done || res.destroyed) break
        if (!res.write(value)) await Promise.race([once(res, 'drain'), once(res, 'close')])
      }
      res.end()
    } catch {
      res.destroy()
    } finally {
      res.off('close', cancel)
    }
  })
}

await app.listen({ port: 0, host: '127.0.0.1' })

serveIpc({
  /** This process's CPU time so far, µs. */
  cpu: () => { const c = process.cpuUsage(); return c.user + c.system },
  mapped: ({ id }: { id: string }) => mapped.has(id),
  release: ({ id }: { id: string }) => {
    const open = gates.get(id)
    if (open === undefined) released.add(id)
    else open()
    return true
  },
  exit: async () => {
    await Promise.race([app.close(), sleep(3000)])
    for (const close of closers) await close()
    setTimeout(() => process.exit(0), 10).unref()
    return true
  }
})
process.send?.({ ready: true, port: (app.server.address() as AddressInfo).port, pid: process.pid })
