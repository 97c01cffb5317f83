/**
 * The PostgreSQL backend, on postgres.js. Any number of server processes may
 * share one database: nothing is decided from a process's memory.
 *
 * Where events are (migration 4, postgres-blocks.ts): a robot's older
 * events packed 64 a row in `blocks` (partitioned by time, so retention
 * drops whole partitions), its newest in `recent`, one row each.
 *
 * A batch is judged inside its transaction:
 * 1. every robot row of the batch is locked with `SELECT … FOR UPDATE`, in
 *    name order; robots without a row get a placeholder row
 *    (`ON CONFLICT DO NOTHING`), locked the same way. Another process
 *    judging the same robot waits here until this transaction ends, then
 *    reads the state it committed;
 * 2. the stored positions that the rules need (events older than a robot's
 *    latest) are read, from `recent` or else from a block;
 * 3. `judgeBatch()` (domain/batch.ts, the same as SQLite's) judges each
 *    event against the locked state;
 * 4. a robot whose recent events reach a block's worth has them read and
 *    packed with the batch's into blocks; the batch's other accepted
 *    events are inserted into `recent` with their running odometers, and
 *    the robots' rows updated, each in one statement from arrays
 *    (`unnest`), all sent at once; so is the increment of `robot_count` by
 *    the robots that got their first event;
 * 5. the accepted events, with their odometers, are sent to every process
 *    that watches the database with `NOTIFY`, delivered only on commit
 *    (postgres-live.ts).
 * The primary key (robot, ts) of `recent` would refuse a second copy of an
 * event even if the rules were wrong. A deadlock or serialization failure
 * between processes is retried; so is a batch whose block needed a
 * partition not made yet, once it is made.
 *
 * Every read is one statement, so it sees one snapshot: an event moving
 * from `recent` into a block in between is seen once.
 */
import postgres from 'postgres'
import type { TelemetryEvent } from '../../domain/event.ts'
import {
  acceptedOdometers,
  judgeBatch,
  storedPositionsNeeded,
  type RobotChange,
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
  type RetentionPass,
  type Robot,
  type Store,
  type TimeRange,
  type Unwatch,
} from '../store.ts'
import { pagesByTimestamp } from '../paging.ts'
import {
  copyRange,
  decodeBlock,
  emptyColumns,
  eventInBlock,
  type FoundEvent,
  type StoredBlock,
} from '../block-codec.ts'
import { lowerBound } from '../../domain/timestamps.ts'
import { CommitWatchers } from '../watchers.ts'
import {
  CommitChannel,
  liveChannel,
  notificationPayloads,
} from './postgres-live.ts'
import { POSTGRES_MIGRATIONS } from './postgres-migrations.ts'
import {
  checkPartitions,
  createPartitions,
  dropPartitionsBefore,
  blockPhase,
  MissingPartitions,
  missingPartitionTs,
  packedCount,
  partitionOf,
  packBlocks,
  readLayout,
  type BlockInsert,
  type Layout,
  type RunningColumns,
} from './postgres-blocks.ts'

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
  /**
   * Events this process packs into blocks between two `VACUUM`s of
   * `recent`, which make the space of the rows packed away usable again;
   * default 16384.
   */
  readonly vacuumEvery?: number
  /**
   * The layout of a database this store creates (tests use small ones);
   * a database made before keeps its own (table `layout`).
   */
  readonly newLayout?: Partial<Layout>
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
/**
 * Times a batch may find a partition gone that it saw (another process's
 * retention pass dropped it meanwhile) before it gives up.
 */
