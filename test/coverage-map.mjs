// Coverage is measured and enforced (100%) on the plugin's own code: every test may cover any file in src/.
import { readdirSync } from 'node:fs'

const files = readdirSync('src', { recursive: true, withFileTypes: true })
  .filter((d) => d.isFile() && d.name.endsWith('.ts'))
  .map((d) => `${d.parentPath ?? d.path}/${d.name}`)

export default () => files
