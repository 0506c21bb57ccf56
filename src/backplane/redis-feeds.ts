/*
 * The sessions this process follows through Redis (the subscriber side of the backplane): one
 * subscription per session however many hub subscribers, each event delivered to the sink once and
 * in order, and the catch-up from the streams after the subscriber lost its connection.
 */
import { unavailable } from './redis-connection.js'
import { CLOSED_FIELD, CLOSED_NOTICE, compareStreamIds, isStreamId, producersKey, streamIdTime, streamKey, toEvent, type Entry } from './redis-stream.js'
import { PRODUCER_NOTICES } from './redis-lease.js'
import type { Topology } from './redis-topology.js'
import type { BackplaneEvent, BackplaneSink, BackplaneStats, ProducerNotice } from './types.js'

/** A catch-up read: the id it read from, what followed it, the newest entry, the closed marker. */
type Reread = [string, Entry[], Entry[], string | null]

interface Feed {
  readonly kind: string
  readonly sessionId: string
  readonly key: string
  refs: number
  /** Settles when the subscription is live and `lastId` is known. */
  ready: Promise<void>
  /** The newest id delivered to the sink; `0-0` before any. */
  lastId: string
  /** Live events held back while the feed catches up after an outage. */
  queue: BackplaneEvent[] | undefined
  /** A close notice held back with them: the final id. */
  closing: string | undefined
}

/**
 * The followed sessions of one Redis backplane. Of its stats, counts `subscriptions`, `received`,
 * `lagMs`, `maxLagMs`, `catchUps` and `resyncs`; reports failures that are not a caller's to `onError`.
 */
export class Feeds {
  readonly #keyPrefix: string
  readonly #stats: BackplaneStats
  readonly #onError: (err: Error) => void
  readonly #feeds = new Map<string, Feed>()

  #sink: BackplaneSink | undefined
  #topology: Topology | undefined
  #stopped = false
  /** The subscriber lost its connection: resubscribe and catch up when both connections are ready. */
  #recoverWanted = false
  #recovery = Promise.resolve()
  #retryTimer: NodeJS.Timeout | undefined

  constructor (keyPrefix: string, stats: BackplaneStats, onError: (err: Error) => void) {
    this.#keyPrefix = keyPrefix
    this.#stats = stats
    this.#onError = onError
  }

  /** Where events go, and the connections to follow the sessions on (before any other call but `unsubscribe`). */
  attach (sink: BackplaneSink, topology: Topology): void {
    this.#sink = sink
    this.#topology = topology
  }

  /** Whether a catch-up is owed: the subscriber lost its connection and the sessions are not read again yet. */
  get recoverWanted (): boolean {
    return this.#recoverWanted
  }

  /** For a lost subscriber connection (or subscriptions Redis dropped). */
  readonly onSubClose = (): void => {
    // Whatever is published from now on until the subscription is back must be read from the streams.
    this.#recoverWanted = true
  }

