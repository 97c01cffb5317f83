/**
 * The rules of ingest, written once for every backend.
 *
 * {@link decide} is a pure function of the robot's current state, the event,
 * and (for an event older than the latest) the stored event at that
 * timestamp. Each backend applies it to what it holds or reads inside its own
 * write transaction, so two backends, or two processes on one database, agree.
 */
import type { TelemetryEvent } from './event.ts'

/** What the store keeps about a robot to judge its next event. */
export interface RobotState {
  readonly firstTimestamp: number
  readonly lastTimestamp: number
  readonly lastX: number
  readonly lastY: number
  /**
   * The running total of the robot's latest event: the distance travelled
   * over its whole life is `odometer + odometerCarry` (see {@link RunningTotal}).
   */
  readonly odometer: number
  readonly odometerCarry: number
  readonly eventCount: number
}

/**
 * The running odometer stored with each event, as an unevaluated sum
 * `total + carry`: `carry` keeps the low bits that rounding drops from
 * `total` (Knuth's TwoSum), so the difference of two running totals gives an
 * interval's distance to within a rounding of the interval itself, even after
 * a long earlier trip (a total of 2e16 cannot hold a step of 1 on its own).
 */
export interface RunningTotal {
  readonly total: number
  readonly carry: number
}

/** Adds one step to a running total, keeping what rounding drops in `carry`. */
export function addStep(
  total: number,
  carry: number,
  step: number,
): RunningTotal {
  const sum = total + step
  const stepPart = sum - total
  const error = total - (sum - stepPart) + (step - stepPart)
  return { total: sum, carry: carry + error }
}

/**
 * The running total at event `index` of a run of one robot's consecutive
 * events, given the running total at the run's first event: its steps added
 * one by one, exactly as {@link decide} added them when they were stored.
 */
export function runningTotalAlong(
  first: RunningTotal,
  x: readonly number[],
  y: readonly number[],
  index: number,
): RunningTotal {
  let total = first.total
  let carry = first.carry
  for (let i = 1; i <= index; i++) {
    ;({ total, carry } = addStep(
      total,
      carry,
      distance(x[i - 1]!, y[i - 1]!, x[i]!, y[i]!),
    ))
  }
  return { total, carry }
}

/** The distance a robot travelled over its whole life. */
export function lifetimeOdometer(state: RobotState): number {
  return state.odometer + state.odometerCarry
}

/**
 * The odometer over an interval: the running total at its last event minus
 * the running total at its first event (both inside the interval).
 */
export function odometerBetween(first: RunningTotal, last: RunningTotal) {
  return last.total - first.total + (last.carry - first.carry)
}

/** A stored position, as read back for an event older than the latest. */
export interface StoredPosition {
  readonly x: number
  readonly y: number
}

/** How one event was judged; the ingest reply follows from it. */
export const OUTCOMES = ['ok', 'dup', 'stale', 'conflict'] as const
export type Outcome = (typeof OUTCOMES)[number]

/** The result of {@link decide}: a new state when the event is to be stored. */
export type Decision =
  | { readonly outcome: 'ok'; readonly state: RobotState }
  | { readonly outcome: 'dup' | 'stale' | 'conflict' }

/** Euclidean distance between two positions. */
export function distance(x1: number, y1: number, x2: number, y2: number) {
  return Math.hypot(x2 - x1, y2 - y1)
}

/**
 * Whether judging `event` needs the stored event at its timestamp, which the
 * backend then reads and passes to {@link decide}.
 */
export function needsStoredPosition(
  state: RobotState | undefined,
  event: TelemetryEvent,
): boolean {
  return state !== undefined && event.timestamp < state.lastTimestamp
}

/**
 * Judges one event against its robot's state.
 *
 * - no state yet, or newer than the latest: `ok`, with the new state (the
 *   stored event's running total is `state.odometer` + `state.odometerCarry`);
 * - at the latest timestamp, or at an older stored one: `dup` when the
 *   position is the same, `conflict` when it is not;
 * - older than the latest with nothing stored at its timestamp: `stale`.
 *
 * @param stored the stored event at `event.timestamp`, required when
 * {@link needsStoredPosition} says so, ignored otherwise.
 */
export function decide(
  state: RobotState | undefined,
  event: TelemetryEvent,
  stored?: StoredPosition,
): Decision {
  if (state === undefined) {
    return {
      outcome: 'ok',
      state: {
        firstTimestamp: event.timestamp,
        lastTimestamp: event.timestamp,
        lastX: event.x,
        lastY: event.y,
        odometer: 0,
        odometerCarry: 0,
        eventCount: 1,
      },
    }
  }
  if (event.timestamp > state.lastTimestamp) {
    const { total, carry } = addStep(
      state.odometer,
      state.odometerCarry,
      distance(state.lastX, state.lastY, event.x, event.y),
    )
    return {
      outcome: 'ok',
      state: {
        firstTimestamp: state.firstTimestamp,
        lastTimestamp: event.timestamp,
        lastX: event.x,
        lastY: event.y,
        odometer: total,
        odometerCarry: carry,
        eventCount: state.eventCount + 1,
      },
    }
  }
  const same =
    event.timestamp === state.lastTimestamp
      ? { x: state.lastX, y: state.lastY }
      : stored
  if (same === undefined) return { outcome: 'stale' }
  return same.x === event.x && same.y === event.y
    ? { outcome: 'dup' }
    : { outcome: 'conflict' }
}
