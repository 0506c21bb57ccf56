// The demo page: one EventSource per watched session, a transcript built from tokens,
// lossless reconnection (Last-Event-ID, sent by the browser itself) and resync from the JSON state.
// Plain browser JavaScript, no build step.

const $ = (id) => document.getElementById(id)

const EVENTS = {
  conversation: [
    'conversation_started', 'conversation_speaker_changed', 'conversation_token', 'conversation_utterance',
    'conversation_context_updated', 'conversation_paused', 'conversation_resumed', 'conversation_completed', 'conversation_error'
  ],
  debate: [
    'debate_started', 'debate_phase_changed', 'debate_token', 'debate_utterance',
    'debate_paused', 'debate_resumed', 'debate_completed', 'debate_error'
  ]
}

const api = (kind, id = '') => `/api/${kind}s/sessions${id === '' ? '' : '/' + encodeURIComponent(id)}`

/** `<hub epoch>-<n>` → { epoch, n } */
function parseId (id) {
  const dash = typeof id === 'string' ? id.lastIndexOf('-') : -1
  if (dash < 0) return undefined
  return { epoch: id.slice(0, dash), n: Number(id.slice(dash + 1)) }
}

// ─── State ───────────────────────────────────────────────────────────────────

const view = {
  kind: 'conversation',
  sessionId: '',
  title: '',
  status: 'idle',
  phase: null,
  summary: '',
  participants: [],
  /** turnCount → { turnCount, participantId, speakerName, role, phase, text (from tokens), content (final) } */
  turns: new Map(),
  speakerId: null,
  /** Newest event applied to the view, from the stream or from a state load: { epoch, n }. */
  applied: undefined,
  /** Newest event received on the stream: an older or equal one is a real duplicate. */
  streamed: undefined,
  events: 0,
  tokens: 0,
  reconnects: 0,
  resyncs: 0,
  duplicates: 0,
  lastEventId: null
}

let source = null
let hadError = false
let loading = null // a Promise while the state is (re)loading; events received meanwhile wait in `pending`
let pending = []

function resetView (kind, sessionId) {
  Object.assign(view, {
    kind, sessionId, title: '', status: 'idle', phase: null, summary: '', participants: [], turns: new Map(),
    speakerId: null, applied: undefined, streamed: undefined, lastEventId: null
  })
  render()
}

// ─── Connection ──────────────────────────────────────────────────────────────

function setIndicator (state, text) {
  $('indicator').dataset.state = state
  $('indicator-text').textContent = text
}

/** Loads the state, then opens the stream from exactly that point (`?lastEventId=`), so nothing is missed. */
async function watch (kind, sessionId) {
  if (source !== null) source.close()
  source = null
  resetView(kind, sessionId)
  history.replaceState(null, '', `?kind=${kind}&session=${encodeURIComponent(sessionId)}`)
  setIndicator('connecting', 'connecting…')
  const state = await loadState()
  let url = `${api(kind, sessionId)}/stream`
  if (state !== null && state.lastEventId !== null) url += `?lastEventId=${encodeURIComponent(state.lastEventId)}`
  const es = new EventSource(url)
  source = es
  hadError = false
  es.onopen = () => {
    if (source !== es) return
    if (hadError) view.reconnects++
    hadError = false
    setIndicator('connected', 'connected')
    render()
  }
  es.onerror = () => {
    if (source !== es) return
    hadError = true
    // CONNECTING: the browser retries by itself and sends Last-Event-ID. CLOSED: it gave up (an HTTP error).
    if (es.readyState === EventSource.CONNECTING) setIndicator('reconnecting', 'reconnecting…')
    else setIndicator('closed', 'disconnected')
  }
  es.addEventListener('connection_established', () => {})
  es.addEventListener('resync', (e) => { if (source === es) onResync(e) })
  for (const type of EVENTS[kind]) {
    es.addEventListener(type, (e) => { if (source === es) onEvent(type, e) })
  }
}

