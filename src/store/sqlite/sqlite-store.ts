/**
 * The SQLite backend, on better-sqlite3 (synchronous, in-process).
 *
 * Why this layout: a fleet's events arrive interleaved, one robot after the
 * other. Stored clustered by robot, each commit would dirty about one page
 * per robot it touches, so the write-ahead log would carry a page per event.
 * Instead:
 *
 * 1. A commit appends its events to `log`, in commit order: a few pages per
 *    thousand events. The acknowledgement follows this commit.
 * 2. Each robot's events not yet in a block (its tail) are also kept in
 *    memory, with their running odometers.
 * 3. Every 2,048 events, a maintenance transaction packs up to 32 tails into
 *    `blocks` (256 events a row, ~19 bytes an event) and deletes the log rows
 *    that no tail needs any more. A tail is packed when it is full, or when it
 *    is so old that it holds the log back.
 *
 * The process is the database's only writer, so the robots' state lives in
 * memory (rebuilt at start from the blocks and the log) and is consulted
 * without a read. It moves forward only after a commit, so a failed commit
 * leaves it as it was.
 */
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { Worker } from 'node:worker_threads'
import Database from 'better-sqlite3'
import type { TelemetryEvent } from '../../domain/event.ts'
import {
  addStep,
  decide,
  distance,
  needsStoredPosition,
  odometerBetween,
  type Outcome,
  type RobotState,
  type RunningTotal,
  type StoredPosition,
} from '../../domain/rules.ts'
import type {
  ListRobotsOptions,
  ReadEventsOptions,
  EventPage,
  Robot,
  Store,
  TimeRange,
} from '../store.ts'
import {
  decodeBlock,
  emptyColumns,
  encodeBlock,
  lowerBound,
  type EventColumns,
} from './sqlite-blocks.ts'
import type { CheckpointerData } from './sqlite-checkpointer.ts'
import { SQLITE_MIGRATIONS } from './sqlite-migrations.ts'
import { pagesByTimestamp } from '../paging.ts'

/** Options of {@link createSqliteStore}. */
export interface SqliteStoreOptions {
  /** Database file, created with its folder if missing; `:memory:` for a private in-memory database. */
  readonly path: string
  /** The address shown in logs; defaults to `sqlite:` + path. */
  readonly url?: string
  /** SQLite page cache, in KiB; default 16384 (the hot pages are the log's end and the newest blocks). */
  readonly cacheKiB?: number
  /**
   * How long a write waits for a lock held by another connection (a backup,
   * an sqlite3 shell); default 250. It blocks the event loop, so it is short:
   * past it the batch is answered `ERR unavailable` and the next one retries.
   */
  readonly busyTimeoutMs?: number
  /**
   * `normal` (default): a commit is in the operating system before it
   * returns, so it survives a crash of the process. `full`: the write-ahead
   * log is also synced to the disk at every commit, so it survives a power
   * loss (https://www.sqlite.org/pragma.html#pragma_synchronous).
   */
  readonly sync?: 'normal' | 'full'
  /** Events per block; default 256. */
  readonly blockEvents?: number
  /** Events committed between two maintenance transactions; default 2048. */
  readonly maintenanceEvents?: number
  /** Most blocks one maintenance transaction writes (it blocks ingest); default 32. */
  readonly blocksPerMaintenance?: number
  /** How often the checkpointer copies the write-ahead log; default 200 ms. */
  readonly checkpointIntervalMs?: number
  /** Past this size the write-ahead log is made to start over; default 64 MiB. */
  readonly walRestartBytes?: number
  /** A tail is packed once this many events were logged after its first; default 262144. */
  readonly logWindow?: number
}

/**
 * Creates a store on an SQLite file.
 *
 * @example
 * const store = createSqliteStore({ path: './data/telemetry.db' })
 * await store.init()
 */
export function createSqliteStore(options: SqliteStoreOptions): Store {
  return new SqliteStore(options)
}

// --- in-memory state ---

/** A robot's events not yet in a block, with their running odometers. */
interface Tail extends EventColumns {
  readonly total: number[]
  readonly carry: number[]
  /** Each event's log sequence number. */
  readonly seq: number[]
}

interface SqliteRobot {
  readonly id: number
  readonly name: string
  readonly createdMs: number
  updatedMs: number
  state: RobotState
  /** The last timestamp stored in a block, -1 when none. */
  sealedLastTs: number
  readonly tail: Tail
}

