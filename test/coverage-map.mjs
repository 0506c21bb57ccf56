// Coverage is measured and enforced (100%) on the plugin's own code: every test may cover any file in src/, except
// the structure test, which reads src/ as text and runs none of it (null: no coverage is collected for it).
import { readdirSync } from 'node:fs'

const files = readdirSync('src', { recursive: true, withFileTypes: true })
  .filter((d) => d.isFile() && d.name.endsWith('.ts'))
  .map((d) => `${d.parentPath ?? d.path}/${d.name}`)

export default (test) => /(^|[/\\])structure\.test\.ts$/.test(test) ? null : files
