/**
 * A robot that keeps every event until the server has it: it sends its
 * events one at a time and sends an event again until it is answered `OK`
 * or `DUP` (`ERR unavailable` while the store takes no commits, or a lost
 * connection, after which it connects again). What a robot-side client
 * does through a database failover; the failover tests and the benchmark
 * drive servers with it.
 *
 * @example
 * const robot = new ResendingRobot('r1', server.wsUrl)
 * let going = true
 * const done = robot.run(() => going)
 * // … the primary changes …
 * going = false
 * await done
 * robot.model.events // every event answered OK or DUP, in order
 */
import assert from 'node:assert/strict'
import { IngestClient } from './ingest-client.ts'
import { RobotModel } from './oracle.ts'

/** An event answered `OK` or `DUP`. */
export interface Acknowledged {
  readonly line: string
  /** `performance.now()` at the answer. */
  readonly at: number
  readonly reply: 'OK' | 'DUP'
}

/** How long a robot waits before sending again. */
const RESEND_DELAY_MS = 100
/** The events' first timestamp. */
const T0 = 1_700_000_000_000

export class ResendingRobot {
  readonly name: string
  readonly wsUrl: string
  /** The events answered OK or DUP, as the server must have them. */
  readonly model: RobotModel
  readonly acked: Acknowledged[] = []
  /** `ERR unavailable` answers. */
  unavailable = 0
  /** Connections lost (or refused) on the way. */
  reconnects = 0
  #client: IngestClient | undefined

  constructor(name: string, wsUrl: string) {
    this.name = name
    this.wsUrl = wsUrl
    this.model = new RobotModel(name)
  }

  /** Its `i`th event: 100 ms apart, on a zigzag. */
  line(i: number): string {
    const x = Number((i * 0.25).toFixed(3))
    const y = Number(((i % 10) * 0.5).toFixed(3))
    return `${x},${y},${T0 + i * 100},${this.name}`
  }

  /** Sends `line` until it is answered OK or DUP; returns that answer. */
  async deliver(line: string): Promise<'OK' | 'DUP'> {
    for (;;) {
      let reply: string
      try {
        this.#client ??= await IngestClient.connect(this.wsUrl)
        reply = await this.#client.send(line)
      } catch {
        // A lost connection: the event may or may not be stored.
        this.reconnects++
        const lost = this.#client
        this.#client = undefined
        await lost?.close().catch(() => {})
        await delay(RESEND_DELAY_MS)
        continue
      }
      if (reply === 'OK' || reply === 'DUP') return reply
      assert.match(reply, /^ERR unavailable/, `${line}: ${reply}`)
      this.unavailable++
      await delay(RESEND_DELAY_MS)
    }
  }

  /** Sends its next events, each until it is in, while `keepGoing()`. */
  async run(keepGoing: () => boolean): Promise<void> {
    for (let i = this.acked.length; keepGoing(); i++) {
      const line = this.line(i)
      const reply = await this.deliver(line)
      this.acked.push({ line, at: performance.now(), reply })
      const [x, y, ts] = line.split(',').map(Number)
      this.model.apply(x!, y!, ts!)
    }
  }

  async close(): Promise<void> {
    await this.#client?.close()
    this.#client = undefined
  }
}

/**
 * The longest time (ms) in [from, to] without an acknowledgement to any of
 * `robots`: how long a fleet went unanswered.
 */
export function longestSilence(
  robots: readonly ResendingRobot[],
  from: number,
  to: number,
): number {
  const times = robots
    .flatMap((r) => r.acked.map((a) => a.at))
    .filter((t) => t > from && t < to)
    .sort((a, b) => a - b)
  let longest = 0
  let last = from
  for (const t of [...times, to]) {
    longest = Math.max(longest, t - last)
    last = t
  }
  return longest
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
