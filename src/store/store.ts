/**
 * The storage contract. Other modules import this file, never a backend;
 * only `server.ts` chooses one.
 *
 * Which backend to choose:
 * - SQLite (`sqlite:PATH`, the default): one server process, no setup. The
 *   process is the only writer, so it keeps the robots' state in memory.
 * - PostgreSQL (`postgres://…`, a later issue): several server processes on
 *   one database; every rule is decided inside the database transaction.
 */
import type { TelemetryEvent } from '../domain/event.ts'
import type { Outcome } from '../domain/rules.ts'

/** A robot as the API shows it. */
export interface Robot {
  readonly name: string
  /** Distance travelled over the robot's whole life. */
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
export interface Store {
  /** The store's address as configured, e.g. `sqlite:./data/telemetry.db`. */
  readonly url: string
  /** Creates or migrates the schema and loads what the backend keeps in memory. */
  init(): Promise<void>
  /**
   * Judges and stores a batch of events, in order, in one transaction, and
   * resolves with one outcome per event once it is committed. Rejects when
   * the transaction failed: then nothing of the batch is stored.
   */
  append(events: readonly TelemetryEvent[]): Promise<Outcome[]>
  /** Robots sorted by name (code point order). */
  listRobots(options?: ListRobotsOptions): Promise<Robot[]>
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
  /** Finishes pending work and releases the store; idempotent. */
  close(): Promise<void>
}
