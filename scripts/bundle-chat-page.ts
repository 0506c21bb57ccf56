/*
 * Bundles the example's chat page script (example/chat-page.ts and the parts of `ai` it uses) into
 * public/build/chat.js, which the example server serves. Not part of the package's build (`prepare` builds dist/
 * only): `npm start` and `npm test` run it as `npm run build:example`.
 *   npx tsx scripts/bundle-chat-page.ts
 */
import { build } from 'esbuild'
import { fileURLToPath } from 'node:url'

const result = await build({
  entryPoints: [fileURLToPath(new URL('../example/chat-page.ts', import.meta.url))],
  // example-server.ts checks this file (CHAT_PAGE_BUNDLE).
  outfile: fileURLToPath(new URL('../public/build/chat.js', import.meta.url)),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  logLevel: 'warning',
  metafile: true
})
const bytes = Object.entries(result.metafile.outputs).find(([file]) => file.endsWith('.js'))?.[1].bytes ?? 0
process.stdout.write(`public/build/chat.js bundled (${Math.round(bytes / 1024)} kB, and its source map)\n`)
