/**
 * The SQL of the SQLite store: the migrations runner, every statement
 * (prepared once when the store opens) and the rows they return. The
 * schema itself is in sqlite-migrations.ts.
 */
import type Database from 'better-sqlite3'
import { decodeBlock, encodeBlock } from '../block-codec.ts'
import { SQLITE_MIGRATIONS } from './sqlite-migrations.ts'

/** Applies the migrations the database has not seen, each in its own transaction. */
export function migrate(db: Database.Database): void {
  const version = schemaVersion(db)
  for (let v = version; v < SQLITE_MIGRATIONS.length; v++) {
    db.transaction(() => {
      const migration = SQLITE_MIGRATIONS[v]!
      if (typeof migration === 'string') db.exec(migration)
      else migration(db)
      db.pragma(`user_version = ${v + 1}`)
    })()
  }
}

/** `PRAGMA auto_vacuum`'s value for INCREMENTAL. */
const INCREMENTAL = 2

/**
 * Makes a store give its free pages (left when the log is emptied into
 * blocks) back to the file system on a clean close (sqlite-store.ts):
 * that takes incremental auto-vacuum, which a VACUUM turns on, at once on
 * a new store, and by rewriting the file once on a store made before.
 */
export function useIncrementalVacuum(db: Database.Database): void {
  if (db.pragma('auto_vacuum', { simple: true }) === INCREMENTAL) return
  db.pragma('auto_vacuum = INCREMENTAL')
  db.exec('VACUUM')
}

/** The store's schema version: how many migrations were applied. */
export function schemaVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number
}

/**
 * Rewrites the blocks of codec 1 (whose first byte is 0) with the codec
 * of today (../block-codec.ts), 256 a transaction; returns how many. Run on
 * a store at schema version 1, before the migration to version 2: a start
 * cut short goes on where it stopped, and a store at version 2 is never
 * scanned.
 */
export function recodeBlocks(db: Database.Database): number {
  const legacy = db.prepare(
    `SELECT id, first_ts, data FROM blocks WHERE id > ? AND substr(data, 1, 1) = x'00' ORDER BY id LIMIT 256`,
  )
  const update = db.prepare(`UPDATE blocks SET data = ? WHERE id = ?`)
  let recoded = 0
  let after = 0
  for (;;) {
    const rows = legacy.all(after) as {
      id: number
      first_ts: number
      data: Uint8Array
    }[]
    if (rows.length === 0) return recoded
    db.transaction(() => {
      for (const row of rows) {
        const columns = decodeBlock(row.data, row.first_ts)
        update.run(encodeBlock(columns, 0, columns.ts.length), row.id)
      }
    })()
    recoded += rows.length
    after = rows.at(-1)!.id
  }
}

/** The store's statements, prepared on `db`. */
export type Statements = ReturnType<typeof prepareStatements>

