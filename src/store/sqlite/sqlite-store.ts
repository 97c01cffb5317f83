/**
 * The SQLite backend, on better-sqlite3 (synchronous, in-process).
 *
 * Why this layout: a fleet's events arrive interleaved, one robot after the
 * other. Stored clustered by robot, each commit would dirty about one page
 * per robot it touches, so the write-ahead log would carry a page per event.
 * Instead:
 *
 * 1. A commit appends its events to `log`, in commit order: a few pages per
 *    thousand events. The acknowledgement follows this commit
 *    (sqlite-write.ts).
 * 2. Each robot's events not yet in a block (its tail) are also kept in
 *    memory, with their running odometers, in a compact mirror of the log
 *    (sqlite-fleet.ts).
 * 3. Every 2,048 events, a maintenance transaction packs up to 32 tails
 *    (more while the log is past its window) into `blocks` (256 events a
 *    row, ~19 bytes an event) and deletes the log rows that no tail needs
 *    any more (sqlite-maintenance.ts, ../block-codec.ts).
 *
 * Reads look in the blocks, then in the tail (sqlite-reads.ts). A robot is
 * loaded into memory when a batch or a read first names it; a start loads
 * only the robots of the log, which it replays (sqlite-load.ts). A robot
 * is deleted, and old blocks removed, in sqlite-removal.ts.
 * Every statement is in sqlite-sql.ts; the schema in sqlite-migrations.ts.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { setImmediate } from 'node:timers/promises'
import { Worker } from 'node:worker_threads'
import Database from 'better-sqlite3'
import type { TelemetryEvent } from '../../domain/event.ts'
import { acceptedOdometers } from '../../domain/batch.ts'
import {
  odometerBetween,
  type Outcome,
  type RunningTotal,
} from '../../domain/rules.ts'
import { pagesByTimestamp } from '../paging.ts'
import {
  robotView,
  type CommitListener,
  type EventPage,
  type ListRobotsOptions,
  type ReadEventsOptions,
  type RetentionPass,
  type Robot,
  type Store,
  type SyncMode,
  type TimeRange,
  type Unwatch,
} from '../store.ts'
import { CommitWatchers } from '../watchers.ts'
import { emptyColumns } from '../block-codec.ts'
import type { CheckpointerData } from './sqlite-checkpointer.ts'
import { Fleet } from './sqlite-fleet.ts'
import { loadFleet, loadRobot } from './sqlite-load.ts'
import {
  maintenanceBudget,
  PACK_ALL,
  packTails,
  type MaintenanceOptions,
} from './sqlite-maintenance.ts'
import { readPage, runningTotalAt } from './sqlite-reads.ts'
import {
  deleteRobot,
  removeChunk,
  retentionPass,
  type RetentionChunk,
  type RetentionCursor,
} from './sqlite-removal.ts'
import {
  migrate,
  prepareStatements,
  recodeBlocks,
  schemaVersion,
  useIncrementalVacuum,
  type Statements,
} from './sqlite-sql.ts'
import { applyLoggedBatch, logBatch, type LoggedBatch } from './sqlite-write.ts'

/** Options of {@link createSqliteStore}. */
export interface SqliteStoreOptions {
  /** Database file, created with its folder if missing; `:memory:` for a private in-memory database. */
  readonly path: string
  /** The address shown in logs; defaults to `sqlite:` + path. */
  readonly url?: string
  /**
   * SQLite page cache, in KiB; default 8192. The hot pages are the log's
   * end and the newest blocks; since the log holds a row a commit (issue
   * 17) they are fewer, and 16 MiB only raised the peak memory.
   */
  readonly cacheKiB?: number
  /**
   * How long a write waits for a lock held by another connection (a backup,
   * an sqlite3 shell); default 250. On the server's thread it blocks the
   * event loop, so it is short there: past it the batch is answered
   * `ERR unavailable` and the next one retries.
   */
  readonly busyTimeoutMs?: number
  /**
   * `normal` (default): a commit is in the operating system before it
   * returns, so it survives a crash of the process. `full`: the write-ahead
   * log is also synced to the disk at every commit, so it survives a power
   * loss (https://www.sqlite.org/pragma.html#pragma_synchronous).
   */
  readonly sync?: SyncMode
  /** Events per block; default 256. */
  readonly blockEvents?: number
  /** Events committed between two maintenance transactions; default 2048. */
  readonly maintenanceEvents?: number
  /**
   * Most blocks one maintenance transaction writes (it blocks ingest) while
   * the log is within its window; default 32. Past the window it also
   * packs twice the events logged since the last one (sqlite-maintenance.ts).
   */
  readonly blocksPerMaintenance?: number
  /** How often the checkpointer copies the write-ahead log; default 200 ms. */
  readonly checkpointIntervalMs?: number
  /** Past this size the write-ahead log is made to start over; default 64 MiB. */
  readonly walRestartBytes?: number
  /** A tail is packed once this many events were logged after its first; default 262144. */
  readonly logWindow?: number
  /**
   * Most blocks one transaction of a retention pass looks at (it blocks
   * ingest); default 256 (sqlite-removal.ts).
   */
  readonly blocksPerRetention?: number
}

