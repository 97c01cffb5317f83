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
import { encodeBlock } from '../block-codec.ts'
import type { Fleet, Tail } from './sqlite-fleet.ts'
import type { Statements } from './sqlite-sql.ts'

/** How much one maintenance transaction does. */
export interface MaintenanceOptions {
  /** Most blocks one maintenance transaction writes while the log is within its window. */
  readonly blocksPerMaintenance: number
  /** A tail is packed once this many events were logged after its first. */
  readonly logWindow: number
}

/** How much one maintenance may pack. */
export interface PackBudget {
  /** Blocks it may write, whatever their size. */
  readonly blocks: number
  /** Events of tails past the log's window it may pack beyond that. */
  readonly events: number
}

/**
 * What a maintenance may pack, after `events` events were logged since the
 * last one.
 *
 * Within the window, {@link MaintenanceOptions.blocksPerMaintenance}
 * blocks. Past it, also twice the events just logged, counted in events,
 * not blocks: where every event is a robot's first (a fleet seen for the
 * first time), each event needs a block of its own, so a fixed number of
 * blocks let the log, its mirror in memory and the replay at start grow
 * without bound (issue 10); and where tails are long, a budget of blocks
 * as large packed hundreds of thousands of events in one transaction and
 * stalled ingest for 300 ms. Twice the events packs what came in and as
 * much again of the backlog, so the log comes back to its window, and the
 * stall stays in proportion to the batches just committed.
 */
export function maintenanceBudget(
  fleet: Fleet,
  options: MaintenanceOptions,
  events: number,
): PackBudget {
  const overWindow = fleet.nextSeq - fleet.logFloor > options.logWindow
  return {
    blocks: options.blocksPerMaintenance,
    events: overWindow ? 2 * events : 0,
  }
}

/** A budget that packs every tail (at close). */
export const PACK_ALL: PackBudget = { blocks: Infinity, events: Infinity }

/**
 * Packs full tails, and tails old enough to hold the log back, into blocks,
 * within `budget`; then deletes the log rows no tail needs.
 * {@link PACK_ALL} packs every tail (at close, so that the next start reads no
 * log). One transaction; on failure nothing changes, and the next
 * maintenance tries again.
 */
export function packTails(
  db: Database.Database,
  sql: Statements,
  fleet: Fleet,
  options: MaintenanceOptions,
  budget: PackBudget,
): void {
  const { blockEvents } = fleet
  const packAll = budget.blocks === Infinity
  const horizon = packAll ? Infinity : fleet.nextSeq - options.logWindow
  const sealed: { slot: number; count: number; tail: Tail }[] = []
  const packed = new Set<number>()
  let blocks = 0
  let events = 0
  const now = Date.now()
  // Tails older than the horizon are packed whole, oldest first; the
  // oldest tail that stays is where the log must start.
  let floor = fleet.nextSeq
  for (let from = fleet.logFloor; ;) {
    const oldest = fleet.oldestTailFrom(from)
    if (oldest === undefined) break
    const spent = blocks >= budget.blocks && events >= budget.events
    if (oldest.seq >= horizon || spent) {
      floor = oldest.seq
      break
    }
    const count = fleet.tailCount(oldest.slot)
    sealed.push({ slot: oldest.slot, count, tail: fleet.tail(oldest.slot) })
    packed.add(oldest.slot)
    blocks += Math.ceil(count / blockEvents)
    events += count
    from = oldest.seq + 1
  }
  // Full tails, in the order they filled, within the budget.
  for (const slot of fleet.fullTails) {
    if (blocks >= budget.blocks) break
    if (packed.has(slot)) continue
    const length = fleet.tailCount(slot)
    const full = length - (length % blockEvents)
    sealed.push({ slot, count: full, tail: fleet.tail(slot) })
    blocks += full / blockEvents
  }

  if (sealed.length > 0 || floor > fleet.logFloor) {
    db.transaction(() => {
      for (const { slot, count, tail } of sealed) {
        for (let from = 0; from < count; from += blockEvents) {
          writeBlock(
            sql,
            fleet,
            slot,
            tail,
            from,
            Math.min(count, from + blockEvents),
            now,
          )
        }
      }
      if (floor > fleet.logFloor) sql.deleteLog.run({ floor })
    }).immediate()
  }

  for (const { slot, count } of sealed) {
    fleet.dropFromTail(slot, count)
    // Every event in blocks: its state is its last block's, so it leaves
    // memory, which holds only the robots of the log (issue 10).
    if (fleet.tailCount(slot) === 0) fleet.evict(slot)
  }
  fleet.cutLog(floor)
}

/** Writes events `from` to `to` (exclusive) of a robot's tail as one block. */
function writeBlock(
  sql: Statements,
  fleet: Fleet,
  slot: number,
  tail: Tail,
  from: number,
  to: number,
  now: number,
) {
  const last = to - 1
  // committed_ms of the block that ends with the robot's latest event is the
  // robot's updated time after a restart: keep the time it was stored.
  const committedMs = last === tail.ts.length - 1 ? fleet.updatedMs(slot) : now
  // The robot's events before this block: all of them but its tail's, and
  // the tail's before `from`.
  const eventsBefore = fleet.stateOf(slot).eventCount - tail.ts.length + from
  sql.insertBlock.run(
    fleet.id(slot),
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
