/**
 * The SQLite schema, as numbered migrations. `PRAGMA user_version` records
 * how many have been applied; each runs once, in its own transaction.
 *
 * The layout (see sqlite-store.ts for why):
 * - `log`: every stored event, in the order it was committed. Each commit
 *   appends to the end of one B-tree, so it writes a few pages whatever the
 *   number of robots it touches. Rows leave the log once their events are
 *   in a block.
 * - `blocks`: a robot's events in runs of up to 256, packed into one row
 *   (../block-codec.ts), with the running odometer at the run's first event.
 *   A robot's events over an interval are a few rows found by one index.
 *   A retention pass removes old blocks, never a robot's last
 *   (sqlite-removal.ts).
 */

/** Migration `i` brings the schema from version `i` to `i + 1`. Append only. */
export const SQLITE_MIGRATIONS: readonly string[] = [
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
]
