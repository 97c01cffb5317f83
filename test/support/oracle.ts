/**
 * The oracle: what the server must answer and store, written from
 * docs/protocol.md and docs/api.md, not from the server's code.
 *
 * - {@link RobotModel} applies the rule of ingest to one robot's events
 *   (`OK`, `DUP`, `ERR stale`, `ERR conflict`) and knows what is stored,
 *   also once a retention pass removed the oldest events;
 * - odometers are the difference of two running totals, each kept with
 *   Knuth's TwoSum carry, the way docs/storage.md says the stores keep them,
 *   so that the expected value is exact to the last bits and one tolerance,
 *   {@link ODOMETER_TOLERANCE}, serves every comparison;
 * - {@link replyKind} classifies a reply line, {@link byCodePoint} is the
 *   order of `GET /api/robots`.
 *
 * @example
 * const bender = new RobotModel('Bender')
 * bender.apply(0, 0, 0) // 'OK'
 * bender.apply(3, 4, 1) // 'OK'
 * bender.apply(0, 0, 0) // 'DUP'
 * bender.odometer() // 5
 */
import assert from 'node:assert/strict'

/** Largest timestamp the protocol accepts: 2^53 − 1. */
export const MAX_TIMESTAMP = 9007199254740991

/** An event as the HTTP API lists it. */
export interface ApiEvent {
  readonly robot: string
  readonly x: number
  readonly y: number
  readonly timestamp: number
}

/** What the rule of ingest answers to a well-formed event line. */
export type Outcome = 'OK' | 'DUP' | 'stale' | 'conflict'

/** A running odometer: `total + carry`, `carry` holding what rounding dropped. */
interface RunningTotal {
  readonly total: number
  readonly carry: number
}

/** Adds a step to a running total with Knuth's TwoSum: the rounding error goes to `carry`. */
function addStep(running: RunningTotal, step: number): RunningTotal {
  const total = running.total + step
  const stepPart = total - running.total
  const error = running.total - (total - stepPart) + (step - stepPart)
  return { total, carry: running.carry + error }
}

/** The distance between the running totals at two events. */
function between(first: RunningTotal, last: RunningTotal): number {
  return last.total - first.total + (last.carry - first.carry)
}

const ZERO: RunningTotal = { total: 0, carry: 0 }

// --- one robot ---

/** One robot's stored events, as the rule of ingest builds them. */
export class RobotModel {
  readonly name: string
  readonly #events: ApiEvent[] = []
  /** Running totals at each event, from the robot's first one. */
  readonly #running: RunningTotal[] = []
  readonly #index = new Map<number, number>()
  /** How many of the oldest events a retention pass removed. */
  #removed = 0

  constructor(name: string, events: readonly ApiEvent[] = []) {
    this.name = name
    for (const event of events) {
      const outcome = this.apply(event.x, event.y, event.timestamp)
      assert.equal(outcome, 'OK', `the events of ${name} are in order`)
    }
  }

  /**
   * Every event the robot stored over its life, oldest first: what
   * `GET …/events` lists, unless a retention pass removed some
   * ({@link stored}).
   */
  get events(): readonly ApiEvent[] {
    return this.#events
  }

  /** The events still stored: all but those a retention pass removed. */
  get stored(): readonly ApiEvent[] {
    return this.#removed === 0
      ? this.#events
      : this.#events.slice(this.#removed)
  }

  /** How many of the oldest events a retention pass removed. */
  get removed(): number {
    return this.#removed
  }

  /**
   * A retention pass removed the `n` oldest events (those removed before
   * included): they are no longer {@link stored} nor in an interval's
   * odometer ({@link storedOdometer}), and an event at one of their
   * timestamps is stale, as where nothing is stored. The robot's figures
   * ({@link summary}, {@link odometer}) still count them: they cover its
   * whole life.
   */
  removeOldest(n: number): void {
    assert.ok(n >= this.#removed && n <= this.#events.length, `remove ${n}`)
    this.#removed = n
  }

  /** How many events are stored. */
  get size(): number {
    return this.#events.length
  }

  /** The newest stored event. */
  get latest(): ApiEvent | undefined {
    return this.#events.at(-1)
  }

  /** The stored event at `timestamp`. */
  at(timestamp: number): ApiEvent | undefined {
    const i = this.#index.get(timestamp)
    return i === undefined ? undefined : this.#events[i]
  }

  /**
   * What the rule of ingest answers to the event, without storing it: `OK`
   * for the first event or one newer than the latest; else `DUP` for the
   * same position at a stored timestamp, `conflict` for another position
   * there, `stale` where nothing is stored.
   */
  judge(x: number, y: number, timestamp: number): Outcome {
    const latest = this.latest
    if (latest === undefined || timestamp > latest.timestamp) return 'OK'
    const i = this.#index.get(timestamp)
    // The latest event is judged against the robot's state, even removed.
    const removed = i !== undefined && i < this.#removed && i < this.size - 1
    const stored = i === undefined || removed ? undefined : this.#events[i]!
    if (stored === undefined) return 'stale'
    // -0 is 0: the same position.
    return stored.x === x && stored.y === y ? 'DUP' : 'conflict'
  }

  /** {@link judge}, and stores the event when it is `OK`. */
  apply(x: number, y: number, timestamp: number): Outcome {
    const outcome = this.judge(x, y, timestamp)
    if (outcome !== 'OK') return outcome
    const previous = this.latest
    const event = { robot: this.name, x: x + 0, y: y + 0, timestamp }
    this.#running.push(
      previous === undefined
        ? ZERO
        : addStep(
            this.#running.at(-1)!,
            Math.hypot(x - previous.x, y - previous.y),
          ),
    )
    this.#index.set(timestamp, this.#events.length)
    this.#events.push(event)
    return outcome
  }

