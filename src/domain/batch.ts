/**
 * Judging a batch of events: the rule of ingest ({@link decide}) applied to
 * every event of a batch in order, written once for every backend.
 *
 * Each event is judged against its robot's state after the events before it
 * in the batch, so a batch commits exactly what the same events sent one by
 * one would. A backend gives the state it holds or has locked, and the
 * positions it stored before the batch; it gets back every outcome and the
 * rows to write, and only stores them.
 */
import type { TelemetryEvent } from './event.ts'
import {
  decide,
  needsStoredPosition,
  type Outcome,
  type RobotState,
  type StoredPosition,
} from './rules.ts'
import { lowerBound } from './timestamps.ts'

/** What a backend knows of its robots before the batch. */
export interface StoredState {
  /** The robot's state, `undefined` when it has no stored event. */
  stateOf(robot: string): RobotState | undefined
  /**
   * The position stored at `timestamp`, `undefined` when none. Asked only
   * when {@link needsStoredPosition} holds for the robot's state before the
   * batch, so only for timestamps older than the robot's latest; list those
   * in advance with {@link storedPositionsNeeded}.
   */
  storedAt(robot: string, timestamp: number): StoredPosition | undefined
}

/**
 * A robot's events to store, by ascending timestamp, as parallel columns
 * (a batch may store thousands: a few arrays, not an object each), each
 * with its running odometer `total + carry` (rules.ts, RunningTotal).
 */
export interface AcceptedEvents {
  readonly ts: number[]
  readonly x: number[]
  readonly y: number[]
  readonly total: number[]
  readonly carry: number[]
}

/** What a batch changes for one robot: its events to store, and its state after them. */
export interface RobotChange extends AcceptedEvents {
  readonly robot: string
  /** The state after the robot's last accepted event of the batch. */
  readonly after: RobotState
}

/** The result of {@link judgeBatch}. */
export interface BatchJudgement {
  /** One outcome per event of the batch, in order. */
  readonly outcomes: Outcome[]
  /**
   * The robots with at least one accepted event, in order of first
   * appearance, each with its events to store.
   */
  readonly changes: Map<string, RobotChange>
}

/** A robot as the judgement of one batch goes on. */
interface Running extends AcceptedEvents {
  readonly before: RobotState | undefined
  state: RobotState | undefined
}

/**
 * The positions stored before the batch that {@link judgeBatch} will ask
 * for, as parallel lists: those of events older than their robot's latest.
 * A backend that reads them in one query calls this first.
 */
export function storedPositionsNeeded(
  events: readonly TelemetryEvent[],
  stateOf: (robot: string) => RobotState | undefined,
): { robots: string[]; timestamps: number[] } {
  const robots: string[] = []
  const timestamps: number[] = []
  for (const event of events) {
    if (needsStoredPosition(stateOf(event.robot), event)) {
      robots.push(event.robot)
      timestamps.push(event.timestamp)
    }
  }
  return { robots, timestamps }
}

/**
 * Judges the events of a batch in order: each against its robot's state
 * after the batch's earlier events, and against the positions stored before
 * the batch or accepted earlier in it.
 *
 * @example
 * const { outcomes, changes } = judgeBatch(events, {
 *   stateOf: (robot) => states.get(robot),
 *   storedAt: (robot, ts) => positions.get(`${ts} ${robot}`),
 * })
 */
export function judgeBatch(
  events: readonly TelemetryEvent[],
  stored: StoredState,
): BatchJudgement {
  const outcomes: Outcome[] = new Array(events.length)
  const robots = new Map<string, Running>()
  for (let i = 0; i < events.length; i++) {
    const event = events[i]!
    let robot = robots.get(event.robot)
    if (robot === undefined) {
      const before = stored.stateOf(event.robot)
      // A literal: this runs for every robot of every batch.
      robot = {
        before,
        state: before,
        ts: [],
        x: [],
        y: [],
        total: [],
        carry: [],
      }
      robots.set(event.robot, robot)
    }
    const decision = decide(
      robot.state,
      event,
      needsStoredPosition(robot.state, event)
        ? positionAt(robot, event, stored)
        : undefined,
    )
    outcomes[i] = decision.outcome
    if (decision.outcome !== 'ok') continue
    const state = decision.state
    robot.ts.push(event.timestamp)
    robot.x.push(event.x)
    robot.y.push(event.y)
    robot.total.push(state.odometer)
    robot.carry.push(state.odometerCarry)
    robot.state = state
  }
  const changes = new Map<string, RobotChange>()
  for (const [name, r] of robots) {
    if (r.ts.length === 0) continue
    changes.set(name, {
      robot: name,
      after: r.state!,
      ts: r.ts,
      x: r.x,
      y: r.y,
      total: r.total,
      carry: r.carry,
    })
  }
  return { outcomes, changes }
}

/**
 * The lifetime odometer at each accepted event of a judged batch, in batch
 * order: what the live feed sends with each stored event.
 */
export function acceptedOdometers(
  events: readonly TelemetryEvent[],
  judgement: BatchJudgement,
): Float64Array {
  let accepted = 0
  for (const change of judgement.changes.values()) accepted += change.ts.length
  const odometers = new Float64Array(accepted)
  if (accepted === 0) return odometers
  // A robot's accepted events are in its change in batch order.
  const next = new Map<string, number>()
  let k = 0
  for (let i = 0; i < events.length; i++) {
    if (judgement.outcomes[i] !== 'ok') continue
    const robot = events[i]!.robot
    const change = judgement.changes.get(robot)!
    const j = next.get(robot) ?? 0
    next.set(robot, j + 1)
    odometers[k++] = change.total[j]! + change.carry[j]!
  }
  return odometers
}

/**
 * The position of `robot` at the timestamp of `event`, older than its
 * current latest: stored before the batch, or accepted earlier in it.
 */
function positionAt(
  robot: Running,
  event: TelemetryEvent,
  stored: StoredState,
): StoredPosition | undefined {
  const ts = event.timestamp
  const before = robot.before
  if (before !== undefined && ts < before.lastTimestamp) {
    return stored.storedAt(event.robot, ts)
  }
  if (before !== undefined && ts === before.lastTimestamp) {
    return { x: before.lastX, y: before.lastY }
  }
  // Newer than anything stored before the batch: accepted in it, or nothing.
  const i = lowerBound(robot.ts, ts)
  return robot.ts[i] === ts ? { x: robot.x[i]!, y: robot.y[i]! } : undefined
}
