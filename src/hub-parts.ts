/* What the registries of one hub share: built once by the hub (./hub.ts), read by each kind's registry and joiner. Types only. */
import type { FastifyBaseLogger } from 'fastify'
import type { EventLog } from './event-log/types.js'
import type { FanOutTuning } from './fanout.js'
import type { ClientLimits } from './limits.js'
import type { ResolvedOptions } from './options.js'
import type { SessionBudget } from './sessions.js'
import type { Welcomer } from './snapshot.js'

/** What the registries of one hub share. */
export interface HubParts {
  readonly options: ResolvedOptions
  readonly logger: FastifyBaseLogger
  readonly limits: ClientLimits
  readonly budget: SessionBudget
  readonly eventLog: EventLog
  /** What a new client gets first: the event log's answer to its `Last-Event-ID`, or with the `snapshot` option, a snapshot too. */
  readonly welcomer: Welcomer
  readonly tuning: FanOutTuning
  readonly now: () => number
}
