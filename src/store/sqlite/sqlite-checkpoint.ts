/**
 * One round of the checkpointer (sqlite-checkpointer.ts runs it every few
 * hundred milliseconds on its own thread and connection).
 *
 * A PASSIVE checkpoint copies what it can of the write-ahead log into the
 * database without ever blocking the writer. But it never catches up with
 * a writer that commits every few milliseconds, and the log only starts
 * over from its beginning once a checkpoint has caught up: so past a size,
 * a RESTART checkpoint briefly holds the writer back to copy the last
 * frames, and the next commit reuses the log from its start
 * (https://www.sqlite.org/c3ref/wal_checkpoint_v2.html).
 */
import { statSync } from 'node:fs'
import type Database from 'better-sqlite3'

/** What one round did. */
export type CheckpointRound = 'passive' | 'restart'

/**
 * Runs one round on `db`, a connection of its own to the database whose
 * write-ahead log is `walPath`: a PASSIVE checkpoint, then a RESTART one
 * when the log is larger than `restartBytes`. Throws when SQLite does
 * (busy past the connection's timeout, or failing).
 */
export function checkpointRound(
  db: Database.Database,
  walPath: string,
  restartBytes: number,
): CheckpointRound {
  db.pragma('wal_checkpoint(PASSIVE)')
  if (
    (statSync(walPath, { throwIfNoEntry: false })?.size ?? 0) <= restartBytes
  ) {
    return 'passive'
  }
  db.pragma('wal_checkpoint(RESTART)')
  return 'restart'
}
