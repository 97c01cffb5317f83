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

/** An event to store, with its robot's state just after it. */
export interface AcceptedEvent {
  readonly event: TelemetryEvent
  /**
   * Its robot's state once the event is stored: the event's running
   * odometer is `state.odometer` + `state.odometerCarry`.
   */
  readonly state: RobotState
}

/** What a batch changes for one robot. */
export interface RobotChange {
  readonly robot: string
  /** The state after the robot's last accepted event of the batch. */
  readonly after: RobotState
  /** The robot's accepted events, by ascending timestamp. */
  readonly events: readonly AcceptedEvent[]
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
interface Running {
  readonly before: RobotState | undefined
  state: RobotState | undefined
  readonly events: AcceptedEvent[]
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
      robot = { before, state: before, events: [] }
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
    robot.events.push({ event, state: decision.state })
    robot.state = decision.state
  }
  const changes = new Map<string, RobotChange>()
  for (const [name, robot] of robots) {
    if (robot.events.length === 0) continue
    changes.set(name, {
      robot: name,
      after: robot.state!,
      events: robot.events,
    })
  }
  return { outcomes, changes }
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
  const list = robot.events
  let lo = 0
  let hi = list.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (list[mid]!.event.timestamp < ts) lo = mid + 1
    else hi = mid
  }
  const found = list[lo]?.event
  return found !== undefined && found.timestamp === ts ? found : undefined
}
