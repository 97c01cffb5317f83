/**
 * The PostgreSQL backend, on postgres.js. Any number of server processes may
 * share one database: nothing is decided from a process's memory.
 *
 * A batch is judged inside its transaction:
 * 1. every robot row of the batch is locked with `SELECT … FOR UPDATE`, in
 *    name order; robots without a row get a placeholder row
 *    (`ON CONFLICT DO NOTHING`), locked the same way. Another process
 *    judging the same robot waits here until this transaction ends, then
 *    reads the state it committed;
 * 2. the stored positions that the rules need (events older than a robot's
 *    latest) are read in one query;
 * 3. `judgeBatch()` (domain/batch.ts, the same as SQLite's) judges each
 *    event against the locked state;
 * 4. the accepted events are inserted with their running odometers, and the
 *    robots' rows updated, each in one statement from arrays (`unnest`),
 *    both sent at once; so is the increment of `robot_count` by the robots
 *    that got their first event;
 * 5. the accepted events, with their odometers, are sent to every process
 *    that watches the database with `NOTIFY`, delivered only on commit
 *    (postgres-live.ts).
 * The primary key (robot, ts) would refuse a second copy of an event even if
 * the rules were wrong. A deadlock or serialization failure between
 * processes is retried.
 */
import postgres from 'postgres'
import type { TelemetryEvent } from '../../domain/event.ts'
import {
  acceptedOdometers,
  judgeBatch,
  storedPositionsNeeded,
} from '../../domain/batch.ts'
import {
  odometerBetween,
  type Outcome,
  type RobotState,
  type RunningTotal,
  type StoredPosition,
} from '../../domain/rules.ts'
import {
  robotView,
  type CommitListener,
  type EventPage,
  type ListRobotsOptions,
  type ReadEventsOptions,
  type Robot,
  type Store,
  type TimeRange,
  type Unwatch,
} from '../store.ts'
import { pagesByTimestamp } from '../paging.ts'
import { CommitWatchers } from '../watchers.ts'
import {
  CommitChannel,
  liveChannel,
  notificationPayloads,
} from './postgres-live.ts'
import { POSTGRES_MIGRATIONS } from './postgres-migrations.ts'

/** Options of {@link createPostgresStore}. */
export interface PostgresStoreOptions {
  /**
   * `postgres://user@host:port/database`; an optional `?schema=NAME` puts
   * the tables in that schema (created if missing) instead of `public`.
   */
  readonly url: string
  /** Connections in the pool; default 10. */
  readonly maxConnections?: number
  /** Attempts of a batch that lost a deadlock to another process; default 5. */
  readonly attempts?: number
}

/**
 * Creates a store on a PostgreSQL database.
 *
 * @example
 * const store = createPostgresStore({ url: 'postgres://postgres@127.0.0.1:5432/test' })
 * await store.init()
 */
export function createPostgresStore(options: PostgresStoreOptions): Store {
  return new PostgresStore(options)
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER
/** Serializes migrations between processes that start at once. */
const MIGRATION_LOCK = 0x7e1e_0001
/** SQLSTATEs worth retrying: serialization_failure, deadlock_detected. */
const RETRY_CODES = new Set(['40001', '40P01'])

type Sql = postgres.Sql<Record<string, never>>

/** A robot row as read for judging. */
interface RobotRow {
  readonly name: string
  readonly first_ts: number
  readonly last_ts: number
  readonly last_x: number
  readonly last_y: number
  readonly odometer: number
  readonly odometer_carry: number
  readonly event_count: number
  readonly created_ms: number
  readonly updated_ms: number
}

/** The store's address without the `schema` parameter, and the schema. */
function parseUrl(url: string): { connect: string; schema: string } {
  const parsed = new URL(url)
  const schema = parsed.searchParams.get('schema') ?? 'public'
  parsed.searchParams.delete('schema')
  return { connect: parsed.toString(), schema }
}

function stateOf(row: RobotRow): RobotState | undefined {
  if (row.event_count === 0) return undefined // a placeholder
  return {
    firstTimestamp: row.first_ts,
    lastTimestamp: row.last_ts,
    lastX: row.last_x,
    lastY: row.last_y,
    odometer: row.odometer,
    odometerCarry: row.odometer_carry,
    eventCount: row.event_count,
  }
}

function toRobot(row: RobotRow): Robot {
  return robotView(row.name, stateOf(row)!, row.created_ms, row.updated_ms)
}

/** Sorts names by code point, as `COLLATE "C"` does (UTF-8 byte order). */
function byCodePoint(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b))
}

