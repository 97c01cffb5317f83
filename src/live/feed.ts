/**
 * The live feed: what the store committed, fanned out to the open streams
 * of `GET /api/live` (sse.ts is the HTTP side).
 *
 * The feed learns of commits from {@link Store.watch}, through the
 * server's commit fan-out (fanout.ts, shared with the Foxglove endpoint), so an
 * event reaches a stream only after its commit, from this process or
 * (PostgreSQL) any other. It watches only while a stream is open.
 *
 * Two kinds of stream:
 * - **Named robots** (`robot=…`) get every event of their robots, in
 *   timestamp order per robot. A stream that lets its unsent bytes pass
 *   `maxBufferBytes` is cut: everything it missed is in the store, and a
 *   client that reconnects with `Last-Event-ID` gets exactly that.
 * - **The whole fleet** gets the latest position of each robot that
 *   moved, at most `hz` times a second, built once per tick for every
 *   fleet stream. A stream past `maxBufferBytes` is skipped; it keeps only
 *   the names of the robots that moved meanwhile (at most one per robot)
 *   and gets their latest positions once it drains: it is coalesced,
 *   never cut.
 *
 * Both are judged before a write, so a client that keeps up takes a commit
 * or a tick of any size. Memory is thus bounded by `maxStreams` × (
 * `maxBufferBytes` + one commit or tick) plus a name per robot per stalled
 * fleet stream, whatever the ingest rate.
 *
 * How a stream starts without a gap or a repeat: it is registered first,
 * collecting what commits meanwhile, then reads the store (the snapshot,
 * or the events after `Last-Event-ID`), then sends what it collected that
 * is newer than what it read. A robot's events only ever move forward in
 * time, so "newer" is a timestamp comparison.
 */
import { TelemetryError } from '../errors.ts'
import type { LiveMetrics } from '../metrics.ts'
import { OdometerReplay } from '../store/odometer-replay.ts'
import {
  latestEvent,
  type Store,
  type StoredEvent,
  type Unwatch,
} from '../store/store.ts'
import type { CommitSource } from './fanout.ts'

/** Where a stream's text goes: an HTTP response (sse.ts), or a test's sink. */
export interface LiveSink {
  /** Queues text for the client. */
  write(text: string): void
  /** Bytes queued and not yet taken by the operating system. */
  readonly buffered: number
  /** Resolves once the queue has drained or the client is gone. */
  drained(): Promise<void>
  /** Whether the client is gone or the stream ended. */
  readonly closed: boolean
  /** Ends the stream; `cut` drops what is queued. */
  end(cut: boolean): void
}

/** What a stream asks for. */
export interface LiveRequest {
  /** These robots only; absent for the whole fleet. */
  readonly robots?: readonly string[]
  /**
   * With exactly one robot: the timestamp of the last event the client
   * has (`Last-Event-ID`); it gets the events after it instead of a snapshot.
   */
  readonly lastEventId?: number
}

/** Options of {@link LiveFeed}. */
export interface LiveFeedOptions {
  /** Whole-fleet updates per second, at most. */
  readonly hz: number
  /** Streams open at once, at most; one more is refused. */
  readonly maxStreams: number
  /** Unsent bytes past which a stream is cut (named) or skipped (fleet). */
  readonly maxBufferBytes: number
  readonly metrics?: LiveMetrics
  /** Between two comments that keep idle proxies from closing a stream. */
  readonly heartbeatMs?: number
  /** Where commits are told; default the store itself. */
  readonly commits?: CommitSource
}

/** Robots whose snapshot is read at once. */
const SNAPSHOT_PAGE = 1000
/** A replay goes live once one read finds fewer events than this. */
const CAUGHT_UP = 1000
/** Bytes queued before a snapshot or a replay waits for the client. */
const WRITE_AHEAD_BYTES = 64 * 1024
/** Events a starting named stream may collect before it is cut. */
const MAX_COLLECTED = 100_000

/**
 * The event that ends the start of a stream: what came before it was read
 * from the store (snapshot or replay), what follows is sent as committed.
 */
export const LIVE_MARK = 'event: live\ndata: {}\n\n'

