// The conversation script: a podcast host and three guests, the host opening, closing and coming back
// after every two guests.
import type { ConversationEvents, ConversationParticipant } from '../src/index.js'
import { pick } from './random.js'
import type { ScriptFactory, Speaker } from './script.js'

const HOST: ConversationParticipant = { participantId: 'p-host', personaSlug: 'rae-okafor', personaName: 'Rae Okafor', isHost: true }
const GUESTS: ConversationParticipant[] = [
  { participantId: 'p-ada', personaSlug: 'ada-lovelace', personaName: 'Ada Lovelace', isHost: false },
  { participantId: 'p-feynman', personaSlug: 'richard-feynman', personaName: 'Richard Feynman', isHost: false },
  { participantId: 'p-hypatia', personaSlug: 'hypatia', personaName: 'Hypatia of Alexandria', isHost: false }
]
const TOPICS = ['Can a machine be creative?', 'What makes an explanation good?', 'Should science ever be secret?']

const asSpeaker = (p: ConversationParticipant): Speaker => ({ participantId: p.participantId, personaSlug: p.personaSlug, personaName: p.personaName, role: p.isHost ? 'host' : 'guest' })

export const conversationScript: ScriptFactory<ConversationEvents> = (sessionId, topic, random) => {
  const title = topic ?? pick(TOPICS, random)
  const people = [HOST, ...GUESTS]
  return {
    title,
    participants: people.map(asSpeaker),
    // The host opens and closes, and comes back after every two guests.
    plan: (n, total) => {
      if (n === 1 || (n === total && total > 1)) return { speaker: asSpeaker(HOST), phase: undefined }
      const k = n - 2
      if (k % 3 === 2) return { speaker: asSpeaker(HOST), phase: undefined }
      const guest = GUESTS[(Math.floor(k / 3) * 2 + (k % 3)) % GUESTS.length] as ConversationParticipant
      return { speaker: asSpeaker(guest), phase: undefined }
    },
    started: () => ({ type: 'conversation_started', payload: { sessionId, topic: title, participants: people } }),
    beforeTurn: (turn) => [{
      type: 'conversation_speaker_changed',
      payload: { sessionId, speakerId: turn.speaker.participantId, speakerName: turn.speaker.personaName, personaSlug: turn.speaker.personaSlug }
    }],
    token: (turn, token) => ({
      type: 'conversation_token',
      payload: { participantId: turn.speaker.participantId, personaSlug: turn.speaker.personaSlug, personaName: turn.speaker.personaName, segment: `turn-${turn.turnCount}`, token }
    }),
    utterance: (turn) => ({
      type: 'conversation_utterance',
      payload: { sessionId, speakerName: turn.speaker.personaName, personaSlug: turn.speaker.personaSlug, content: turn.text, isHost: turn.speaker.role === 'host', turnCount: turn.turnCount, timestamp: Date.now() }
    }),
    // The running summary after every second turn.
    afterTurn: (turn, summary) => turn.turnCount % 2 === 0
      ? [{ type: 'conversation_context_updated', payload: { sessionId, summary, turnCount: turn.turnCount } }]
      : [],
    paused: (turnCount) => ({ type: 'conversation_paused', payload: { sessionId, turnCount, reason: 'requested' } }),
    resumed: (turnCount) => ({ type: 'conversation_resumed', payload: { sessionId, turnCount } }),
    completed: (turnCount) => ({ type: 'conversation_completed', payload: { sessionId, turnCount, reason: 'finished' } })
  }
}
