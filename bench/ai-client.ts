/*
 * The load client of the ai-resume scenario, its own process (bench/ai-resume.ts starts it):
 *   node bench/.build/bench/ai-client.js
 * Opens POSTs and resume GETs of UI message streams (node:http, one connection each) and records, per stream, when
 * its headers, its first chunk and given numbers of chunks arrived, the `error` chunk if one came, `data: [DONE]`,
 * and how the response ended. A chunk is an SSE frame with a `data:` line other than `[DONE]`. Times are µs on
 * CLOCK_MONOTONIC (common.ts `nowUs`), the orchestrator's clock too.
 */
import http from 'node:http'
import { nowUs, serveIpc, sleep, type Stream } from './common.js'


const streams = new Map<string, Stream>()
const requests = new Map<string, http.ClientRequest>()

function open ({ tag, port, method, path, body, marks = [] }: { tag: string, port: number, method: 'GET' | 'POST', path: string, body?: unknown, marks?: number[] }): boolean {
  const s: Stream = { tag, status: 0, tStart: nowUs(), tHeaders: 0, tFirst: 0, firstType: '', chunks: 0, bytes: 0, marks: {}, tError: 0, done: false, tDone: 0, ended: '', tEnded: 0 }
  streams.set(tag, s)
  const want = new Set(marks)
  const payload = body === undefined ? undefined : JSON.stringify(body)
  const req = http.request({
    host: '127.0.0.1',
    port,
    method,
    path,
    agent: false,
    headers: { accept: 'text/event-stream', ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }) }
  }, (res) => {
    s.status = res.statusCode ?? 0
    s.tHeaders = nowUs()
    res.setEncoding('utf8')
    const sse = (res.headers['content-type'] ?? '').startsWith('text/event-stream')
    let buf = ''
    res.on('data', (text: string) => {
      const now = nowUs()
      s.bytes += Buffer.byteLength(text)
      if (!sse) { if ((s.body ?? '').length < 200) s.body = ((s.body ?? '') + text).slice(0, 200); return }
      buf += text
      let pos = 0
      let end: number
      while ((end = buf.indexOf('\n\n', pos)) >= 0) {
        const frame = buf.slice(pos, end)
        pos = end + 2
        // The frame's `data:` line (the hub's frames may have other lines first).
        const line = frame.startsWith('data: ') ? 0 : frame.indexOf('\ndata: ') + 1
        if (line === 0 && !frame.startsWith('data: ')) continue
        const eol = frame.indexOf('\n', line)
        const data = frame.slice(line + 6, eol < 0 ? undefined : eol)
        if (data === '[DONE]') { s.done = true; s.tDone = now; continue }
        if (++s.chunks === 1) { s.tFirst = now; s.firstType = /^\{"type":"([^"]*)"/.exec(data)?.[1] ?? '?' }
        if (want.has(s.chunks)) s.marks[s.chunks] = now
        if (s.errorText === undefined && data.startsWith('{"type":"error"')) {
          s.errorText = (JSON.parse(data) as { errorText?: string }).errorText ?? '(no errorText)'
          s.tError = now
        }
      }
      buf = buf.slice(pos)
    })
    res.on('end', () => { if (s.ended === '') { s.ended = 'end'; s.tEnded = nowUs() } })
    res.on('error', () => {})
    res.on('close', () => { if (s.ended === '') { s.ended = 'reset'; s.tEnded = nowUs() } })
  })
  req.on('error', () => { if (s.ended === '') { s.ended = 'reset'; s.tEnded = nowUs() } })
  requests.set(tag, req)
  req.end(payload)
  return true
}

function pick (tags: string[]): Stream[] {
  return tags.map((t) => {
    const s = streams.get(t)
    if (s === undefined) throw new Error(`no stream ${t}`)
    return s
  })
}

serveIpc({
  open,
  /** Opens several at once. */
  openMany: ({ list }: { list: Array<Parameters<typeof open>[0]> }) => { for (const o of list) open(o); return list.length },
  state: ({ tags }: { tags: string[] }) => pick(tags),
  /**
   * Resolves with the streams once each has `chunks` chunks or has ended (`ended: true`: once each has ended);
   * after `timeoutMs`, with them as they are (the caller reads what it got).
   */
  wait: async ({ tags, chunks, ended, timeoutMs }: { tags: string[], chunks?: number, ended?: boolean, timeoutMs: number }) => {
    const deadline = Date.now() + timeoutMs
    const list = pick(tags)
    const ok = (s: Stream): boolean => s.ended !== '' || (ended !== true && chunks !== undefined && s.chunks >= chunks)
    while (!list.every(ok) && Date.now() < deadline) await sleep(2)
    return list
  },
  close: ({ tags }: { tags: string[] }) => {
    for (const t of tags) {
      const s = streams.get(t)
      if (s !== undefined && s.ended === '') { s.ended = 'closed'; s.tEnded = nowUs() }
      requests.get(t)?.destroy()
      requests.delete(t)
      streams.delete(t)
    }
    return true
  },
  cpu: () => { const c = process.cpuUsage(); return c.user + c.system }
})
process.send?.({ ready: true, pid: process.pid })
