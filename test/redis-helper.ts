/*
 * A private redis-server per test file, on a free loopback port, without persistence,
 * that a test can kill -9 and restart on the same port. When none can be started the
 * Redis tests skip with a loud reason, unless SSE_HUB_REQUIRE_REDIS=1 (CI), then they fail.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import net from 'node:net'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { redisBackplane, type RedisBackplaneOptions, type SseHubOptions } from '../src/index.js'
import { buildApp, componentMissing, listen, type TapLike } from './helper.js'

const BINARY = process.env.SSE_HUB_REDIS_SERVER ?? 'redis-server'

/** A free TCP port on 127.0.0.1 (the OS picks it; released before redis-server binds it). */
export async function freePort (): Promise<number> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  server.close()
  await once(server, 'close')
  return port
}

export class RedisServer {
  #proc: ChildProcess | undefined
  #log = ''

  private constructor (readonly port: number) {}

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  /** Starts redis-server on a free port; rejects within `timeoutMs` when it cannot. */
  static async start (timeoutMs = 10_000): Promise<RedisServer> {
    const server = new RedisServer(await freePort())
    await server.restart(timeoutMs)
    return server
  }

  /** (Re)starts the server on its port, with empty data (no persistence). */
  async restart (timeoutMs = 10_000): Promise<void> {
    if (this.#proc !== undefined) throw new Error('redis-server is already running')
    this.#log = ''
    const proc = spawn(BINARY, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'notice'], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.#proc = proc
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { fail(new Error(`redis-server did not start within ${timeoutMs} ms: ${this.#log.slice(-500)}`)) }, timeoutMs)
      const fail = (err: Error): void => {
        clearTimeout(timer)
        proc.kill('SIGKILL')
        this.#proc = undefined
        reject(err)
      }
      proc.once('error', fail)
      proc.once('exit', (code) => { fail(new Error(`redis-server exited with ${String(code)}: ${this.#log.slice(-500)}`)) })
      const onData = (chunk: Buffer): void => {
        this.#log += chunk.toString()
        if (this.#log.includes('Ready to accept connections')) {
          clearTimeout(timer)
          proc.removeAllListeners('exit')
          proc.removeAllListeners('error')
          proc.stdout?.removeListener('data', onData)
          proc.once('exit', () => { if (this.#proc === proc) this.#proc = undefined })
          resolve()
        }
      }
      proc.stdout?.on('data', onData)
      proc.stderr?.on('data', (c: Buffer) => { this.#log += c.toString() })
    })
  }

  /** kill -9, and wait until the process is gone. */
  async kill (): Promise<void> {
    const proc = this.#proc
    if (proc === undefined) return
    this.#proc = undefined
    const exited = once(proc, 'exit')
    proc.kill('SIGKILL')
    await exited
  }

  /** A fresh client for the test itself (the caller quits it). */
  client (): Redis {
    return new Redis(this.url, { maxRetriesPerRequest: 1, lazyConnect: false })
  }
}

/**
 * One hub (the test routes of {@link buildApp}) on the Redis backplane of `redis`, listening on a
 * free port and closed when the test ends: N of them in one process share Redis as N processes would.
 */
export async function instance (
  t: { teardown: (fn: () => unknown) => void },
  redis: RedisServer,
  backplane: Omit<RedisBackplaneOptions, 'url'> = {},
  options: SseHubOptions = {}
): Promise<{ app: FastifyInstance, url: string }> {
  const app = await buildApp({ ...options, backplane: redisBackplane({ url: redis.url, connectTimeout: 2000, ...backplane }) })
  const url = await listen(app, t)
  return { app, url }
}

/**
 * The file's private Redis, or undefined after a loud skip. With SSE_HUB_REQUIRE_REDIS=1
 * a Redis that cannot start fails the file instead.
 */
export async function redisOrSkip (t: TapLike): Promise<RedisServer | undefined> {
  try {
    const server = await RedisServer.start()
    t.teardown(() => server.kill())
    return server
  } catch (err) {
    componentMissing(t, 'Redis backplane tests (a private redis-server)', err, 'Install redis-server', 'SSE_HUB_REQUIRE_REDIS')
    return undefined
  }
}