const MAX_PARTITIONS_GONE = 8

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
  /** The robot's events packed into blocks so far (migration 4). */
  readonly packed: number
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
  #layout: Layout | undefined
  /** Partitions of `blocks` known to exist (a cache; see checkPartitions). */
  #partitions = new Set<number>()
  /** Events packed by this process since its last VACUUM of `recent`. */
  #packedSinceVacuum = 0
  #vacuum: Promise<void> | undefined

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
      const { newLayout } = this.#options
      if (applied === 0 && newLayout !== undefined) {
        await sql`UPDATE layout SET
          partition_ms = coalesce(${newLayout.partitionMs ?? null}::bigint, partition_ms),
          block_events = coalesce(${newLayout.blockEvents ?? null}::int, block_events)`
      }
    })
    this.#layout = await readLayout(this.#sql)
    await this.#packBacklog()
  }

  get #blocks(): Layout {
    if (this.#layout === undefined) throw new Error('the store is not open')
    return this.#layout
  }

  // --- writes ---

  async append(events: readonly TelemetryEvent[]): Promise<Outcome[]> {
    if (events.length === 0) return []
    return this.#transaction((sql) => this.#applyBatch(sql, events))
  }

  /**
   * Runs `work` in a transaction, again after a deadlock or serialization
   * failure (up to `attempts`), and again after making the partition that
   * a block it wrote found missing.
   */
  async #transaction<T>(
    work: (sql: postgres.TransactionSql<Record<string, never>>) => Promise<T>,
  ): Promise<T> {
    const attempts = this.#options.attempts ?? 5
    let failures = 0
    let partitionsGone = 0
    for (;;) {
      try {
        return (await this.#sql.begin(work)) as T
      } catch (error) {
        if (error instanceof MissingPartitions) {
          await createPartitions(this.#sql, error.partitions, this.#blocks)
          continue
        }
        const gone = missingPartitionTs(error)
        if (gone !== undefined && ++partitionsGone <= MAX_PARTITIONS_GONE) {
          const n = partitionOf(gone, this.#blocks)
          this.#partitions.delete(n)
          await createPartitions(this.#sql, [n], this.#blocks)
          continue
        }
        const code = (error as { code?: string }).code
        if (++failures >= attempts || !RETRY_CODES.has(code ?? '')) throw error
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
             event_count, created_ms, updated_ms, packed
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
    const packed = new Map<string, number>()
    for (const row of rows) {
      states.set(row.name, stateOf(row))
      packed.set(row.name, row.packed)
    }
    const stateAt = (name: string) => states.get(name)

    const stored = await this.#storedPositions(
      sql,
      storedPositionsNeeded(events, stateAt),
    )
    const { outcomes, changes } = judgeBatch(events, {
      stateOf: stateAt,
      storedAt: (robot, ts) => stored.get(positionKey(robot, ts)),
    })
    if (changes.size === 0) return outcomes

    // Robots whose events reach the end of a block (postgres-blocks.ts):
    // their recent events are read, and packed with the batch's.
    const { blockEvents } = this.#blocks
    const packTo = (c: RobotChange) =>
      packedCount(
        c.after.eventCount,
        blockPhase(c.robot, blockEvents),
        blockEvents,
      )
    const packing = [...changes.values()].filter(
      (c) => packTo(c) > packed.get(c.robot)!,
    )
    const recentRows = await this.#recentOf(
      sql,
      packing.map((c) => c.robot),
    )

    const add = {
      robot: [] as string[],
      ts: [] as number[],
      x: [] as number[],
      y: [] as number[],
      odo: [] as number[],
      carry: [] as number[],
    }
    const blocks: BlockInsert[] = []
    const packedAfter = new Map(packed)
    const unpacked = { robot: [] as string[], upTo: [] as number[] }
    for (const change of changes.values()) {
      let keep: RunningColumns = change
      let from = 0
      const before = recentRows.get(change.robot)
      if (before !== undefined) {
        const all = concatRunning(before, change)
        const packedBefore = packed.get(change.robot)!
        const upTo = packTo(change)
        const count = upTo - packedBefore
        blocks.push(
          ...packBlocks(change.robot, all, packedBefore, upTo, blockEvents),
        )
        packedAfter.set(change.robot, upTo)
        if (before.ts.length > 0) {
          unpacked.robot.push(change.robot)
          unpacked.upTo.push(all.ts[Math.min(count, before.ts.length) - 1]!)
        }
        this.#packedSinceVacuum += count
        keep = all
        // Past the blocks, only the batch's events are new to `recent`.
        from = Math.max(count, before.ts.length)
      }
      for (let i = from; i < keep.ts.length; i++) {
        add.robot.push(change.robot)
        add.ts.push(keep.ts[i]!)
        add.x.push(keep.x[i]!)
        add.y.push(keep.y[i]!)
        add.odo.push(keep.total[i]!)
        add.carry.push(keep.carry[i]!)
      }
    }
    await checkPartitions(sql, blocks, this.#blocks, this.#partitions)
    // The writes are independent: sent together, one round trip.
    const writes: Promise<unknown>[] = []
    if (add.ts.length > 0) {
      writes.push(sql`
        INSERT INTO recent (robot, ts, x, y, odo, carry)
        SELECT * FROM unnest(${add.robot}::text[], ${add.ts}::bigint[],
                             ${add.x}::float8[], ${add.y}::float8[],
                             ${add.odo}::float8[], ${add.carry}::float8[])`)
    }
    if (blocks.length > 0) {
      writes.push(insertBlocks(sql, blocks))
    }
    if (unpacked.robot.length > 0) {
      writes.push(sql`
        DELETE FROM recent r
        USING unnest(${unpacked.robot}::text[], ${unpacked.upTo}::bigint[])
          AS p(robot, up_to)
        WHERE r.robot = p.robot AND r.ts <= p.up_to`)
    }

    const changed = [...changes.values()]
    const col = <T>(f: (s: RobotState) => T) => changed.map((c) => f(c.after))
    writes.push(sql`
      UPDATE robots r SET
        first_ts = u.first_ts, last_ts = u.last_ts,
        last_x = u.last_x, last_y = u.last_y,
        odometer = u.odometer, odometer_carry = u.odometer_carry,
        event_count = u.event_count, packed = u.packed,
        created_ms = CASE WHEN r.event_count = 0 THEN ${now} ELSE r.created_ms END,
        -- Never backwards, even with another machine's clock behind ours.
        updated_ms = GREATEST(r.updated_ms, r.created_ms, ${now})
      FROM unnest(${changed.map((c) => c.robot)}::text[],
                  ${col((s) => s.firstTimestamp)}::bigint[],
                  ${col((s) => s.lastTimestamp)}::bigint[],
                  ${col((s) => s.lastX)}::float8[], ${col((s) => s.lastY)}::float8[],
                  ${col((s) => s.odometer)}::float8[],
                  ${col((s) => s.odometerCarry)}::float8[],
                  ${col((s) => s.eventCount)}::bigint[],
                  ${changed.map((c) => packedAfter.get(c.robot)!)}::bigint[])
        AS u(name, first_ts, last_ts, last_x, last_y, odometer, odometer_carry,
             event_count, packed)
      WHERE r.name = u.name`)
    // Robots that had no event before this batch: the count moves with
    // them, in the same transaction. The row is locked after every robot
    // row, in every transaction, so it adds no deadlock; it serializes only
    // batches that store new robots, until their commit.
    const added = changed.filter((c) => stateAt(c.robot) === undefined).length
    if (added > 0) {
      writes.push(sql`UPDATE robot_count SET robots = robots + ${added}`)
    }
    // Delivered to the listeners only if this transaction commits, and
    // after the commits before it.
    const payloads = notificationPayloads(
      events,
      outcomes,
      acceptedOdometers(events, { outcomes, changes }),
    )
    writes.push(sql`
      SELECT pg_notify(${this.#channel}, p) FROM unnest(${payloads}::text[]) AS p`)
    await Promise.all(writes)
    if (this.#packedSinceVacuum >= (this.#options.vacuumEvery ?? 16_384)) {
      this.#vacuumRecent()
    }
    return outcomes
  }

  /**
   * The positions stored at the robots and timestamps of `wanted`: from
   * `recent`, or else from the block that holds the timestamp.
   */
  async #storedPositions(
    sql: postgres.TransactionSql<Record<string, never>>,
    wanted: { robots: string[]; timestamps: number[] },
  ): Promise<Map<string, StoredPosition>> {
    const stored = new Map<string, StoredPosition>()
    if (wanted.robots.length === 0) return stored
    const found = await sql<
      {
        robot: string
        ts: number
        x: number | null
        y: number | null
        first_ts: number | null
        data: Uint8Array | null
      }[]
    >`
      SELECT w.robot, w.ts, r.x, r.y, b.first_ts, b.data
      FROM unnest(${wanted.robots}::text[], ${wanted.timestamps}::bigint[])
        AS w(robot, ts)
      LEFT JOIN recent r ON r.robot = w.robot AND r.ts = w.ts
      LEFT JOIN LATERAL (
        SELECT first_ts, data FROM blocks
        WHERE r.robot IS NULL AND blocks.robot = w.robot
          AND blocks.last_ts >= w.ts
        ORDER BY last_ts LIMIT 1) b ON true`
    for (const row of found) {
      if (row.x !== null && row.y !== null) {
        stored.set(positionKey(row.robot, row.ts), { x: row.x, y: row.y })
      } else if (row.data !== null && row.first_ts! <= row.ts) {
        const block = decodeBlock(row.data, row.first_ts!)
        const i = lowerBound(block.ts, row.ts)
        if (block.ts[i] === row.ts) {
          stored.set(positionKey(row.robot, row.ts), {
            x: block.x[i]!,
            y: block.y[i]!,
          })
        }
      }
    }
    return stored
  }

  /** The recent events of `robots`, each robot's oldest first. */
  async #recentOf(
    sql: postgres.TransactionSql<Record<string, never>>,
    robots: readonly string[],
  ): Promise<Map<string, RunningColumns>> {
    const recent = new Map<string, RunningColumns>()
    if (robots.length === 0) return recent
    for (const robot of robots) {
      recent.set(robot, { ts: [], x: [], y: [], total: [], carry: [] })
    }
    const rows = await sql`
      SELECT robot, ts, x, y, odo, carry FROM recent
      WHERE robot = ANY(${robots as string[]}::text[])
      ORDER BY robot, ts`.values()
    for (const row of rows) {
      const columns = recent.get(row[0] as string)!
      columns.ts.push(row[1] as number)
      columns.x.push(row[2] as number)
      columns.y.push(row[3] as number)
      columns.total.push(row[4] as number)
      columns.carry.push(row[5] as number)
    }
    return recent
  }

  /**
   * Packs what a database of the layout before migration 4 left in
   * `recent`: every robot with a block's worth there, a robot a
   * transaction, under its row's lock, as a batch would.
   */
  async #packBacklog(): Promise<void> {
    const { blockEvents } = this.#blocks
    for (;;) {
      const names = await this.#sql<{ name: string }[]>`
        SELECT name FROM robots WHERE event_count - packed >= ${blockEvents}
        ORDER BY name LIMIT 64`
      if (names.length === 0) return
      for (const { name } of names) {
        await this.#transaction(async (sql) => {
          const [row] = await sql<{ packed: number; recent: number }[]>`
            SELECT packed, event_count - packed AS recent FROM robots
            WHERE name = ${name} FOR UPDATE`
          if (row === undefined || row.recent < blockEvents) return
          const all = (await this.#recentOf(sql, [name])).get(name)!
          const upTo = packedCount(
            row.packed + all.ts.length,
            blockPhase(name, blockEvents),
            blockEvents,
          )
          const count = upTo - row.packed
          if (count === 0) return
          const blocks = packBlocks(name, all, row.packed, upTo, blockEvents)
          await checkPartitions(sql, blocks, this.#blocks, this.#partitions)
          for (let i = 0; i < blocks.length; i += 64) {
            const some = blocks.slice(i, i + 64)
            await insertBlocks(sql, some)
          }
          await sql`DELETE FROM recent
            WHERE robot = ${name} AND ts <= ${all.ts[count - 1]!}`
          await sql`UPDATE robots SET packed = ${upTo} WHERE name = ${name}`
        })
      }
    }
  }

  /**
   * Makes the space of the rows packed away from `recent` usable again,
   * in the background (a plain VACUUM blocks no reader or writer), at most
   * one at a time; skipped while another process vacuums it.
   */
  #vacuumRecent(): void {
    if (this.#vacuum !== undefined) return
    this.#packedSinceVacuum = 0
    this.#vacuum = this.#sql
      .unsafe('VACUUM (SKIP_LOCKED) recent')
      .then(
        () => {},
        () => {}, // autovacuum does it later: nothing is lost
      )
      .finally(() => (this.#vacuum = undefined))
  }

  async deleteRobot(name: string): Promise<boolean> {
    return this.#transaction(async (sql) => {
      const [row] = await sql<{ event_count: number }[]>`
        SELECT event_count FROM robots WHERE name = ${name} FOR UPDATE`
      if (row === undefined) return false
      await Promise.all([
        sql`DELETE FROM recent WHERE robot = ${name}`,
        sql`DELETE FROM blocks WHERE robot = ${name}`,
        sql`DELETE FROM robots WHERE name = ${name}`,
      ])
      // A placeholder row (a batch that stored nothing) had no event.
      if (row.event_count === 0) return false
      await sql`UPDATE robot_count SET robots = robots - 1`
      return true
    })
  }

  async removeBefore(cutoff: number): Promise<RetentionPass> {
    const pass = await dropPartitionsBefore(this.#sql, cutoff, this.#blocks)
    this.#partitions.clear()
    return pass
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
    const { blockEvents } = this.#blocks
    return pagesByTimestamp(options, async (from, to, max) => {
      // The blocks that may hold the page, then the recent events after
      // them, in one statement (one snapshot). Blocks hold `blockEvents`
      // each: one more than the page needs covers a first block that
      // starts before `from`.
      const blocks = Math.ceil(max / blockEvents) + 1
      const rows = await this.#sql`
        (SELECT 0 AS kind, first_ts AS ts, NULL::float8 AS x,
                NULL::float8 AS y, data
         FROM blocks
         WHERE robot = ${name} AND last_ts >= ${from} AND first_ts <= ${to}
         ORDER BY last_ts LIMIT ${blocks})
        UNION ALL
        (SELECT 1, ts, x, y, NULL FROM recent
         WHERE robot = ${name} AND ts >= ${from} AND ts <= ${to}
         ORDER BY ts LIMIT ${max})`.values()
      // Blocks first, then recent events, each by time (not left to the
      // order UNION ALL happens to keep).
      rows.sort(
        (a, b) =>
          (a[0] as number) - (b[0] as number) ||
          (a[1] as number) - (b[1] as number),
      )
      const page = emptyColumns()
      let blocksRead = 0
      for (const row of rows) {
        if (page.ts.length === max) break
        if (row[0] === 0) {
          blocksRead++
          copyRange(
            decodeBlock(row[4] as Uint8Array, row[1] as number),
            from,
            to,
            max,
            page,
          )
        } else if (blocksRead < blocks) {
          // Recent events come after every block; when the block limit
          // was reached, more blocks may come first: the next page reads
          // them.
          page.ts.push(row[1] as number)
          page.x.push(row[2] as number)
          page.y.push(row[3] as number)
        }
      }
      return page
    })
  }

  async runningTotal(
    name: string,
    timestamp: number,
  ): Promise<RunningTotal | undefined> {
    const found = await this.#bounds(name, timestamp, undefined)
    return found.first?.running
  }

  async odometer(name: string, range: TimeRange = {}): Promise<number> {
    const start = range.start ?? 0
    const end = range.end ?? MAX_SAFE
    if (start > end) return 0
    const { first, last } = await this.#bounds(name, start, end)
    if (first === undefined || last === undefined) return 0
    if (first.ts > end || last.ts < start) return 0
    return odometerBetween(first.running, last.running)
  }

  /**
   * The first event at or after `start` and (when `end` is given) the last
   * at or before `end`, with their running odometers: a few index
   * look-ups in one statement, and at most two blocks decoded.
   */
  async #bounds(
    name: string,
    start: number,
    end: number | undefined,
  ): Promise<{ first?: FoundEvent; last?: FoundEvent }> {
    const sql = this.#sql
    // kind 0: the first block ending at or after `start`; 1: the first
    // recent event at or after `start`; 2: the first block ending at or
    // after `end`; 3: the last block ending before `end`; 4: the last
    // recent event at or before `end`.
    const lastParts =
      end === undefined
        ? sql``
        : sql`
      UNION ALL
      (SELECT 2, first_ts, odo, odo_carry, data FROM blocks
       WHERE robot = ${name} AND last_ts >= ${end} ORDER BY last_ts LIMIT 1)
      UNION ALL
      (SELECT 3, first_ts, odo, odo_carry, data FROM blocks
       WHERE robot = ${name} AND last_ts < ${end}
       ORDER BY last_ts DESC LIMIT 1)
      UNION ALL
      (SELECT 4, ts, odo, carry, NULL FROM recent
       WHERE robot = ${name} AND ts <= ${end} ORDER BY ts DESC LIMIT 1)`
    const rows = await sql<
      {
        kind: number
        ts: number
        odo: number
        carry: number
        data: Uint8Array | null
      }[]
    >`
      (SELECT 0 AS kind, first_ts AS ts, odo, odo_carry AS carry, data
       FROM blocks
       WHERE robot = ${name} AND last_ts >= ${start} ORDER BY last_ts LIMIT 1)
      UNION ALL
      (SELECT 1, ts, odo, carry, NULL FROM recent
       WHERE robot = ${name} AND ts >= ${start} ORDER BY ts LIMIT 1)
      ${lastParts}`
    const of = (kind: number) => rows.find((r) => r.kind === kind)
    const block = (row: (typeof rows)[number]): StoredBlock => ({
      first_ts: row.ts,
      odo: row.odo,
      odo_carry: row.carry,
      data: row.data!,
    })
    const recent = (row: (typeof rows)[number]): FoundEvent => ({
      ts: row.ts,
      running: { total: row.odo, carry: row.carry },
    })
    // Blocks hold a robot's older events, `recent` its newer ones.
    const firstBlock = of(0)
    const firstRecent = of(1)
    const first =
      firstBlock !== undefined
        ? eventInBlock(block(firstBlock), start, 'first')
        : firstRecent && recent(firstRecent)
    if (end === undefined) return { first }
    const lastRecent = of(4)
    const around = of(2)
    const before = of(3)
    const last =
      lastRecent !== undefined
        ? recent(lastRecent)
        : around !== undefined && around.ts <= end
          ? eventInBlock(block(around), end, 'last')
          : before && eventInBlock(block(before), end, 'last')
    return { first, last }
  }

  async close(): Promise<void> {
    await this.#vacuum
    await this.#commits.close()
    await this.#sql.end({ timeout: 5 })
  }
}

/** Inserts rows into `blocks`, in one statement. */
function insertBlocks(
  sql: postgres.TransactionSql<Record<string, never>>,
  blocks: readonly BlockInsert[],
) {
  // postgres.js sends a Buffer as bytea; its types only name strings and
  // numbers for this helper.
  const values = blocks.map((b) => [
    b.robot,
    b.first_ts,
    b.last_ts,
    b.count,
    b.odo,
    b.odo_carry,
    b.data,
  ])
  return sql`
    INSERT INTO blocks (robot, first_ts, last_ts, count, odo, odo_carry, data)
    VALUES ${sql(values as (string | number)[][])}`
}

function positionKey(robot: string, ts: number): string {
  return `${ts} ${robot}`
}

/** `a` then `b`, as new columns. */
function concatRunning(a: RunningColumns, b: RunningColumns): RunningColumns {
  return {
    ts: a.ts.concat(b.ts),
    x: a.x.concat(b.x),
    y: a.y.concat(b.y),
    total: a.total.concat(b.total),
    carry: a.carry.concat(b.carry),
  }
}
