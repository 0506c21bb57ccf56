// The text corpus: what each persona can say, and how a turn's text (or a chat's answer) is made, split into tokens
// and summarized.
import type { SessionKind } from '../src/index.js'
import { pick, seededRandom } from './random.js'
import type { Speaker, Turn } from './script.js'

// Lines per persona (by slug), falling back to the role's lines.
const LINES: Record<string, string[]> = {
  host: [
    'Welcome back to Open Circuit, the show where great minds argue in good faith.',
    'That is a bold claim, so let me push on it a little.',
    'Let us bring in another voice here.',
    'Our listeners will want a concrete example of that.',
    'Thank you all: a lively hour, and plenty to think about.',
    'So where exactly do the two of you disagree?'
  ],
  'ada-lovelace': [
    'The engine weaves algebraic patterns just as the loom weaves flowers and leaves.',
    'A machine can only do what we know how to order it to perform, at least for now.',
    'Poetry and mathematics are closer cousins than most people think.',
    'I would start from what the machine is actually doing, step by step.',
    'Imagination is the discovering faculty, pre-eminently.'
  ],
  'richard-feynman': [
    'Nature does not care about our categories; it only cares about what works.',
    'If you cannot explain it to a first-year student, you do not understand it yet.',
    'Every answer opens two new questions, and that is the fun of it.',
    'Here is a small experiment anyone could try at home tonight.',
    'The first principle is that you must not fool yourself, and you are the easiest person to fool.'
  ],
  hypatia: [
    'We should test the idea against the stars before we trust it on the ground.',
    'Reserve your right to think, for even to think wrongly is better than not to think at all.',
    'The geometry of the question matters more than its rhetoric.',
    'I am not sure I agree; the evidence points the other way.',
    'Teach the method, and the answers will follow.'
  ],
  for: [
    'The evidence is plain: the status quo has failed the people it claims to serve.',
    'My opponent mistakes the comfortable for the right.',
    'Consider the cost of doing nothing, measured over a single generation.',
    'Virtue is not a feeling; it is what we choose to build.'
  ],
  against: [
    'A sweeping ban punishes the many for the faults of the few.',
    'Reason demands that we ask who bears the burden of this motion.',
    'The proposition offers a slogan where a plan should be.',
    'Liberty, once surrendered for convenience, is rarely returned.'
  ],
  moderator: [
    'Welcome to the chamber: tonight we debate the motion before us.',
    'Speakers will keep to time, and the audience will keep to silence.'
  ]
}

/** The words of one turn: a few sentences in the speaker's voice, deterministic per session and turn. */
export function speakText (kind: SessionKind, speaker: Speaker, title: string, n: number, total: number): string {
  const random = seededRandom(`${kind}:${speaker.participantId}:${title}:${n}`)
  const host = LINES.host as string[]
  if (speaker.role === 'host' && n === 1) return `${host[0] as string} Today's question: ${title} ${host[2] as string}`
  if (speaker.role === 'host' && n === total) return host[4] as string
  const lines = [...(LINES[speaker.personaSlug] ?? LINES[speaker.role] as string[])]
  const count = 2 + Math.floor(random() * 2)
  const out: string[] = []
  // Distinct sentences within a turn.
  for (let i = 0; i < count && lines.length > 0; i++) out.push(lines.splice(Math.floor(random() * lines.length), 1)[0] as string)
  return out.join(' ')
}

/** A chat's answer to `question`: a few of one persona's lines, deterministic per question. */
export function answerText (question: string): string {
  const random = seededRandom(`chat:${question}`)
  const lines = [...LINES[pick(['ada-lovelace', 'richard-feynman', 'hypatia'], random)] as string[]]
  const topic = question.trim().replace(/\s+/g, ' ')
  const out = [topic === '' ? 'A fair question.' : `On "${topic.length > 60 ? topic.slice(0, 59) + '…' : topic}":`]
  const count = 3 + Math.floor(random() * 2)
  for (let i = 0; i < count && lines.length > 0; i++) out.push(lines.splice(Math.floor(random() * lines.length), 1)[0] as string)
  return out.join(' ')
}

/** Word tokens; each after the first keeps its leading space, so joining them gives back the text. */
export function tokenize (text: string): string[] {
  return text.match(/\s*\S+/g) ?? []
}

/** The running summary once `turn` is spoken: the gists of the last few turns. */
export function summarize (summary: string, turn: Turn): string {
  const gist = turn.text.split(/\s+/).slice(0, 8).join(' ')
  const line = `${turn.speaker.personaName} (turn ${turn.turnCount}): ${gist}…`
  // Keep the last four turns' gists: a summary, not a second transcript.
  return [...summary.split('\n').filter(Boolean), line].slice(-4).join('\n')
}
