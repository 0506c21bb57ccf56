import t from 'tap'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import Fastify from 'fastify'

/*
 * The runtime exports of each entry point in package.json `exports`, exactly: each one is public API a user may
 * depend on from 0.1.0 on, so an addition (or a removal) is a decision taken here. Types are not listed: they have
 * no runtime key (test/types/ holds them).
 */
const ERRORS = [
  'FST_ERR_SSE_HUB_BACKPLANE_UNAVAILABLE', 'FST_ERR_SSE_HUB_BROADCAST_FAILED', 'FST_ERR_SSE_HUB_SHUTTING_DOWN',
  'FST_ERR_SSE_HUB_EVENT_TOO_LARGE', 'FST_ERR_SSE_HUB_FORBIDDEN', 'FST_ERR_SSE_HUB_INVALID_EVENT_TYPE',
  'FST_ERR_SSE_HUB_INVALID_OPTION', 'FST_ERR_SSE_HUB_INVALID_PAYLOAD', 'FST_ERR_SSE_HUB_INVALID_SESSION_ID',
  'FST_ERR_SSE_HUB_IOREDIS_MISSING', 'FST_ERR_SSE_HUB_NOT_ACCEPTABLE', 'FST_ERR_SSE_HUB_REPLY_SENT',
  'FST_ERR_SSE_HUB_SESSION_CLOSED', 'FST_ERR_SSE_HUB_TOO_MANY_CLIENTS', 'FST_ERR_SSE_HUB_TOO_MANY_CLIENTS_PER_IP',
  'FST_ERR_SSE_HUB_UNAUTHORIZED', 'FST_ERR_SSE_HUB_UNKNOWN_KIND',
  'FST_ERR_SSE_HUB_ALREADY_PIPED', 'FST_ERR_SSE_HUB_ANSWER_IN_PROGRESS', 'FST_ERR_SSE_HUB_WIRE_FORMAT'
]
const ENTRIES: Record<string, string[]> = {
  '.': ['default', 'sseHub', 'fastifySseHub', 'redisBackplane', 'backplaneFromEnv', ...ERRORS],
  './client': ['subscribe', 'compareEventIds'],
  './ai': ['chatStreams', 'FST_ERR_SSE_HUB_ANSWER_IN_PROGRESS']
}

t.test('each entry point exports exactly its public API', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { exports: Record<string, unknown> }
  const entries = Object.keys(pkg.exports).filter((e) => e !== './package.json')
  t.same(entries.sort(), Object.keys(ENTRIES).sort(), 'every entry point is listed here')
  for (const entry of entries) {
    // A computed specifier: the typecheck uses src/, and must not load dist's declarations a second time.
    const mod = await import(`fastify-sse-hub${entry.slice(1)}`) as Record<string, unknown>
    t.same(Object.keys(mod).sort(), [...ENTRIES[entry]!].sort(), `the runtime exports of '${entry}'`)
  }
})

// `npm test` builds dist/ first; the package imports itself by name, through package.json `exports`.
t.test('another project can import the built package by name', async (t) => {
  const name = 'fastify-sse-hub'
  const mod = await import(name) as typeof import('../src/index.js')
  t.type(mod.default, 'function')
  t.equal(mod.sseHub, mod.default)
  t.equal(mod.fastifySseHub, mod.default, 'fastify\'s naming convention: fastify<Name>')
  t.type(mod.FST_ERR_SSE_HUB_INVALID_OPTION, 'function')
  const app = Fastify()
  await app.register(mod.default)
  t.type(app.sse.broadcastToConversation, 'function')
  await app.close()
})

t.test('the .d.ts keep the TSDoc', async (t) => {
  const dts = readFileSync(new URL('../dist/hub.d.ts', import.meta.url), 'utf8')
  t.match(dts, /\/\*\* Opens a conversation stream on `reply`/)
  t.match(readFileSync(new URL('../dist/index.d.ts', import.meta.url), 'utf8'), /interface FastifyInstance/)
})