/** A committed batch, before it is applied to memory. */
interface AppliedBatch {
  readonly outcomes: Outcome[]
  readonly pending: Map<string, Pending>
  readonly nextSeq: number
  readonly nextRobotId: number
  readonly now: number
}

/** What one batch adds to one robot, applied to memory after the commit. */
interface Pending {
  readonly name: string
  robot: SqliteRobot | undefined
  id: number
  state: RobotState | undefined
  readonly added: Tail
}

function emptyTail(): Tail {
  // A literal: this runs for every robot of every batch.
  return { ts: [], x: [], y: [], total: [], carry: [], seq: [] }
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER
const LOG_COLUMNS = 6
/** Rows per multi-row insert into the log (6 × 64 = 384 parameters). */
const LOG_ROWS_PER_INSERT = 64

class SqliteStore implements Store {
  readonly url: string
  readonly #options: SqliteStoreOptions
  readonly #blockEvents: number
  readonly #maintenanceEvents: number
  readonly #blocksPerMaintenance: number
  readonly #logWindow: number
  #db: Database.Database | undefined
  #checkpointer: Worker | undefined
  #sql: ReturnType<typeof prepare> | undefined
  #appendBatch:
    ((events: readonly TelemetryEvent[]) => AppliedBatch) | undefined
  readonly #robots = new Map<string, SqliteRobot>()
  #nextRobotId = 1
  #nextSeq = 1
  /** Events logged since the last maintenance. */
  #sinceMaintenance = 0
  /**
   * Tails by the log sequence number of their first event, oldest on top.
   * An entry whose robot's tail no longer starts there is stale, skipped.
   */
  readonly #oldestTails = new TailHeap()
  /** Robots whose tails hold at least a block, in the order they filled. */
  readonly #fullTails = new Set<SqliteRobot>()
  /** Log rows below this sequence number were deleted. */
  #logFloor = 1

  constructor(options: SqliteStoreOptions) {
    this.#options = Object.freeze({ ...options })
    this.url = options.url ?? `sqlite:${options.path}`
    this.#blockEvents = options.blockEvents ?? 256
    this.#maintenanceEvents = options.maintenanceEvents ?? 2048
    this.#blocksPerMaintenance = options.blocksPerMaintenance ?? 32
    this.#logWindow = options.logWindow ?? 262144
  }

  async init(): Promise<void> {
    const { path } = this.#options
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
    const db = new Database(path, {
      timeout: this.#options.busyTimeoutMs ?? 250,
    })
    this.#db = db
    // WAL with synchronous=NORMAL: a commit is in the OS before the call
    // returns, so an acknowledged event survives a kill -9 of the server
    // (https://www.sqlite.org/wal.html, "Durability").
    db.pragma('journal_mode = WAL')
    db.pragma(
      `synchronous = ${this.#options.sync === 'full' ? 'FULL' : 'NORMAL'}`,
    )
    if (path !== ':memory:') {
      // Checkpoints run on their own thread (sqlite-checkpointer.ts).
      db.pragma('wal_autocheckpoint = 0')
      this.#checkpointer = new Worker(
        new URL('./sqlite-checkpointer.js', import.meta.url),
        {
          workerData: {
            path,
            intervalMs: this.#options.checkpointIntervalMs ?? 200,
            restartBytes: this.#options.walRestartBytes ?? 64 * 1024 * 1024,
          } satisfies CheckpointerData,
        },
      )
      this.#checkpointer.unref()
      // Checkpoints are an optimisation: a checkpointer that fails leaves
      // the WAL to grow until the next start, never the process down.
      this.#checkpointer.on('error', () => {})
      this.#checkpointer.once('exit', () => {
        this.#checkpointer = undefined
      })
    }
    db.pragma(`cache_size = -${this.#options.cacheKiB ?? 16384}`)
    migrate(db)
    this.#sql = prepare(db)
    this.#appendBatch = db.transaction((events: readonly TelemetryEvent[]) =>
      this.#applyBatch(events),
    )
    this.#load()
  }

  // --- writes ---

  async append(events: readonly TelemetryEvent[]): Promise<Outcome[]> {
    const batch = this.#appendTx()(events)
    // Committed: only now does the state in memory move forward.
    const added = batch.nextSeq - this.#nextSeq
    this.#nextSeq = batch.nextSeq
    this.#nextRobotId = batch.nextRobotId
    for (const p of batch.pending.values()) {
      if (p.added.ts.length === 0) continue
      const robot = p.robot ?? this.#addRobot(p.id, p.name, p.state!, batch.now)
      this.#extendTail(robot, p.added)
      robot.state = p.state!
      robot.updatedMs = batch.now
    }
    this.#sinceMaintenance += added
    if (this.#sinceMaintenance >= this.#maintenanceEvents) {
      this.#sinceMaintenance = 0
      try {
        this.#maintain()
      } catch {
        // The batch itself is committed and must be acknowledged. A failed
        // maintenance changed nothing and runs again after the next events.
      }
    }
    return batch.outcomes
  }

  /** Judges and logs a batch; runs inside the write transaction. */
  #applyBatch(events: readonly TelemetryEvent[]) {
    const sql = this.#prepared()
    const pending = new Map<string, Pending>()
    const outcomes: Outcome[] = new Array(events.length)
    let nextSeq = this.#nextSeq
    let nextRobotId = this.#nextRobotId
    const now = Date.now()
    // Log rows are inserted many to a statement: one statement per row
    // cost half of the time of a commit.
    const rows: number[] = []
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!
      let p = pending.get(event.robot)
      if (p === undefined) {
        const robot = this.#robots.get(event.robot)
        p = {
          name: event.robot,
          robot,
          id: robot?.id ?? 0,
          state: robot?.state,
          added: emptyTail(),
        }
        pending.set(event.robot, p)
      }
      const stored =
        p.state !== undefined && needsStoredPosition(p.state, event)
          ? this.#positionAt(p, event.timestamp)
          : undefined
      const decision = decide(p.state, event, stored)
      outcomes[i] = decision.outcome
      if (decision.outcome !== 'ok') continue
      if (p.id === 0) {
        p.id = nextRobotId++
        sql.insertRobot.run(p.id, event.robot, now)
      }
      pushEvent(p.added, event, decision.state, nextSeq)
      rows.push(nextSeq++, p.id, event.timestamp, event.x, event.y, now)
      if (rows.length === LOG_ROWS_PER_INSERT * LOG_COLUMNS) {
        sql.insertLogRows.run(rows)
        rows.length = 0
      }
      p.state = decision.state
    }
    for (let i = 0; i < rows.length; i += LOG_COLUMNS) {
      sql.insertLog.run(rows.slice(i, i + LOG_COLUMNS))
    }
    return { outcomes, pending, nextSeq, nextRobotId, now }
  }

  #addRobot(
    id: number,
    name: string,
    state: RobotState,
    createdMs: number,
  ): SqliteRobot {
    const robot: SqliteRobot = {
      id,
      name,
      createdMs,
      updatedMs: createdMs,
      state,
      sealedLastTs: -1,
      tail: emptyTail(),
    }
    this.#robots.set(name, robot)
    return robot
  }

  #extendTail(robot: SqliteRobot, added: Tail) {
    const tail = robot.tail
    if (tail.ts.length === 0) {
      this.#oldestTails.push({ seq: added.seq[0]!, robot })
    }
    for (let i = 0; i < added.ts.length; i++) {
      tail.seq.push(added.seq[i]!)
      tail.ts.push(added.ts[i]!)
      tail.x.push(added.x[i]!)
      tail.y.push(added.y[i]!)
      tail.total.push(added.total[i]!)
      tail.carry.push(added.carry[i]!)
    }
    if (tail.ts.length >= this.#blockEvents) this.#fullTails.add(robot)
  }

  /**
   * Packs full tails, and tails old enough to hold the log back, into
   * blocks; then deletes the log rows no tail needs. One transaction; on
   * failure nothing changes and the next maintenance tries again.
   */
  #maintain(packAll = false) {
    const sql = this.#prepared()
    const budget = packAll ? Infinity : this.#blocksPerMaintenance
    const horizon = packAll ? Infinity : this.#nextSeq - this.#logWindow
    const sealed: { robot: SqliteRobot; count: number }[] = []
    const packed = new Set<SqliteRobot>()
    let blocks = 0
    const now = Date.now()
    // Tails older than the horizon are packed whole, oldest first; the
    // oldest tail that stays is where the log must start.
    const taken: TailEntry[] = []
    let floor = this.#nextSeq
    for (;;) {
      const top = this.#oldestTails.peek()
      if (top === undefined) break
      if (top.robot.tail.seq[0] !== top.seq) {
        this.#oldestTails.pop() // stale
        continue
      }
      if (top.seq >= horizon || blocks >= budget) {
        floor = top.seq
        break
      }
      taken.push(this.#oldestTails.pop()!)
      const count = top.robot.tail.ts.length
      sealed.push({ robot: top.robot, count })
      packed.add(top.robot)
      blocks += Math.ceil(count / this.#blockEvents)
    }
    // Full tails, oldest first, within the budget: robots that report in
    // step all fill their tails at once, and packing them all in one
    // transaction would stall ingest.
    for (const robot of this.#fullTails) {
      if (blocks >= budget) break
      if (packed.has(robot)) continue
      const length = robot.tail.ts.length
      const full = length - (length % this.#blockEvents)
      sealed.push({ robot, count: full })
      blocks += full / this.#blockEvents
    }

    if (sealed.length > 0 || floor > this.#logFloor) {
      try {
        this.#db!.transaction(() => {
          for (const { robot, count } of sealed) {
            for (let from = 0; from < count; from += this.#blockEvents) {
              const to = Math.min(count, from + this.#blockEvents)
              writeBlock(sql, robot, from, to, now)
            }
          }
          if (floor > this.#logFloor) sql.deleteLog.run(floor)
        })()
      } catch (error) {
        for (const entry of taken) this.#oldestTails.push(entry)
        throw error
      }
    }

    for (const { robot, count } of sealed) {
      const tail = robot.tail
      robot.sealedLastTs = tail.ts[count - 1]!
      for (const column of [
        tail.ts,
        tail.x,
        tail.y,
        tail.total,
        tail.carry,
        tail.seq,
      ]) {
        column.splice(0, count)
      }
      // What stays of a tail now starts later in the log.
      if (tail.ts.length > 0) {
        this.#oldestTails.push({ seq: tail.seq[0]!, robot })
      }
      if (tail.ts.length < this.#blockEvents) this.#fullTails.delete(robot)
    }
    if (floor > this.#logFloor) this.#logFloor = floor
  }

  // --- reads ---

  async listRobots(options: ListRobotsOptions = {}): Promise<Robot[]> {
    // SQLite sorts by code point (UTF-8 bytes); JavaScript would sort by
    // UTF-16 code unit.
    const names = this.#prepared()
      .robotNames.pluck()
      .all({ after: options.after ?? null, limit: options.limit ?? -1 })
    return (names as string[]).map((name) => toRobot(this.#robots.get(name)!))
  }

  async getRobot(name: string): Promise<Robot | undefined> {
    const robot = this.#robots.get(name)
    return robot === undefined ? undefined : toRobot(robot)
  }

  readEvents(
    name: string,
    options: ReadEventsOptions = {},
  ): AsyncIterable<EventPage> {
    return pagesByTimestamp(options, (from, to, max) => {
      const robot = this.#robots.get(name)
      return robot === undefined
        ? emptyColumns()
        : this.#readPage(robot, from, to, max)
    })
  }

  async odometer(name: string, range: TimeRange = {}): Promise<number> {
    const robot = this.#robots.get(name)
    if (robot === undefined) return 0
    const start = range.start ?? 0
    const end = range.end ?? MAX_SAFE
    const first = this.#runningTotalAt(robot, start, end, 'first')
    const last = this.#runningTotalAt(robot, start, end, 'last')
    if (first === undefined || last === undefined) return 0
    return odometerBetween(first, last)
  }

  async close(): Promise<void> {
    if (this.#db?.open) {
      try {
        // Pack every tail, so that the log is empty and the next start
        // reads no log. A failure here loses nothing: the log still holds
        // the tails.
        this.#maintain(true)
      } catch {
        // The next start replays the log.
      }
    }
    const checkpointer = this.#checkpointer
    this.#checkpointer = undefined
    // Undefined once it has exited: then there is nothing to wait for.
    if (checkpointer !== undefined) {
      const exited = new Promise((resolve) =>
        checkpointer.once('exit', resolve),
      )
      // Unreferenced while it runs, so that it never keeps a process alive;
      // referenced while we wait for it to stop.
      checkpointer.ref()
      checkpointer.postMessage('close')
      await exited
    }
    const db = this.#db
    this.#db = undefined
    this.#sql = undefined
    this.#appendBatch = undefined
    // Fold the write-ahead log into the database before leaving.
    if (db?.open) {
      try {
        db.pragma('wal_checkpoint(TRUNCATE)')
      } finally {
        db.close()
      }
    }
  }

  /** Events of `robot` from `from` to `to`, at most `max`. */
  #readPage(robot: SqliteRobot, from: number, to: number, max: number) {
    const out = emptyColumns()
    if (from <= robot.sealedLastTs) {
      const sql = this.#prepared()
      const startBlock = sql.blockStartingAtOrBefore.pluck().get(robot.id, from)
      const blocks = sql.blocksFrom.iterate(
        robot.id,
        (startBlock as number | undefined) ?? from,
        to,
      ) as IterableIterator<{ first_ts: number; data: Uint8Array }>
      for (const block of blocks) {
        const columns = decodeBlock(block.data, block.first_ts)
        const last = copyRange(columns, from, to, max, out)
        // Leaving the loop closes the statement's iterator.
        if (out.ts.length === max || last >= to) return out
      }
    }
    copyRange(robot.tail, from, to, max, out)
    return out
  }

  /**
   * The running total at the first event at or after `start` (`'first'`) or
   * at the last event at or before `end` (`'last'`); `undefined` when that
   * event is not within [start, end].
   */
  #runningTotalAt(
    robot: SqliteRobot,
    start: number,
    end: number,
    which: 'first' | 'last',
  ): RunningTotal | undefined {
    const found =
      which === 'first'
        ? this.#firstAtOrAfter(robot, start)
        : this.#lastAtOrBefore(robot, end)
    if (found === undefined || found.ts < start || found.ts > end) {
      return undefined
    }
    return found.running
  }

  #firstAtOrAfter(robot: SqliteRobot, start: number) {
    if (start <= robot.sealedLastTs) {
      const sql = this.#prepared()
      const block = sql.blockAtOrBefore.get(robot.id, start) as
        BlockRow | undefined
      if (block !== undefined && block.last_ts >= start) {
        return eventInBlock(block, start, 'first')
      }
      // Between two blocks, or before the first: the next block opens it.
      const next = sql.blockAfter.get(robot.id, start) as BlockRow | undefined
      if (next !== undefined) {
        return {
          ts: next.first_ts,
          running: { total: next.odo, carry: next.odo_carry },
        }
      }
    }
    return eventInTail(robot.tail, lowerBound(robot.tail.ts, start))
  }

  #lastAtOrBefore(robot: SqliteRobot, end: number) {
    const tail = robot.tail
    const index = lowerBound(tail.ts, end + 1) - 1
    if (index >= 0) return eventInTail(tail, index)
    const block = this.#prepared().blockAtOrBefore.get(robot.id, end) as
      BlockRow | undefined
    return block === undefined ? undefined : eventInBlock(block, end, 'last')
  }

  /** The stored position of a robot at `ts`, for an event older than its latest. */
  #positionAt(p: Pending, ts: number): StoredPosition | undefined {
    for (const columns of [p.added, p.robot?.tail]) {
      if (columns === undefined || columns.ts.length === 0) continue
      if (ts < columns.ts[0]!) continue
      const i = lowerBound(columns.ts, ts)
      return columns.ts[i] === ts
        ? { x: columns.x[i]!, y: columns.y[i]! }
        : undefined
    }
    if (p.robot === undefined || ts > p.robot.sealedLastTs) return undefined
    const block = this.#prepared().blockAtOrBefore.get(p.robot.id, ts) as
      BlockRow | undefined
    if (block === undefined) return undefined
    const columns = decodeBlock(block.data, block.first_ts)
    const i = lowerBound(columns.ts, ts)
    return columns.ts[i] === ts
      ? { x: columns.x[i]!, y: columns.y[i]! }
      : undefined
  }

  // --- start ---

  /** Rebuilds the robots' state from the robots, the blocks and the log. */
  #load() {
    const sql = this.#prepared()
    const rows = new Map<number, RobotRow>()
    const byId = new Map<number, SqliteRobot>()
    for (const row of sql.allRobots.all() as RobotRow[]) {
      rows.set(row.id, row)
      if (row.id >= this.#nextRobotId) this.#nextRobotId = row.id + 1
    }
    // Two index look-ups a robot: its first and its last block. The last
    // block also knows how many events came before it.
    for (const row of rows.values()) {
      const last = sql.lastBlock.get(row.id) as BlockRow | undefined
      if (last === undefined) continue
      const firstTs = sql.firstBlockTs.pluck().get(row.id) as number
      const robot = this.#addRobot(
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
    this.#logFloor = (sql.firstLogSeq.pluck().get() as number | null) ?? 1
    for (const log of sql.allLog.iterate() as IterableIterator<LogRow>) {
      const row = rows.get(log.robot_id)
      if (row === undefined) continue
      let robot = byId.get(log.robot_id)
      if (robot !== undefined && log.ts <= robot.sealedLastTs) continue
      const event = { robot: row.name, timestamp: log.ts, x: log.x, y: log.y }
      const decision = decide(robot?.state, event)
      if (decision.outcome !== 'ok') continue
      if (robot === undefined) {
        robot = this.#addRobot(row.id, row.name, decision.state, row.created_ms)
        byId.set(row.id, robot)
      }
      const added = emptyTail()
      pushEvent(added, event, decision.state, log.seq)
      this.#extendTail(robot, added)
      robot.state = decision.state
      robot.updatedMs = log.committed_ms
    }
    const lastSeq = sql.lastLogSeq.pluck().get() as number | null
    this.#nextSeq = (lastSeq ?? 0) + 1
  }

  #prepared() {
    if (this.#sql === undefined) throw new Error('sqlite store is not open')
    return this.#sql
  }

  #appendTx() {
    if (this.#appendBatch === undefined) {
      throw new Error('sqlite store is not open')
    }
    return this.#appendBatch
  }
}