class PostgresStore implements Store {
  readonly url: string
  readonly #options: PostgresStoreOptions
  readonly #schema: string
  readonly #sql: Sql
  readonly #channel: string
  readonly #watchers = new CommitWatchers()
  readonly #commits: CommitChannel

  constructor(options: PostgresStoreOptions) {
    this.#options = options
    this.url = options.url
    const { connect, schema } = parseUrl(options.url)
    this.#schema = schema
    this.#channel = liveChannel(schema)
    this.#commits = new CommitChannel(connect, this.#channel, this.#watchers)
    this.#sql = postgres(connect, {
      max: options.maxConnections ?? 10,
      onnotice: () => {},
      connection: { search_path: schema, application_name: 'fleet-telemetry' },
      types: {
        // Timestamps and counts are below 2^53: plain numbers.
        int8: {
          to: 20,
          from: [20],
          serialize: (x: number) => String(x),
          parse: (x: string) => Number(x),
        },
      },
    }) as unknown as Sql
  }

  async init(): Promise<void> {
    await this.#sql.begin(async (sql) => {
      await sql`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`
      await sql`CREATE SCHEMA IF NOT EXISTS ${sql(this.#schema)}`
      await sql`
        CREATE TABLE IF NOT EXISTS schema_migrations (
          version    integer PRIMARY KEY,
          applied_at timestamptz NOT NULL DEFAULT now()
        )`
      const [row] = await sql<{ version: number | null }[]>`
        SELECT max(version) AS version FROM schema_migrations`
      const applied = row?.version ?? 0
      if (applied > POSTGRES_MIGRATIONS.length) {
        throw new Error(
          `the database schema is at version ${applied}, newer than this server's ${POSTGRES_MIGRATIONS.length}`,
        )
      }
      for (let v = applied; v < POSTGRES_MIGRATIONS.length; v++) {
        await sql.unsafe(POSTGRES_MIGRATIONS[v]!)
        await sql`INSERT INTO schema_migrations (version) VALUES (${v + 1})`
      }
    })
  }

  // --- writes ---

  async append(events: readonly TelemetryEvent[]): Promise<Outcome[]> {
    if (events.length === 0) return []
    const attempts = this.#options.attempts ?? 5
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#sql.begin((sql) => this.#applyBatch(sql, events))
      } catch (error) {
        const code = (error as { code?: string }).code
        if (attempt >= attempts || !RETRY_CODES.has(code ?? '')) throw error
      }
    }
  }

  async #applyBatch(
    sql: postgres.TransactionSql<Record<string, never>>,
    events: readonly TelemetryEvent[],
  ): Promise<Outcome[]> {
    const names = [...new Set(events.map((e) => e.robot))].sort(byCodePoint)
    const lock = (list: readonly string[]) => sql<RobotRow[]>`
      SELECT name, first_ts, last_ts, last_x, last_y, odometer, odometer_carry,
             event_count, created_ms, updated_ms
      FROM robots WHERE name = ANY(${list as string[]}::text[])
      ORDER BY name FOR UPDATE`
    let rows: RobotRow[] = [...(await lock(names))]
    if (rows.length < names.length) {
      // Robots seen for the first time get a placeholder row to lock.
      const known = new Set(rows.map((r) => r.name))
      const missing = names.filter((name) => !known.has(name))
      await sql`
        INSERT INTO robots (name, first_ts, last_ts, last_x, last_y, odometer,
                            odometer_carry, event_count, created_ms, updated_ms)
        SELECT name, 0, 0, 0, 0, 0, 0, 0, 0, 0
        FROM unnest(${missing}::text[]) AS name
        ON CONFLICT (name) DO NOTHING`
      rows = rows.concat(await lock(missing))
    }
    // The clock is read once the rows are locked: a batch that waited for
    // another process's must not date its changes before that one's.
    const now = Date.now()
    const states = new Map<string, RobotState | undefined>()
    for (const row of rows) states.set(row.name, stateOf(row))
    const stateAt = (name: string) => states.get(name)

    // The positions stored before this batch that the rules will ask for,
    // in one query.
    const wanted = storedPositionsNeeded(events, stateAt)
    const stored = new Map<string, StoredPosition>()
    const key = (robot: string, ts: number) => `${ts} ${robot}`
    if (wanted.robots.length > 0) {
      const found = await sql<
        { robot: string; ts: number; x: number; y: number }[]
      >`
        SELECT e.robot, e.ts, e.x, e.y
        FROM unnest(${wanted.robots}::text[], ${wanted.timestamps}::bigint[])
          AS w(robot, ts)
        JOIN events e ON e.robot = w.robot AND e.ts = w.ts`
      for (const row of found) stored.set(key(row.robot, row.ts), row)
    }

    const { outcomes, changes } = judgeBatch(events, {
      stateOf: stateAt,
      storedAt: (robot, ts) => stored.get(key(robot, ts)),
    })
    if (changes.size === 0) return outcomes

    const add = {
      robot: [] as string[],
      ts: [] as number[],
      x: [] as number[],
      y: [] as number[],
      odo: [] as number[],
      carry: [] as number[],
    }
    for (const change of changes.values()) {
      for (let i = 0; i < change.ts.length; i++) add.robot.push(change.robot)
      add.ts.push(...change.ts)
      add.x.push(...change.x)
      add.y.push(...change.y)
      add.odo.push(...change.total)
      add.carry.push(...change.carry)
    }
    // The two writes are independent: sent together, one round trip.
    const inserted = sql`
      INSERT INTO events (robot, ts, x, y, odo, carry)
      SELECT * FROM unnest(${add.robot}::text[], ${add.ts}::bigint[],
                           ${add.x}::float8[], ${add.y}::float8[],
                           ${add.odo}::float8[], ${add.carry}::float8[])`

    const changed = [...changes.values()]
    const col = <T>(f: (s: RobotState) => T) => changed.map((c) => f(c.after))
    const updated = sql`
      UPDATE robots r SET
        first_ts = u.first_ts, last_ts = u.last_ts,
        last_x = u.last_x, last_y = u.last_y,
        odometer = u.odometer, odometer_carry = u.odometer_carry,
        event_count = u.event_count,
        created_ms = CASE WHEN r.event_count = 0 THEN ${now} ELSE r.created_ms END,
        -- Never backwards, even with another machine's clock behind ours.
        updated_ms = GREATEST(r.updated_ms, r.created_ms, ${now})
      FROM unnest(${changed.map((c) => c.robot)}::text[],
                  ${col((s) => s.firstTimestamp)}::bigint[],
                  ${col((s) => s.lastTimestamp)}::bigint[],
                  ${col((s) => s.lastX)}::float8[], ${col((s) => s.lastY)}::float8[],
                  ${col((s) => s.odometer)}::float8[],
                  ${col((s) => s.odometerCarry)}::float8[],
                  ${col((s) => s.eventCount)}::bigint[])
        AS u(name, first_ts, last_ts, last_x, last_y, odometer, odometer_carry,
             event_count)
      WHERE r.name = u.name`
    // Robots that had no event before this batch: the count moves with
    // them, in the same transaction. The row is locked after every robot
    // row, in every transaction, so it adds no deadlock; it serializes only
    // batches that store new robots, until their commit.
    const added = changed.filter((c) => stateAt(c.robot) === undefined).length
    const counted =
      added === 0
        ? undefined
        : sql`UPDATE robot_count SET robots = robots + ${added}`
    // Delivered to the listeners only if this transaction commits, and
    // after the commits before it.
    const payloads = notificationPayloads(
      events,
      outcomes,
      acceptedOdometers(events, { outcomes, changes }),
    )
    const notified = sql`
      SELECT pg_notify(${this.#channel}, p) FROM unnest(${payloads}::text[]) AS p`
    await Promise.all([inserted, updated, counted, notified])
    return outcomes
  }

  async watch(listener: CommitListener): Promise<Unwatch> {
    const unwatch = this.#watchers.add(listener)
    try {
      await this.#commits.listen()
    } catch (error) {
      unwatch()
      throw error
    }
    return unwatch
  }

  // --- reads ---

  async listRobots(options: ListRobotsOptions = {}): Promise<Robot[]> {
    const sql = this.#sql
    const rows = await sql<RobotRow[]>`
      SELECT * FROM robots
      WHERE event_count > 0
        ${options.after === undefined ? sql`` : sql`AND name > ${options.after}`}
      ORDER BY name
      ${options.limit === undefined ? sql`` : sql`LIMIT ${options.limit}`}`
    return rows.map(toRobot)
  }

  async countRobots(): Promise<number> {
    // A counter kept by the batches (migration 3), not `count(*)`, which
    // scans every row: 130-260 ms on 1,000,000 robots.
    const [row] = await this.#sql<{ robots: number }[]>`
      SELECT robots FROM robot_count`
    return row?.robots ?? 0
  }

  async getRobot(name: string): Promise<Robot | undefined> {
    const [row] = await this.#sql<RobotRow[]>`
      SELECT * FROM robots WHERE name = ${name} AND event_count > 0`
    return row === undefined ? undefined : toRobot(row)
  }

  readEvents(
    name: string,
    options: ReadEventsOptions = {},
  ): AsyncIterable<EventPage> {
    return pagesByTimestamp(options, async (from, to, max) => {
      const rows = await this.#sql`
        SELECT ts, x, y FROM events
        WHERE robot = ${name} AND ts >= ${from} AND ts <= ${to}
        ORDER BY ts LIMIT ${max}`.values()
      const n = rows.length
      const page = {
        ts: new Array<number>(n),
        x: new Array<number>(n),
        y: new Array<number>(n),
      }
      for (let i = 0; i < n; i++) {
        const row = rows[i]!
        page.ts[i] = row[0] as number
        page.x[i] = row[1] as number
        page.y[i] = row[2] as number
      }
      return page
    })
  }

  async runningTotal(
    name: string,
    timestamp: number,
  ): Promise<RunningTotal | undefined> {
    const [row] = await this.#sql<{ odo: number; carry: number }[]>`
      SELECT odo, carry FROM events
      WHERE robot = ${name} AND ts >= ${timestamp}
      ORDER BY ts LIMIT 1`
    return row === undefined ? undefined : { total: row.odo, carry: row.carry }
  }

  async odometer(name: string, range: TimeRange = {}): Promise<number> {
    const start = range.start ?? 0
    const end = range.end ?? MAX_SAFE
    // Two index look-ups in one round trip: the first and the last event
    // of the range.
    const rows = await this.#sql<
      { last: boolean; odo: number; carry: number }[]
    >`
      (SELECT false AS last, odo, carry FROM events
       WHERE robot = ${name} AND ts >= ${start} AND ts <= ${end}
       ORDER BY ts ASC LIMIT 1)
      UNION ALL
      (SELECT true AS last, odo, carry FROM events
       WHERE robot = ${name} AND ts >= ${start} AND ts <= ${end}
       ORDER BY ts DESC LIMIT 1)`
    const first = rows.find((r) => !r.last)
    const last = rows.find((r) => r.last)
    if (first === undefined || last === undefined) return 0
    return odometerBetween(
      { total: first.odo, carry: first.carry },
      { total: last.odo, carry: last.carry },
    )
  }

  async close(): Promise<void> {
    await this.#commits.close()
    await this.#sql.end({ timeout: 5 })
  }
}
