/**
 * What the SQLite store keeps in memory: every robot's state, and its tail
 * (its events not yet packed into a block, with their running odometers).
 *
 * The process is the database's only writer, so this is the truth the rules
 * are judged against, without a read. It moves forward only after a commit
 * (sqlite-write.ts), and is rebuilt at start from the blocks and the log
 * (sqlite-load.ts).
 */
import type { TelemetryEvent } from '../../domain/event.ts'
import type { AcceptedEvents } from '../../domain/batch.ts'
import type { RobotState } from '../../domain/rules.ts'
import type { EventColumns } from './sqlite-blocks.ts'

/** A robot's events not yet in a block, with their running odometers. */
export interface Tail extends EventColumns {
  readonly total: number[]
  readonly carry: number[]
  /** Each event's log sequence number. */
  readonly seq: number[]
}

/** One robot as the SQLite store keeps it. */
export interface SqliteRobot {
  readonly id: number
  readonly name: string
  readonly createdMs: number
  updatedMs: number
  state: RobotState
  /** The last timestamp stored in a block, -1 when none. */
  sealedLastTs: number
  readonly tail: Tail
}

/** A tail in the heap of oldest tails, by its first event's log sequence number. */
export interface TailEntry {
  readonly seq: number
  readonly robot: SqliteRobot
}

/** The robots of one store, their tails, and the log's bookkeeping. */
export class Fleet {
  readonly robots = new Map<string, SqliteRobot>()
  nextRobotId = 1
  /** The log sequence number of the next stored event. */
  nextSeq = 1
  /** Log rows below this sequence number were deleted. */
  logFloor = 1
  /**
   * Tails by the log sequence number of their first event, oldest on top.
   * An entry whose robot's tail no longer starts there is stale, skipped.
   */
  readonly oldestTails = new TailHeap()
  /** Robots whose tails hold at least a block, in the order they filled. */
  readonly fullTails = new Set<SqliteRobot>()
  /** Events per block. */
  readonly blockEvents: number

  constructor(blockEvents: number) {
    this.blockEvents = blockEvents
  }

  /** Adds a robot with its first stored state. */
  addRobot(
    id: number,
    name: string,
    state: RobotState,
    createdMs: number,
  ): SqliteRobot {
    const robot: SqliteRobot = {
      id,
      name,
      createdMs,
      updatedMs: createdMs,
      state,
      sealedLastTs: -1,
      tail: { ts: [], x: [], y: [], total: [], carry: [], seq: [] },
    }
    this.robots.set(name, robot)
    if (id >= this.nextRobotId) this.nextRobotId = id + 1
    return robot
  }

  /**
   * Appends a robot's stored events to its tail, their log rows numbered
   * from `firstSeq`.
   */
  extendTail(
    robot: SqliteRobot,
    events: AcceptedEvents,
    firstSeq: number,
  ): void {
    const tail = robot.tail
    if (tail.ts.length === 0) {
      this.oldestTails.push({ seq: firstSeq, robot })
    }
    const n = events.ts.length
    for (let i = 0; i < n; i++) {
      tail.seq.push(firstSeq + i)
      tail.ts.push(events.ts[i]!)
      tail.x.push(events.x[i]!)
      tail.y.push(events.y[i]!)
      tail.total.push(events.total[i]!)
      tail.carry.push(events.carry[i]!)
    }
    if (tail.ts.length >= this.blockEvents) this.fullTails.add(robot)
  }

  /**
   * Appends one stored event to its robot's tail (a start replaying the
   * log); `state` is the robot's state just after it (its running
   * odometer), `seq` its log row.
   */
  pushToTail(
    robot: SqliteRobot,
    event: TelemetryEvent,
    state: RobotState,
    seq: number,
  ): void {
    const tail = robot.tail
    if (tail.ts.length === 0) this.oldestTails.push({ seq, robot })
    tail.seq.push(seq)
    tail.ts.push(event.timestamp)
    tail.x.push(event.x)
    tail.y.push(event.y)
    tail.total.push(state.odometer)
    tail.carry.push(state.odometerCarry)
    if (tail.ts.length >= this.blockEvents) this.fullTails.add(robot)
  }

  /** Drops the first `count` events of a tail, once they are in blocks. */
  dropFromTail(robot: SqliteRobot, count: number): void {
    const tail = robot.tail
    robot.sealedLastTs = tail.ts[count - 1]!
    for (const column of [
      tail.ts,
      tail.x,
      tail.y,
      tail.total,
      tail.carry,
      tail.seq,
    ]) {
      column.splice(0, count)
    }
    // What stays of a tail now starts later in the log.
    if (tail.ts.length > 0) {
      this.oldestTails.push({ seq: tail.seq[0]!, robot })
    }
    if (tail.ts.length < this.blockEvents) this.fullTails.delete(robot)
  }
}

/** A binary min-heap of tails by their first log sequence number. */
export class TailHeap {
  readonly #items: TailEntry[] = []

  peek(): TailEntry | undefined {
    return this.#items[0]
  }

  push(entry: TailEntry): void {
    const items = this.#items
    let i = items.push(entry) - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (items[parent]!.seq <= entry.seq) break
      items[i] = items[parent]!
      i = parent
    }
    items[i] = entry
  }

  pop(): TailEntry | undefined {
    const items = this.#items
    const top = items[0]
    const last = items.pop()
    if (top === undefined || last === undefined || items.length === 0) {
      return top
    }
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      if (left >= items.length) break
      const right = left + 1
      const child =
        right < items.length && items[right]!.seq < items[left]!.seq
          ? right
          : left
      if (items[child]!.seq >= last.seq) break
      items[i] = items[child]!
      i = child
    }
    items[i] = last
    return top
  }
}
