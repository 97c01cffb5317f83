/**
 * Loading robots into the SQLite store's memory: one robot when a batch or
 * a read first names it (its `robots` row by the unique index on the name,
 * then its first and last block: three index look-ups, a few µs on the
 * store thread), and at start only the robots of the log, replayed.
 *
 * A robot's state is its last block's, which a retention pass never
 * removes, with its first timestamp: from its `robots` row once a pass
 * removed its first block, else from that block (sqlite-removal.ts).
 *
 * A robot that is not in memory has every event in its blocks: the log's
 * robots are loaded at start, and a loaded robot stays loaded. So a start
 * reads no robot beyond the log's, and after a clean close (which packs
 * every tail, sqlite-maintenance.ts) the log is empty and a start reads none.
 */
import { decide } from '../../domain/rules.ts'
import type { Fleet } from './sqlite-fleet.ts'
import { readLogRow } from './sqlite-log-codec.ts'
import type {
  BlockRow,
  LogRow,
  RobotIdsRow,
  RobotRow,
  Statements,
} from './sqlite-sql.ts'

/**
 * The slot of robot `name`, loaded from the database when it is not in
 * memory; `undefined` when the store has no event of it.
 */
export function loadRobot(
  sql: Statements,
  fleet: Fleet,
  name: string,
): number | undefined {
  const slot = fleet.slotOf(name)
  if (slot !== undefined) return slot
  const row = sql.robotByName.get(name) as RobotRow | undefined
  return row === undefined ? undefined : loadRow(sql, fleet, row)
}

/** Adds a robot whose every event is in its blocks; its slot. */
function loadRow(
  sql: Statements,
  fleet: Fleet,
  row: RobotRow,
): number | undefined {
  // The last block also knows how many events came before it.
  const last = sql.lastBlock.get(row.id) as BlockRow | undefined
  // Only a start replaying the log meets a robot with no block yet.
  if (last === undefined) return undefined
  const firstTs =
    row.first_ts ?? (sql.firstBlockTs.pluck().get(row.id) as number)
  return fleet.addRobot(
    row.id,
    row.name,
    {
      firstTimestamp: firstTs,
      lastTimestamp: last.last_ts,
      lastX: last.last_x,
      lastY: last.last_y,
      odometer: last.end_odo,
      odometerCarry: last.end_odo_carry,
      eventCount: last.events_before + last.count,
    },
    row.created_ms,
    last.committed_ms,
    last.last_ts,
    true,
  )
}

/**
 * Prepares an empty fleet at start: the robots' next id, and the log
 * replayed. Reads no robot that the log does not name.
 */
export function loadFleet(sql: Statements, fleet: Fleet): void {
  // Ids are given once each, from 1 up (sqlite-write.ts): the next is
  // after the largest, whether its robot is still there or was deleted.
  const maxId = sql.maxRobotId.pluck().get() as number | null
  const ids = sql.robotIds.get() as RobotIdsRow
  fleet.nextRobotId = Math.max(maxId ?? 0, ids.given) + 1
  fleet.deletedRobots = ids.deleted
  const firstSeq = sql.firstLogSeq.pluck().get() as number | null
  fleet.startLogAt(firstSeq ?? 1)
  // Events after the blocks: replayed through the rule, which recomputes
  // their running odometers exactly as when they were first stored. Rows at
  // or before a robot's last block were packed already: skipped.
  const slots = new Map<number, number | undefined>()
  // Deleted robots: their events stay in the log until maintenance deletes
  // their rows, and are never replayed (sqlite-removal.ts).
  const deleted = new Set<number>()
  const replay = (
    seq: number,
    robotId: number,
    ts: number,
    x: number,
    y: number,
    committedMs: number,
  ) => {
    if (deleted.has(robotId)) return
    let slot = slots.get(robotId)
    let row: RobotRow | undefined
    if (!slots.has(robotId)) {
      row = sql.robotById.get(robotId) as RobotRow | undefined
      if (row === undefined) {
        deleted.add(robotId)
        return
      }
      slot = loadRow(sql, fleet, row)
      slots.set(robotId, slot)
    }
    if (slot !== undefined && ts <= fleet.sealedLastTs(slot)) return
    // The rule reads no name.
    const event = { robot: '', timestamp: ts, x, y }
    const decision = decide(
      slot === undefined ? undefined : fleet.stateOf(slot),
      event,
    )
    if (decision.outcome !== 'ok') return
    const state = decision.state
    if (slot === undefined) {
      row ??= sql.robotById.get(robotId) as RobotRow
      slot = fleet.addRobot(row.id, row.name, state, row.created_ms, 0)
      slots.set(robotId, slot)
    }
    fleet.pushToTail(slot, seq, ts, x, y, state.odometer, state.odometerCarry)
    fleet.setState(slot, state, committedMs)
  }
  for (const log of sql.allLog.iterate() as IterableIterator<LogRow>) {
    let seq = log.seq
    const events = readLogRow(log.data, (robotId, ts, x, y) =>
      replay(seq++, robotId, ts, x, y, log.committed_ms),
    )
    if (events !== log.end_seq - log.seq) {
      throw new Error(
        `log row ${log.seq} holds ${events} events, not ${log.end_seq - log.seq}`,
      )
    }
  }
  const end = sql.logEnd.pluck().get() as number | undefined
  fleet.nextSeq = Math.max(fleet.nextSeq, end ?? 1)
  // Robots whose log rows were all packed already leave memory again.
  fleet.releaseLoaded()
}