/** Prepares every statement the store runs. */
export function prepareStatements(db: Database.Database) {
  const block = `SELECT first_ts, last_ts, count, events_before, odo,
    odo_carry, end_odo, end_odo_carry, last_x, last_y, committed_ms, data
    FROM blocks`
  return {
    robotByName: db.prepare(
      `SELECT id, name, created_ms, first_ts FROM robots WHERE name = ?`,
    ),
    robotById: db.prepare(
      `SELECT id, name, created_ms, first_ts FROM robots WHERE id = ?`,
    ),
    // The last row of the rowid B-tree: one look-up, not a scan.
    maxRobotId: db.prepare(`SELECT MAX(id) FROM robots`),
    robotIds: db.prepare(`SELECT deleted, given FROM robot_ids`),
    robotNames: db.prepare(
      `SELECT name FROM robots
       WHERE @after IS NULL OR name > @after ORDER BY name LIMIT @limit`,
    ),
    insertRobot: db.prepare(
      `INSERT INTO robots (id, name, created_ms) VALUES (?, ?, ?)`,
    ),
    insertLog: db.prepare(
      `INSERT INTO log (seq, end_seq, committed_ms, data) VALUES (?, ?, ?, ?)`,
    ),
    // The rows whose every event is below the floor: a range of the rowid
    // B-tree, less the one row that may straddle the floor.
    deleteLog: db.prepare(
      `DELETE FROM log WHERE seq < @floor AND end_seq <= @floor`,
    ),
    allLog: db.prepare(
      `SELECT seq, end_seq, committed_ms, data FROM log ORDER BY seq`,
    ),
    firstLogSeq: db.prepare(`SELECT MIN(seq) FROM log`),
    // The end of the last row, which has the largest seq.
    logEnd: db.prepare(`SELECT end_seq FROM log ORDER BY seq DESC LIMIT 1`),
    insertBlock: db.prepare(
      `INSERT INTO blocks (robot_id, first_ts, last_ts, count, events_before,
         odo, odo_carry, end_odo, end_odo_carry, last_x, last_y, committed_ms,
         data)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    firstBlockTs: db.prepare(
      `SELECT first_ts FROM blocks WHERE robot_id = ? ORDER BY first_ts LIMIT 1`,
    ),
    lastBlockTs: db.prepare(
      `SELECT first_ts FROM blocks WHERE robot_id = ?
       ORDER BY first_ts DESC LIMIT 1`,
    ),
    lastBlock: db.prepare(
      `${block} WHERE robot_id = ? ORDER BY first_ts DESC LIMIT 1`,
    ),
    blockAtOrBefore: db.prepare(
      `${block} WHERE robot_id = ? AND first_ts <= ?
       ORDER BY first_ts DESC LIMIT 1`,
    ),
    blockAfter: db.prepare(
      `${block} WHERE robot_id = ? AND first_ts > ? ORDER BY first_ts LIMIT 1`,
    ),
    blockStartingAtOrBefore: db.prepare(
      `SELECT first_ts FROM blocks WHERE robot_id = ? AND first_ts <= ?
       ORDER BY first_ts DESC LIMIT 1`,
    ),
    blocksFrom: db.prepare(
      `SELECT first_ts, data FROM blocks
       WHERE robot_id = ? AND first_ts >= ? AND first_ts <= ?
       ORDER BY first_ts`,
    ),
    // --- removal (sqlite-removal.ts) ---
    deleteRobotBlocks: db.prepare(`DELETE FROM blocks WHERE robot_id = ?`),
    deleteRobot: db.prepare(`DELETE FROM robots WHERE id = ?`),
    countDeletion: db.prepare(
      `UPDATE robot_ids SET deleted = deleted + 1, given = max(given, ?)`,
    ),
    // By blocks_by_last_ts, after the block where the last chunk stopped.
    oldBlocks: db.prepare(
      `SELECT id, robot_id, first_ts, last_ts, count FROM blocks
       WHERE last_ts < @cutoff AND (last_ts, id) > (@lastTs, @id)
       ORDER BY last_ts, id LIMIT @limit`,
    ),
    keepFirstTs: db.prepare(
      `UPDATE robots SET first_ts = ? WHERE id = ? AND first_ts IS NULL`,
    ),
    deleteBlock: db.prepare(`DELETE FROM blocks WHERE id = ?`),
  }
}

/** A row of `robots`. */
export interface RobotRow {
  readonly id: number
  readonly name: string
  readonly created_ms: number
  /** Set once a retention pass removed the robot's first block. */
  readonly first_ts: number | null
}

/** The row of `robot_ids`. */
export interface RobotIdsRow {
  readonly deleted: number
  readonly given: number
}

/** A block as a retention pass finds it. */
export interface OldBlockRow {
  readonly id: number
  readonly robot_id: number
  readonly first_ts: number
  readonly last_ts: number
  readonly count: number
}

/** A row of `blocks` (see sqlite-migrations.ts for each column). */
export interface BlockRow {
  readonly first_ts: number
  readonly last_ts: number
  readonly count: number
  readonly events_before: number
  readonly odo: number
  readonly odo_carry: number
  readonly end_odo: number
  readonly end_odo_carry: number
  readonly last_x: number
  readonly last_y: number
  readonly committed_ms: number
  readonly data: Uint8Array
}

/** A row of `log`: one commit's events (sqlite-log-codec.ts). */
export interface LogRow {
  /** The sequence number of its first event. */
  readonly seq: number
  /** After its last event: it holds `end_seq - seq` events. */
  readonly end_seq: number
  readonly committed_ms: number
  readonly data: Uint8Array
}
