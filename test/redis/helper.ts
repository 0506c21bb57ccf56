/*
 * A private redis-server per test file, on a free loopback port, without persistence (or with an
 * fsync'd append-only file, so a kill -9 loses nothing), that a test can kill -9 and restart on the
 * same port; and a proxy in front of it that can lose a reply. When none can be started the
 * Redis tests skip with a loud reason, unless SSE_HUB_REQUIRE_REDIS=1 (CI), then they fail.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { redisBackplane, type RedisBackplaneOptions, type SseHubOptions } from '../../src/index.js'
import { streamKey } from '../../src/backplane/redis-stream.js'
import { buildApp, componentMissing, listen, waitFor, type TapLike } from '../helper.js'

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

  /** Where the append-only file is kept, for a persistent server. */
  readonly #dir: string | undefined

  /** Further redis-server arguments: `--replicaof`, a cluster node's. */
  readonly #args: readonly string[]

  private constructor (readonly port: number, persistent: boolean, args: readonly string[] = []) {
    this.#dir = persistent ? mkdtempSync(join(tmpdir(), 'sse-hub-redis-')) : undefined
    this.#args = args
  }

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  /**
   * Starts redis-server on a free port; rejects within `timeoutMs` when it cannot. `persistent`: every
   * write is fsync'd to an append-only file before its reply, so a restart after kill -9 has all of it.
   */
  static async start (timeoutMs = 10_000, persistent = false, extra: (port: number) => string[] = () => []): Promise<RedisServer> {
    const port = await freePort()
    const server = new RedisServer(port, persistent, extra(port))
    try {
      await server.restart(timeoutMs)
    } catch (err) {
      server.#removeData()
      throw err
    }
    return server
  }

  /**
   * Starts a replica of `master` on a free port and waits until its link to the master is up (the
   * first full sync done), so a write acknowledged by WAIT from then on is on it.
   */
  static async replica (master: RedisServer, timeoutMs = 10_000): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), false, ['--replicaof', '127.0.0.1', String(master.port), '--repl-diskless-load', 'on-empty-db'])
    await server.restart(timeoutMs)
    await server.synced(timeoutMs)
    return server
  }

  /**
   * Resolves once this replica acknowledges writes: a write on its master is answered by `WAIT 1`. (Right
   * after a full sync, Redis 7.0 shows the replica online while WAIT does not count it yet, for about a second.)
   */
  async synced (timeoutMs = 10_000): Promise<void> {
    const masterPort = Number(this.#args[this.#args.indexOf('--replicaof') + 2])
    const r = new Redis(masterPort, '127.0.0.1', { maxRetriesPerRequest: 1 })
    try {
      await waitFor(async () => {
        await r.incr('test:replica-sync')
        return await r.wait(1, 100) >= 1
      }, `replica on ${this.port} acknowledging writes`, timeoutMs)
    } finally {
      r.disconnect()
    }
  }

  /** Stops (SIGSTOP) or continues (SIGCONT) the process: a replica that is stopped acknowledges nothing. */
  signal (signal: 'SIGSTOP' | 'SIGCONT'): void {
    this.#proc?.kill(signal)
  }

  /** (Re)starts the server on its port: with empty data, or a persistent server's data. */
  async restart (timeoutMs = 10_000): Promise<void> {
    if (this.#proc !== undefined) throw new Error('redis-server is already running')
    this.#log = ''
    const persistence = this.#dir === undefined ? ['--appendonly', 'no'] : ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', this.#dir]
    const proc = spawn(BINARY, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', ...persistence, '--loglevel', 'notice', '--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0', ...this.#args], { stdio: ['ignore', 'pipe', 'pipe'] })
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

  get running (): boolean {
    return this.#proc !== undefined
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

  /** kill -9, and remove a persistent server's data. */
  async stop (): Promise<void> {
    await this.kill()
    this.#removeData()
  }

  #removeData (): void {
    if (this.#dir !== undefined) rmSync(this.#dir, { recursive: true, force: true })
  }

  /** A fresh client for the test itself (the caller quits it). */
  client (): Redis {
    return new Redis(this.url, { maxRetriesPerRequest: 1, lazyConnect: false })
  }
}

/**
 * One hub (the test routes of {@link buildApp}) on the Redis backplane of `redis` (a server or a cluster), listening on a
 * free port and closed when the test ends: N of them in one process share Redis as N processes would.
 */
export async function instance (
  t: { teardown: (fn: () => unknown) => void },
  redis: { readonly url: string } | RedisCluster,
  backplane: Omit<RedisBackplaneOptions, 'url'> = {},
  options: SseHubOptions = {}
): Promise<{ app: FastifyInstance, url: string }> {
  const app = await buildApp({ ...options, backplane: redisBackplane({ ...(redis instanceof RedisCluster ? { cluster: redis.nodes } : { url: redis.url }), connectTimeout: 2000, ...backplane }) })
  const url = await listen(app, t)
  return { app, url }
}

/**
 * The file's private Redis, or undefined after a loud skip. With SSE_HUB_REQUIRE_REDIS=1
 * a Redis that cannot start fails the file instead.
 */
export async function redisOrSkip (t: TapLike, persistent = false): Promise<RedisServer | undefined> {
  try {
    const server = await RedisServer.start(10_000, persistent)
    t.teardown(() => server.stop())
    return server
  } catch (err) {
    componentMissing(t, 'Redis backplane tests (a private redis-server)', err, 'Install redis-server', 'SSE_HUB_REQUIRE_REDIS')
    return undefined
  }
}

/**
 * A private Redis Cluster: three masters and three replicas from `redis-server --cluster-enabled yes`
 * on free loopback ports (their node files in a tmp dir, no persistence, a short node timeout so a
 * failover takes a few seconds), joined with `redis-cli --cluster create`. {@link clusterOrSkip} starts one.
 */
export class RedisCluster {
  private constructor (readonly servers: RedisServer[], readonly dir: string) {}

  /** Some nodes to start from, for the `cluster` option. */
  get nodes (): Array<{ host: string, port: number }> {
    return this.servers.map((s) => ({ host: '127.0.0.1', port: s.port }))
  }

  static async start (): Promise<RedisCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'sse-hub-cluster-'))
    const servers: RedisServer[] = []
    const cluster = new RedisCluster(servers, dir)
    try {
      for (let i = 0; i < 6; i++) {
        servers.push(await RedisServer.start(10_000, false, (port) => [
          '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--dir', dir, '--cluster-node-timeout', '1000'
          // Every server's replicas sync at once (`--repl-diskless-sync-delay 0`), so a failover can happen soon after the start.
        ]))
      }
      await run(CLI, ['--cluster', 'create', ...servers.map((s) => `127.0.0.1:${s.port}`), '--cluster-replicas', '1', '--cluster-yes'])
      await cluster.settled()
    } catch (err) {
      await cluster.stop()
      throw err
    }
    return cluster
  }

  /** Waits until every running node says `cluster_state:ok` and knows the same masters for all 16384 slots, and every replica is in sync. */
  async settled (ms = 20_000): Promise<void> {
    await waitFor(async () => {
      const views = await Promise.all(this.servers.filter((s) => s.running).map(async (s) => {
        const r = s.client()
        try {
          const info = await r.cluster('INFO')
          const replication = await r.info('replication')
          const synced = !replication.includes('role:slave') || replication.includes('master_link_status:up')
          return synced && info.includes('cluster_state:ok') && info.includes('cluster_slots_ok:16384') ? JSON.stringify(await this.#owners(r)) : 'not ok'
        } finally {
          r.disconnect()
        }
      }))
      return views.every((v) => v !== 'not ok' && v === views[0])
    }, 'the cluster is ok on every node', ms)
  }

  async #owners (r: Redis): Promise<Array<[number, number, number]>> {
    const slots = await r.cluster('SLOTS')
    return slots.map((e): [number, number, number] => [e[0], e[1], (e[2] as [string, number, string, unknown[]])[1]]).sort((x, y) => x[0] - y[0])
  }

  /** The server of the master that holds `slot` now. */
  async master (slot: number): Promise<RedisServer> {
    const s = this.servers.find((x) => x.running) as RedisServer
    const r = s.client()
    try {
      const owner = (await this.#owners(r)).find(([from, to]) => from <= slot && slot <= to) as [number, number, number]
      return this.servers.find((x) => x.port === owner[2]) as RedisServer
    } finally {
      r.disconnect()
    }
  }

  /** The running masters' servers. */
  async masters (): Promise<RedisServer[]> {
    const r = (this.servers.find((x) => x.running) as RedisServer).client()
    try {
      const ports = new Set((await this.#owners(r)).map(([, , port]) => port))
      return this.servers.filter((s) => ports.has(s.port))
    } finally {
      r.disconnect()
    }
  }

  /**
   * Moves `slot` (with its keys) from its master to `to`, as `redis-cli --cluster reshard` does:
   * IMPORTING / MIGRATING, MIGRATE of its keys, then SETSLOT NODE on every master. `during` runs
   * while the slot is half-migrated (clients get ASK or TRYAGAIN).
   */
  async migrate (slot: number, to: RedisServer, during: () => Promise<void> = async () => {}): Promise<void> {
    const from = await this.master(slot)
    const src = from.client()
    const dst = to.client()
    try {
      const [fromId, toId] = await Promise.all([src.cluster('MYID'), dst.cluster('MYID')]) as [string, string]
      await dst.cluster('SETSLOT', slot, 'IMPORTING', fromId)
      await src.cluster('SETSLOT', slot, 'MIGRATING', toId)
      await during()
      for (;;) {
        const keys = await src.cluster('GETKEYSINSLOT', slot, 100) as string[]
        if (keys.length === 0) break
        await src.migrate('127.0.0.1', to.port, '', 0, 5000, 'KEYS', ...keys)
      }
      for (const m of await this.masters()) {
        const r = m.client()
        await r.cluster('SETSLOT', slot, 'NODE', toId).finally(() => r.disconnect())
      }
    } finally {
      src.disconnect()
      dst.disconnect()
    }
  }

  async stop (): Promise<void> {
    await Promise.all(this.servers.map((s) => s.stop()))
    rmSync(this.dir, { recursive: true, force: true })
  }
}

const CLI = process.env.SSE_HUB_REDIS_CLI ?? 'redis-cli'

async function run (command: string, args: string[]): Promise<void> {
  const proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  proc.stdout.on('data', (c: Buffer) => { out += c.toString() })
  proc.stderr.on('data', (c: Buffer) => { out += c.toString() })
  const [code] = await once(proc, 'exit') as [number | null]
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${String(code)}: ${out.slice(-500)}`)
}

/** The file's private Redis Cluster, or undefined after a loud skip (a failure with SSE_HUB_REQUIRE_REDIS=1). */
export async function clusterOrSkip (t: TapLike): Promise<RedisCluster | undefined> {
  try {
    const cluster = await RedisCluster.start()
    t.teardown(() => cluster.stop())
    return cluster
  } catch (err) {
    componentMissing(t, 'Redis Cluster tests (a private 6-node redis-server cluster)', err, 'Install redis-server (with redis-cli)', 'SSE_HUB_REQUIRE_REDIS')
    return undefined
  }
}

/**
 * A TCP proxy in front of a Redis server that can lose one reply: {@link cutAfter} arms it, and the
 * next connection that sends the given command has the server's answer to it dropped and is cut, as
 * when a connection fails after Redis ran a command and before its reply arrived.
 */
export class ReplyCutter {
  readonly #server: net.Server
  readonly #sockets = new Set<net.Socket>()
  #armed: { command: string, cut: () => void } | undefined

  private constructor (server: net.Server) {
    this.#server = server
  }

  get url (): string {
    return `redis://127.0.0.1:${(this.#server.address() as net.AddressInfo).port}`
  }

  static async start (redis: RedisServer, t: { teardown: (fn: () => unknown) => void }): Promise<ReplyCutter> {
    const server = net.createServer()
    const proxy = new ReplyCutter(server)
    server.on('connection', (client) => { proxy.#pipe(client, net.connect(redis.port, '127.0.0.1')) })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    t.teardown(async () => {
      for (const s of proxy.#sockets) s.destroy()
      server.close()
      await once(server, 'close')
    })
    return proxy
  }

  /** Resolves once a connection sent `command` (as Redis spells it, e.g. `evalsha`), Redis answered, and the answer was dropped and the connection cut. */
  async cutAfter (command: string): Promise<void> {
    await new Promise<void>((resolve) => { this.#armed = { command: `\r\n${command.toLowerCase()}\r\n`, cut: resolve } })
  }

  #pipe (client: net.Socket, upstream: net.Socket): void {
    let cutting: (() => void) | undefined
    for (const s of [client, upstream]) {
      this.#sockets.add(s)
      s.on('error', () => {})
      s.on('close', () => {
        this.#sockets.delete(s)
        client.destroy()
        upstream.destroy()
      })
    }
    client.on('data', (chunk: Buffer) => {
      const armed = this.#armed
      if (armed !== undefined && chunk.toString().toLowerCase().includes(armed.command)) {
        this.#armed = undefined
        cutting = armed.cut
      }
      upstream.write(chunk)
    })
    upstream.on('data', (chunk: Buffer) => {
      if (cutting === undefined) {
        client.write(chunk)
        return
      }
      // Redis answered: the command ran. The answer is lost with the connection.
      client.destroy()
      upstream.destroy()
      cutting()
    })
  }
}

/** Whether an app's backplane is connected now. */
export const connected = (app: FastifyInstance): boolean => app.sse.getStats().backplane.connected

/** A session's events as its stream on `r` holds them, oldest first: each entry's id and data (the event's JSON). */
export async function storedEvents (r: Redis, sessionId: string, kind = 'conversation'): Promise<Array<{ id: string, data: string }>> {
  const entries = await r.xrange(streamKey('sse-hub:', kind, sessionId), '-', '+')
  return entries.map(([id, fields]) => ({ id, data: fields[fields.indexOf('d') + 1] as string }))
}

/** A number `r`'s server reports in an INFO section, 0 when it has none yet. */
export async function infoCount (r: Redis, section: string, pattern: RegExp): Promise<number> {
  return Number(pattern.exec(await r.info(section))?.[1] ?? 0)
}

/** How many WAIT commands `r`'s server has run. */
export const waits = (r: Redis): Promise<number> => infoCount(r, 'commandstats', /cmdstat_wait:calls=(\d+)/)

/** `fn` with a client of its own on `server`, disconnected after. */
export async function withClient<T> (server: RedisServer, fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = server.client()
  try {
    return await fn(r)
  } finally {
    r.disconnect()
  }
}