// --- helpers ---

interface TailEntry {
  readonly seq: number
  readonly robot: SqliteRobot
}

/** A binary min-heap of tails by their first log sequence number. */
class TailHeap {
  readonly #items: TailEntry[] = []

  peek(): TailEntry | undefined {
    return this.#items[0]
  }

  push(entry: TailEntry) {
    const items = this.#items
    let i = items.push(entry) - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (items[parent]!.seq <= entry.seq) break
      items[i] = items[parent]!
      i = parent
    }
    items[i] = entry
  }

  pop(): TailEntry | undefined {
    const items = this.#items
    const top = items[0]
    const last = items.pop()
    if (top === undefined || last === undefined || items.length === 0) {
      return top
    }
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      if (left >= items.length) break
      const right = left + 1
      const child =
        right < items.length && items[right]!.seq < items[left]!.seq
          ? right
          : left
      if (items[child]!.seq >= last.seq) break
      items[i] = items[child]!
      i = child
    }
    items[i] = last
    return top
  }
}

/**
 * Appends the events of `columns` within [from, to] to `out` until it holds
 * `max`; returns the last timestamp of `columns` (-1 when empty).
 */
function copyRange(
  columns: EventColumns,
  from: number,
  to: number,
  max: number,
  out: EventColumns,
): number {
  const n = columns.ts.length
  for (let i = lowerBound(columns.ts, from); i < n; i++) {
    const ts = columns.ts[i]!
    if (ts > to || out.ts.length === max) break
    out.ts.push(ts)
    out.x.push(columns.x[i]!)
    out.y.push(columns.y[i]!)
  }
  return n === 0 ? -1 : columns.ts[n - 1]!
}

