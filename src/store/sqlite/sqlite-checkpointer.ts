/**
 * The checkpointer: a worker thread with its own connection that copies the
 * write-ahead log into the database every few hundred milliseconds
 * (sqlite-checkpoint.ts has one round).
 *
 * SQLite checkpoints on the committing connection by default, so one commit
 * in a thousand pages would also copy them and wait for the disk (fsync):
 * tens of milliseconds during which ingest stalls. A PASSIVE checkpoint from
 * another connection never blocks the writer (https://www.sqlite.org/wal.html,
 * "Checkpointing"), and its fsync runs on this thread.
 */
import { parentPort, workerData } from 'node:worker_threads'
import Database from 'better-sqlite3'
import { checkpointRound } from './sqlite-checkpoint.ts'

/** What the store passes to the worker. */
export interface CheckpointerData {
  readonly path: string
  readonly intervalMs: number
  /** Past this size of the log, checkpoint so that it starts over. */
  readonly restartBytes: number
}

const { path, intervalMs, restartBytes } = workerData as CheckpointerData
// Shorter than the writer's busy timeout: a RESTART checkpoint holds the
// writer back while it waits, and gives up before the writer would.
const db = new Database(path, { timeout: 100 })
const timer = setInterval(() => {
  try {
    checkpointRound(db, `${path}-wal`, restartBytes)
  } catch {
    // Busy or failing: the next round tries again; the writer's own
    // commits do not depend on it.
  }
}, intervalMs)

parentPort?.on('message', (message: unknown) => {
  if (message !== 'close') return
  clearInterval(timer)
  db.close()
  parentPort?.close()
})