  /** For a message on a subscribed channel. */
  readonly onMessage = (channel: string, message: string): void => {
    const feed = this.#feeds.get(channel)
    if (feed !== undefined && PRODUCER_NOTICES.has(message)) {
      (this.#sink as BackplaneSink).producer(feed.kind, feed.sessionId, message as ProducerNotice)
      return
    }
    if (feed !== undefined && message.startsWith(CLOSED_NOTICE)) {
      const id = message.slice(CLOSED_NOTICE.length)
      if (feed.queue !== undefined) feed.closing = id
      else (this.#sink as BackplaneSink).closed(feed.kind, feed.sessionId, id)
      return
    }
    const a = message.indexOf('\n')
    const b = message.indexOf('\n', a + 1)
    // Not ours (unsubscribed meanwhile, or published by someone else on our channel): ignore.
    if (feed === undefined || b < 0 || !isStreamId(message.slice(0, a))) return
    const event: BackplaneEvent = { id: message.slice(0, a), type: message.slice(a + 1, b), data: message.slice(b + 1) }
    const stats = this.#stats
    stats.received++
    stats.lagMs = Math.max(0, Date.now() - streamIdTime(event.id))
    stats.maxLagMs = Math.max(stats.maxLagMs, stats.lagMs)
    if (feed.queue !== undefined) feed.queue.push(event)
    else this.#emit(feed, event)
  }

  /** No more catch-up passes (the backplane closes). */
  stop (): void {
    this.#stopped = true
    clearTimeout(this.#retryTimer)
  }

  async subscribe (kind: string, sessionId: string): Promise<void> {
    const key = streamKey(this.#keyPrefix, kind, sessionId)
    let feed = this.#feeds.get(key)
    if (feed === undefined) {
      const created: Feed = { kind, sessionId, key, refs: 0, ready: Promise.resolve(), lastId: '0-0', queue: undefined, closing: undefined }
      created.ready = this.#follow(created)
      feed = created
      this.#feeds.set(key, feed)
      this.#stats.subscriptions = this.#feeds.size
    }
    feed.refs++
    try {
      await feed.ready
    } catch (err) {
      this.unsubscribe(kind, sessionId)
      throw err
    }
  }

  async #follow (feed: Feed): Promise<void> {
    try {
      const topology = this.#topology as Topology
      await topology.subscribe(feed.key)
      // Its last client left while the subscription was made (on a Cluster, before the subscriber knew the
      // channel): undo it now that it is made, unless the session is followed again meanwhile.
      if (!this.#feeds.has(feed.key)) topology.unsubscribe(feed.key)
      // Where the session stands now: the point to catch up from if the connection drops later.
      const newest = await topology.cmd.xrevrange(feed.key, '+', '-', 'COUNT', 1) as Entry[]
      const id = newest[0]?.[0] ?? '0-0'
      if (compareStreamIds(id, feed.lastId) > 0) feed.lastId = id
    } catch (err) {
      throw unavailable(err)
    }
  }

  unsubscribe (kind: string, sessionId: string): void {
    const key = streamKey(this.#keyPrefix, kind, sessionId)
    const feed = this.#feeds.get(key)
    if (feed === undefined || --feed.refs > 0) return
    this.#feeds.delete(key)
    this.#stats.subscriptions = this.#feeds.size
    // Messages that still arrive for it are ignored; a resubscription after an outage leaves it out.
    ;(this.#topology as Topology).unsubscribe(key)
  }

  /** Delivers `event` unless the sink already has it (the seam between a catch-up read and live messages). */
  #emit (feed: Feed, event: BackplaneEvent): void {
    if (compareStreamIds(event.id, feed.lastId) <= 0) return
    feed.lastId = event.id
    ;(this.#sink as BackplaneSink).deliver(feed.kind, feed.sessionId, event)
  }

  /**
   * After the subscriber reconnected: hold live events back, resubscribe every followed
   * session, read what each missed from its stream, deliver that, then the held events.
   * Goes again if the subscriber dropped meanwhile; retries after a second if it failed.
   */
  recover (): void {
    // One recovery at a time: each call queues a pass, which finds nothing to do if an earlier one did it.
    this.#recovery = this.#recovery.then(() => this.#recoverPass())
  }

  async #recoverPass (): Promise<void> {
    const topology = this.#topology as Topology
    while (this.#recoverWanted && !this.#stopped && topology.ready) {
      this.#recoverWanted = false
      const feeds = [...this.#feeds.values()]
      if (feeds.length === 0) continue
      // Hold live events from here: whatever arrived before (nothing, after a loss; or what a failed
      // pass held) was written to the stream before the XRANGE below, which reads it again. So the
      // hold never outgrows one pass.
      for (const f of feeds) f.queue = []
      try {
        // On a Cluster, where each session's slot is now (after a failover, or a slot that moved).
        await topology.refresh()
        const replies = await Promise.all(feeds.map((f) => this.#reread(topology, f)))
        let behind = false
        feeds.forEach((f, i) => {
          const reply = replies[i] as Error | Reread
          // One unsubscribed while reading is skipped: its clients are gone.
          if (this.#feeds.get(f.key) !== f) return
          if (reply instanceof Error) {
            // This session cannot be followed again yet (its shard is away, or its key is not a
            // stream any more): it stays behind and is retried; the other sessions go on.
            this.#onError(reply)
            behind = true
          } else {
            this.#catchUp(f, ...reply)
          }
        })
        if (behind) throw new Error('some sessions could not be caught up')
      } catch (err) {
        this.#onError(err as Error)
        this.#recoverWanted = true // the sessions already caught up are read again (nothing new), harmlessly
        clearTimeout(this.#retryTimer)
        this.#retryTimer = setTimeout(() => { this.recover() }, 1000).unref()
        break
      }
    }
  }

  /** Subscribes to a feed again, then reads what it missed, its newest entry and its closed marker; an error is answered, not thrown. */
  async #reread (topology: Topology, f: Feed): Promise<Error | Reread> {
    try {
      await topology.subscribe(f.key)
      // The id read from: a join's first read (#follow) may move lastId on while this read is under way.
      const from = f.lastId
      return await Promise.all([
        from,
        topology.cmd.xrange(f.key, from, '+') as Promise<Entry[]>,
        topology.cmd.xrevrange(f.key, '+', '-', 'COUNT', 1) as Promise<Entry[]>,
        // A close whose notice was missed while the subscriber was away.
        topology.cmd.hget(producersKey(f.key), CLOSED_FIELD)
      ])
    } catch (err) {
      return err as Error
    }
  }

  #catchUp (feed: Feed, from: string, entries: Entry[], newest: Entry[], closed: string | null | undefined): void {
    let events = feed.queue as BackplaneEvent[]
    feed.queue = undefined
    if (from === '0-0' || entries[0]?.[0] === from) {
      this.#stats.catchUps++
      // What was missed, then what was held; #emit drops what was delivered already (lastId itself included).
      events = entries.map(toEvent).concat(events)
    } else {
      // What was missed is no longer in the stream (trimmed, expired, or Redis lost its data).
      this.#stats.resyncs++
      const newestId = newest[0]?.[0] ?? ''
      feed.lastId = newestId === '' ? '0-0' : newestId
      ;(this.#sink as BackplaneSink).resync(feed.kind, feed.sessionId, newestId)
    }
    for (const event of events) this.#emit(feed, event)
    // A notice held with the events, else the closed state read with them.
    const closing = feed.closing ?? closed ?? undefined
    feed.closing = undefined
    if (closing !== undefined) (this.#sink as BackplaneSink).closed(feed.kind, feed.sessionId, closing)
  }
}
