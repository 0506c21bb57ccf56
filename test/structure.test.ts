/*
 * The layout checks itself, in the spirit of fastify's errors parity test: src/ has no value import cycle, every
 * `perf note N` in src/ is a note of docs/performance.md, every FST_ERR_SSE_HUB_* code of src/errors.ts is exported
 * there and has a row in the README's errors table (and the table names no other), and no src/ file is over 300
 * lines. Each check is a function first run on a small input that breaks it: a check that cannot fail shows here.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import t from 'tap'
import ts from 'typescript'

const MAX_LINES = 300

/**
 * The modules a TypeScript module loads when it runs: the relative specifiers of its emitted JavaScript, compiled
 * with the project's `verbatimModuleSyntax`. `import type` and `export type` are gone from it; an import of
 * `type` names only stays, as `import {} from`, so it is a load (and cycle) edge like any other.
 */
function valueImports (source: string): string[] {
  const js = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true }
  }).outputText
  const specifiers: string[] = []
  for (const node of ts.createSourceFile('emitted.js', js, ts.ScriptTarget.ES2022).statements) {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier !== undefined) {
      const specifier = (node.moduleSpecifier as ts.StringLiteral).text
      if (specifier.startsWith('.')) specifiers.push(specifier)
    }
  }
  return specifiers
}

/** The value import graph of some modules (path → source), edges to modules among them (`.js` specifiers name `.ts` files). */
function importGraph (modules: ReadonlyMap<string, string>): Map<string, string[]> {
  const graph = new Map<string, string[]>()
  for (const [path, source] of modules) {
    const targets = valueImports(source).map((s) => join(dirname(path), s.replace(/\.js$/, '.ts')))
    graph.set(path, targets.filter((target) => modules.has(target)))
  }
  return graph
}

/** One cycle per group of modules that import each other (strongly connected), as a path back to its start. */
function cycles (graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const found: string[][] = []
  const visit = (node: string): void => {
    index.set(node, index.size)
    low.set(node, index.get(node) as number)
    stack.push(node)
    for (const next of graph.get(node) ?? []) {
      if (!index.has(next)) visit(next)
      if (stack.includes(next)) low.set(node, Math.min(low.get(node) as number, low.get(next) as number))
    }
    if (low.get(node) !== index.get(node)) return
    const group = stack.splice(stack.indexOf(node))
    if (group.length > 1 || (graph.get(node) ?? []).includes(node)) found.push(pathWithin(graph, new Set(group), node))
  }
  for (const node of graph.keys()) if (!index.has(node)) visit(node)
  return found
}

/** A shortest path from `start` back to itself through `group` (breadth first). */
function pathWithin (graph: ReadonlyMap<string, readonly string[]>, group: ReadonlySet<string>, start: string): string[] {
  const from = new Map<string, string>()
  const queue = [start]
  for (let i = 0; i < queue.length; i++) {
    const node = queue[i] as string
    for (const next of graph.get(node) ?? []) {
      if (next === start) {
        const path = [start]
        for (let at = node; at !== start; at = from.get(at) as string) path.splice(1, 0, at)
        return [...path, start]
      }
      if (group.has(next) && !from.has(next)) {
        from.set(next, node)
        queue.push(next)
      }
    }
  }
  return [start]
}

/** The note numbers a source cites: `perf note 5`, `perf notes 13 and 31`, `perf notes 26–28` (a range). */
function citedNotes (source: string): number[] {
  const cited: number[] = []
  for (const [, list] of source.matchAll(/perf notes? (\d+(?:(?:, | and |–|-)\d+)*)/g)) {
    for (const part of (list as string).split(/, | and /)) {
      const [first, last = first] = part.split(/–|-/).map(Number) as [number, number?]
      for (let n = first; n <= (last as number); n++) cited.push(n)
    }
  }
  return cited
}

/** The notes docs/performance.md has: its `### N. Title` headings, less those marked retired. */
function definedNotes (markdown: string): Set<number> {
  const notes = new Set<number>()
  for (const [, n, title] of markdown.matchAll(/^### (\d+)\. (.*)$/gm)) {
    if (!/retired/i.test(title as string)) notes.add(Number(n))
  }
  return notes
}

/** The codes errors.ts defines (the first argument of each `createError` call), and the names it exports. */
function errorDefinitions (source: string): { codes: string[], exported: Set<string> } {
  const codes: string[] = []
  const exported = new Set<string>()
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && node.expression.getText() === 'createError') {
      const first = node.arguments[0]
      if (first !== undefined && ts.isStringLiteral(first) && first.text.startsWith('FST_ERR_SSE_HUB_')) codes.push(first.text)
    }
    if (ts.isVariableStatement(node) && node.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword) === true) {
      for (const d of node.declarationList.declarations) exported.add(d.name.getText())
    }
    if (ts.isExportDeclaration(node) && node.moduleSpecifier === undefined && node.exportClause !== undefined && ts.isNamedExports(node.exportClause)) {
      for (const e of node.exportClause.elements) exported.add(e.name.text)
    }
    ts.forEachChild(node, visit)
  }
  visit(ts.createSourceFile('errors.ts', source, ts.ScriptTarget.ES2022, true))
  return { codes, exported }
}