/** GET the session's state and make it the view; null when the session does not exist yet. */
async function loadState () {
  const res = await fetch(api(view.kind, view.sessionId), { cache: 'no-store' })
  if (res.status === 404) return null
  if (!res.ok) throw new Error(`state: HTTP ${res.status}`)
  const state = await res.json()
  applyState(state)
  return state
}

function applyState (s) {
  view.title = s.title
  view.status = s.status
  view.phase = s.phase
  view.summary = s.summary
  view.participants = s.participants
  view.turns = new Map()
  for (const t of s.transcript) {
    view.turns.set(t.turnCount, { ...t, text: t.content })
  }
  const c = s.current
  view.speakerId = c === null ? null : c.participantId
  if (c !== null) {
    view.turns.set(c.turnCount, { turnCount: c.turnCount, participantId: c.participantId, speakerName: c.speakerName, role: c.role, phase: c.phase, text: c.partial, content: null })
  }
  view.applied = parseId(s.lastEventId)
  render()
}

/** The hub could not replay from our Last-Event-ID: reload the state, then apply what arrived meanwhile. */
function onResync (e) {
  view.resyncs++
  view.lastEventId = e.lastEventId || view.lastEventId
  view.streamed = parseId(e.lastEventId) ?? view.streamed
  setIndicator('resynced', 'resynced')
  if (loading !== null) return
  pending = []
  loading = loadState()
    // The session is gone (e.g. the server restarted): start from an empty view; live events follow.
    .then((state) => { if (state === null) resetView(view.kind, view.sessionId) })
    .catch((err) => { message(`reload failed: ${err.message}`) })
    .finally(() => {
      loading = null
      const queued = pending
      pending = []
      for (const [type, e2] of queued) apply(type, e2)
      render()
    })
}

function onEvent (type, e) {
  const id = parseId(e.lastEventId)
  const streamed = view.streamed
  if (id !== undefined && streamed !== undefined && id.epoch === streamed.epoch && id.n <= streamed.n) {
    // The hub sends each event once per connection and replays strictly after Last-Event-ID: never expected.
    view.duplicates++
    render()
    return
  }
  view.streamed = id ?? streamed
  view.events++
  view.lastEventId = e.lastEventId
  log(type, e.lastEventId)
  if (loading !== null) pending.push([type, e])
  else apply(type, e)
}

/** Applies one event to the view unless the loaded state already contains it. */
function apply (type, e) {
  const id = parseId(e.lastEventId)
  const applied = view.applied
  if (id !== undefined && applied !== undefined && id.epoch === applied.epoch && id.n <= applied.n) return
  if (id !== undefined) view.applied = id
  const d = JSON.parse(e.data)
  const short = type.slice(type.indexOf('_') + 1)
  switch (short) {
    case 'started':
      view.title = d.topic ?? d.motion
      view.participants = d.participants.map((p) => ({
        participantId: p.participantId, personaSlug: p.personaSlug, personaName: p.personaName, role: p.position ?? (p.isHost ? 'host' : 'guest')
      }))
      view.turns = new Map()
      view.summary = ''
      view.phase = d.phase ?? null
      view.status = 'running'
      break
    case 'speaker_changed':
      view.speakerId = d.speakerId
      break
    case 'phase_changed':
      view.phase = d.to
      break
    case 'token': {
      const turnCount = d.turnCount ?? Number(String(d.segment).replace('turn-', ''))
      const turn = ensureTurn(turnCount, d.participantId)
      turn.text += d.token
      view.speakerId = d.participantId
      view.tokens++
      break
    }
    case 'utterance': {
      const turn = ensureTurn(d.turnCount, d.participantId ?? participantBySlug(d.personaSlug)?.participantId)
      turn.content = d.content
      turn.phase = d.phase ?? null
      break
    }
    case 'context_updated':
      view.summary = d.summary
      break
    case 'paused':
      view.status = 'paused'
      break
    case 'resumed':
      view.status = 'running'
      break
    case 'completed':
      view.status = 'completed'
      view.speakerId = null
      if (d.winner !== undefined) view.summary = `Winner: ${d.winner}`
      break
    case 'error':
      message(`error: ${d.error}`)
      break
  }
  render()
}

