/**
 * What leaves the SQLite store: a deleted robot with every event of it
 * (Store.deleteRobot), and the blocks older than a retention cutoff
 * (Store.removeBefore).
 *
 * A deletion is one transaction: the robot's `robots` row, its blocks, and
 * a count in `robot_ids` (sqlite-migrations.ts), so that its id is never
 * given again and the robots are still counted without a scan. Only after
 * the commit does the robot leave memory (sqlite-fleet.ts). Its events in
 * the log stay there, inside rows of other robots' events too
 * (sqlite-log-codec.ts), until maintenance deletes those rows; a start
 * replays no event of an id without a `robots` row (sqlite-load.ts), so
 * the replay cannot bring it back, and a batch that names it afterwards
 * starts a new robot, with a new id.
 *
 * A retention pass removes whole blocks whose last event is older than
 * the cutoff, in chunks of up to 256 blocks, each its own transaction: on
 * the store thread a transaction holds up every batch behind it, so a pass
 * lets them in between its chunks ({@link retentionPass}). It keeps:
 * - each robot's latest block: with the robot's first timestamp, it is
 *   the robot's state for the rules and for a load (last position,
 *   lifetime running odometer, the events before it; sqlite-load.ts);
 * - a block of a robot that still has an older one: removing it would
 *   leave a hole, and an odometer over the hole would count the distance
 *   of events no longer read. A pass meets one only when the older block
 *   was the robot's latest as the pass went by it, and maintenance packed
 *   newer blocks since;
 * - the events of a tail (in the log, not yet packed): they are in a block
 *   later, for a later pass.
 *
 * So what a robot keeps is a suffix of its events, and the running totals
 * stored with them still give exact odometers over what is left. Before a
 * robot's first block goes, its first timestamp is written to its `robots`
 * row: its figures stay lifetime totals. The freed pages stay in the file
 * and are reused by later blocks and by the log (incremental auto-vacuum,
 * sqlite-sql.ts), and a clean close gives them back to the file system.
 */
import type Database from 'better-sqlite3'
import type { RetentionPass } from '../store.ts'
import type { Fleet } from './sqlite-fleet.ts'
import type { OldBlockRow, RobotRow, Statements } from './sqlite-sql.ts'

/**
 * Deletes robot `name` and every event of it, in one transaction; `false`
 * when the store has no such robot.
 */
export function deleteRobot(
  db: Database.Database,
  sql: Statements,
  fleet: Fleet,
  name: string,
): boolean {
  const row = sql.robotByName.get(name) as RobotRow | undefined
  if (row === undefined) return false
  db.transaction(() => {
    sql.deleteRobotBlocks.run(row.id)
    sql.deleteRobot.run(row.id)
    sql.countDeletion.run(fleet.nextRobotId - 1)
  }).immediate()
  // Committed: only now does memory forget it.
  const slot = fleet.slotOf(name)
  if (slot !== undefined) fleet.remove(slot)
  fleet.deletedRobots++
  return true
}

// --- retention ---

/** Where a retention pass goes on: after this block, in (last_ts, id) order. */
export interface RetentionCursor {
  readonly lastTs: number
  readonly id: number
}

/** Before every block (timestamps are not negative). */
export const PASS_START: RetentionCursor = { lastTs: -1, id: 0 }

/** What one chunk of a retention pass removed, and where the next starts. */
export interface RetentionChunk extends RetentionPass {
  /** `undefined` when the pass has seen every block older than its cutoff. */
  readonly next: RetentionCursor | undefined
}

/**
 * One chunk of a retention pass, in one transaction: looks at up to
 * `maxBlocks` blocks whose last event is before `cutoff`, oldest first,
 * from `after` on, and removes those a pass may remove (see the top of
 * this file).
 */
export function removeChunk(
  db: Database.Database,
  sql: Statements,
  cutoff: number,
  after: RetentionCursor,
  maxBlocks: number,
): RetentionChunk {
  return db
    .transaction((): RetentionChunk => {
      const blocks = sql.oldBlocks.all({
        cutoff,
        lastTs: after.lastTs,
        id: after.id,
        limit: maxBlocks,
      }) as OldBlockRow[]
      let events = 0
      let units = 0
      for (const block of blocks) {
        const robot = block.robot_id
        // Looked up in this transaction, after the removals before it.
        if (sql.lastBlockTs.pluck().get(robot) === block.first_ts) continue
        if (sql.firstBlockTs.pluck().get(robot) !== block.first_ts) continue
        // The robot's first block: its first timestamp moves to its row,
        // unless an earlier pass moved it already.
        sql.keepFirstTs.run(block.first_ts, robot)
        sql.deleteBlock.run(block.id)
        events += block.count
        units++
      }
      const last = blocks.at(-1)
      return {
        events,
        units,
        next:
          last === undefined || blocks.length < maxBlocks
            ? undefined
            : { lastTs: last.last_ts, id: last.id },
      }
    })
    .immediate()
}

/**
 * Runs a retention pass chunk by chunk, each chunk starting where the last
 * stopped, and adds up what they removed. `chunk` gives other calls their
 * turn before it resolves: the store waits a turn of its thread's event
 * loop (sqlite-store.ts), and the proxy of the store thread sends each
 * chunk as a request of its own, behind those already queued
 * (threaded-store.ts).
 */
export async function retentionPass(
  chunk: (after: RetentionCursor) => Promise<RetentionChunk>,
): Promise<RetentionPass> {
  let events = 0
  let units = 0
  let after: RetentionCursor | undefined = PASS_START
  while (after !== undefined) {
    const done = await chunk(after)
    events += done.events
    units += done.units
    after = done.next
  }
  return { events, units }
}
