/**
 * How the processes sharing a PostgreSQL database learn of each other's
 * commits: `NOTIFY`, sent inside each batch's transaction.
 *
 * Why NOTIFY rather than polling a table the database orders: a
 * notification is delivered only if its transaction commits, and
 * notifications reach every listener in commit order, so a robot's events
 * arrive in timestamp order whichever process stored them (its row lock
 * orders their commits). Delivery takes a round trip, not a poll
 * interval, and the events table needs no commit-order column. The payload
 * carries the events themselves, so a listener reads nothing back.
 *
 * A listener that loses its connection misses what was committed
 * meanwhile: it is told (`missed`), and listens again once it can.
 */
import { createHash } from 'node:crypto'
import postgres from 'postgres'
import type { TelemetryEvent } from '../../domain/event.ts'
import type { Outcome } from '../../domain/rules.ts'
import type { StoredEvent } from '../store.ts'
import type { CommitWatchers } from '../watchers.ts'

/** PostgreSQL refuses a payload of 8,000 bytes or more. */
const MAX_PAYLOAD_BYTES = 7900
/** Channel names are identifiers: at most 63 bytes. */
const MAX_CHANNEL_BYTES = 63
/** Wait before listening again after the connection was lost, at most. */
const MAX_RETRY_MS = 5000

/** The channel of one schema's commits: schemas on one database stay apart. */
export function liveChannel(schema: string): string {
  const channel = `telemetry_live_${schema}`
  if (Buffer.byteLength(channel) <= MAX_CHANNEL_BYTES) return channel
  const hash = createHash('sha256').update(schema).digest('hex').slice(0, 32)
  return `telemetry_live_${hash}`
}

/**
 * The payloads that tell of a batch's accepted events, each under the
 * payload limit: a JSON array of `[robot, timestamp, x, y, odometer]`.
 *
 * @param odometers the lifetime odometer of each accepted event, in batch order
 */
export function notificationPayloads(
  events: readonly TelemetryEvent[],
  outcomes: readonly Outcome[],
  odometers: ArrayLike<number>,
): string[] {
  const payloads: string[] = []
  let parts: string[] = []
  let bytes = 2
  let k = 0
  for (let i = 0; i < events.length; i++) {
    if (outcomes[i] !== 'ok') continue
    const e = events[i]!
    const part = JSON.stringify([
      e.robot,
      e.timestamp,
      e.x,
      e.y,
      odometers[k++],
    ])
    const size = Buffer.byteLength(part) + 1
    if (parts.length > 0 && bytes + size > MAX_PAYLOAD_BYTES) {
      payloads.push(`[${parts.join(',')}]`)
      parts = []
      bytes = 2
    }
    parts.push(part)
    bytes += size
  }
  if (parts.length > 0) payloads.push(`[${parts.join(',')}]`)
  return payloads
}

/** The events of one payload of {@link notificationPayloads}. */
export function parseNotification(payload: string): StoredEvent[] {
  const rows = JSON.parse(payload) as [string, number, number, number, number][]
  return rows.map(([robot, timestamp, x, y, odometer]) => ({
    robot,
    timestamp,
    x,
    y,
    odometer,
  }))
}

/**
 * One connection that listens on a channel and tells the watchers what
 * it hears; started on the first watch, ended by `close()`.
 */
export class CommitChannel {
  readonly #connect: string
  readonly #channel: string
  readonly #watchers: CommitWatchers
  #sql: postgres.Sql | undefined
  #listening: Promise<void> | undefined
  #closed = false
  #retry: NodeJS.Timeout | undefined

  constructor(connect: string, channel: string, watchers: CommitWatchers) {
    this.#connect = connect
    this.#channel = channel
    this.#watchers = watchers
  }

  /** Resolves once the channel is listened to. */
  listen(): Promise<void> {
    this.#listening ??= this.#start().catch((error: unknown) => {
      this.#listening = undefined // the next watch tries again
      throw error
    })
    return this.#listening
  }

  async #start(): Promise<void> {
    // `onnotify` is postgres.js's own hook (its `listen()` uses it) but
    // not in its types; with our own connection, a lost one is noticed
    // and listened on again however long the database is away.
    this.#sql ??= postgres(this.#connect, {
      max: 1,
      idle_timeout: 0,
      max_lifetime: null,
      onnotice: () => {},
      connection: { application_name: 'fleet-telemetry live' },
      onnotify: (_channel: string, payload: string) => {
        if (this.#watchers.active) {
          this.#watchers.committed(parseNotification(payload))
        }
      },
      onclose: () => {
        if (this.#closed) return
        // Commits may have gone by unheard: say so, and listen again.
        this.#watchers.missed()
        this.#again(100)
      },
    } as postgres.Options<Record<string, never>>)
    await this.#listenOnce()
  }

  #listenOnce(): Promise<unknown> {
    const name = this.#channel.replace(/"/g, '""')
    return this.#sql!.unsafe(`LISTEN "${name}"`)
  }

  #again(ms: number) {
    if (this.#closed || this.#retry !== undefined) return
    this.#retry = setTimeout(() => {
      this.#retry = undefined
      this.#listenOnce().catch(() =>
        this.#again(Math.min(ms * 2, MAX_RETRY_MS)),
      )
    }, ms)
    this.#retry.unref()
  }

  async close(): Promise<void> {
    this.#closed = true
    clearTimeout(this.#retry)
    await this.#sql?.end({ timeout: 1 })
  }
}
