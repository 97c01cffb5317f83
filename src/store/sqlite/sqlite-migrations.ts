/**
 * The SQLite schema, as numbered migrations. `PRAGMA user_version` records
 * how many have been applied; each runs once, in its own transaction.
 *
 * The layout (see sqlite-store.ts for why):
 * - `log`: every stored event, in the order it was committed, a row per
 *   commit (sqlite-log-codec.ts). Each commit appends one row to the end of
 *   one B-tree, so it writes a few pages whatever the number of robots it
 *   touches. A row leaves the log once all its events are in blocks.
 * - `blocks`: a robot's events in runs of up to 256, packed into one row
 *   (../block-codec.ts), with the running odometer at the run's first event.
 *   A robot's events over an interval are a few rows found by one index.
 *   A retention pass removes old blocks, never a robot's last
 *   (sqlite-removal.ts).
 */

import type Database from 'better-sqlite3'
import { encodeLogRow, type LogRun } from './sqlite-log-codec.ts'

/** SQL to run, or a step that reads and rewrites rows. */
export type Migration = string | ((db: Database.Database) => void)

/** Migration `i` brings the schema from version `i` to `i + 1`. Append only. */
export const SQLITE_MIGRATIONS: readonly Migration[] = [
  `
  -- Names compare with SQLite's default BINARY collation: exact and
  -- case-sensitive ("McDonalds" and "mcdonalds" are two robots), and
  -- ORDER BY name sorts in code point order.
  CREATE TABLE robots (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE log (
    seq INTEGER PRIMARY KEY,
    robot_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    x REAL NOT NULL,
    y REAL NOT NULL,
    committed_ms INTEGER NOT NULL
  ) STRICT;

  -- first_ts..last_ts: the timestamps of the run's first and last events;
  -- count: its events; events_before: the robot's events before it;
  -- odo + odo_carry: the robot's running odometer at the first event;
  -- end_odo + end_odo_carry: at the last event (rules.ts, RunningTotal).
  CREATE TABLE blocks (
    id INTEGER PRIMARY KEY,
    robot_id INTEGER NOT NULL,
    first_ts INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    count INTEGER NOT NULL,
    events_before INTEGER NOT NULL,
    odo REAL NOT NULL,
    odo_carry REAL NOT NULL,
    end_odo REAL NOT NULL,
    end_odo_carry REAL NOT NULL,
    last_x REAL NOT NULL,
    last_y REAL NOT NULL,
    committed_ms INTEGER NOT NULL,
    data BLOB NOT NULL
  ) STRICT;
  CREATE UNIQUE INDEX blocks_by_robot ON blocks (robot_id, first_ts);
  `,
  // Version 2: blocks are written with codec 2 (../block-codec.ts). The
  // schema is the same; a store at version 1 has its blocks recoded before
  // this runs (sqlite-store.ts), so a start at version 2 has none to find.
  `SELECT 1`,
  // Version 3 (issue 14): deleting robots and removing old blocks
  // (sqlite-removal.ts).
  `
  -- The robot's first timestamp, written by the retention pass that
  -- removes its first block; NULL: read it from its first block.
  ALTER TABLE robots ADD COLUMN first_ts INTEGER;

  -- The retention pass finds the blocks older than its cutoff by this
  -- index, without scanning the table.
  CREATE INDEX blocks_by_last_ts ON blocks (last_ts);

  -- One row. Ids are given once each, from 1 up (sqlite-write.ts), and
  -- never again once deleted: deleted counts the robots deleted, and
  -- given is the largest id given when the last one was, so that a start
  -- goes on after it even when that robot had the largest id. The robots
  -- are then the ids given less the deleted (countRobots).
  CREATE TABLE robot_ids (
    deleted INTEGER NOT NULL,
    given INTEGER NOT NULL
  ) STRICT;
  INSERT INTO robot_ids (deleted, given) VALUES (0, 0);
  `,
  // Version 4 (issue 17): a log row per commit, not per event.
  (db) => {
    db.exec(`
    ALTER TABLE log RENAME TO log_v3;
    -- seq: the sequence number of the row's first event; end_seq: after its
    -- last (the row holds end_seq - seq events); data: its events
    -- (sqlite-log-codec.ts).
    CREATE TABLE log (
      seq INTEGER PRIMARY KEY,
      end_seq INTEGER NOT NULL,
      committed_ms INTEGER NOT NULL,
      data BLOB NOT NULL
    ) STRICT;
    `)
    rewriteLog(db)
    db.exec(`DROP TABLE log_v3`)
  },
]

/** A row of the log before version 4: one event. */
interface EventRowV3 {
  readonly seq: number
  readonly robot_id: number
  readonly ts: number
  readonly x: number
  readonly y: number
  readonly committed_ms: number
}

/**
 * Moves the rows of `log_v3` (a row an event) into `log`: consecutive
 * events of one commit (same time, no gap in their numbers) become one row.
 * The old log holds at most its window of events (262,144 by default).
 */
function rewriteLog(db: Database.Database): void {
  const rows = db
    .prepare(`SELECT * FROM log_v3 ORDER BY seq`)
    .all() as EventRowV3[]
  const insert = db.prepare(
    `INSERT INTO log (seq, end_seq, committed_ms, data) VALUES (?, ?, ?, ?)`,
  )
  let start = 0
  while (start < rows.length) {
    const first = rows[start]!
    const runs: { id: number; ts: number[]; x: number[]; y: number[] }[] = []
    let end = start
    for (; end < rows.length; end++) {
      const row = rows[end]!
      if (
        row.committed_ms !== first.committed_ms ||
        row.seq !== first.seq + (end - start)
      ) {
        break
      }
      let run = runs.at(-1)
      if (run?.id !== row.robot_id) {
        run = { id: row.robot_id, ts: [], x: [], y: [] }
        runs.push(run)
      }
      run.ts.push(row.ts)
      run.x.push(row.x)
      run.y.push(row.y)
    }
    insert.run(
      first.seq,
      first.seq + (end - start),
      first.committed_ms,
      encodeLogRow(runs satisfies LogRun[]),
    )
    start = end
  }
}