/**
 * Creates a store on an SQLite file.
 *
 * @example
 * const store = createSqliteStore({ path: './data/telemetry.db' })
 * await store.init()
 */
export function createSqliteStore(options: SqliteStoreOptions): SqliteStore {
  return new SqliteStoreImpl(options)
}

/** A committed batch: its outcomes, and the odometers of its accepted events. */
export interface AppendResult {
  readonly outcomes: Outcome[]
  /**
   * The lifetime odometer at each accepted event, in batch order; empty
   * when the caller did not ask for them (nobody watches).
   */
  readonly odometers: Float64Array
}

const NO_ODOMETERS = new Float64Array(0)

/** The SQLite store, with what its thread (store-thread.ts) needs beyond {@link Store}. */
export interface SqliteStore extends Store {
  /**
   * {@link Store.append}, also giving the odometers the live feed sends
   * (`withOdometers`), for a caller that tells its own watchers.
   */
  appendBatch(
    events: readonly TelemetryEvent[],
    withOdometers: boolean,
  ): AppendResult
  /**
   * One chunk of a {@link Store.removeBefore} pass, in one transaction,
   * from `after` on; the store thread's proxy runs the pass by calling it
   * until its `next` is `undefined`.
   */
  removeChunk(cutoff: number, after: RetentionCursor): RetentionChunk
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER

/** What exists only while the store is open. */
interface Open {
  readonly db: Database.Database
  readonly sql: Statements
  /** Judges and logs a batch in one write transaction. */
  readonly logInTransaction: (events: readonly TelemetryEvent[]) => LoggedBatch
  readonly checkpointer: Checkpointer | undefined
}

/** The checkpointer's thread, and when it has ended. */
interface Checkpointer {
  readonly worker: Worker
  readonly exited: Promise<unknown>
}

class SqliteStoreImpl implements SqliteStore {
  readonly url: string
  readonly #options: SqliteStoreOptions
  readonly #maintenance: MaintenanceOptions
  readonly #maintenanceEvents: number
  readonly #blocksPerRetention: number
  readonly #fleet: Fleet
  #open: Open | undefined
  /** Events logged since the last maintenance. */
  #sinceMaintenance = 0
  readonly #watchers = new CommitWatchers()

  constructor(options: SqliteStoreOptions) {
    this.#options = Object.freeze({ ...options })
    this.url = options.url ?? `sqlite:${options.path}`
    this.#fleet = new Fleet(options.blockEvents ?? 256)
    this.#maintenanceEvents = options.maintenanceEvents ?? 2048
    this.#blocksPerRetention = options.blocksPerRetention ?? 256
    this.#maintenance = {
      blocksPerMaintenance: options.blocksPerMaintenance ?? 32,
      logWindow: options.logWindow ?? 262144,
    }
  }

