/*
 * The entry `fastify-sse-hub/ai`: an AI SDK chat's answers on the hub (`chatStreams`), resumable from any
 * instance. `ai` is an optional peer dependency: only its types are imported, and the core never imports this.
 */
export { chatStreams, type AnswerEvents, type ChatStreams, type ChatStreamsOptions, type ChunkSource } from './chat-streams.js'
export { FST_ERR_SSE_HUB_ANSWER_IN_PROGRESS } from '../errors.js'
