/*
 * The example's chat page (/chat.html: the AI SDK's AbstractChat with DefaultChatTransport, bundled by esbuild) in
 * real headless Chromium: a page reloaded mid-answer shows the whole answer once and ends with exactly the messages
 * the server saved; a second tab on the same chat mid-answer shows it live and ends identical; Stop ends the answer
 * in every tab, as saved. No console error, no failed request. "Mid-answer" is made, not timed: the example's model
 * holds each answer after its third word until the test lets it go on.
 *
 * Without a chromium binary these tests skip, loudly; with SSE_HUB_REQUIRE_BROWSER=1 they fail instead.
 */
import t from 'tap'
import type { UIMessage } from 'ai'
import type { Page } from 'playwright-core'
import { build } from '../../example-server.js'
import { simulatedModel } from '../../example/chat-model.js'
import { answerText } from '../../example/corpus.js'
import { gate, heldAt } from '../ai/helper.js'
import { chromiumOrSkip, listen } from '../helper.js'

t.setTimeout(60_000)

interface PageChat { messages: UIMessage[], status: string, error: string | undefined }

const browser = chromiumOrSkip(t)
if (browser !== undefined) {
  /** A page of a fresh browser context (closed when the test ends); its console errors and failed requests go to `problems`. */
  const newPage = async (t: { teardown: (fn: () => unknown) => void }, problems: string[]): Promise<Page> => {
    const context = await browser().newContext({ viewport: { width: 1000, height: 800 } })
    t.teardown(() => context.close())
    const page = await context.newPage()
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`) })
    page.on('pageerror', (e) => { problems.push(`page error: ${e.message}`) })
    page.on('requestfailed', (r) => { if (r.failure()?.errorText !== 'net::ERR_ABORTED') problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`) })
    return page
  }
  /** The page's chat: its messages as JSON carries them, its status and error. */
  const chatOf = async (page: Page): Promise<PageChat> => await page.evaluate(() => {
    const chat = (window as any).chatPage.chat
    return { messages: JSON.parse(JSON.stringify(chat.messages)), status: chat.status, error: chat.error?.message }
  })
  /** The texts the page shows, one per message. */
  const shown = async (page: Page): Promise<string[]> => await page.$$eval('#messages li .text', (els) => els.map((e) => e.textContent ?? ''))
  const loaded = async (page: Page): Promise<void> => { await page.waitForFunction(() => (window as any).chatPage?.loaded === true) }
  const status = async (page: Page, s: string): Promise<void> => { await page.waitForFunction((s) => (window as any).chatPage.chat.status === s, s) }
  /** Waits until the page's answer has some text and is still streaming: the answer is in progress. */
  const midAnswer = async (page: Page): Promise<void> => {
    await page.waitForFunction(() => {
      const chat = (window as any).chatPage.chat
      const last = chat.messages.at(-1)
      return chat.status === 'streaming' && last?.role === 'assistant' && last.parts.some((p: any) => p.type === 'text' && p.text !== '')
    })
  }
  const saved = async (url: string, page: Page): Promise<UIMessage[]> => {
    const id = new URL(page.url()).searchParams.get('id') as string
    return (await (await fetch(`${url}/api/chat/${encodeURIComponent(id)}`)).json()).messages
  }
  /** The example app, its answers held after their third word until the returned gate opens (a test's "mid-answer"). */
  const heldApp = async (t: { teardown: (fn: () => unknown) => void }): Promise<{ url: string, open: () => void }> => {
    const g = gate()
    t.teardown(g.open)
    const app = await build({ chatModel: (tokenDelayMs) => heldAt(simulatedModel(tokenDelayMs), 4, g.wait) })
    return { url: await listen(app, t), open: g.open }
  }
  const send = async (page: Page, text: string): Promise<void> => {
    await page.fill('#input', text)
    await page.click('#send')
  }

  t.test('a reload mid-answer: the whole answer once, then exactly the messages the server saved', async (t) => {
    const { url, open } = await heldApp(t)
    const problems: string[] = []
    const page = await newPage(t, problems)
    await page.goto(`${url}/chat.html?delay=10`)
    await loaded(page)
    t.match(new URL(page.url()).searchParams.get('id'), /^[0-9a-f-]{36}$/, 'a fresh chat id, put in the URL')
    await send(page, 'Tell me about engines')
    await midAnswer(page)

    await page.reload()
    await loaded(page)
    await midAnswer(page)
    t.pass('after the reload, the answer resumed mid-way')
    open()
    await status(page, 'ready')
    const chat = await chatOf(page)
    t.equal(chat.error, undefined)
    t.same(chat.messages, await saved(url, page), 'the page holds what the server saved')
    t.same(chat.messages.map((m) => m.role), ['user', 'assistant'])
    t.same(await shown(page), ['Tell me about engines', answerText('Tell me about engines')], 'the whole answer, shown once')
    t.same(problems, [])
  })

  t.test('a second tab on the chat mid-answer: the answer live, ending identical in both tabs', async (t) => {
    const { url, open } = await heldApp(t)
    const problems: string[] = []
    const first = await newPage(t, problems)
    await first.goto(`${url}/chat.html?delay=10`)
    await loaded(first)
    await send(first, 'What is a loom?')
    await midAnswer(first)

    const second = await newPage(t, problems)
    await second.goto(first.url())
    await loaded(second)
    await midAnswer(second)
    t.pass('the second tab shows the answer while it streams')
    open()
    await Promise.all([status(first, 'ready'), status(second, 'ready')])
    const server = await saved(url, first)
    t.same((await chatOf(first)).messages, server, 'the first tab holds what the server saved')
    t.same((await chatOf(second)).messages, server, 'and the second too')
    t.same(await shown(second), ['What is a loom?', answerText('What is a loom?')])
    t.same(await shown(first), await shown(second))
    t.same(problems, [])
  })

  t.test('Stop in one tab ends the answer in both, each holding what the server saved', async (t) => {
    const { url } = await heldApp(t)
    const problems: string[] = []
    const first = await newPage(t, problems)
    await first.goto(`${url}/chat.html?delay=10`)
    await loaded(first)
    await send(first, 'A long story, please')
    await midAnswer(first)
    const second = await newPage(t, problems)
    await second.goto(first.url())
    await loaded(second)
    await midAnswer(second)

    await second.click('#stop')
    await Promise.all([status(first, 'ready'), status(second, 'ready')])
    const server = await saved(url, first)
    const answer = (await shown(first))[1] as string
    t.ok(answer !== '' && answer.length < answerText('A long story, please').length, 'a part of the answer')
    t.same((await chatOf(first)).messages, server)
    t.same((await chatOf(second)).messages, server)
    t.equal(await first.isDisabled('#stop'), true, 'Stop is disabled once ready')
    t.same(problems, [])
  })
}