/** An event found for an odometer bound, with its running total. */
interface Found {
  readonly ts: number
  readonly running: RunningTotal
}

function eventInTail(tail: Tail, index: number): Found | undefined {
  if (index < 0 || index >= tail.ts.length) return undefined
  return {
    ts: tail.ts[index]!,
    running: { total: tail.total[index]!, carry: tail.carry[index]! },
  }
}

/**
 * The first event at or after `bound` (`'first'`) or the last at or before
 * it (`'last'`) in a block that holds such an event, with its running total
 * recomputed from the block's first event, step by step as at ingest.
 */
function eventInBlock(
  block: BlockRow,
  bound: number,
  which: 'first' | 'last',
): Found {
  const columns = decodeBlock(block.data, block.first_ts)
  const index =
    which === 'first'
      ? lowerBound(columns.ts, bound)
      : lowerBound(columns.ts, bound + 1) - 1
  let total = block.odo
  let carry = block.odo_carry
  for (let i = 1; i <= index; i++) {
    const step = distance(
      columns.x[i - 1]!,
      columns.y[i - 1]!,
      columns.x[i]!,
      columns.y[i]!,
    )
    ;({ total, carry } = addStep(total, carry, step))
  }
  return { ts: columns.ts[index]!, running: { total, carry } }
}

