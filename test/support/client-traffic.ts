/**
 * The traffic of the client library's kill tests: event `k` of stream `s`
 * is a pure function of both, so a client process that starts again at
 * its journal's next sequence number sends exactly what the dead one would
 * have, and the test knows what the store must hold without being told.
 *
 * Each stream has three robots (`c<s>-r0` … `c<s>-r2`), taken in turn.
 * Step `i` of a robot is at timestamp `T0 + 100 i`, except every 17th step,
 * which is a planted event with a known outcome instead: a repeat of the
 * step before (`duplicate`), an event older than the robot's latest
 * (`stale`), or the step before's timestamp at another place (`conflict`).
 */
import type { ApiEvent } from './oracle.ts'

export type PlannedOutcome = 'stored' | 'duplicate' | 'stale' | 'conflict'

export interface PlannedEvent extends ApiEvent {
  /** The wire line `x,y,timestamp,robot_name`. */
  readonly line: string
  /** Its outcome when every event before it of its stream reached the server. */
  readonly expect: PlannedOutcome
}

const ROBOTS = 3
const T0 = 1_700_000_000_000
const STEP_MS = 100
const PLANTED_EVERY = 17

/** The robot's position at step `i`, plain decimals. */
function at(stream: number, robot: number, i: number) {
  return {
    timestamp: T0 + i * STEP_MS,
    x: stream + i * 0.25,
    y: robot + i * 0.125,
  }
}

/** Event `k` of stream `stream`. */
export function plannedEvent(stream: number, k: number): PlannedEvent {
  const r = k % ROBOTS
  const i = Math.floor(k / ROBOTS)
  const robot = `c${stream}-r${r}`
  let event = at(stream, r, i)
  let expect: PlannedOutcome = 'stored'
  if (i % PLANTED_EVERY === PLANTED_EVERY - 1) {
    const before = at(stream, r, i - 1)
    const kind = Math.floor(i / PLANTED_EVERY) % 3
    if (kind === 0) {
      event = before
      expect = 'duplicate'
    } else if (kind === 1) {
      event = { ...at(stream, r, i - 2), timestamp: before.timestamp - 50 }
      expect = 'stale'
    } else {
      event = { ...before, x: before.x + 1000 }
      expect = 'conflict'
    }
  }
  return {
    robot,
    ...event,
    line: `${event.x},${event.y},${event.timestamp},${robot}`,
    expect,
  }
}

/** What the store must hold of the first `total` events of a stream, by robot, in order. */
export function plannedStore(
  stream: number,
  total: number,
): Map<string, ApiEvent[]> {
  const store = new Map<string, ApiEvent[]>()
  for (let k = 0; k < total; k++) {
    const { robot, x, y, timestamp, expect } = plannedEvent(stream, k)
    if (expect !== 'stored') continue
    const events = store.get(robot) ?? []
    events.push({ robot, x, y, timestamp })
    store.set(robot, events)
  }
  return store
}
