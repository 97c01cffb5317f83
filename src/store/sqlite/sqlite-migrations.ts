/**
 * The SQLite schema, as numbered migrations. `PRAGMA user_version` records
 * how many have been applied; each runs once, in its own transaction.
 */

/** Migration `i` brings the schema from version `i` to `i + 1`. Append only. */
export const SQLITE_MIGRATIONS: readonly string[] = [
  `
  -- Names compare with SQLite's default BINARY collation: exact and
  -- case-sensitive ("McDonalds" and "mcdonalds" are two robots).
  CREATE TABLE robots (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    first_ts INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    last_x REAL NOT NULL,
    last_y REAL NOT NULL,
    odometer REAL NOT NULL,
    odometer_carry REAL NOT NULL,
    event_count INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
  ) STRICT;

  -- One row per stored event, clustered by (robot, timestamp): a robot's
  -- events over an interval are one range scan. odo + odo_carry is the
  -- running odometer of the robot at this event (rules.ts, RunningTotal), so
  -- an interval's odometer is the difference of two rows found by two index
  -- look-ups.
  CREATE TABLE events (
    robot_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    x REAL NOT NULL,
    y REAL NOT NULL,
    odo REAL NOT NULL,
    odo_carry REAL NOT NULL,
    PRIMARY KEY (robot_id, ts)
  ) STRICT, WITHOUT ROWID;
  `,
]