function pushEvent(
  tail: Tail,
  event: TelemetryEvent,
  state: RobotState,
  seq: number,
) {
  tail.seq.push(seq)
  tail.ts.push(event.timestamp)
  tail.x.push(event.x)
  tail.y.push(event.y)
  tail.total.push(state.odometer)
  tail.carry.push(state.odometerCarry)
}

function writeBlock(
  sql: ReturnType<typeof prepare>,
  robot: SqliteRobot,
  from: number,
  to: number,
  now: number,
) {
  const tail = robot.tail
  const last = to - 1
  // committed_ms of the block that ends with the robot's latest event is the
  // robot's updated time after a restart: keep the time it was stored.
  const committedMs = last === tail.ts.length - 1 ? robot.updatedMs : now
  // The robot's events before this block: all of them but its tail's, and
  // the tail's before `from`.
  const eventsBefore = robot.state.eventCount - tail.ts.length + from
  sql.insertBlock.run(
    robot.id,
    tail.ts[from]!,
    tail.ts[last]!,
    to - from,
    eventsBefore,
    tail.total[from]!,
    tail.carry[from]!,
    tail.total[last]!,
    tail.carry[last]!,
    tail.x[last]!,
    tail.y[last]!,
    committedMs,
    encodeBlock(tail, from, to),
  )
}

