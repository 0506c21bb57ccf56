/*
 * The demo page in real headless Chromium (playwright-core driving the system
 * `chromium`), built on fastify-sse-hub/client: a first visit watches the session it shows (Launch at the first
 * click, no failed request); tokens render live; a connection destroyed by the server
 * mid-stream is resumed with Last-Event-ID (or, the history trimmed meanwhile, answered with a snapshot) and the
 * page's transcript ends identical to the server's; a viewer joining mid-utterance sees the partial sentence at
 * once; a closed session is not requested again; ten tabs stream at once over HTTP/2.
 *
 * Without a chromium binary these tests skip, loudly; with SSE_HUB_REQUIRE_BROWSER=1 they fail instead.
 */
import t from 'tap'
import type { Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { BrowserContext, Page } from 'playwright-core'
import { build, type BuildOptions } from '../../example-server.js'
import { selfSignedCert } from '../../example/tls.js'
import { chromiumOrSkip, listen, waitFor } from '../helper.js'

// A real browser on a shared CI machine: more than tap's default 30 s per file.
t.setTimeout(180_000)

interface PageTurn { turnCount: number, speakerName: string, text: string, content: string | null }
interface PageView { tokens: number, reconnects: number, snapshots: number, snapshotReasons: string[], resyncs: number, duplicates: number, status: string, events: number, ended: boolean }

const browser = chromiumOrSkip(t)
if (browser !== undefined) {
  const newContext = async (t: { teardown: (fn: () => unknown) => void }): Promise<BrowserContext> => {
    const context = await browser().newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 800 } })
    t.teardown(() => context.close())
    return context
  }
  const view = async (page: Page): Promise<PageView> => await page.evaluate(() => {
    const demo = (window as any).demo
    const v = demo.view
    return { tokens: v.tokens, reconnects: v.reconnects, snapshots: v.snapshots, snapshotReasons: v.snapshotReasons, resyncs: v.resyncs, duplicates: demo.duplicates, status: v.status, events: v.events, ended: v.ended }
  })
  const transcript = async (page: Page): Promise<PageTurn[]> => await page.evaluate(() => (window as any).demo.transcript())
  const serverState = async (app: FastifyInstance, kind: string, id: string): Promise<any> => (await app.inject(`/api/${kind}s/sessions/${id}`)).json()
  const waitConnected = async (page: Page): Promise<void> => { await page.waitForFunction(() => (window as any).demo?.connected === true) }
  const waitCompleted = async (page: Page): Promise<void> => {
    await page.waitForFunction(() => (window as any).demo.view.status === 'completed', undefined, { timeout: 60_000 })
  }

  /** The page's transcript, built from tokens, equals the server's, turn by turn. */
  const sameTranscript = (t: Tap, page: PageTurn[], server: any, label: string): void => {
    t.same(page.map((x) => x.turnCount), server.transcript.map((x: any) => x.turnCount), `${label}: same turns`)
    t.same(page.map((x) => x.text), server.transcript.map((x: any) => x.content), `${label}: every token once, in order`)
    t.same(page.map((x) => x.speakerName), server.transcript.map((x: any) => x.speakerName), `${label}: same speakers`)
  }
  type Tap = { same: (a: unknown, b: unknown, m: string) => boolean }

  t.test('a first visit (no session in the URL): the page watches the session it shows, Launch works at the first click, no failed request', async (t) => {
    const app = await build()
    const url = await listen(app, t)
    const page = await (await newContext(t)).newPage()
    const problems: string[] = []
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`) })
    page.on('pageerror', (e) => { problems.push(`page error: ${e.message}`) })
    // The client closing its own stream at the session's end aborts that request: not a failure.
    page.on('requestfailed', (r) => { if (r.failure()?.errorText !== 'net::ERR_ABORTED') problems.push(`failed: ${r.url()} ${r.failure()?.errorText}`) })
    page.on('response', (r) => { if (r.status() >= 400) problems.push(`${r.status()}: ${r.url()}`) })
    await page.goto(`${url}/`)
    await waitConnected(page)
    const sessionId = await page.inputValue('#session')
    t.match(sessionId, /^talk-[a-z0-9]+$/, 'a fresh session id is shown')
    t.equal(await page.textContent('#title'), `conversation ${sessionId}: not launched yet — Launch it`)
    t.equal(await page.isDisabled('#launch'), false, 'Launch is enabled without clicking Watch')
    await page.fill('#turns', '2')
    await page.fill('#delay', '5')
    await page.click('#launch')
    await waitCompleted(page)
    t.ok((await view(page)).tokens > 0, 'the tokens of the launched session arrived')
    t.same(problems, [], 'no failed request, no console error')
  })

  t.test('the client in Chromium: a refused stream reaches onError with its status, a 204 (closed session) ends with no error', async (t) => {
    const app = await build()
    const url = await listen(app, t)
    await app.sse.closeConversation('over')
    const page = await (await newContext(t)).newPage()
    await page.goto(`${url}/`)
    const outcome = async (path: string): Promise<{ errors: Array<{ name: string, status?: number }>, closed: number }> => await page.evaluate(async (path) => {
      const { subscribe } = await import('/client/index.js' as string)
      return await new Promise((resolve) => {
        const errors: Array<{ name: string, status?: number }> = []
        let closed = 0
        subscribe(path, {
          onError (e: { name: string, status?: number }) { errors.push({ name: e.name, status: e.status }) },
          onClosed () { closed++ },
          onStatus (s: string) { if (s === 'closed') resolve({ errors, closed }) }
        })
      })
    }, path)
    t.same(await outcome('/api/conversations/sessions/bad%20id/stream'), { errors: [{ name: 'StreamRefusedError', status: 400 }], closed: 0 }, 'refused: 400')
    t.same(await outcome('/api/conversations/sessions/over/stream'), { errors: [], closed: 0 }, '204: the session is over, no error')
  })

  t.test('the page renders the tokens of a launched conversation, and pauses and resumes it', async (t) => {
    const app = await build()
    const url = await listen(app, t)
    const page = await (await newContext(t)).newPage()
    await page.goto(`${url}/?kind=conversation&session=b1`)
    await waitConnected(page)
    t.equal(await page.textContent('#indicator-text'), 'connected')
    await page.fill('#turns', '3')
    await page.fill('#delay', '15')
    await page.click('#launch')
    // Tokens appear in the DOM as they arrive, before the turn is complete.
    await page.waitForFunction(() => document.querySelector('.turn.live .text')?.textContent?.includes(' ') === true)
    t.equal(await page.textContent('#status'), 'running')
    t.match(await page.textContent('#title'), /\?$/, 'the topic is shown')
    t.equal(await page.locator('.participants li').count(), 4, 'host and three guests')
    t.equal(await page.locator('.participants li.speaking').count(), 1, 'one speaker at a time')

    await page.click('#pause')
    await page.waitForFunction(() => (window as any).demo.view.status === 'paused')
    t.equal((await serverState(app, 'conversation', 'b1')).status, 'paused')
    t.equal(await page.isDisabled('#pause'), true)
    await page.click('#resume')
    await waitCompleted(page)

    const server = await serverState(app, 'conversation', 'b1')
    sameTranscript(t, await transcript(page), server, 'b1')
    const texts = await page.locator('.turn .text').allTextContents()
    t.same(texts, server.transcript.map((x: any) => x.content), 'the DOM shows the transcript')
    t.equal(await page.locator('.turn.live').count(), 0, 'no turn is still live')
    const v = await view(page)
    t.ok(v.tokens > 20, `tokens rendered (${v.tokens})`)
    t.equal(v.duplicates, 0)
    // The stats panel polls /api/sse/stats.
    await page.waitForSelector('#stats dt')
    t.match(await page.textContent('#stats'), /open streams/)
  })

  t.test('a debate renders in the page too', async (t) => {
    const app = await build()
    const url = await listen(app, t)
    const page = await (await newContext(t)).newPage()
    await page.goto(`${url}/?kind=debate&session=d1`)
    await waitConnected(page)
    await app.inject({ method: 'POST', url: '/api/debates/sessions/d1/launch', payload: { turns: 5, tokenDelayMs: 2 } })
    await waitCompleted(page)
    sameTranscript(t, await transcript(page), await serverState(app, 'debate', 'd1'), 'd1')
    t.match(await page.textContent('#summary'), /Winner: (for|against|draw)/)
  })

  // The server destroys every socket mid-stream; the page's EventSource reconnects with Last-Event-ID by itself.
  // Reconnections wait behind a gate (the hub's authorize hook) until the session has moved on by `gap` events,
  // so the replay (history kept) and snapshot (history trimmed while away) paths are taken for certain, not by timing.
  for (const variant of [
    { name: 'replay from history', hub: { historySize: 1000 }, gap: 10 },
    { name: 'history trimmed while away, a snapshot', hub: { historySize: 5 }, gap: 30 }
  ]) {
    t.test(`socket destroyed mid-stream, ${variant.name}: the page's transcript ends identical to the server's`, async (t) => {
      let gate: Promise<void> = Promise.resolve()
      const app = await build({ hub: { ...variant.hub, retry: 100, retryJitter: 0, authorize: async () => { await gate } } })
      const sockets = new Set<Socket>()
      app.server.on('connection', (s: Socket) => { sockets.add(s); s.once('close', () => sockets.delete(s)) })
      const url = await listen(app, t)
      const page = await (await newContext(t)).newPage()
      await page.goto(`${url}/?kind=conversation&session=drop`)
      await waitConnected(page)
      await app.inject({ method: 'POST', url: '/api/conversations/sessions/drop/launch', payload: { turns: 4, tokenDelayMs: 4 } })
      await page.waitForFunction(() => (window as any).demo.view.tokens >= 15)

      let open!: () => void
      gate = new Promise<void>((resolve) => { open = resolve })
      const before = app.sse.getStats().broadcasts
      for (const s of sockets) s.destroy()
      // Let the run move on while the page is cut off, then let it back in.
      await waitFor(() => app.sse.getStats().broadcasts >= before + variant.gap, `${variant.gap} more events`)
      open()

      await waitCompleted(page)
      const v = await view(page)
      t.ok(v.reconnects >= 1, `the page reconnected (${v.reconnects})`)
      t.equal(v.duplicates, 0, 'no event twice')
      const stats = app.sse.getStats()
      t.equal(v.resyncs, 0, 'no resync: the hub has the example\'s snapshot')
      t.equal(stats.resyncsSent, 0)
      if (variant.hub.historySize === 5) {
        t.ok(v.snapshots >= 1, `the page got a snapshot (${v.snapshots}) and went on from it`)
        t.same(v.snapshotReasons, ['history_trimmed'], 'the hub sent it because the history was trimmed')
      } else {
        t.equal(v.snapshots, 0, 'no snapshot needed')
        t.ok(stats.replaysServed >= 1, 'the hub replayed the missed events')
      }
      sameTranscript(t, await transcript(page), await serverState(app, 'conversation', 'drop'), 'drop')
    })
  }

  t.test('a viewer who joins mid-utterance sees the partial sentence at once, then the rest, and ends identical to the server', async (t) => {
    const app = await build()
    const url = await listen(app, t)
    await app.inject({ method: 'POST', url: '/api/conversations/sessions/late/launch', payload: { turns: 3, tokenDelayMs: 5 } })
    // Paused mid-utterance: the turn's partial text stays as it is while the viewer joins.
    await waitFor(async () => ((await serverState(app, 'conversation', 'late')).current?.partial ?? '').split(' ').length >= 4, 'a turn half spoken')
    await app.inject({ method: 'POST', url: '/api/conversations/sessions/late/pause' })
    const page = await (await newContext(t)).newPage()
    await page.goto(`${url}/?kind=conversation&session=late`)
    await page.waitForFunction(() => (window as any).demo.view.snapshots === 1)
    const atJoin = await serverState(app, 'conversation', 'late')
    t.equal(atJoin.status, 'paused')
    t.ok(atJoin.current.partial.includes(' '), `the server is mid-utterance: "${atJoin.current.partial}"`)
    await page.waitForFunction((partial) => document.querySelector('.turn.live .text')?.textContent === partial, atJoin.current.partial)
    const first = await transcript(page)
    t.same(first.map((x) => x.text), [...atJoin.transcript.map((x: any) => x.content), atJoin.current.partial], 'the finished turns and the partial one')
    const v0 = await view(page)
    t.equal(v0.tokens, 0, 'shown from the snapshot, before any token')
    t.same(v0.snapshotReasons, ['join'])
    t.equal(await page.textContent('#status'), 'paused')

    await app.inject({ method: 'POST', url: '/api/conversations/sessions/late/resume' })
    await waitCompleted(page)
    const v = await view(page)
    t.ok(v.tokens > 0, 'the rest came as tokens')
    t.equal(v.duplicates, 0)
    sameTranscript(t, await transcript(page), await serverState(app, 'conversation', 'late'), 'late')
  })

  t.test('after conversation_completed the page shows completed and requests the stream no more', async (t) => {
    const RETRY = 150
    const app = await build({ hub: { retry: RETRY, retryJitter: 0 } })
    // Counted at the server: every request for the session's stream, whatever the page does.
    let streamRequests = 0
    app.server.on('request', (req: { url?: string }) => { if (req.url?.startsWith('/api/conversations/sessions/done/stream') === true) streamRequests++ })
    const url = await listen(app, t)
    const context = await newContext(t)
    const page = await context.newPage()
    await page.goto(`${url}/?kind=conversation&session=done`)
    await waitConnected(page)
    await app.inject({ method: 'POST', url: '/api/conversations/sessions/done/launch', payload: { turns: 2, tokenDelayMs: 2 } })
    await waitCompleted(page)
    await page.waitForFunction(() => (window as any).demo.view.ended === true)
    t.equal(await page.textContent('#status'), 'completed')
    t.equal(await page.textContent('#indicator-text'), 'session over')
    t.equal(await page.evaluate(() => (window as any).demo.view.connection), 'closed')
    t.equal(streamRequests, 1)
    // The measurement: three retry intervals pass on the server's clock; an EventSource still alive would have
    // reconnected (with its Last-Event-ID, for a 204) within the first.
    await new Promise((resolve) => setTimeout(resolve, 3 * RETRY + 50))
    t.equal(streamRequests, 1, 'no stream request after the session closed')
    sameTranscript(t, await transcript(page), await serverState(app, 'conversation', 'done'), 'done')

    // A viewer who comes afterwards reads the finished conversation (a snapshot, then closed), and stops too.
    const later = await context.newPage()
    await later.goto(`${url}/?kind=conversation&session=done`)
    await later.waitForFunction(() => (window as any).demo.view.ended === true)
    t.equal(await later.textContent('#status'), 'completed')
    sameTranscript(t, await transcript(later), await serverState(app, 'conversation', 'done'), 'done, later')
    await new Promise((resolve) => setTimeout(resolve, 3 * RETRY + 50))
    t.equal(streamRequests, 2, 'one request for the later viewer, none after')
    t.equal(await later.isDisabled('#launch'), true, 'a closed session cannot be launched again from the page')
  })

  t.test('ten tabs over HTTP/2 (TLS) all stream at once', async (t) => {
    const app = await build({ http2: true, https: await selfSignedCert() } satisfies BuildOptions)
    let sessions = 0
    app.server.on('session', () => { sessions++ })
    const url = await listen(app, t)
    t.match(url, /^https:/)
    const context = await newContext(t)
    const pages = await Promise.all(Array.from({ length: 10 }, async () => await context.newPage()))
    await Promise.all(pages.map(async (p) => { await p.goto(`${url}/?kind=conversation&session=tabs`) }))
    await Promise.all(pages.map(waitConnected))
    const protocols = await Promise.all(pages.map(async (p) => await p.evaluate(() => (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).nextHopProtocol)))
    t.same(protocols, Array(10).fill('h2'), 'every tab speaks HTTP/2')
    t.equal(app.sse.getConversationClientCount('tabs'), 10, 'ten open streams (past the six HTTP/1.1 connections a browser allows per origin)')
    t.ok(sessions <= 2, `the tabs share HTTP/2 connections (${sessions})`)

    await app.inject({ method: 'POST', url: '/api/conversations/sessions/tabs/launch', payload: { turns: 3, tokenDelayMs: 3 } })
    await Promise.all(pages.map(waitCompleted))
    const server = await serverState(app, 'conversation', 'tabs')
    const all = await Promise.all(pages.map(transcript))
    let identical = 0
    for (const tr of all) if (JSON.stringify(tr.map((x) => x.text)) === JSON.stringify(server.transcript.map((x: any) => x.content))) identical++
    t.equal(identical, 10, 'all ten tabs hold the full transcript')
    const views = await Promise.all(pages.map(view))
    t.ok(views.every((v) => v.duplicates === 0 && v.tokens > 10), 'every tab streamed tokens, none twice')
  })
}

