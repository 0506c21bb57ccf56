/*
 * The packed package as a stranger gets it: `npm pack`, installed into a fresh project outside the repository with
 * fastify, typescript and @types/node (never ioredis). There the README's TypeScript blocks type-check under `strict`
 * without skipLibCheck, the quick start runs and streams the event its POST route broadcasts, a Redis backplane fails
 * `register` with FST_ERR_SSE_HUB_IOREDIS_MISSING, no file names a source map, and every relative link of the
 * package's Markdown resolves to a file of the package. `npm test` builds dist/ first; this test packs it as it is.
 *
 * The README's rule (what its authors write to):
 * - A block is the text between a line that is exactly "```ts" and the next line that is exactly "```". Each block is
 *   a complete module of its own (its own imports, no name from another block), checked as a file of its own.
 * - Each block type-checks as a module of its own: strict, module NodeNext, target ES2022, lib ES2022 + DOM,
 *   skipLibCheck off, against the installed package, without ioredis. The blocks without `declare module` /
 *   `declare global` share one program; a block with one is checked in a program of its own, so no block leans on
 *   another's declarations. A block that imports an optional peer ('ioredis', 'ai') itself is checked last, with
 *   the optional peers installed (and @types/json-schema, which ai's declarations need without skipLibCheck).
 * - The first block is the quick start, and runs: it contains `Fastify({ logger: true })` and exactly one
 *   `port: 3000`, replaced by `port: 0`; the listening address is read from Fastify's "Server listening at" log
 *   line. Its routes are its first path literal (a quoted string starting with '/') ending in '/stream' and its
 *   first ending in '/say'; each `:param` segment becomes a session id. The test opens the stream, waits for
 *   `connection_established`, POSTs to the say route and waits for the event on the stream. The POST's body is the
 *   `-d '…'` of the README's `curl … -X POST …/say` command, sent as JSON, if the README has one; else none.
 */
import t from 'tap'
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { connect } from './helper.js'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('..', import.meta.url))

// The stranger's environment: none of npm's or tap's variables from this run (the npm cache stays).
const ENV: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) =>
  !/^(npm_|TAP|_TAPJS_|NODE_OPTIONS$|NODE_V8_COVERAGE$)/i.test(k) || /^npm_config_(cache|userconfig|cafile|registry)$/i.test(k)))

/** The version of a package this repository installed, so npm finds it in its cache. */
const installed = (name: string): string =>
  (JSON.parse(readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version

const npm = async (cwd: string, args: string[]): Promise<string> =>
  (await run('npm', [...args, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd, env: ENV, maxBuffer: 1 << 24 })).stdout

/** The README's ```ts blocks, in order. */
function tsBlocks (markdown: string): string[] {
  return [...markdown.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]!)
}

// The compiler's defaults (skipLibCheck off), but strict.
const COMPILER_OPTIONS = {
  strict: true,
  module: 'NodeNext',
  moduleResolution: 'NodeNext',
  target: 'ES2022',
  lib: ['ES2022', 'DOM'],
  moduleDetection: 'force',
  skipLibCheck: false,
  outDir: 'out'
}

/** Compiles `files` as one program into out/; answers tsc's errors, '' for none. */
async function tsc (cwd: string, files: string[]): Promise<string> {
  const project = path.join(cwd, `tsconfig.${files[0]}.json`)
  writeFileSync(project, JSON.stringify({ compilerOptions: COMPILER_OPTIONS, files }))
  try {
    await run(process.execPath, [path.join(cwd, 'node_modules/typescript/bin/tsc'), '-p', project], { cwd, env: ENV })
    return ''
  } catch (err) {
    return (err as { stdout: string }).stdout
  }
}

/**
 * The programs that check `files` (with their texts): one for those that declare nothing global, one for each that
 * does (`declare module`, `declare global`), so what one block declares is never seen by another.
 */
function programs (files: string[], text: (file: string) => string): string[][] {
  const declares = (file: string): boolean => /^\s*declare\s+(module|global)\b/m.test(text(file))
  const shared = files.filter((f) => !declares(f))
  return [...shared.length > 0 ? [shared] : [], ...files.filter(declares).map((f) => [f])]
}

/** Every file under `dir`, relative to it. */
const files = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => path.relative(dir, path.join(d.parentPath, d.name)))

// npm pack, an install and a tsc run: about 70 s alone, longer beside the rest of the suite on 2 cores.
t.setTimeout(300_000)

// .ci/run packs and installs the package on its first Node line only (SSE_HUB_PACKED_ONCE=1 on the others): the
// tarball is the same on every line, and the other lines run the same code through the rest of the suite.
const packedBefore = process.env.SSE_HUB_PACKED_ONCE === '1' ? 'SKIPPED: the packed package was tested on the first Node line of this CI run' : false