function participantBySlug (slug) {
  return view.participants.find((p) => p.personaSlug === slug)
}

function ensureTurn (turnCount, participantId) {
  let turn = view.turns.get(turnCount)
  if (turn === undefined) {
    const p = view.participants.find((x) => x.participantId === participantId) ?? { personaName: participantId, role: '' }
    turn = { turnCount, participantId, speakerName: p.personaName, role: p.role, phase: view.phase, text: '', content: null }
    view.turns.set(turnCount, turn)
  }
  return turn
}

// ─── Rendering ───────────────────────────────────────────────────────────────

let frame = 0
function render () {
  if (frame !== 0) return
  frame = requestAnimationFrame(() => { frame = 0; draw() })
}

const hue = (s) => { let h = 0; for (const ch of String(s)) h = (h * 31 + ch.charCodeAt(0)) % 360; return h }
const initials = (name) => String(name).split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0]).join('').toUpperCase()

/** A speaker's name and role badge, as shown in the participant list and on each turn. */
function nameAndRole (nameText, roleText) {
  const name = document.createElement('span')
  name.className = 'name'
  name.textContent = nameText
  const role = document.createElement('span')
  role.className = `role role-${roleText}`
  role.textContent = roleText
  return [name, role]
}

function avatar (name, id) {
  const el = document.createElement('span')
  el.className = 'avatar'
  el.style.background = `hsl(${hue(id)} 55% 45%)`
  el.textContent = initials(name)
  return el
}

const turnEls = new Map()

function draw () {
  $('title').textContent = view.title || (view.sessionId === '' ? 'Pick or create a session, then Launch' : `${view.kind} ${view.sessionId}: not launched yet`)
  $('status').textContent = view.status
  $('status').dataset.status = view.status
  $('phase').hidden = view.phase === null
  $('phase').textContent = view.phase === null ? '' : `phase: ${view.phase}`
  $('summary').textContent = view.summary || '—'

  const ul = $('participants')
  ul.replaceChildren(...view.participants.map((p) => {
    const li = document.createElement('li')
    li.className = p.participantId === view.speakerId && view.status !== 'completed' ? 'speaking' : ''
    li.append(avatar(p.personaName, p.participantId), ...nameAndRole(p.personaName, p.role))
    return li
  }))

  const ol = $('transcript')
  const turns = [...view.turns.values()].sort((a, b) => a.turnCount - b.turnCount)
  if (turns.length < turnEls.size || turns.some((t) => !turnEls.has(t.turnCount))) {
    // A new run or a state reload: rebuild.
    ol.replaceChildren()
    turnEls.clear()
  }
  const atBottom = ol.scrollHeight - ol.scrollTop - ol.clientHeight < 40
  for (const t of turns) {
    let els = turnEls.get(t.turnCount)
    if (els === undefined) {
      const li = document.createElement('li')
      li.className = 'turn'
      const head = document.createElement('div')
      head.className = 'head'
      const meta = document.createElement('span')
      meta.className = 'meta'
      meta.textContent = `turn ${t.turnCount}${t.phase ? ' · ' + t.phase : ''}`
      head.append(avatar(t.speakerName, t.participantId), ...nameAndRole(t.speakerName, t.role), meta)
      const text = document.createElement('p')
      text.className = 'text'
      li.append(head, text)
      ol.append(li)
      els = { li, text }
      turnEls.set(t.turnCount, els)
    }
    if (els.text.textContent !== t.text) els.text.textContent = t.text
    els.li.classList.toggle('live', t.content === null)
  }
  if (atBottom) ol.scrollTop = ol.scrollHeight

  $('n-events').textContent = view.events
  $('n-tokens').textContent = view.tokens
  $('n-reconnects').textContent = view.reconnects
  $('n-resyncs').textContent = view.resyncs
  $('n-duplicates').textContent = view.duplicates
  $('last-id').textContent = view.lastEventId ?? '—'

  const active = view.status === 'running' || view.status === 'paused'
  $('launch').disabled = view.sessionId === '' || active
  $('pause').disabled = view.status !== 'running'
  $('resume').disabled = view.status !== 'paused'
}

