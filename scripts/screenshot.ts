/*
 * Takes docs/screenshot.png: the demo page mid-conversation, in headless Chromium.
 *   npx tsx scripts/screenshot.ts            (CHROMIUM_PATH overrides /usr/bin/chromium)
 */
import { chromium } from 'playwright-core'
import { build } from '../example-server.js'

const app = await build()
const url = await app.listen({ port: 0, host: '127.0.0.1' })
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
})
try {
  const page = await browser.newPage({ viewport: { width: 1360, height: 900 } })
  // A few events in the debate log too, for the stats panel.
  await app.inject({ method: 'POST', url: '/api/debates/sessions/warm-up/launch', payload: { turns: 4, tokenDelayMs: 1 } })
  await page.goto(`${url}/?kind=conversation&session=open-circuit-42`)
  await page.waitForFunction(() => (window as any).demo.connected)
  await page.fill('#turns', '10')
  await page.fill('#delay', '25')
  await page.click('#launch')
  // The stats panel is filled by its first poll.
  await page.waitForSelector('#stats dt')
  // Mid-conversation: the fourth turn or later is being spoken.
  await page.waitForFunction(() => {
    const t = (window as any).demo.transcript()
    const last = t[t.length - 1]
    return t.length >= 4 && last.content === null && last.text.split(' ').length >= 12
  }, undefined, { timeout: 60_000 })
  await page.screenshot({ path: 'docs/screenshot.png' })
  console.log('wrote docs/screenshot.png')
} finally {
  await browser.close()
  await app.close()
}
