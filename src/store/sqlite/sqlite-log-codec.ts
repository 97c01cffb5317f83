/**
 * A row of the SQLite store's log holds one commit's stored events as one
 * BLOB (sqlite-migrations.ts, version 4): a commit writes one row, a few
 * pages of the write-ahead log, whatever its number of events. (A row per
 * event cost a third of the store thread: a B-tree cell, six columns and
 * an index entry each; issue 17.)
 *
 * The blob is the batch's events robot by robot, in the order the commit
 * numbered them (sqlite-write.ts), as little-endian doubles:
 *
 *     robot id, n                the robot, and how many of its events follow
 *     ts, x, y  (n times)        each event, oldest first
 *
 * then the next robot. Doubles carry every id, timestamp (integers up to
 * 2^53 − 1) and position exactly. The log lives only until maintenance packs
 * its events into blocks, so it is written for speed, not size.
 */

/** One robot's events in a log row: parallel columns, oldest first. */
export interface LogRun {
  readonly id: number
  readonly ts: readonly number[]
  readonly x: readonly number[]
  readonly y: readonly number[]
}

/** Bytes of a robot's header, and of one event. */
const RUN_HEADER = 16
const EVENT = 24

/**
 * The buffer rows are encoded into, grown as needed: better-sqlite3 copies
 * a bound BLOB (SQLITE_TRANSIENT), so one buffer serves every commit of the
 * thread and a commit allocates nothing for its row.
 */
let scratch = new DataView(new ArrayBuffer(64 * 1024))

/**
 * Encodes `runs` as one log row. The bytes returned are valid until the
 * next call: bind them at once.
 */
export function encodeLogRow(runs: readonly LogRun[]): Uint8Array {
  let size = 0
  for (const run of runs) size += RUN_HEADER + EVENT * run.ts.length
  if (size > scratch.byteLength) {
    scratch = new DataView(
      new ArrayBuffer(Math.max(size, 2 * scratch.byteLength)),
    )
  }
  const view = scratch
  let at = 0
  for (const { id, ts, x, y } of runs) {
    view.setFloat64(at, id, true)
    view.setFloat64(at + 8, ts.length, true)
    at += RUN_HEADER
    for (let i = 0; i < ts.length; i++) {
      view.setFloat64(at, ts[i]!, true)
      view.setFloat64(at + 8, x[i]!, true)
      view.setFloat64(at + 16, y[i]!, true)
      at += EVENT
    }
  }
  return Buffer.from(view.buffer, 0, size)
}

/** Receives the events of a log row, in order. */
export type LogEventVisitor = (
  robotId: number,
  ts: number,
  x: number,
  y: number,
) => void

/**
 * Calls `visit` for each event of a log row, in the order it was encoded;
 * returns how many. Throws on a row whose length does not match what it
 * says it holds.
 */
export function readLogRow(data: Uint8Array, visit: LogEventVisitor): number {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  let at = 0
  let events = 0
  while (at < data.byteLength) {
    if (at + RUN_HEADER > data.byteLength) throw corrupt(data)
    const id = view.getFloat64(at, true)
    const n = view.getFloat64(at + 8, true)
    at += RUN_HEADER
    if (!Number.isInteger(n) || n < 0 || at + n * EVENT > data.byteLength) {
      throw corrupt(data)
    }
    for (let i = 0; i < n; i++, at += EVENT) {
      visit(
        id,
        view.getFloat64(at, true),
        view.getFloat64(at + 8, true),
        view.getFloat64(at + 16, true),
      )
    }
    events += n
  }
  return events
}

function corrupt(data: Uint8Array): Error {
  return new Error(
    `a log row of ${data.byteLength} bytes is not a sequence of robots and events`,
  )
}
