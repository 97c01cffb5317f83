/**
 * Maintenance of the SQLite store: packing tails into blocks, and deleting
 * the log rows that no tail needs any more.
 *
 * Every few thousand committed events, one transaction packs the tails
 * that are full (a block's worth of events or more), and the tails so old
 * that they hold the log back, within a budget of blocks: robots that
 * report in step fill their tails at once, and packing them all in one
 * transaction would stall ingest.
 */
import type Database from 'better-sqlite3'
import { encodeBlock } from './sqlite-blocks.ts'
import type { Fleet, SqliteRobot, TailEntry } from './sqlite-fleet.ts'
import type { Statements } from './sqlite-sql.ts'

/** How much one maintenance transaction does. */
export interface MaintenanceOptions {
  /** Most blocks one maintenance transaction writes. */
  readonly blocksPerMaintenance: number
  /** A tail is packed once this many events were logged after its first. */
  readonly logWindow: number
}

/**
 * Packs full tails, and tails old enough to hold the log back, into blocks;
 * then deletes the log rows no tail needs. `packAll` packs every tail (at
 * close, so that the next start reads no log). One transaction; on failure
 * nothing changes, and the next maintenance tries again.
 */
export function packTails(
  db: Database.Database,
  sql: Statements,
  fleet: Fleet,
  options: MaintenanceOptions,
  packAll = false,
): void {
  const { blockEvents } = fleet
  const budget = packAll ? Infinity : options.blocksPerMaintenance
  const horizon = packAll ? Infinity : fleet.nextSeq - options.logWindow
  const sealed: { robot: SqliteRobot; count: number }[] = []
  const packed = new Set<SqliteRobot>()
  let blocks = 0
  const now = Date.now()
  // Tails older than the horizon are packed whole, oldest first; the
  // oldest tail that stays is where the log must start.
  const taken: TailEntry[] = []
  let floor = fleet.nextSeq
  for (;;) {
    const top = fleet.oldestTails.peek()
    if (top === undefined) break
    if (top.robot.tail.seq[0] !== top.seq) {
      fleet.oldestTails.pop() // stale
      continue
    }
    if (top.seq >= horizon || blocks >= budget) {
      floor = top.seq
      break
    }
    taken.push(fleet.oldestTails.pop()!)
    const count = top.robot.tail.ts.length
    sealed.push({ robot: top.robot, count })
    packed.add(top.robot)
    blocks += Math.ceil(count / blockEvents)
  }
  // Full tails, in the order they filled, within the budget.
  for (const robot of fleet.fullTails) {
    if (blocks >= budget) break
    if (packed.has(robot)) continue
    const length = robot.tail.ts.length
    const full = length - (length % blockEvents)
    sealed.push({ robot, count: full })
    blocks += full / blockEvents
  }

  if (sealed.length > 0 || floor > fleet.logFloor) {
    try {
      db.transaction(() => {
        for (const { robot, count } of sealed) {
          for (let from = 0; from < count; from += blockEvents) {
            writeBlock(
              sql,
              robot,
              from,
              Math.min(count, from + blockEvents),
              now,
            )
          }
        }
        if (floor > fleet.logFloor) sql.deleteLog.run(floor)
      })()
    } catch (error) {
      for (const entry of taken) fleet.oldestTails.push(entry)
      throw error
    }
  }

  for (const { robot, count } of sealed) fleet.dropFromTail(robot, count)
  if (floor > fleet.logFloor) fleet.logFloor = floor
}

/** Writes events `from` to `to` (exclusive) of a robot's tail as one block. */
function writeBlock(
  sql: Statements,
  robot: SqliteRobot,
  from: number,
  to: number,
  now: number,
) {
  const tail = robot.tail
  const last = to - 1
  // committed_ms of the block that ends with the robot's latest event is the
  // robot's updated time after a restart: keep the time it was stored.
  const committedMs = last === tail.ts.length - 1 ? robot.updatedMs : now
  // The robot's events before this block: all of them but its tail's, and
  // the tail's before `from`.
  const eventsBefore = robot.state.eventCount - tail.ts.length + from
  sql.insertBlock.run(
    robot.id,
    tail.ts[from]!,
    tail.ts[last]!,
    to - from,
    eventsBefore,
    tail.total[from]!,
    tail.carry[from]!,
    tail.total[last]!,
    tail.carry[last]!,
    tail.x[last]!,
    tail.y[last]!,
    committedMs,
    encodeBlock(tail, from, to),
  )
}