  async init(): Promise<void> {
    const { path } = this.#options
    if (path !== ':memory:') makeFolders(dirname(path))
    const db = new Database(path, {
      timeout: this.#options.busyTimeoutMs ?? 250,
    })
    let checkpointer: Checkpointer | undefined
    try {
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
        checkpointer = this.#startCheckpointer(path)
      }
      db.pragma(`cache_size = -${this.#options.cacheKiB ?? 8192}`)
      if (schemaVersion(db) === 1) recodeBlocks(db)
      migrate(db)
      useIncrementalVacuum(db)
      const sql = prepareStatements(db)
      const fleet = this.#fleet
      const logTransaction = db.transaction(
        (events: readonly TelemetryEvent[]) => logBatch(sql, fleet, events),
      )
      this.#open = {
        db,
        sql,
        // BEGIN IMMEDIATE: the batch reads robots before it writes, and a
        // transaction that has read and then finds the write lock held (by
        // a RESTART checkpoint) fails at once with SQLITE_BUSY instead of
        // waiting out the busy timeout (https://www.sqlite.org/wal.html#sometimes_queries_return_sqlite_busy_in_wal_mode).
        logInTransaction: (events) => logTransaction.immediate(events),
        checkpointer,
      }
      loadFleet(sql, fleet)
    } catch (error) {
      // A store that cannot open holds neither the file nor a thread.
      this.#open = undefined
      await release(db, checkpointer)
      throw error
    }
  }

  #startCheckpointer(path: string): Checkpointer {
    const worker = new Worker(
      new URL('./sqlite-checkpointer.js', import.meta.url),
      {
        workerData: {
          path,
          intervalMs: this.#options.checkpointIntervalMs ?? 200,
          restartBytes: this.#options.walRestartBytes ?? 64 * 1024 * 1024,
        } satisfies CheckpointerData,
      },
    )
    worker.unref()
    // Checkpoints are an optimisation: a checkpointer that fails leaves
    // the WAL to grow until the next start, never the process down.
    worker.on('error', () => {})
    return {
      worker,
      exited: new Promise((resolve) => worker.once('exit', resolve)),
    }
  }

  // --- writes ---

  async append(events: readonly TelemetryEvent[]): Promise<Outcome[]> {
    const { outcomes, odometers } = this.appendBatch(
      events,
      this.#watchers.active,
    )
    this.#watchers.batch(events, (i) => outcomes[i]!, odometers)
    return outcomes
  }

  appendBatch(
    events: readonly TelemetryEvent[],
    withOdometers: boolean,
  ): AppendResult {
    const open = this.#opened()
    try {
      return this.#append(open, events, withOdometers)
    } finally {
      this.#fleet.releaseLoaded()
    }
  }

  async watch(listener: CommitListener): Promise<Unwatch> {
    return this.#watchers.add(listener)
  }

  async deleteRobot(name: string): Promise<boolean> {
    const open = this.#opened()
    return deleteRobot(open.db, open.sql, this.#fleet, name)
  }

  removeBefore(cutoff: number): Promise<RetentionPass> {
    return retentionPass(async (after) => {
      const chunk = this.removeChunk(cutoff, after)
      // The store runs on its caller's thread: the event loop turns (its
      // sockets, timers, and calls to this store) before the next chunk.
      if (chunk.next !== undefined) await setImmediate()
      return chunk
    })
  }

  removeChunk(cutoff: number, after: RetentionCursor): RetentionChunk {
    const open = this.#opened()
    return removeChunk(
      open.db,
      open.sql,
      cutoff,
      after,
      this.#blocksPerRetention,
    )
  }

  #append(
    open: Open,
    events: readonly TelemetryEvent[],
    withOdometers: boolean,
  ): AppendResult {
    const logged = open.logInTransaction(events)
    // Committed: only now does the fleet in memory move forward.
    this.#sinceMaintenance += applyLoggedBatch(this.#fleet, logged)
    if (this.#sinceMaintenance >= this.#maintenanceEvents) {
      const fleet = this.#fleet
      const budget = maintenanceBudget(
        fleet,
        this.#maintenance,
        this.#sinceMaintenance,
      )
      this.#sinceMaintenance = 0
      try {
        packTails(open.db, open.sql, fleet, this.#maintenance, budget)
      } catch {
        // The batch itself is committed and must be acknowledged. A failed
        // maintenance changed nothing and runs again after the next events.
      }
    }
    return {
      outcomes: logged.judgement.outcomes,
      odometers: withOdometers
        ? acceptedOdometers(events, logged.judgement)
        : NO_ODOMETERS,
    }
  }

  // --- reads ---

  async listRobots(options: ListRobotsOptions = {}): Promise<Robot[]> {
    // SQLite sorts by code point (UTF-8 bytes); JavaScript would sort by
    // UTF-16 code unit.
    const names = this.#opened()
      .sql.robotNames.pluck()
      .all({ after: options.after ?? null, limit: options.limit ?? -1 })
    try {
      return (names as string[]).map((name) => this.#robot(name)!)
    } finally {
      this.#fleet.releaseLoaded()
    }
  }

  async getRobot(name: string): Promise<Robot | undefined> {
    try {
      return this.#robot(name)
    } finally {
      this.#fleet.releaseLoaded()
    }
  }

  async countRobots(): Promise<number> {
    this.#opened()
    // The ids given less the robots deleted (sqlite-write.ts), in O(1). A
    // `SELECT count(*)` reads the whole name index instead: on 1,000,000
    // robots about 60 ms (docs/storage.md).
    return this.#fleet.robotCount
  }

  async robotsInMemory(): Promise<number> {
    return this.#fleet.size
  }

  /** A robot as the API shows it, loaded if it is not in memory. */
  #robot(name: string): Robot | undefined {
    const fleet = this.#fleet
    const slot = this.#slot(name)
    if (slot === undefined) return undefined
    return robotView(
      name,
      fleet.stateOf(slot),
      fleet.createdMs(slot),
      fleet.updatedMs(slot),
    )
  }

  /** The slot of a robot, loaded if it is not in memory. */
  #slot(name: string): number | undefined {
    return loadRobot(this.#opened().sql, this.#fleet, name)
  }

  readEvents(
    name: string,
    options: ReadEventsOptions = {},
  ): AsyncIterable<EventPage> {
    return pagesByTimestamp(options, (from, to, max) => {
      // Looked up again for every page: maintenance may pack the tail
      // between two pages.
      const slot = this.#slot(name)
      try {
        return slot === undefined
          ? emptyColumns()
          : readPage(this.#opened().sql, this.#fleet, slot, from, to, max)
      } finally {
        this.#fleet.releaseLoaded()
      }
    })
  }

  async runningTotal(
    name: string,
    timestamp: number,
  ): Promise<RunningTotal | undefined> {
    const slot = this.#slot(name)
    if (slot === undefined) return undefined
    const sql = this.#opened().sql
    const found = runningTotalAt(
      sql,
      this.#fleet,
      slot,
      timestamp,
      MAX_SAFE,
      'first',
    )
    this.#fleet.releaseLoaded()
    return found
  }

  async odometer(name: string, range: TimeRange = {}): Promise<number> {
    const slot = this.#slot(name)
    if (slot === undefined) return 0
    const sql = this.#opened().sql
    const fleet = this.#fleet
    const start = range.start ?? 0
    const end = range.end ?? MAX_SAFE
    const first = runningTotalAt(sql, fleet, slot, start, end, 'first')
    const last = runningTotalAt(sql, fleet, slot, start, end, 'last')
    fleet.releaseLoaded()
    if (first === undefined || last === undefined) return 0
    return odometerBetween(first, last)
  }

  // --- close ---

  async close(): Promise<void> {
    const open = this.#open
    if (open === undefined) return
    this.#open = undefined
    try {
      // Pack every tail, so that the log is empty and the next start reads
      // no log. A failure here loses nothing: the log still holds the tails.
      packTails(open.db, open.sql, this.#fleet, this.#maintenance, PACK_ALL)
      // The log's pages, now free, go back to the file system: the file
      // holds what is stored, however the log grew under the load.
      open.db.pragma('incremental_vacuum')
    } catch {
      // The next start replays the log.
    }
    await release(open.db, open.checkpointer)
  }

  #opened(): Open {
    if (this.#open === undefined) throw new Error('sqlite store is not open')
    return this.#open
  }
}

/**
 * Stops the checkpointer (if it has not ended by itself), folds the
 * write-ahead log into the database and closes it.
 */
async function release(
  db: Database.Database,
  checkpointer: Checkpointer | undefined,
): Promise<void> {
  if (checkpointer !== undefined) {
    // Unreferenced while it runs, so that it never keeps a process alive;
    // referenced while we wait for it to stop.
    checkpointer.worker.ref()
    checkpointer.worker.postMessage('close')
    await checkpointer.exited
  }
  try {
    db.pragma('wal_checkpoint(TRUNCATE)')
  } finally {
    db.close()
  }
}

/**
 * Creates the folders of `dir` that are missing, one at a time. (Node's
 * recursive `mkdirSync` never returns where a folder can never be made,
 * such as under /proc; here the first failure is thrown.)
 */
function makeFolders(dir: string) {
  const missing: string[] = []
  for (let d = resolve(dir); !existsSync(d); d = dirname(d)) {
    missing.push(d)
    if (dirname(d) === d) break
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d)
    } catch (error) {
      // Made meanwhile by another process: as good as made here.
      const made = statSync(d, { throwIfNoEntry: false })?.isDirectory()
      if ((error as { code?: string }).code !== 'EEXIST' || !made) throw error
    }
  }
}
