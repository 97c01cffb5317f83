/**
 * The storage contract. Other modules import this file, never a backend;
 * only `open.ts`, which `server.ts` calls, chooses one.
 *
 * Which backend to choose:
 * - SQLite (`sqlite:PATH`, the default): one server process, no setup. The
 *   process is the only writer, so it keeps the robots' state in memory.
 * - PostgreSQL (`postgres://…`): several server processes on one database;
 *   every rule is decided inside the database transaction.
 *
 * This file also holds what every backend shares: the address syntax, the
 * durability setting, and how a robot's state is shown.
 */
import { formatPostgresUrl, parsePostgresUrl } from './postgres-url.ts'
import type { TelemetryEvent } from '../domain/event.ts'
import {
  lifetimeOdometer,
  type Outcome,
  type RobotState,
  type RunningTotal,
} from '../domain/rules.ts'

// --- the contract ---

/** A robot as the API shows it. */
export interface Robot {
  readonly name: string
  /**
   * Every figure below covers the robot's whole life, including events a
   * retention pass removed since (Store.removeBefore); only a deletion
   * (Store.deleteRobot) starts them again.
   *
   * Distance travelled over the robot's whole life.
   */
  readonly odometer: number
  readonly lastX: number
  readonly lastY: number
  readonly firstTimestamp: number
  readonly lastTimestamp: number
  readonly eventCount: number
  /** Wall-clock time of the robot's first stored event, in ms since the epoch. */
  readonly createdMs: number
  /** Wall-clock time of the robot's latest stored event, in ms since the epoch. */
  readonly updatedMs: number
}

/**
 * A page of one robot's stored events as parallel columns, oldest first
 * (reads are per robot, so the name is not repeated). Columns rather than
 * one object per event: a read of millions of events allocates a few arrays
 * per page instead of an object per event.
 */
export interface EventPage {
  readonly ts: readonly number[]
  readonly x: readonly number[]
  readonly y: readonly number[]
}

/** An inclusive time interval; an absent bound is open. */
export interface TimeRange {
  readonly start?: number
  readonly end?: number
}

/**
 * An event as a commit stored it, with its robot's lifetime odometer at
 * that event: what the live feed sends.
 */
export interface StoredEvent {
  readonly robot: string
  readonly x: number
  readonly y: number
  readonly timestamp: number
  /** The distance the robot travelled from its first event to this one. */
  readonly odometer: number
}

/** A robot's latest stored event, as its lifetime figures say it. */
export function latestEvent(robot: Robot): StoredEvent {
  return {
    robot: robot.name,
    x: robot.lastX,
    y: robot.lastY,
    timestamp: robot.lastTimestamp,
    odometer: robot.odometer,
  }
}

/** Told of what commits stored; see {@link Store.watch}. */
export interface CommitListener {
  /**
   * The events one commit stored, in the order they were stored; called
   * only after the commit, and for successive commits in commit order.
   */
  committed(events: readonly StoredEvent[]): void
  /**
   * Commits may have been stored that this listener was not told of (the
   * connection the backend listens on was lost and is back): what it was
   * told is no longer known to be complete.
   */
  missed(): void
}

/** Stops a {@link Store.watch}; idempotent. */
export type Unwatch = () => void

/** What one {@link Store.removeBefore} pass removed. */
export interface RetentionPass {
  /** Events removed. */
  readonly events: number
  /** Blocks (SQLite) or partitions (PostgreSQL) removed. */
  readonly units: number
}

/** Options of {@link Store.readEvents}. */
export interface ReadEventsOptions extends TimeRange {
  /** At most this many events in all. */
  readonly limit?: number
  /** Events per yielded page. */
  readonly pageSize?: number
}

/** Options of {@link Store.listRobots}. */
export interface ListRobotsOptions {
  /** Only robots whose name sorts after this one. */
  readonly after?: string
  /** At most this many robots. */
  readonly limit?: number
}

/**
 * A place where events are kept. Every backend has the same life cycle:
 * `init()`, then data methods, then `close()`.
 */
/**
 * What a store says of its database (PostgreSQL; a SQLite store, always
 * writable while open, says nothing).
 */
export interface StoreHealth {
  /** The database answered, and accepts writes: a commit can succeed now. */
  readonly writable: boolean
  /**
   * Times the server that takes this store's writes was found to have
   * changed since it opened: a failover to another node.
   */
  readonly failovers: number
  /**
   * Commits whose outcome this store could not know: the connection was
   * lost after `COMMIT` was sent. Their events were answered
   * `ERR unavailable`; a resend of one that was stored is `DUP`.
   */
  readonly commitsUnknown: number
}

