/*
 * Every error the hub throws. Each constant's `code` equals its export name
 * (test/errors.test.ts checks it), so `err.code === 'FST_ERR_SSE_HUB_…'` and
 * `err instanceof FST_ERR_SSE_HUB_…` both work.
 */
import createError from '@fastify/error'

/** An option passed to `register` is unknown or has the wrong type/range. */
export const FST_ERR_SSE_HUB_INVALID_OPTION = createError<[string]>(
  'FST_ERR_SSE_HUB_INVALID_OPTION',
  'fastify-sse-hub: invalid option %s',
  500,
  TypeError
)

/** A session kind that is neither built in nor in the `kinds` option, named at route creation or in `kind()`. */
export const FST_ERR_SSE_HUB_UNKNOWN_KIND = createError<[string]>(
  'FST_ERR_SSE_HUB_UNKNOWN_KIND',
  "fastify-sse-hub: unknown session kind %s; declare it in the 'kinds' option",
  500
)

/** A session id does not match the `sessionIdPattern` option (answered as 400). */
export const FST_ERR_SSE_HUB_INVALID_SESSION_ID = createError<[string]>(
  'FST_ERR_SSE_HUB_INVALID_SESSION_ID',
  'fastify-sse-hub: invalid session id %s',
  400
)

/** An event type is empty, too long, contains CR, LF, NUL or a lone surrogate, or is reserved by the hub. */
export const FST_ERR_SSE_HUB_INVALID_EVENT_TYPE = createError<[string]>(
  'FST_ERR_SSE_HUB_INVALID_EVENT_TYPE',
  'fastify-sse-hub: invalid event type %s',
  500,
  TypeError
)

/** A payload is not a plain object, or JSON cannot encode it (circular, BigInt, …). */
export const FST_ERR_SSE_HUB_INVALID_PAYLOAD = createError<[string, { cause: unknown }?]>(
  'FST_ERR_SSE_HUB_INVALID_PAYLOAD',
  'fastify-sse-hub: invalid payload: %s',
  500,
  TypeError
)

/** An encoded event is larger than `maxEventBytes`. */
export const FST_ERR_SSE_HUB_EVENT_TOO_LARGE = createError<[number, number]>(
  'FST_ERR_SSE_HUB_EVENT_TOO_LARGE',
  'fastify-sse-hub: event of %d bytes exceeds maxEventBytes (%d)',
  500,
  RangeError
)

/** `maxClients`, `maxClientsPerSession` or `maxSessions` is reached (answered as 503 with Retry-After). */
export const FST_ERR_SSE_HUB_TOO_MANY_CLIENTS = createError<[string]>(
  'FST_ERR_SSE_HUB_TOO_MANY_CLIENTS',
  'fastify-sse-hub: too many clients (%s), retry later',
  503
)

/** `maxClientsPerIp` is reached for the client's address (answered as 429 with Retry-After). */
export const FST_ERR_SSE_HUB_TOO_MANY_CLIENTS_PER_IP = createError(
  'FST_ERR_SSE_HUB_TOO_MANY_CLIENTS_PER_IP',
  'fastify-sse-hub: too many streams from this address (maxClientsPerIp), retry later',
  429
)

/** The `authorize` hook returned false (answered as 403). */
export const FST_ERR_SSE_HUB_FORBIDDEN = createError(
  'FST_ERR_SSE_HUB_FORBIDDEN',
  'fastify-sse-hub: not allowed to watch this session',
  403
)

/** For `authorize` hooks to throw when the caller is not authenticated (answered as 401). */
export const FST_ERR_SSE_HUB_UNAUTHORIZED = createError(
  'FST_ERR_SSE_HUB_UNAUTHORIZED',
  'fastify-sse-hub: authentication required',
  401
)

/** A stream route was asked for by a client whose `Accept` header refuses `text/event-stream` (answered as 406). */
export const FST_ERR_SSE_HUB_NOT_ACCEPTABLE = createError(
  'FST_ERR_SSE_HUB_NOT_ACCEPTABLE',
  "fastify-sse-hub: this endpoint only produces 'text/event-stream'",
  406
)

/** A client was added while the server is shutting down, after `fastify.close()` (answered as 503). */
export const FST_ERR_SSE_HUB_SHUTTING_DOWN = createError(
  'FST_ERR_SSE_HUB_SHUTTING_DOWN',
  'fastify-sse-hub: the server is shutting down',
  503
)

/** `add…Client` was given a reply that has already been sent or hijacked. */
export const FST_ERR_SSE_HUB_REPLY_SENT = createError(
  'FST_ERR_SSE_HUB_REPLY_SENT',
  'fastify-sse-hub: the reply has already been sent; add the client before replying',
  500
)

/**
 * The backplane (e.g. Redis) cannot be reached: at start (`register`/`ready` fails with it),
 * or when a new client needs it during an outage (answered as 503 with Retry-After).
 */
export const FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE = createError<[string, { cause: unknown }?]>(
  'FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE',
  'fastify-sse-hub: backplane unavailable: %s',
  503
)

/**
 * A broadcast's promise rejects with this when the backplane could not persist the event: Redis unreachable past
 * `publishRetryMs`, or `publishRetryBytes` of broadcasts already waiting (nothing was stored or sent); a lost or
 * timed-out reply (it may have been stored); with `waitReplicas`, too few replicas acknowledged it in time (the
 * master stored and announced it: the message names its id). Nothing is queued any more: retry, or report it.
 */
export const FST_ERR_SSE_HUB_BROADCAST_FAILED = createError<[string, { cause: unknown }?]>(
  'FST_ERR_SSE_HUB_BROADCAST_FAILED',
  'fastify-sse-hub: broadcast not persisted: %s',
  503
)

/**
 * A broadcast to a session that was closed (`close…`): nothing was stored or sent. With a backplane, the
 * broadcast's promise rejects with it.
 */
export const FST_ERR_SSE_HUB_SESSION_CLOSED = createError<[string]>(
  'FST_ERR_SSE_HUB_SESSION_CLOSED',
  'fastify-sse-hub: session %s is closed',
  409
)

/**
 * A Redis backplane was given but the `ioredis` package cannot be loaded (it is an optional peer dependency):
 * `register` fails with it. Install it: `npm install ioredis`.
 */
export const FST_ERR_SSE_HUB_IOREDIS_MISSING = createError<[string, { cause: unknown }?]>(
  'FST_ERR_SSE_HUB_IOREDIS_MISSING',
  "fastify-sse-hub: the Redis backplane needs the 'ioredis' package, which could not be loaded (%s); install it: npm install ioredis",
  500
)

/** `pipe` on a session that already has a producer (a running `pipe`, here or, with a backplane, elsewhere). */
export const FST_ERR_SSE_HUB_ALREADY_PIPED = createError<[string]>(
  'FST_ERR_SSE_HUB_ALREADY_PIPED',
  'fastify-sse-hub: session %s already has a producer',
  409
)

/** A wire format given to a kind that already speaks another one, or already holds sessions. */
export const FST_ERR_SSE_HUB_WIRE_FORMAT = createError<[string]>(
  'FST_ERR_SSE_HUB_WIRE_FORMAT',
  'fastify-sse-hub: %s',
  500
)

/** `fastify-sse-hub/ai`: a chat's `start` while an answer of that chat is in progress (answered as 409). */
export const FST_ERR_SSE_HUB_ANSWER_IN_PROGRESS = createError<[string]>(
  'FST_ERR_SSE_HUB_ANSWER_IN_PROGRESS',
  'fastify-sse-hub: chat %s has an answer in progress; stop it or resume it',
  409
)