/** One `position` or `snapshot` event as SSE text. */
export function sseEvent(
  type: 'position' | 'snapshot',
  event: StoredEvent,
  withId: boolean,
): string {
  const data = JSON.stringify({
    robot: event.robot,
    x: event.x,
    y: event.y,
    timestamp: event.timestamp,
    odometer: event.odometer,
  })
  return withId
    ? `event: ${type}\nid: ${event.timestamp}\ndata: ${data}\n\n`
    : `event: ${type}\ndata: ${data}\n\n`
}

/** One open stream. */
class Stream {
  readonly sink: LiveSink
  /** `undefined` for the whole fleet. */
  readonly robots: ReadonlySet<string> | undefined
  /** Whether each event carries `id:` (exactly one robot). */
  readonly withId: boolean
  /**
   * `replaying`: sending history from the store, deaf to commits;
   * `starting`: sending the snapshot (or the replay's last read), and
   * collecting what commits meanwhile; `live`.
   */
  state: 'replaying' | 'starting' | 'live' = 'starting'
  /** Named: what committed while starting, sent once it is live. */
  collected: StoredEvent[] = []
  /** Named: the timestamp of the last event sent, per robot. */
  readonly sent = new Map<string, number>()
  /** Fleet: robots that moved and are not sent yet (starting or stalled). */
  readonly moved = new Set<string>()

  constructor(sink: LiveSink, robots: readonly string[] | undefined) {
    this.sink = sink
    this.robots = robots === undefined ? undefined : new Set(robots)
    this.withId = robots?.length === 1
  }
}

/** The live feed of one server. */
export class LiveFeed {
  readonly #store: Store
  readonly #options: LiveFeedOptions
  readonly #streams = new Set<Stream>()
  /** Named streams by robot. */
  readonly #byRobot = new Map<string, Set<Stream>>()
  readonly #fleet = new Set<Stream>()
  /** Fleet: each robot's latest event since the first fleet stream opened. */
  readonly #latest = new Map<string, StoredEvent>()
  /** Fleet: robots that moved since the last tick. */
  readonly #moved = new Set<string>()
  #tick: NodeJS.Timeout | undefined
  #heartbeat: NodeJS.Timeout | undefined
  /** The store watch while a stream is open; a new one after each stop. */
  #watching: Promise<Unwatch> | undefined
  #generation = 0
  #closed = false

  constructor(store: Store, options: LiveFeedOptions) {
    this.#store = store
    this.#options = options
  }

  /** Streams open now, starting ones included. */
  get size(): number {
    return this.#streams.size
  }

  /**
   * Opens a stream into `sink`: the snapshot (or the replay after
   * `lastEventId`), then live events until the sink closes. Over the
   * limit it throws `TOO_MANY_STREAMS` at once (not in the promise),
   * before anything is written; the promise resolves once the stream is
   * live, and rejects if the store failed while it started.
   */
  open(sink: LiveSink, request: LiveRequest): Promise<void> {
    if (this.#closed || this.#streams.size >= this.#options.maxStreams) {
      this.#options.metrics?.refused.inc()
      throw new TelemetryError('TOO_MANY_STREAMS', {
        message: `${this.#options.maxStreams} live streams are open, the most this server allows (--max-live-streams)`,
      })
    }
    const stream = new Stream(sink, request.robots)
    this.#add(stream)
    return this.#start(stream, request)
  }