export interface Store {
  /** The store's address as configured, e.g. `sqlite:./data/telemetry.db`. */
  readonly url: string
  /** Creates or migrates the schema and loads what the backend keeps in memory. */
  init(): Promise<void>
  /** The database's health, when the backend can tell (PostgreSQL). */
  health?(): Promise<StoreHealth>
  /**
   * Judges and stores a batch of events, in order, in one transaction, and
   * resolves with one outcome per event once it is committed. Rejects when
   * the transaction failed: then nothing of the batch is stored.
   */
  append(events: readonly TelemetryEvent[]): Promise<Outcome[]>
  /** Robots sorted by name (code point order). */
  listRobots(options?: ListRobotsOptions): Promise<Robot[]>
  /** How many robots have a stored event; cheap (no scan), for `X-Total-Count`. */
  countRobots(): Promise<number>
  /** One robot, or `undefined` when it has no stored event. */
  getRobot(name: string): Promise<Robot | undefined>
  /** A robot's events in the range by ascending timestamp, in non-empty pages. */
  readEvents(
    name: string,
    options?: ReadEventsOptions,
  ): AsyncIterable<EventPage>
  /**
   * Distance travelled between consecutive events that both lie in the
   * range; 0 with fewer than two. Costs two index look-ups.
   */
  odometer(name: string, range?: TimeRange): Promise<number>
  /**
   * The running odometer stored with the robot's first event at or after
   * `timestamp` (rules.ts, RunningTotal), `undefined` when there is none:
   * with it, the lifetime odometer at each later event follows exactly, by
   * adding its steps as ingest did (the live feed's replay).
   */
  runningTotal(
    name: string,
    timestamp: number,
  ): Promise<RunningTotal | undefined>
  /**
   * Tells `listener` of every commit from now on, through this store or
   * (PostgreSQL) through any process sharing the database. Resolves once
   * the listener is in place: a commit that ends after that is told.
   */
  watch(listener: CommitListener): Promise<Unwatch>
  /**
   * Removes robot `name` and every event of it, in one transaction: a
   * batch that names it and commits afterwards starts a new robot. Resolves
   * `false` when the robot had no stored event (nothing was removed).
   */
  deleteRobot(name: string): Promise<boolean>
  /**
   * One retention pass: removes stored events with a timestamp before
   * `cutoff`, in whole blocks (SQLite) or partitions (PostgreSQL), so some
   * older events may stay until a later pass; never an event at or after
   * `cutoff`. Robots keep their lifetime figures ({@link Robot}) and the
   * state the rules need, so a robot whose every event was removed is
   * still listed, and still refuses events older than its latest. Works in
   * short transactions, so ingest goes on while it runs.
   */
  removeBefore(cutoff: number): Promise<RetentionPass>
  /**
   * How many robots the backend holds in memory now (SQLite loads a robot
   * when a batch or a read first names it); absent where it holds none
   * (PostgreSQL). Served as `telemetry_store_robots_in_memory`.
   */
  robotsInMemory?(): Promise<number>
  /** Finishes pending work and releases the store; idempotent. */
  close(): Promise<void>
}

/** A robot's stored state and times, as the API shows them. */
export function robotView(
  name: string,
  state: RobotState,
  createdMs: number,
  updatedMs: number,
): Robot {
  return {
    name,
    odometer: lifetimeOdometer(state),
    lastX: state.lastX,
    lastY: state.lastY,
    firstTimestamp: state.firstTimestamp,
    lastTimestamp: state.lastTimestamp,
    eventCount: state.eventCount,
    createdMs,
    updatedMs,
  }
}

// --- what every backend shares ---

/**
 * When a commit counts as durable: `normal` once it is in the operating
 * system (survives a crash or kill of the server), `full` once it is on the
 * disk (also survives a power loss). PostgreSQL follows its own
 * `synchronous_commit` instead.
 */
export const SYNC_MODES = ['normal', 'full'] as const
export type SyncMode = (typeof SYNC_MODES)[number]

/** A `--store` address, by backend. */
export type StoreAddress =
  | { readonly backend: 'sqlite'; readonly url: string; readonly path: string }
  | { readonly backend: 'postgres'; readonly url: string }

/** An address that names no store this server can open. */
export class StoreAddressError extends Error {
  override readonly name = 'StoreAddressError'
}

/**
 * Reads a store address: `sqlite:PATH` (`sqlite::memory:` for a private
 * in-memory database) or `postgres://USER@HOST:PORT/DB[?schema=NAME]`
 * (`postgresql://` too; several hosts, `HOST1:PORT1,HOST2:PORT2`, for a
 * replicated formation, see postgres-url.ts). Throws
 * {@link StoreAddressError} for anything else.
 *
 * @example
 * parseStoreAddress('sqlite:./data/telemetry.db')
 * // { backend: 'sqlite', url: 'sqlite:./data/telemetry.db', path: './data/telemetry.db' }
 */
export function parseStoreAddress(url: string): StoreAddress {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length)
    if (path === '') {
      throw new StoreAddressError(
        'store sqlite: needs a path, e.g. sqlite:./data/telemetry.db',
      )
    }
    return { backend: 'sqlite', url, path }
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    if (parsePostgresUrl(url) === undefined) {
      throw new StoreAddressError(
        `store ${JSON.stringify(url)} is not a valid URL`,
      )
    }
    return { backend: 'postgres', url }
  }
  throw new StoreAddressError(
    `store must be sqlite:PATH or postgres://USER@HOST:PORT/DATABASE, not ${JSON.stringify(url)}`,
  )
}

/** A store address fit for logs: a password in it is replaced by `***`. */
export function redactStoreUrl(url: string): string {
  const parsed = url.startsWith('sqlite:') ? undefined : parsePostgresUrl(url)
  if (parsed === undefined || parsed.url.password === '') return url
  parsed.url.password = '***'
  return formatPostgresUrl(parsed)
}