function toRobot(robot: SqliteRobot): Robot {
  const { state } = robot
  return {
    name: robot.name,
    odometer: state.odometer + state.odometerCarry,
    lastX: state.lastX,
    lastY: state.lastY,
    firstTimestamp: state.firstTimestamp,
    lastTimestamp: state.lastTimestamp,
    eventCount: state.eventCount,
    createdMs: robot.createdMs,
    updatedMs: robot.updatedMs,
  }
}

function migrate(db: Database.Database) {
  const version = db.pragma('user_version', { simple: true }) as number
  for (let v = version; v < SQLITE_MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(SQLITE_MIGRATIONS[v]!)
      db.pragma(`user_version = ${v + 1}`)
    })()
  }
}

function prepare(db: Database.Database) {
  const block = `SELECT first_ts, last_ts, count, events_before, odo,
    odo_carry, end_odo, end_odo_carry, last_x, last_y, committed_ms, data
    FROM blocks`
  return {
    allRobots: db.prepare(`SELECT id, name, created_ms FROM robots`),
    robotNames: db.prepare(
      `SELECT name FROM robots
       WHERE @after IS NULL OR name > @after ORDER BY name LIMIT @limit`,
    ),
    insertRobot: db.prepare(
      `INSERT INTO robots (id, name, created_ms) VALUES (?, ?, ?)`,
    ),
    insertLog: db.prepare(
      `INSERT INTO log (seq, robot_id, ts, x, y, committed_ms)
       VALUES (?, ?, ?, ?, ?, ?)`,
    ),
    insertLogRows: db.prepare(
      `INSERT INTO log (seq, robot_id, ts, x, y, committed_ms) VALUES ` +
        Array(LOG_ROWS_PER_INSERT).fill('(?, ?, ?, ?, ?, ?)').join(', '),
    ),
    deleteLog: db.prepare(`DELETE FROM log WHERE seq < ?`),
    allLog: db.prepare(
      `SELECT seq, robot_id, ts, x, y, committed_ms FROM log ORDER BY seq`,
    ),
    firstLogSeq: db.prepare(`SELECT MIN(seq) FROM log`),
    lastLogSeq: db.prepare(`SELECT MAX(seq) FROM log`),
    insertBlock: db.prepare(
      `INSERT INTO blocks (robot_id, first_ts, last_ts, count, events_before,
         odo, odo_carry, end_odo, end_odo_carry, last_x, last_y, committed_ms,
         data)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    firstBlockTs: db.prepare(
      `SELECT first_ts FROM blocks WHERE robot_id = ? ORDER BY first_ts LIMIT 1`,
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
  }
}

interface RobotRow {
  id: number
  name: string
  created_ms: number
}

interface BlockRow {
  first_ts: number
  last_ts: number
  count: number
  events_before: number
  odo: number
  odo_carry: number
  end_odo: number
  end_odo_carry: number
  last_x: number
  last_y: number
  committed_ms: number
  data: Uint8Array
}

interface LogRow {
  seq: number
  robot_id: number
  ts: number
  x: number
  y: number
  committed_ms: number
}