function log (type, id) {
  const li = document.createElement('li')
  li.textContent = `${id || '·'}  ${type}`
  const ol = $('log')
  ol.prepend(li)
  while (ol.children.length > 40) ol.lastElementChild.remove()
}

function message (text) {
  $('message').textContent = text
}

// ─── Stats and session list ──────────────────────────────────────────────────

const bytes = (n) => n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`

async function pollStats () {
  try {
    const s = await (await fetch('/api/sse/stats', { cache: 'no-store' })).json()
    const rows = [
      ['open streams', s.clients],
      ['conversations', `${s.conversations.count} live · ${s.conversations.clients} clients`],
      ['debates', `${s.debates.count} live · ${s.debates.clients} clients`],
      ['broadcasts', s.broadcasts],
      ['events sent', s.eventsSent],
      ['bytes sent', bytes(s.bytesSent)],
      ['replays served', s.replaysServed],
      ['resyncs sent', s.resyncsSent],
      ['dropped (slow)', s.clientsDroppedSlow],
      ['uptime', `${Math.round(s.uptimeMs / 1000)} s`]
    ]
    $('stats').replaceChildren(...rows.flatMap(([k, v]) => {
      const dt = document.createElement('dt')
      dt.textContent = k
      const dd = document.createElement('dd')
      dd.textContent = v
      return [dt, dd]
    }))
  } catch {}
}

async function listSessions () {
  try {
    const { sessions } = await (await fetch(api($('kind').value), { cache: 'no-store' })).json()
    $('sessions').replaceChildren(...sessions.map((s) => {
      const o = document.createElement('option')
      o.value = s.sessionId
      o.label = `${s.status} · ${s.turnCount}/${s.totalTurns} · ${s.title}`
      return o
    }))
  } catch {}
}

// ─── Controls ────────────────────────────────────────────────────────────────

const randomId = () => `${$('kind').value === 'debate' ? 'debate' : 'talk'}-${Math.random().toString(36).slice(2, 8)}`

async function post (action, body) {
  const res = await fetch(`${api(view.kind, view.sessionId)}/${action}`, {
    method: 'POST',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const json = await res.json()
  message(res.ok ? '' : `${action}: ${json.message}`)
  return res.ok
}

function bind () {
  const params = new URLSearchParams(location.search)
  $('kind').value = params.get('kind') === 'debate' ? 'debate' : 'conversation'
  $('session').value = params.get('session') ?? randomId()

  $('new-session').onclick = () => { $('session').value = randomId(); $('watch').click() }
  $('kind').onchange = () => { listSessions() }
  $('session-form').onsubmit = (e) => {
    e.preventDefault()
    if ($('session-form').reportValidity()) watch($('kind').value, $('session').value).catch((err) => message(err.message))
  }
  $('launch').onclick = async () => {
    if (view.sessionId !== $('session').value || view.kind !== $('kind').value || source === null) {
      await watch($('kind').value, $('session').value)
    }
    await post('launch', { turns: Number($('turns').value), tokenDelayMs: Number($('delay').value) })
    listSessions()
  }
  $('pause').onclick = () => post('pause')
  $('resume').onclick = () => post('resume')

  const nav = performance.getEntriesByType('navigation')[0]
  $('proto').textContent = nav?.nextHopProtocol ? `protocol: ${nav.nextHopProtocol}` : ''

  pollStats()
  listSessions()
  setInterval(pollStats, 1000)
  setInterval(listSessions, 5000)
  draw()
  if (params.has('session')) $('watch').click()
}

/** For tests and the curious: the transcript as built by this page (text from tokens). */
window.demo = {
  view,
  transcript: () => [...view.turns.values()].sort((a, b) => a.turnCount - b.turnCount)
    .map((t) => ({ turnCount: t.turnCount, speakerName: t.speakerName, text: t.text, content: t.content })),
  watch: (kind, id) => watch(kind, id),
  get connected () { return source !== null && source.readyState === EventSource.OPEN }
}

bind()