  /** Keeps only the first `n` events (what a restart found stored). */
  keep(n: number): void {
    for (const event of this.#events.splice(n)) {
      this.#index.delete(event.timestamp)
    }
    this.#running.splice(n)
    this.#removed = Math.min(this.#removed, n)
  }

  /** A model of this robot holding only its first `n` events. */
  prefix(n: number): RobotModel {
    const model = new RobotModel(this.name)
    model.#events.push(...this.#events.slice(0, n))
    model.#running.push(...this.#running.slice(0, n))
    for (const [i, event] of model.#events.entries()) {
      model.#index.set(event.timestamp, i)
    }
    model.#removed = Math.min(this.#removed, n)
    return model
  }

  /**
   * The odometer over [start, end] (bounds swapped when start > end, an
   * absent one open): the difference of the running totals at the first
   * and the last stored event inside. Without bounds, the robot's whole
   * odometer.
   */
  odometer(start?: number, end?: number): number {
    let lo = start ?? -Infinity
    let hi = end ?? Infinity
    if (lo > hi) [lo, hi] = [hi, lo]
    let first = -1
    let last = -1
    for (let i = 0; i < this.#events.length; i++) {
      const ts = this.#events[i]!.timestamp
      if (ts < lo) continue
      if (ts > hi) break
      if (first < 0) first = i
      last = i
    }
    if (first < 0) return 0
    return between(this.#running[first]!, this.#running[last]!)
  }

  /**
   * The odometer over [start, end] (as {@link odometer}) of the events
   * still stored: what `GET …/odometer` answers once a retention pass
   * removed the oldest.
   */
  storedOdometer(start?: number, end?: number): number {
    let lo = start ?? -Infinity
    let hi = end ?? Infinity
    if (lo > hi) [lo, hi] = [hi, lo]
    const first = this.#events[this.#removed]
    if (first === undefined) return 0
    lo = Math.max(lo, first.timestamp)
    return lo > hi ? 0 : this.odometer(lo, hi)
  }

  /**
   * The robot object of `GET /api/robots/{name}` without its wall-clock
   * times, or undefined when nothing is stored (404).
   */
  summary(): Record<string, unknown> | undefined {
    const first = this.#events[0]
    const last = this.latest
    if (first === undefined || last === undefined) return undefined
    return {
      name: this.name,
      odometer: this.odometer(),
      last_x: last.x,
      last_y: last.y,
      first_timestamp: first.timestamp,
      last_timestamp: last.timestamp,
      event_count: this.#events.length,
    }
  }
}

/**
 * The odometer over [start, end] of a robot whose stored events, from its
 * first one, are `events`: see {@link RobotModel.odometer}.
 */
export function expectedOdometer(
  events: readonly ApiEvent[],
  start?: number,
  end?: number,
): number {
  return new RobotModel(events[0]?.robot ?? '', events).odometer(start, end)
}

// --- comparing odometers ---

/** The one relative tolerance of odometer comparisons. */
export const ODOMETER_TOLERANCE = 1e-9

/** Whether `actual` is a number within {@link ODOMETER_TOLERANCE} of `expected` (exact for 0). */
export function odometerMatches(actual: unknown, expected: number): boolean {
  return (
    typeof actual === 'number' &&
    Math.abs(actual - expected) <=
      ODOMETER_TOLERANCE * Math.max(Math.abs(actual), Math.abs(expected))
  )
}

/** Asserts {@link odometerMatches}, naming `what`. */
export function assertOdometer(
  actual: unknown,
  expected: number,
  what: string,
): void {
  assert.ok(
    odometerMatches(actual, expected),
    `${what}: odometer ${String(actual)}, expected ${expected} (off by ${typeof actual === 'number' ? Math.abs(actual - expected) : 'a type'})`,
  )
}

// --- replies and order ---

/** The kind of a reply line: an {@link Outcome}, `malformed`, `unavailable`, or `other`. */
export type ReplyKind = Outcome | 'malformed' | 'unavailable' | 'other'

/** Classifies a reply line: `OK`, `DUP`, or `ERR <kind> <message>`. */
export function replyKind(reply: string): ReplyKind {
  if (reply === 'OK' || reply === 'DUP') return reply
  const match = /^ERR (stale|conflict|malformed|unavailable) \S/.exec(reply)
  return match === null ? 'other' : (match[1] as ReplyKind)
}

/** Compares strings by Unicode code points, the order of `GET /api/robots`. */
export function byCodePoint(a: string, b: string): number {
  // UTF-8 byte order is code point order.
  return Buffer.compare(Buffer.from(a), Buffer.from(b))
}