  async #start(stream: Stream, request: LiveRequest): Promise<void> {
    try {
      await this.#watch()
      if (stream.robots === undefined) await this.#startFleet(stream)
      else if (request.lastEventId !== undefined) {
        await this.#replay(stream, request.robots![0]!, request.lastEventId)
      } else await this.#startNamed(stream)
    } catch (error) {
      this.#remove(stream)
      throw error
    }
  }

  /** Tells the feed that a sink closed (the client left). */
  closed(sink: LiveSink): void {
    for (const stream of this.#streams) {
      if (stream.sink === sink) this.#remove(stream)
    }
  }

  /** Ends every stream and stops watching; the server is closing. */
  close(): void {
    this.#closed = true
    for (const stream of [...this.#streams]) {
      stream.sink.end(false)
      this.#remove(stream)
    }
  }

  // --- registering ---

  #add(stream: Stream) {
    this.#streams.add(stream)
    this.#options.metrics?.open.set(this.#streams.size)
    if (stream.robots === undefined) {
      this.#fleet.add(stream)
      this.#tick ??= setInterval(
        () => this.#sendFleet(),
        1000 / this.#options.hz,
      )
    } else {
      for (const robot of stream.robots) {
        let streams = this.#byRobot.get(robot)
        if (streams === undefined)
          this.#byRobot.set(robot, (streams = new Set()))
        streams.add(stream)
      }
    }
    this.#heartbeat ??= setInterval(
      () => this.#beat(),
      this.#options.heartbeatMs ?? 15_000,
    )
  }

  #remove(stream: Stream) {
    if (!this.#streams.delete(stream)) return
    this.#options.metrics?.open.set(this.#streams.size)
    if (stream.robots === undefined) {
      this.#fleet.delete(stream)
      if (this.#fleet.size === 0) {
        clearInterval(this.#tick)
        this.#tick = undefined
        this.#latest.clear()
        this.#moved.clear()
      }
    } else {
      for (const robot of stream.robots) {
        const streams = this.#byRobot.get(robot)!
        streams.delete(stream)
        if (streams.size === 0) this.#byRobot.delete(robot)
      }
    }
    if (this.#streams.size === 0) {
      clearInterval(this.#heartbeat)
      this.#heartbeat = undefined
      this.#unwatch()
    }
  }

  /** Starts watching the store, unless it is already. */
  #watch(): Promise<Unwatch> {
    if (this.#watching !== undefined) return this.#watching
    const generation = ++this.#generation
    // A watch still starting when the last stream left is stopped once
    // started; its generation keeps it from telling anything meanwhile.
    const current = () => generation === this.#generation
    this.#watching = (this.#options.commits ?? this.#store).watch({
      committed: (events) => current() && this.#committed(events),
      missed: () => current() && this.#missed(),
    })
    this.#watching.catch(() => {
      if (current()) this.#watching = undefined
    })
    return this.#watching
  }

  #unwatch() {
    const watching = this.#watching
    if (watching === undefined) return
    this.#watching = undefined
    this.#generation++
    watching.then((unwatch) => unwatch()).catch(() => {})
  }

  // --- starting a stream ---

  async #startFleet(stream: Stream) {
    let after: string | undefined
    for (;;) {
      const robots = await this.#store.listRobots({
        after,
        limit: SNAPSHOT_PAGE,
      })
      if (stream.sink.closed) return
      for (const robot of robots) {
        stream.sink.write(sseEvent('snapshot', latestEvent(robot), false))
        const latest = this.#latest.get(robot.name)
        if (latest !== undefined && latest.timestamp <= robot.lastTimestamp) {
          stream.moved.delete(robot.name)
        }
      }
      if (robots.length < SNAPSHOT_PAGE) break
      after = robots.at(-1)!.name
      await this.#aheadOf(stream)
    }
    // The robots that moved since they were read go out at the next tick.
    stream.sink.write(LIVE_MARK)
    stream.state = 'live'
  }

  async #startNamed(stream: Stream) {
    for (const name of stream.robots!) {
      const robot = await this.#store.getRobot(name)
      if (stream.sink.closed) return
      if (robot === undefined) continue
      stream.sink.write(sseEvent('snapshot', latestEvent(robot), stream.withId))
      stream.sent.set(name, robot.lastTimestamp)
    }
    this.#goLive(stream)
  }

  /**
   * Sends the events of `robot` after `lastEventId` from the store, then
   * live ones. A long history is read before anything is collected, so a
   * replay of days collects only what commits during its last read.
   */
  async #replay(stream: Stream, robot: string, lastEventId: number) {
    stream.state = 'replaying'
    let from = lastEventId + 1
    // The lifetime odometer at each event, across every read below.
    const odometers = new OdometerReplay(this.#store, robot)
    const readFrom = async () => {
      let count = 0
      for await (const page of this.#store.readEvents(robot, { start: from })) {
        if (stream.sink.closed) return 0
        const odometer = await odometers.next(page)
        if (odometer === undefined) return 0 // deleted since it was read
        let text = ''
        for (let i = 0; i < page.ts.length; i++) {
          text += sseEvent(
            'position',
            {
              robot,
              x: page.x[i]!,
              y: page.y[i]!,
              timestamp: page.ts[i]!,
              odometer: odometer[i]!,
            },
            true,
          )
        }
        stream.sink.write(text)
        count += page.ts.length
        from = page.ts.at(-1)! + 1
        await this.#aheadOf(stream)
      }
      return count
    }
    while ((await readFrom()) >= CAUGHT_UP) {
      if (stream.sink.closed) return
    }
    if (stream.sink.closed) return
    stream.state = 'starting'
    // What committed before it was collecting is in this last read.
    await readFrom()
    stream.sent.set(robot, from - 1)
    this.#goLive(stream)
  }

  /** Sends what a named stream collected while starting, and goes live. */
  #goLive(stream: Stream) {
    if (stream.sink.closed) return
    const collected = stream.collected
    stream.collected = []
    stream.sink.write(LIVE_MARK)
    stream.state = 'live'
    this.#deliver(stream, collected)
  }

  /** Waits while a starting stream has a lot queued. */
  async #aheadOf(stream: Stream) {
    while (!stream.sink.closed && stream.sink.buffered > WRITE_AHEAD_BYTES) {
      await stream.sink.drained()
    }
  }

  // --- live ---

  #committed(events: readonly StoredEvent[]) {
    const fleet = this.#fleet.size > 0
    const named = this.#byRobot.size > 0
    let touched: Map<Stream, StoredEvent[]> | undefined
    for (const event of events) {
      if (fleet) {
        this.#latest.set(event.robot, event)
        this.#moved.add(event.robot)
      }
      if (!named) continue
      const streams = this.#byRobot.get(event.robot)
      if (streams === undefined) continue
      touched ??= new Map()
      for (const stream of streams) {
        const list = touched.get(stream)
        if (list === undefined) touched.set(stream, [event])
        else list.push(event)
      }
    }
    if (touched === undefined) return
    for (const [stream, list] of touched) {
      if (stream.state === 'live') this.#deliver(stream, list)
      else if (
        stream.state === 'starting' &&
        stream.collected.push(...list) > MAX_COLLECTED
      ) {
        this.#cut(stream, 'slow')
      }
    }
  }

  /** Sends a named stream the events it has not had, or cuts it. */
  #deliver(stream: Stream, events: readonly StoredEvent[]) {
    let text = ''
    for (const event of events) {
      const sent = stream.sent.get(event.robot)
      if (sent !== undefined && event.timestamp <= sent) continue
      stream.sent.set(event.robot, event.timestamp)
      text += sseEvent('position', event, stream.withId)
    }
    if (text === '') return
    // Judged before the write: a client that keeps up takes a commit of
    // any size; one that left the last ones unread is cut.
    if (stream.sink.buffered > this.#options.maxBufferBytes) {
      this.#cut(stream, 'slow')
      return
    }
    stream.sink.write(text)
  }

  /**
   * One fleet tick: the latest position of each robot that moved, built
   * once for every stream that is live and keeping up. The others note
   * which robots moved; once they keep up again, they get those robots'
   * latest positions.
   */
  #sendFleet() {
    let text: string | undefined
    for (const stream of this.#fleet) {
      const stalled = stream.sink.buffered > this.#options.maxBufferBytes
      const ready = stream.state === 'live' && !stalled
      if (ready && stream.moved.size === 0) {
        if (this.#moved.size === 0) continue
        text ??= this.#positions(this.#moved)
        stream.sink.write(text)
        continue
      }
      for (const robot of this.#moved) stream.moved.add(robot)
      if (stream.moved.size === 0) continue
      if (ready) {
        stream.sink.write(this.#positions(stream.moved))
        stream.moved.clear()
      } else if (stalled) {
        this.#options.metrics?.coalesced.inc()
      }
    }
    this.#moved.clear()
  }

  #positions(robots: Iterable<string>): string {
    let text = ''
    for (const robot of robots) {
      text += sseEvent('position', this.#latest.get(robot)!, false)
    }
    return text
  }

  #cut(stream: Stream, reason: 'slow' | 'missed') {
    this.#options.metrics?.cut[reason].inc()
    stream.sink.end(true)
    this.#remove(stream)
  }

  /**
   * Commits went by unheard: no stream can say it missed nothing. Each is
   * ended; clients reconnect (browsers do by themselves), named ones with
   * `Last-Event-ID`.
   */
  #missed() {
    for (const stream of [...this.#streams]) {
      this.#options.metrics?.cut.missed.inc()
      stream.sink.end(false)
      this.#remove(stream)
    }
  }

  #beat() {
    for (const stream of this.#streams) {
      if (stream.sink.buffered === 0) stream.sink.write(': keepalive\n\n')
    }
  }
}
