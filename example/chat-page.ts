// The chat page's script (browser code, bundled by scripts/bundle-chat-page.ts into public/build/chat.js): the AI
// SDK's own `AbstractChat` with `DefaultChatTransport`, resuming as `useChat({ resume: true })` does, rendered plainly.
import { AbstractChat, DefaultChatTransport, type ChatState, type ChatStatus, type UIMessage } from 'ai'

/** A chat's state in plain fields that re-render the page on every change (a framework's reactive state, without one). */
class PageState implements ChatState<UIMessage> {
  #messages: UIMessage[]
  #status: ChatStatus = 'ready'
  #error: Error | undefined = undefined

  constructor (messages: UIMessage[], readonly changed: () => void) {
    this.#messages = messages
  }

  get messages (): UIMessage[] { return this.#messages }
  set messages (messages: UIMessage[]) { this.#messages = messages; this.changed() }
  get status (): ChatStatus { return this.#status }
  set status (status: ChatStatus) { this.#status = status; this.changed() }
  get error (): Error | undefined { return this.#error }
  set error (error: Error | undefined) { this.#error = error; this.changed() }

  pushMessage = (m: UIMessage): void => { this.messages = [...this.#messages, m] }
  popMessage = (): void => { this.messages = this.#messages.slice(0, -1) }
  replaceMessage = (i: number, m: UIMessage): void => { this.messages = this.#messages.map((old, j) => j === i ? m : old) }
  snapshot = <T>(thing: T): T => structuredClone(thing)
}

class PageChat extends AbstractChat<UIMessage> {
  constructor (id: string, messages: UIMessage[], changed: () => void) {
    // The transport's defaults: POST /api/chat, and GET /api/chat/:id/stream to resume.
    super({ id, state: new PageState(messages, changed), transport: new DefaultChatTransport({ api: '/api/chat' }) })
  }
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T

/** The text a part shows: a text part's text, nothing for a step boundary, the type of any other. */
function partText (part: UIMessage['parts'][number]): string {
  if (part.type === 'text' || part.type === 'reasoning') return part.text
  return part.type === 'step-start' ? '' : `[${part.type}]`
}

function render (chat: PageChat): void {
  const list = $<HTMLOListElement>('messages')
  const streaming = chat.status === 'streaming'
  list.replaceChildren(...chat.messages.map((m, i) => {
    const li = document.createElement('li')
    li.className = `msg msg-${m.role}` + (streaming && i === chat.messages.length - 1 && m.role === 'assistant' ? ' live' : '')
    li.dataset.id = m.id
    const who = document.createElement('div')
    who.className = 'who'
    who.textContent = m.role === 'user' ? 'You' : m.role === 'assistant' ? 'Assistant' : m.role
    const text = document.createElement('p')
    text.className = 'text'
    text.textContent = m.parts.map(partText).join('')
    li.append(who, text)
    return li
  }))
  list.scrollTop = list.scrollHeight
  const status = $('status')
  status.textContent = chat.status
  status.dataset.status = chat.status
  $('error').textContent = chat.error === undefined ? '' : chat.error.message
  const busy = chat.status === 'submitted' || chat.status === 'streaming'
  $<HTMLButtonElement>('send').disabled = busy
  $<HTMLButtonElement>('stop').disabled = !busy
}

/** The chat id in the URL (`?id=`), or a fresh one put there (`fresh`: nothing can be saved or running for it). */
function chatId (): { id: string, fresh: boolean } {
  const url = new URL(location.href)
  const id = url.searchParams.get('id')
  if (id !== null && id !== '') return { id, fresh: false }
  const fresh = crypto.randomUUID()
  url.searchParams.set('id', fresh)
  history.replaceState(null, '', url)
  return { id: fresh, fresh: true }
}

/** What the page exposes for its tests (and a curious console): the chat and whether it has loaded. */
interface ChatPage { chat: PageChat | undefined, loaded: boolean, renders: number }
const page: ChatPage = { chat: undefined, loaded: false, renders: 0 }
;(window as unknown as { chatPage: ChatPage }).chatPage = page

async function main (): Promise<void> {
  const { id, fresh } = chatId()
  $('chat-id').textContent = id
  const delay = new URL(location.href).searchParams.get('delay')
  if (delay !== null) $<HTMLInputElement>('delay').value = delay
  // What the server saved (the persisted truth) first, then the answer in progress, if any, from its start.
  let saved: UIMessage[] = []
  if (!fresh) {
    const res = await fetch(`/api/chat/${encodeURIComponent(id)}`)
    if (res.ok) saved = (await res.json() as { messages: UIMessage[] }).messages
  }
  const chat: PageChat = new PageChat(id, saved, () => {
    page.renders++
    render(chat)
  })
  page.chat = chat
  render(chat)
  const resuming = fresh ? Promise.resolve() : chat.resumeStream()
  page.loaded = true

  $<HTMLFormElement>('composer').addEventListener('submit', (e) => {
    e.preventDefault()
    const input = $<HTMLInputElement>('input')
    const text = input.value.trim()
    if (text === '') return
    input.value = ''
    const tokenDelayMs = Number($<HTMLInputElement>('delay').value)
    void chat.sendMessage({ text }, { body: { tokenDelayMs } })
  })
  // The server stops the answer: every viewer (this page, other tabs) gets its `abort` chunk and ends there.
  $('stop').addEventListener('click', () => {
    void fetch(`/api/chat/${encodeURIComponent(id)}/stop`, { method: 'POST' })
  })
  await resuming
}

main().catch((err: unknown) => {
  $('error').textContent = `could not load the chat: ${(err as Error).message}`
})
