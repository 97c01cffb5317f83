/**
 * The write path of the SQLite store: a batch is judged by the rules of
 * ingest ({@link judgeBatch}) against the fleet in memory, and its accepted
 * events are appended to the log in the write transaction. Only once that
 * transaction has committed does the fleet in memory move forward, so a
 * failed commit leaves it as it was.
 */
import type { TelemetryEvent } from '../../domain/event.ts'
import { judgeBatch, type BatchJudgement } from '../../domain/batch.ts'
import type { Fleet } from './sqlite-fleet.ts'
import { loadRobot } from './sqlite-load.ts'
import { storedPositionAt } from './sqlite-reads.ts'
import { encodeLogRow, type LogRun } from './sqlite-log-codec.ts'
import type { Statements } from './sqlite-sql.ts'

/** A batch written to the log and not yet applied to the fleet in memory. */
export interface LoggedBatch {
  readonly judgement: BatchJudgement
  /** The ids given to robots new to the store. */
  readonly newIds: ReadonlyMap<string, number>
  /** The log sequence number of the batch's first stored event. */
  readonly firstSeq: number
  /** When the batch was stored, in ms since the epoch. */
  readonly now: number
}

/**
 * Judges a batch and writes what it stores: a row per new robot and one
 * log row holding every accepted event (sqlite-log-codec.ts), numbered
 * from the fleet's next sequence number. Runs inside the write transaction.
 */
export function logBatch(
  sql: Statements,
  fleet: Fleet,
  events: readonly TelemetryEvent[],
): LoggedBatch {
  const judgement = judgeBatch(events, {
    // A robot not in memory is loaded here, inside the transaction: a few
    // index look-ups, and none for a robot already loaded.
    stateOf: (name) => {
      const slot = loadRobot(sql, fleet, name)
      return slot === undefined ? undefined : fleet.stateOf(slot)
    },
    storedAt: (name, ts) =>
      storedPositionAt(sql, fleet, fleet.slotOf(name)!, ts),
  })
  const now = Date.now()
  const newIds = new Map<string, number>()
  // Ids are given 1, 2, 3, … once each: a failed transaction gives none away, as
  // the fleet's next id moves only after a commit, and a deleted robot's
  // is not given again (sqlite-removal.ts). So the robots are the ids
  // given less those deleted (countRobots).
  let nextRobotId = fleet.nextRobotId
  let stored = 0
  // The row holds the events robot by robot; a robot's events stay in
  // timestamp order, which is all that replaying the log needs.
  const runs: LogRun[] = []
  for (const change of judgement.changes.values()) {
    const slot = fleet.slotOf(change.robot)
    let id = slot === undefined ? undefined : fleet.id(slot)
    if (id === undefined) {
      id = nextRobotId++
      newIds.set(change.robot, id)
      sql.insertRobot.run(id, change.robot, now)
    }
    runs.push({ id, ts: change.ts, x: change.x, y: change.y })
    stored += change.ts.length
  }
  if (stored > 0) {
    const seq = fleet.nextSeq
    sql.insertLog.run(seq, seq + stored, now, encodeLogRow(runs))
  }
  return { judgement, newIds, firstSeq: fleet.nextSeq, now }
}

/**
 * Moves the fleet in memory forward by a committed batch, in the order
 * {@link logBatch} numbered its rows. Returns how many events it stored.
 */
export function applyLoggedBatch(fleet: Fleet, logged: LoggedBatch): number {
  let seq = logged.firstSeq
  const { now } = logged
  for (const change of logged.judgement.changes.values()) {
    const slot =
      fleet.slotOf(change.robot) ??
      fleet.addRobot(
        logged.newIds.get(change.robot)!,
        change.robot,
        change.after,
        now,
        now,
      )
    const { ts, x, y, total, carry } = change
    for (let i = 0; i < ts.length; i++) {
      fleet.pushToTail(slot, seq++, ts[i]!, x[i]!, y[i]!, total[i]!, carry[i]!)
    }
    fleet.setState(slot, change.after, now)
  }
  fleet.nextSeq = seq
  return seq - logged.firstSeq
}
