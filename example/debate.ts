// The debate script: a moderator, then the speakers for and against the motion alternating through four phases.
import type { DebateEvents, DebateParticipant, DebatePhase } from '../src/index.js'
import { pick } from './random.js'
import type { ScriptFactory, Speaker } from './script.js'

const DEBATERS: DebateParticipant[] = [
  { participantId: 'd-mod', personaSlug: 'june-park', personaName: 'June Park', position: 'moderator' },
  { participantId: 'd-for', personaSlug: 'marcus-aurelius', personaName: 'Marcus Aurelius', position: 'for' },
  { participantId: 'd-against', personaSlug: 'mary-wollstonecraft', personaName: 'Mary Wollstonecraft', position: 'against' }
]
const MOTIONS = ['This house would ban cars from city centres', 'This house believes AI should have a vote', 'This house would abolish homework']
const PHASES: DebatePhase[] = ['opening', 'rebuttal', 'crossfire', 'closing']

export const debateScript: ScriptFactory<DebateEvents> = (debateId, topic, random) => {
  const motion = topic ?? pick(MOTIONS, random)
  const speakers = DEBATERS.map((d) => ({ participantId: d.participantId, personaSlug: d.personaSlug, personaName: d.personaName, role: d.position }))
  const [moderator, pro, con] = speakers as [Speaker, Speaker, Speaker]
  const position = (s: Speaker): DebateParticipant['position'] => s.role as DebateParticipant['position']
  return {
    title: motion,
    participants: speakers,
    // The moderator opens; then for and against alternate through the four phases.
    plan: (n, total) => ({
      speaker: n === 1 && total > 2 ? moderator : ((total > 2 ? n : n + 1) % 2 === 0 ? pro : con),
      phase: PHASES[Math.min(PHASES.length - 1, Math.floor(((n - 1) * PHASES.length) / total))] as DebatePhase
    }),
    started: () => ({ type: 'debate_started', payload: { debateId, motion, participants: DEBATERS, phase: 'opening' } }),
    beforeTurn: (turn, previous) => turn.phase === previous?.phase
      ? []
      : [{ type: 'debate_phase_changed', payload: { debateId, from: previous?.phase ?? null, to: turn.phase as DebatePhase } }],
    token: (turn, token) => ({
      type: 'debate_token',
      payload: { debateId, participantId: turn.speaker.participantId, personaSlug: turn.speaker.personaSlug, turnCount: turn.turnCount, token }
    }),
    utterance: (turn) => ({
      type: 'debate_utterance',
      payload: {
        debateId,
        participantId: turn.speaker.participantId,
        speakerName: turn.speaker.personaName,
        personaSlug: turn.speaker.personaSlug,
        position: position(turn.speaker),
        phase: turn.phase as DebatePhase,
        content: turn.text,
        turnCount: turn.turnCount
      }
    }),
    afterTurn: () => [],
    paused: (turnCount) => ({ type: 'debate_paused', payload: { debateId, turnCount, reason: 'requested' } }),
    resumed: (turnCount) => ({ type: 'debate_resumed', payload: { debateId, turnCount } }),
    completed: (turnCount) => ({ type: 'debate_completed', payload: { debateId, turnCount, winner: pick(['for', 'against', 'draw'] as const, random) } })
  }
}