t.test('the packed package, installed into a fresh project, runs the README', { skip: packedBefore }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fastify-sse-hub-tarball-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  t.ok(path.relative(ROOT, dir).startsWith('..'), 'the project is outside the repository')

  const packed = JSON.parse(await npm(ROOT, ['pack', '--json', '--ignore-scripts', '--pack-destination', dir])) as Array<{ filename: string }>
  const project = path.join(dir, 'app')
  const pkg = path.join(project, 'node_modules', 'fastify-sse-hub')
  mkdirSync(project)
  writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }))
  await npm(project, ['install', '--no-package-lock', path.join(dir, packed[0]!.filename),
    `fastify@${installed('fastify')}`, `typescript@${installed('typescript')}`, `@types/node@${installed('@types/node')}`])
  t.ok(existsSync(path.join(pkg, 'dist/index.js')), 'installed')
  t.notOk(existsSync(path.join(project, 'node_modules/ioredis')), 'ioredis is not installed with it (an optional peer)')

  t.test('no file names a source map', async (t) => {
    const named = files(pkg).filter((f) => /sourceMappingURL/.test(readFileSync(path.join(pkg, f), 'utf8')))
    t.same(named, [])
  })

  t.test('every relative link of its Markdown resolves to one of its files', async (t) => {
    const dead: string[] = []
    for (const md of files(pkg).filter((f) => f.endsWith('.md'))) {
      for (const [, target] of readFileSync(path.join(pkg, md), 'utf8').matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^([a-z]+:|#)/.test(target!)) continue
        const file = path.resolve(path.dirname(path.join(pkg, md)), target!.replace(/#.*$/, ''))
        if (path.relative(pkg, file).startsWith('..') || !existsSync(file)) dead.push(`${md}: ${target}`)
      }
    }
    t.same(dead, [])
  })

  t.test('a Redis backplane without ioredis fails register with what to install', async (t) => {
    writeFileSync(path.join(project, 'redis.mjs'), `import Fastify from 'fastify'
import sseHub, { redisBackplane } from 'fastify-sse-hub'
const app = Fastify()
try {
  await app.register(sseHub, { backplane: redisBackplane({ url: 'redis://127.0.0.1:1' }) })
  console.log(JSON.stringify({ registered: true }))
} catch (err) {
  console.log(JSON.stringify({ code: err.code, message: err.message }))
}
`)
    const { stdout } = await run(process.execPath, ['redis.mjs'], { cwd: project, env: ENV })
    const result = JSON.parse(stdout) as { code: string, message: string }
    t.equal(result.code, 'FST_ERR_SSE_HUB_IOREDIS_MISSING')
    t.match(result.message, /Cannot find package 'ioredis'.*install it: npm install ioredis$/)
  })

  // The README as installed: the package's own copy.
  const README = readFileSync(path.join(pkg, 'README.md'), 'utf8')
  const blocks = tsBlocks(README)
  t.ok(blocks.length >= 1, 'the README has ```ts blocks')
  const quick = blocks[0]!
  t.match(quick, /Fastify\(\{ logger: true \}\)/, 'the quick start logs (its address is read from the log)')
  t.equal(quick.match(/\bport: 3000\b/g)?.length, 1, 'the quick start has one `port: 3000`')
  const pathLiteral = (end: string): string | undefined =>
    [...quick.matchAll(/(['"`])(\/[^'"`\s]*)\1/g)].map((m) => m[2]!).find((p) => p.endsWith(end))
  const streamPath = pathLiteral('/stream')
  const sayPath = pathLiteral('/say')
  t.ok(streamPath !== undefined && sayPath !== undefined, 'the quick start has a …/stream and a …/say route')

  const names = blocks.map((_, i) => `readme-${i + 1}.ts`)
  blocks.forEach((block, i) => { writeFileSync(path.join(project, names[i]!), block) })
  writeFileSync(path.join(project, 'quickstart.ts'), quick.replace(/\bport: 3000\b/, 'port: 0'))
  const text = (file: string): string => readFileSync(path.join(project, file), 'utf8')
  const needsPeers = names.filter((f) => /from '(ioredis|ai)'/.test(text(f)))
  const plain = ['quickstart.ts', ...names.filter((f) => !needsPeers.includes(f))]

  t.test('the README\'s ```ts blocks type-check, each a module of its own: strict, without skipLibCheck, without ioredis', async (t) => {
    for (const files of programs(plain, text)) t.equal(await tsc(project, files), '', files.join(', '))
    if (needsPeers.length > 0) {
      // Without skipLibCheck, ai's own declarations need @types/json-schema, which it leaves to the application.
      await npm(project, ['install', '--no-package-lock', `ioredis@${installed('ioredis')}`, `ai@${installed('ai')}`, '@types/json-schema@^7'])
      for (const files of programs(needsPeers, text)) t.equal(await tsc(project, files), '', `${files.join(', ')}, with the optional peers installed`)
    }
  })

  t.test('the quick start runs and streams the event its POST route broadcasts', async (t) => {
    const child = spawn(process.execPath, ['out/quickstart.js'], { cwd: project, env: ENV, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
    t.teardown(async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = once(child, 'exit')
      child.kill('SIGKILL')
      await exited
    })
    // Its log (read to its end, so it never waits on a full pipe) names its address.
    const base = await new Promise<string | undefined>((resolve) => {
      createInterface({ input: child.stdout })
        .on('line', (line) => {
          output += line + '\n'
          const address = /"msg":"Server listening at (http:\/\/[^"]+)"/.exec(line)?.[1]
          if (address !== undefined) resolve(address)
        })
        .on('close', () => { resolve(undefined) })
    })
    if (base === undefined) {
      t.fail(`the quick start exited before listening; its output:\n${output}`)
      return
    }
    const session = (p: string): string => p.replace(/:[A-Za-z_]\w*/g, 'readme')

    const stream = await connect(`${base}${session(streamPath!)}`)
    t.teardown(() => { stream.close() })
    const curl = README.split('\n').find((l) => /\bcurl\b.*-X POST.*\/say\b/.test(l))
    const body = curl === undefined ? undefined : /(?:-d|--data) '([^']*)'/.exec(curl)?.[1]
    const res = await fetch(`${base}${session(sayPath!)}`, {
      method: 'POST',
      ...body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body }
    })
    t.ok(res.ok, `POST ${sayPath}: ${res.status}`)
    const [event] = await stream.receive(1)
    t.ok(event?.id, `an event arrives on ${streamPath}: ${event?.event}`)
  })
})
