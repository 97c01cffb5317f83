/**
 * Start-up of the SQLite store: rebuilds the fleet in memory from the
 * robots, the blocks and the log. Two index look-ups a robot (its first and
 * its last block) and one pass over the log, which holds only the events
 * not yet packed into blocks.
 */
import { decide } from '../../domain/rules.ts'
import type { Fleet, SqliteRobot } from './sqlite-fleet.ts'
import type { BlockRow, LogRow, RobotRow, Statements } from './sqlite-sql.ts'

/** Fills an empty fleet from the database. */
export function loadFleet(sql: Statements, fleet: Fleet): void {
  const rows = new Map<number, RobotRow>()
  const byId = new Map<number, SqliteRobot>()
  for (const row of sql.allRobots.all() as RobotRow[]) {
    rows.set(row.id, row)
    if (row.id >= fleet.nextRobotId) fleet.nextRobotId = row.id + 1
  }
  // The last block also knows how many events came before it.
  for (const row of rows.values()) {
    const last = sql.lastBlock.get(row.id) as BlockRow | undefined
    if (last === undefined) continue
    const firstTs = sql.firstBlockTs.pluck().get(row.id) as number
    const robot = fleet.addRobot(
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
    )
    robot.sealedLastTs = last.last_ts
    robot.updatedMs = last.committed_ms
    byId.set(row.id, robot)
  }
  // Events after the blocks: replayed through the rule, which recomputes
  // their running odometers exactly as when they were first stored.
  fleet.logFloor = (sql.firstLogSeq.pluck().get() as number | null) ?? 1
  for (const log of sql.allLog.iterate() as IterableIterator<LogRow>) {
    const row = rows.get(log.robot_id)
    if (row === undefined) continue
    let robot = byId.get(log.robot_id)
    if (robot !== undefined && log.ts <= robot.sealedLastTs) continue
    const event = { robot: row.name, timestamp: log.ts, x: log.x, y: log.y }
    const decision = decide(robot?.state, event)
    if (decision.outcome !== 'ok') continue
    if (robot === undefined) {
      robot = fleet.addRobot(row.id, row.name, decision.state, row.created_ms)
      byId.set(row.id, robot)
    }
    fleet.pushToTail(robot, event, decision.state, log.seq)
    robot.state = decision.state
    robot.updatedMs = log.committed_ms
  }
  const lastSeq = sql.lastLogSeq.pluck().get() as number | null
  fleet.nextSeq = (lastSeq ?? 0) + 1
}
