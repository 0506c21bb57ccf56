// The demo page: one subscription (fastify-sse-hub/client) per watched session, a transcript built from tokens.
// The client applies each event once and in order, applies the hub's snapshot (a late joiner sees the turn being
// spoken at once) and stops for good when the session closes. Plain browser JavaScript, no build step.
import { subscribe } from '/client/index.js'

const $ = (id) => document.getElementById(id)

const api = (kind, id = '') => `/api/${kind}s/sessions${id === '' ? '' : '/' + encodeURIComponent(id)}`

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
  events: 0,
  tokens: 0,
  reconnects: 0,
  snapshots: 0,
  /** Why the hub sent each snapshot: join, unknown_event_id, history_trimmed. */
  snapshotReasons: [],
  resyncs: 0,
  lastEventId: null,
  /** The subscription's status: connecting, open, reconnecting, closed. */
  connection: 'idle',
  /** True once the hub said the session is over (`closed`). */
  ended: false
}

/** The current subscription (null before the first Watch). */
let sub = null

function resetView (kind, sessionId) {
  Object.assign(view, {
    kind, sessionId, title: '', status: 'idle', phase: null, summary: '', participants: [], turns: new Map(),
    speakerId: null, lastEventId: null, connection: 'idle', ended: false
  })
  render()
}

// ─── Connection ──────────────────────────────────────────────────────────────

const INDICATOR = {
  connecting: ['connecting', 'connecting…'],
  open: ['connected', 'connected'],
  reconnecting: ['reconnecting', 'reconnecting…'],
  closed: ['closed', 'disconnected']
}

function setIndicator (state, text) {
  $('indicator').dataset.state = state
  $('indicator-text').textContent = text
}

/** Subscribes to the session's stream: the hub sends its snapshot first (when it has run), then every event after it. */
function watch (kind, sessionId) {
  sub?.close()
  resetView(kind, sessionId)
  history.replaceState(null, '', `?kind=${kind}&session=${encodeURIComponent(sessionId)}`)
  let dropped = false
  const s = subscribe(`${api(kind, sessionId)}/stream`, {
    on: handlers(kind),
    onSnapshot (state, e) {
      view.snapshots++
      view.snapshotReasons.push(e.reason)
      log(`snapshot (${e.reason})`, e.id)
      applyState(state)
    },
    // The hub could not replay nor give a snapshot: reload the state; the client applies only what is newer.
    onResync: async () => {
      view.resyncs++
      setIndicator('resynced', 'resynced')
      const res = await fetch(api(kind, sessionId), { cache: 'no-store' })
      if (!res.ok) return undefined
      const state = await res.json()
      applyState(state)
      return state.lastEventId ?? undefined
    },
    onClosed () {
      view.ended = true
      setIndicator('ended', 'session over')
      render()
    },
    onStatus (status) {
      view.connection = status
      if (status === 'reconnecting') dropped = true
      if (status === 'open' && dropped) { view.reconnects++; dropped = false }
      if (!view.ended) setIndicator(...INDICATOR[status])
      render()
    },
    onError (err) { message(err.message) }
  })
  sub = s
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
  view.lastEventId = s.lastEventId
  render()
}

/** One handler per event of the kind, each applying its event to the view. */
function handlers (kind) {
  const on = (short, fn) => [`${kind}_${short}`, (d, meta) => {
    view.events++
    view.lastEventId = meta.id
    log(`${kind}_${short}`, meta.id)
    fn(d)
    render()
  }]
  return Object.fromEntries([
    on('started', (d) => {
      view.title = d.topic ?? d.motion
      view.participants = d.participants.map((p) => ({
        participantId: p.participantId, personaSlug: p.personaSlug, personaName: p.personaName, role: p.position ?? (p.isHost ? 'host' : 'guest')
      }))
      view.turns = new Map()
      view.summary = ''
      view.phase = d.phase ?? null
      view.status = 'running'
    }),
    on('speaker_changed', (d) => { view.speakerId = d.speakerId }),
    on('phase_changed', (d) => { view.phase = d.to }),
    on('token', (d) => {
      const turnCount = d.turnCount ?? Number(String(d.segment).replace('turn-', ''))
      ensureTurn(turnCount, d.participantId).text += d.token
      view.speakerId = d.participantId
      view.tokens++
    }),
    on('utterance', (d) => {
      const turn = ensureTurn(d.turnCount, d.participantId ?? participantBySlug(d.personaSlug)?.participantId)
      turn.content = d.content
      turn.phase = d.phase ?? null
    }),
    on('context_updated', (d) => { view.summary = d.summary }),
    on('paused', () => { view.status = 'paused' }),
    on('resumed', () => { view.status = 'running' }),
    on('completed', (d) => {
      view.status = 'completed'
      view.speakerId = null
      if (d.winner !== undefined) view.summary = `Winner: ${d.winner}`
    }),
    on('error', (d) => { message(`error: ${d.error}`) })
  ])
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
  $('title').textContent = view.title || (view.sessionId === '' ? 'Pick or create a session' : `${view.kind} ${view.sessionId}: not launched yet — Launch it`)
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
  $('n-snapshots').textContent = view.snapshots
  $('n-resyncs').textContent = view.resyncs
  $('n-duplicates').textContent = sub === null ? 0 : sub.duplicates
  $('last-id').textContent = view.lastEventId ?? '—'

  const active = view.status === 'running' || view.status === 'paused'
  // A completed run closed its session: it stays readable, and a new run needs a new session.
  $('launch').disabled = view.sessionId === '' || active || view.status === 'completed'
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
      ['conversations', `${s.conversations.activeSessions} live · ${s.conversations.clients} clients`],
      ['debates', `${s.debates.activeSessions} live · ${s.debates.clients} clients`],
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
    if ($('session-form').reportValidity()) watch($('kind').value, $('session').value)
  }
  $('launch').onclick = async () => {
    if (view.sessionId !== $('session').value || view.kind !== $('kind').value || sub === null) {
      watch($('kind').value, $('session').value)
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
  // The page watches the session it shows, so Launch works at the first click.
  $('watch').click()
}

/** For tests and the curious: the transcript as built by this page (text from tokens). */
window.demo = {
  view,
  transcript: () => [...view.turns.values()].sort((a, b) => a.turnCount - b.turnCount)
    .map((t) => ({ turnCount: t.turnCount, speakerName: t.speakerName, text: t.text, content: t.content })),
  watch: (kind, id) => watch(kind, id),
  get connected () { return sub !== null && sub.status === 'open' },
  get duplicates () { return sub === null ? 0 : sub.duplicates }
}

bind()