/**
 * The codes of the README's errors table: the first table after a heading named Errors, one row per code, the
 * code in backticks in its first cell. Undefined when there is no such heading or table.
 */
function errorsTable (readme: string): Set<string> | undefined {
  const lines = readme.split('\n')
  const heading = lines.findIndex((line) => /^#{1,6} Errors\b/.test(line))
  if (heading < 0) return undefined
  const rows: string[] = []
  for (const line of lines.slice(heading + 1)) {
    if (line.startsWith('#')) break
    if (line.startsWith('|')) rows.push(line)
    else if (rows.length > 0) break
  }
  const codes = new Set<string>()
  for (const row of rows) {
    const code = /^\|\s*`(FST_ERR_SSE_HUB_[A-Z0-9_]+)`\s*\|/.exec(row)?.[1]
    if (code !== undefined) codes.add(code)
  }
  return codes.size === 0 ? undefined : codes
}

/** Lines of a text, a last line without its newline included. */
function lineCount (text: string): number {
  return text === '' ? 0 : text.split('\n').length - (text.endsWith('\n') ? 1 : 0)
}

/** The value import cycles among some modules (path → source), each as `a → b → a`. */
function valueCycles (modules: ReadonlyMap<string, string>): string[] {
  return cycles(importGraph(modules)).map((cycle) => cycle.join(' → '))
}

/** Each `perf note N` of some modules that the performance notes lack. */
function missingNotes (modules: ReadonlyMap<string, string>, performanceMd: string): string[] {
  const notes = definedNotes(performanceMd)
  const missing: string[] = []
  for (const [path, source] of modules) {
    for (const n of citedNotes(source)) if (!notes.has(n)) missing.push(`${path}: perf note ${n}`)
  }
  return missing
}

/** What the error codes of errors.ts and the README's errors table disagree on. */
function errorProblems (errorsTs: string, readme: string): string[] {
  const { codes, exported } = errorDefinitions(errorsTs)
  const table = errorsTable(readme)
  if (table === undefined) return ['the README has no errors table']
  return [
    ...codes.filter((c) => !exported.has(c)).map((c) => `${c}: not exported by errors.ts`),
    ...codes.filter((c) => !table.has(c)).map((c) => `${c}: no row in the README's errors table`),
    ...[...table].filter((c) => !codes.includes(c)).map((c) => `${c}: a row in the README's errors table, not a code of errors.ts`)
  ]
}

/** The modules over `MAX_LINES` lines, with their length. */
function longFiles (modules: ReadonlyMap<string, string>): string[] {
  return [...modules].filter(([, source]) => lineCount(source) > MAX_LINES).map(([path, source]) => `${path}: ${lineCount(source)} lines`)
}

// Every check fails on an input that breaks it.

t.test('an import cycle is found by value, not by type', async (t) => {
  const graph = importGraph(new Map([
    ['a.ts', "import { b } from './b.js'\nexport const a = 1"],
    ['b.ts', "import {\n  c\n} from './c.js'\nimport type { A } from './a.js'\nexport const b = 2"],
    ['c.ts', "export { a } from './a.js'\nexport const c = 3"],
    ['d.ts', "import { type E } from './e.js'\nimport type { A } from './a.js'\nexport const d = 4"],
    ['e.ts', "import './d.js'\nimport { x } from 'package'\nexport type E = number"],
    ['f.ts', "import { f2 } from './f.js'\nexport const f2 = 5"]
  ]))
  t.same(graph.get('b.ts'), ['c.ts'], 'import type is no edge; a multi-line import is')
  t.same(graph.get('e.ts'), ['d.ts'], 'a side-effect import is an edge; a package is none')
  t.same(cycles(graph), [['a.ts', 'b.ts', 'c.ts', 'a.ts'], ['d.ts', 'e.ts', 'd.ts'], ['f.ts', 'f.ts']])
  t.same(valueImports("import { type E } from './e.js'\nexport type { F } from './f.js'"), ['./e.js'],
    'under verbatimModuleSyntax an import of type names only still loads the module; export type does not')
  t.same(valueCycles(new Map([['src/a.ts', "import { b } from './b.js'"], ['src/b.ts', "import { a } from './a.js'"]])), ['src/a.ts → src/b.ts → src/a.ts'])
  t.same(valueCycles(new Map([['src/a.ts', "import type { B } from './b.js'"], ['src/b.ts', "import { a } from './a.js'"]])), [])
})

t.test('a perf note cited but missing or retired is found', async (t) => {
  t.same(citedNotes('// perf note 5\n/* (perf notes 13 and 31), perf notes 26–28, perf notes 1, 2 */ perf note'), [5, 13, 31, 26, 27, 28, 1, 2])
  const md = '# Performance notes\n### 1. One\ntext 2.\n### 2. Two *retired*\n## 3. Not a note\n### 4. Four\n'
  t.same([...definedNotes(md)], [1, 4])
  t.same(missingNotes(new Map([['a.ts', '// perf notes 1 and 4'], ['b.ts', '// perf notes 2–3 (perf note 5)']]), md), ['b.ts: perf note 2', 'b.ts: perf note 3', 'b.ts: perf note 5'])
})

t.test('an error code not exported, or not in the errors table, is found', async (t) => {
  const errorsTs = [
    "export const FST_ERR_SSE_HUB_A = createError<[string]>('FST_ERR_SSE_HUB_A', 'a %s', 500)",
    "const FST_ERR_SSE_HUB_B = createError('FST_ERR_SSE_HUB_B', 'b', 400)",
    "const FST_ERR_SSE_HUB_C = createError('FST_ERR_SSE_HUB_C', 'c', 400)",
    'export { FST_ERR_SSE_HUB_C }'
  ].join('\n')
  t.same(errorDefinitions(errorsTs).codes, ['FST_ERR_SSE_HUB_A', 'FST_ERR_SSE_HUB_B', 'FST_ERR_SSE_HUB_C'])
  const readme = '# x\n| `FST_ERR_SSE_HUB_B` | 1 |\n## Errors\n\nEvery error…\n\n| code | status |\n|---|---|\n| `FST_ERR_SSE_HUB_A` | 500 |\n| `FST_ERR_SSE_HUB_D` | 400 |\n\n| `FST_ERR_SSE_HUB_C` | after the table |\n'
  t.same(errorProblems(errorsTs, readme), [
    'FST_ERR_SSE_HUB_B: not exported by errors.ts',
    "FST_ERR_SSE_HUB_B: no row in the README's errors table",
    "FST_ERR_SSE_HUB_C: no row in the README's errors table",
    "FST_ERR_SSE_HUB_D: a row in the README's errors table, not a code of errors.ts"
  ])
  t.same(errorProblems(errorsTs, '## Errors\n\nNo table.\n## Next\n| `FST_ERR_SSE_HUB_A` |\n'), ['the README has no errors table'])
  t.same(errorProblems(errorsTs, '| `FST_ERR_SSE_HUB_A` |\n'), ['the README has no errors table'], 'a table under no Errors heading')
})

t.test('a file over the limit is found', async (t) => {
  t.same(longFiles(new Map([['a.ts', 'a\n'.repeat(MAX_LINES)], ['b.ts', 'b\n'.repeat(MAX_LINES) + 'b'], ['c.ts', '']])), [`b.ts: ${MAX_LINES + 1} lines`])
  t.equal(lineCount(''), 0)
})

// The checks, on this repository.

const sources = new Map<string, string>()
for (const file of readdirSync('src', { recursive: true, encoding: 'utf8' })) {
  if (file.endsWith('.ts')) sources.set(join('src', file), readFileSync(join('src', file), 'utf8'))
}

t.test('src/ has no value import cycle', async (t) => {
  t.ok(sources.size > 30, 'every module of src/ is read')
  t.same(valueCycles(sources), [])
})

t.test('every perf note cited in src/ is a note of docs/performance.md', async (t) => {
  t.ok(definedNotes(readFileSync('docs/performance.md', 'utf8')).size >= 40, 'the notes are read')
  t.same(missingNotes(sources, readFileSync('docs/performance.md', 'utf8')), [])
})

t.test('every FST_ERR_SSE_HUB_* code of errors.ts is exported and in the README errors table, which names no other', async (t) => {
  const errorsTs = sources.get(join('src', 'errors.ts')) as string
  t.ok(errorDefinitions(errorsTs).codes.length >= 10, 'the codes are read')
  t.same(errorProblems(errorsTs, readFileSync('README.md', 'utf8')), [])
})

t.test(`no src/ file is over ${MAX_LINES} lines`, async (t) => {
  t.same(longFiles(sources), [])
})
