import t from 'tap'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import Fastify from 'fastify'

// `npm test` builds dist/ first; the package imports itself by name, through package.json `exports`.
t.test('another project can import the built package by name', async (t) => {
  // A computed specifier: the typecheck uses src/, and must not load dist's declarations a second time.
  const name = 'fastify-sse-hub'
  const mod = await import(name) as typeof import('../src/index.js')
  t.type(mod.default, 'function')
  t.equal(mod.sseHub, mod.default)
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
  t.ok(files.includes('README.md') && files.includes('LICENSE') && files.includes('package.json'))
  const stray = files.filter((f) => !/^(dist\/[a-z/-]+\.(js|d\.ts)|README\.md|LICENSE|package\.json)$/.test(f))
  t.same(stray, [], 'no sources, tests, maps or tooling')
})

t.test('fastify-sse-hub/client: its own entry point, plain ESM a browser can load', async (t) => {
  const name = 'fastify-sse-hub/client'
  const mod = await import(name) as typeof import('../src/browser/index.js')
  t.type(mod.subscribe, 'function')
  t.type(mod.compareEventIds, 'function')
  t.same(Object.keys(mod).sort(), ['compareEventIds', 'subscribe'])
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