t.test('npm pack holds only what a user needs', async (t) => {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  const files = (JSON.parse(out) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path)
  t.ok(files.includes('dist/index.js') && files.includes('dist/index.d.ts'))
  t.ok(files.includes('README.md') && files.includes('LICENSE') && files.includes('package.json') && files.includes('CHANGELOG.md'))
  t.ok(files.includes('docs/performance.md') && files.includes('docs/bench.svg'), 'the docs README links to, and their images')
  const stray = files.filter((f) => !/^(dist\/[a-z/-]+\.(js|d\.ts)|docs\/[a-z0-9-]+\.(md|svg|png)|README\.md|CHANGELOG\.md|LICENSE|package\.json)$/.test(f))
  t.same(stray, [], 'no sources, tests, maps or tooling')
})

t.test('a git install builds dist/ (prepare), from a clean folder, without source maps', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string>, devDependencies: Record<string, string> }
  // npm runs `prepare` (not `prepack`) when it installs a package from git, after installing its devDependencies.
  t.equal(pkg.scripts.prepare, 'npm run build')
  t.equal(pkg.scripts.prepack, undefined, 'prepare runs before npm pack too: one build')
  t.match(pkg.scripts.build, /rmSync\('dist'.*&& tsc -p tsconfig\.build\.json$/, 'no file of an older build is packed')
  t.ok(pkg.devDependencies.typescript, 'tsc is there when prepare runs')
  const build = JSON.parse(readFileSync(new URL('../tsconfig.build.json', import.meta.url), 'utf8')) as { compilerOptions: { sourceMap?: boolean } }
  t.equal(build.compilerOptions.sourceMap, false, 'no sourceMappingURL pointing at a map the package lacks')
})

t.test('fastify-sse-hub/client: its own entry point, plain ESM a browser can load', async (t) => {
  const name = 'fastify-sse-hub/client'
  const mod = await import(name) as typeof import('../src/browser/index.js')
  t.type(mod.subscribe, 'function')
  t.type(mod.compareEventIds, 'function')
  // A browser resolves no bare specifier: every import of the built client is a relative file of its own folder.
  const dir = new URL('../dist/browser/', import.meta.url)
  const { readdirSync } = await import('node:fs')
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.js'))) {
    const js = readFileSync(new URL(file, dir), 'utf8')
    const specifiers = [...js.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]/gm)].map((m) => m[1]!)
    t.ok(specifiers.every((s) => /^\.\/[a-z-]+\.js$/.test(s)), `${file} imports only its folder's files: ${specifiers.join(', ') || 'none'}`)
    t.notMatch(js, /\bimport\s*\(|\brequire\s*\(|node:/, `${file}: no dynamic import, require or node: module`)
  }
  t.match(readFileSync(new URL('index.d.ts', dir), 'utf8'), /from '\.\.\/events\.js'/, 'the event maps are the package\'s own types')
})

t.test('fastify-sse-hub/ai: its own entry point; ai is imported for its types only, and the core never loads it', async (t) => {
  const name = 'fastify-sse-hub/ai'
  const mod = await import(name) as typeof import('../src/ai/index.js')
  t.same(Object.keys(mod).sort(), ['FST_ERR_SSE_HUB_ANSWER_IN_PROGRESS', 'chatStreams'])
  const { readdirSync } = await import('node:fs')
  const dist = new URL('../dist/', import.meta.url)
  for (const file of readdirSync(dist, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.js'))) {
    t.notMatch(readFileSync(new URL(file, dist), 'utf8'), /from ['"]ai['"]|import\(['"]ai['"]\)/, `${file} loads no 'ai'`)
  }
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { peerDependenciesMeta: Record<string, { optional?: boolean }> }
  t.equal(pkg.peerDependenciesMeta.ai?.optional, true, 'an optional peer dependency')
})
