/**
 * The PostgreSQL backend, on postgres.js. Any number of server processes may
 * share one database: nothing is decided from a process's memory.
 *
 * Where events are (migrations 4 and 5, postgres-blocks.ts): a robot's
 * older events packed 64 a row in `blocks` (partitioned by time, so
 * retention drops whole partitions), its newest in the tail of its row in
 * `robots`, one value of the same codec.
 *
 * A batch is judged inside its transaction:
 * 1. every robot row of the batch is locked with `SELECT … FOR UPDATE`, in
 *    name order, and read with its tail; robots without a row get a
 *    placeholder row (`ON CONFLICT DO NOTHING`), locked the same way.
 *    Another process judging the same robot waits here until this
 *    transaction ends, then reads the state it committed;
 * 2. the stored positions that the rules need (events older than a robot's
 *    latest) are found in its tail, or else read from the block that holds
 *    them;
 * 3. `judgeBatch()` (domain/batch.ts, the same as SQLite's) judges each
 *    event against the locked state;
 * 4. each robot's accepted events are added to its tail, and what reaches
 *    a block end packed into blocks (`advanceTail`); the blocks are
 *    inserted, and the robots' rows updated with their new state and tail,
 *    each in one statement (the rows from arrays, `unnest`), all sent at
 *    once; so is the increment of `robot_count` by the robots that got
 *    their first event;
 * 5. the accepted events, with their odometers, are sent to every process
 *    that watches the database with `NOTIFY`, delivered only on commit
 *    (postgres-live.ts).
 * A deadlock or serialization failure between processes is retried; so is
 * a batch whose block needed a partition not made yet, once it is made.
 *
 * Every read is one statement, so it sees one snapshot: events moving from
 * a tail into a block in between are seen once.
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
  type RetentionPass,
  type Robot,
  type Store,
  type StoreHealth,
  type TimeRange,
  type Unwatch,
} from '../store.ts'
import { pagesByTimestamp } from '../paging.ts'
import { formatPostgresUrl, parsePostgresUrl } from '../postgres-url.ts'
import {
  copyRange,
  decodeBlock,
  emptyColumns,
  eventInBlock,
  eventInColumns,
  type EventColumns,
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
import { MIGRATION_STEPS, POSTGRES_MIGRATIONS } from './postgres-migrations.ts'
import {
  advanceTail,
  blockReach,
  reachesBlockEnd,
  checkPartitions,
  createPartitions,
  decodeTail,
  dropPartitionsBefore,
  insertBlocks,
  MissingPartitions,
  missingPartitionTs,
  partitionOf,
  readLayout,
  type BlockInsert,
  type Layout,
  type TailRow,
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
   * The layout of a database this store creates (tests use small ones);
   * a database made before keeps its own (table `layout`).
   */
  readonly newLayout?: Partial<Layout>
  /**
   * A replica for reads (`--read-store`): the store only reads, from a
   * database that a store on the primary migrates; it waits at most
   * {@link REPLICA_SCHEMA_WAIT_MS} for the schema to reach this server's
   * version there.
   */
  readonly readOnly?: boolean
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
 * Errors of a connection lost or refused, or of a server that no longer
 * takes writes (a primary shut down or demoted in a failover), besides
 * SQLSTATE class 08: postgres.js's own codes and the system's.
 */
/** SQLSTATE read_only_sql_transaction: a write on a server that takes none. */
const READ_ONLY = '25006'
const CONNECTION_CODES = new Set([
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  READ_ONLY, // a standby now
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
])
/** How long a replica's store waits for its schema at startup. */
const REPLICA_SCHEMA_WAIT_MS = 60_000
/** How long {@link Store.health} waits for the database. */
const HEALTH_TIMEOUT_MS = 2000

function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: unknown }).code
  return (
    typeof code === 'string' &&
    (code.startsWith('08') || CONNECTION_CODES.has(code))
  )
}
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
}

/** A robot row as a batch locks it: with where its events are. */
interface LockedRow extends RobotRow, Omit<TailRow, 'tail'> {
  /** The robot's events packed into blocks so far (migration 4). */
  readonly packed: number
}

/**
 * The store's address as postgres.js is given it (without the `schema`
 * parameter), and the schema.
 *
 * `target_session_attrs=read-write` becomes `primary`: postgres.js 3.4
 * judges `read-write` by `default_transaction_read_only` alone, which is
 * `off` on a hot standby, so it would keep a connection to the standby a
 * failover just made of the old primary (seen with pg_auto_failover).
 * libpq's `read-write` also requires `in_hot_standby` off; `primary`
 * checks that.
 */
function parseUrl(url: string): { connect: string; schema: string } {
  const parsed = parsePostgresUrl(url)
  if (parsed === undefined) throw new Error(`${url} is not a PostgreSQL URL`)
  const params = parsed.url.searchParams
  const schema = params.get('schema') ?? 'public'
  params.delete('schema')
  if (params.get('target_session_attrs') === 'read-write') {
    params.set('target_session_attrs', 'primary')
  }
  return { connect: formatPostgresUrl(parsed), schema }
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
  /**
   * The pool; replaced when it is found on a server that takes no writes
   * ({@link replacePool}).
   */
  #sql: Sql
  /** postgres.js's address of the store (without `schema`). */
  readonly #connect: string
  readonly #channel: string
  readonly #watchers = new CommitWatchers()
  readonly #commits: CommitChannel
  #layout: Layout | undefined
  /** Partitions of `blocks` known to exist (a cache; see checkPartitions). */
  #partitions = new Set<number>()
  /** The server that took the last writes (`address:port`), once known. */
  #server: string | undefined
  /** A batch lost its connection since the last one that committed. */
  #outage = false
  #failovers = 0
  #commitsUnknown = 0

  constructor(options: PostgresStoreOptions) {
    this.#options = options
    this.url = options.url
    const { connect, schema } = parseUrl(options.url)
    this.#schema = schema
    this.#channel = liveChannel(schema)
    this.#commits = new CommitChannel(connect, this.#channel, this.#watchers)
    this.#connect = connect
    this.#sql = this.#pool()
  }

  #pool(): Sql {
    const options = this.#options
    return postgres(this.#connect, {
      max: options.maxConnections ?? 10,
      onnotice: () => {},
      connection: {
        search_path: this.#schema,
        application_name: `fleet-telemetry${options.readOnly === true ? ' reads' : ''}`,
      },
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

  /**
   * Replaces the pool by a new one, whose connections are made (and
   * checked writable: `target_session_attrs`) afresh; the old one ends
   * once its queries in flight have (at most 5 s). For a store that writes
   * and found its connection on a server that takes no writes (SQLSTATE
   * 25006, or a health probe in recovery): a connection made to a primary
   * stays on it when that server becomes a standby without dropping it,
   * and postgres.js keeps a connection whose query failed, so every batch
   * after would fail (seen once for 13 minutes after a failover under
   * load, the pool's connections on the new standby). Reads through such a
   * connection would be a standby's, possibly behind.
   */
  #replacePool(): void {
    const old = this.#sql
    this.#sql = this.#pool()
    this.#outage = true
    void old.end({ timeout: 5 }).catch(() => {})
  }

  async init(): Promise<void> {
    if (this.#options.readOnly === true) {
      await this.#awaitSchema()
      this.#layout = await readLayout(this.#sql)
      return
    }
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
        await MIGRATION_STEPS.get(v + 1)?.(sql)
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
    await this.#noteServer()
  }

  /**
   * Waits until a replica has this server's schema version: the primary's
   * store migrates it, and replication brings it here.
   */
  async #awaitSchema(): Promise<void> {
    const wanted = POSTGRES_MIGRATIONS.length
    const deadline = performance.now() + REPLICA_SCHEMA_WAIT_MS
    for (;;) {
      const [made] = await this.#sql<{ table: string | null }[]>`
        SELECT to_regclass('schema_migrations')::text AS table`
      const [row] =
        made?.table === null
          ? []
          : await this.#sql<{ version: number | null }[]>`
              SELECT max(version) AS version FROM schema_migrations`
      const version = row?.version ?? 0
      if (version > wanted) {
        throw new Error(
          `the read store's schema is at version ${version}, newer than this server's ${wanted}`,
        )
      }
      if (version === wanted) return
      if (performance.now() > deadline) {
        throw new Error(
          `the read store's schema is at version ${version}, not ${wanted}: is it a replica of --store?`,
        )
      }
      await new Promise((resolve) => setTimeout(resolve, 500))
    }
  }

  async health(): Promise<StoreHealth> {
    let writable = false
    let timer: NodeJS.Timeout | undefined
    const probe = this.#serverProbe()
    const late = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), HEALTH_TIMEOUT_MS)
    })
    try {
      const found = await Promise.race([probe, late])
      if (found !== undefined) {
        writable = found.writable
        this.#sawServer(found.server)
        // A writing store's connection on a standby: connect afresh.
        if (!writable && this.#options.readOnly !== true) this.#replacePool()
      }
    } catch {
      // Unreachable: not writable.
    } finally {
      clearTimeout(timer)
      probe.catch(() => {})
    }
    return {
      writable,
      failovers: this.#failovers,
      commitsUnknown: this.#commitsUnknown,
    }
  }

  /** Which server a connection of the pool reaches, and whether it takes writes. */
  async #serverProbe(): Promise<{ server: string; writable: boolean }> {
    const [row] = await this.#sql<
      { addr: string | null; port: number | null; writable: boolean }[]
    >`SELECT inet_server_addr()::text AS addr, inet_server_port() AS port,
             NOT pg_is_in_recovery() AS writable`
    // A Unix socket has no address: the socket's path stands for it.
    return {
      server: `${row!.addr ?? 'socket'}:${row!.port ?? ''}`,
      writable: row!.writable,
    }
  }

  /** Reads which server takes the writes now, and counts a change. */
  async #noteServer(): Promise<void> {
    try {
      const { server, writable } = await this.#serverProbe()
      if (writable) this.#sawServer(server)
    } catch {
      // Known at the next batch or health check.
    }
  }

  #sawServer(server: string): void {
    if (this.#server !== undefined && this.#server !== server) {
      this.#failovers++
    }
    this.#server = server
  }

  #assertWritable(): void {
    if (this.#options.readOnly === true) {
      throw new Error('a read-only store (--read-store) only reads')
    }
  }

  get #blocks(): Layout {
    if (this.#layout === undefined) throw new Error('the store is not open')
    return this.#layout
  }

  // --- writes ---

  async append(events: readonly TelemetryEvent[]): Promise<Outcome[]> {
    this.#assertWritable()
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
      let committing = false
      try {
        const result = (await this.#sql.begin(async (tx) => {
          const done = await work(tx)
          // postgres.js sends COMMIT once this returns.
          committing = true
          return done
        })) as T
        if (this.#outage) {
          // The first commit after a lost connection: maybe on another
          // server (a failover).
          this.#outage = false
          await this.#noteServer()
        }
        return result
      } catch (error) {
        if (isConnectionError(error)) {
          this.#outage = true
          if ((error as { code?: unknown }).code === READ_ONLY) {
            this.#replacePool()
          }
          // Lost after COMMIT was sent: it may have committed. The batch
          // is answered ERR unavailable; a resend of a stored event is DUP.
          if (committing) this.#commitsUnknown++
          throw error
        }
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
    const layout = this.#blocks
    const sent = new Map<string, number>()
    for (const e of events) sent.set(e.robot, (sent.get(e.robot) ?? 0) + 1)
    const names = [...sent.keys()].sort(byCodePoint)
    const lock = (list: readonly string[]) => sql<LockedRow[]>`
      SELECT name, first_ts, last_ts, last_x, last_y, odometer,
             odometer_carry, event_count, created_ms, updated_ms, packed,
             tail_ts, tail_odo, tail_carry
      FROM robots WHERE name = ANY(${list as string[]}::text[])
      ORDER BY name FOR UPDATE`
    let rows: LockedRow[] = [...(await lock(names))]
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
    const locked = new Map<string, LockedRow>()
    const states = new Map<string, RobotState | undefined>()
    for (const row of rows) {
      locked.set(row.name, row)
      states.set(row.name, stateOf(row))
    }
    const stateAt = (name: string) => states.get(name)

    // The tails this batch reads: of the robots with a stored position to
    // judge by in them (the others are in blocks), and of those whose
    // events may reach a block end (if all of them are accepted), which
    // packs the tail. Other tails are appended to unread.
    const wanted = storedPositionsNeeded(events, stateAt)
    const inBlocks = { robots: [] as string[], timestamps: [] as number[] }
    const inTails: { robot: string; ts: number }[] = []
    const readTails = new Set<string>()
    wanted.robots.forEach((robot, i) => {
      const ts = wanted.timestamps[i]!
      const tailTs = locked.get(robot)!.tail_ts
      if (tailTs === null || ts < tailTs) {
        inBlocks.robots.push(robot)
        inBlocks.timestamps.push(ts)
      } else {
        inTails.push({ robot, ts })
        readTails.add(robot)
      }
    })
    for (const row of rows) {
      const count = row.event_count + sent.get(row.name)!
      if (reachesBlockEnd(row.name, count, row.packed, layout)) {
        readTails.add(row.name)
      }
    }
    const [tails, stored] = await Promise.all([
      this.#readTails(sql, [...readTails], locked),
      this.#positionsInBlocks(sql, inBlocks),
    ])
    for (const { robot, ts } of inTails) {
      const tail = tails.get(robot)!
      const at = lowerBound(tail.ts, ts)
      if (tail.ts[at] === ts) {
        stored.set(positionKey(robot, ts), { x: tail.x[at]!, y: tail.y[at]! })
      }
    }
    const { outcomes, changes } = judgeBatch(events, {
      stateOf: stateAt,
      storedAt: (robot, ts) => stored.get(positionKey(robot, ts)),
    })
    if (changes.size === 0) return outcomes

    const blocks: BlockInsert[] = []
    const changed = [...changes.values()]
    const update = {
      append: [] as number[],
      tail: [] as (string | null)[],
      tailTs: [] as (number | null)[],
      tailOdo: [] as number[],
      tailCarry: [] as number[],
      packed: [] as number[],
    }
    for (const change of changed) {
      const row = locked.get(change.robot)!
      const next = advanceTail(
        change.robot,
        row,
        row.event_count - row.packed,
        tails.get(change.robot),
        change,
        row.packed,
        layout,
      )
      if (next.kind === 'pack') {
        for (const block of next.blocks) blocks.push(block)
        update.append.push(0)
        update.tail.push(base64Of(next.row.tail))
        update.packed.push(next.packed)
      } else {
        update.append.push(1)
        update.tail.push(base64Of(next.chunk))
        update.packed.push(row.packed)
      }
      update.tailTs.push(next.row.tail_ts)
      update.tailOdo.push(next.row.tail_odo)
      update.tailCarry.push(next.row.tail_carry)
    }
    await checkPartitions(sql, blocks, layout, this.#partitions)
    // The writes are independent: sent together, one round trip.
    const writes: Promise<unknown>[] = []
    if (blocks.length > 0) writes.push(insertBlocks(sql, blocks))
    const col = <T>(f: (s: RobotState) => T) => changed.map((c) => f(c.after))
    writes.push(sql`
      UPDATE robots r SET
        first_ts = u.first_ts, last_ts = u.last_ts,
        last_x = u.last_x, last_y = u.last_y,
        odometer = u.odometer, odometer_carry = u.odometer_carry,
        event_count = u.event_count, packed = u.packed,
        -- A chunk is appended to the tail; a tail packed is replaced.
        tail = CASE WHEN u.append = 1
                      THEN coalesce(r.tail, ''::bytea) || decode(u.tail, 'base64')
                    ELSE decode(u.tail, 'base64') END,
        tail_ts = u.tail_ts, tail_odo = u.tail_odo, tail_carry = u.tail_carry,
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
                  ${update.packed}::bigint[],
                  ${update.append}::int[],
                  -- postgres.js sends no array of bytea: base64 text.
                  ${update.tail}::text[],
                  ${update.tailTs}::bigint[],
                  ${update.tailOdo}::float8[],
                  ${update.tailCarry}::float8[])
        AS u(name, first_ts, last_ts, last_x, last_y, odometer, odometer_carry,
             event_count, packed, append, tail, tail_ts, tail_odo, tail_carry)
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
    return outcomes
  }

  /** The tails of `robots` (locked), decoded. */
  async #readTails(
    sql: postgres.TransactionSql<Record<string, never>>,
    robots: readonly string[],
    locked: ReadonlyMap<string, LockedRow>,
  ): Promise<Map<string, EventColumns>> {
    const tails = new Map<string, EventColumns>()
    if (robots.length === 0) return tails
    const rows = await sql<{ name: string; tail: Uint8Array | null }[]>`
      SELECT name, tail FROM robots
      WHERE name = ANY(${robots as string[]}::text[])`
    for (const row of rows) {
      tails.set(
        row.name,
        decodeTail({ ...locked.get(row.name)!, tail: row.tail }),
      )
    }
    return tails
  }

  /**
   * The positions stored at the robots and timestamps of `wanted`, each
   * before its robot's tail: read from the block that holds it.
   */
  async #positionsInBlocks(
    sql: postgres.TransactionSql<Record<string, never>>,
    wanted: { robots: string[]; timestamps: number[] },
  ): Promise<Map<string, StoredPosition>> {
    const stored = new Map<string, StoredPosition>()
    if (wanted.robots.length === 0) return stored
    const found = await sql<
      { robot: string; ts: number; first_ts: number; data: Uint8Array }[]
    >`
      SELECT w.robot, w.ts, b.first_ts, b.data
      FROM unnest(${wanted.robots}::text[], ${wanted.timestamps}::bigint[])
        AS w(robot, ts)
      JOIN LATERAL (
        SELECT first_ts, data FROM blocks
        WHERE blocks.robot = w.robot AND blocks.last_ts >= w.ts
          AND blocks.last_ts <= w.ts + ${blockReach(this.#blocks)}
        ORDER BY last_ts LIMIT 1) b ON true`
    for (const row of found) {
      if (row.first_ts > row.ts) continue
      const block = decodeBlock(row.data, row.first_ts)
      const i = lowerBound(block.ts, row.ts)
      if (block.ts[i] === row.ts) {
        stored.set(positionKey(row.robot, row.ts), {
          x: block.x[i]!,
          y: block.y[i]!,
        })
      }
    }
    return stored
  }

  async deleteRobot(name: string): Promise<boolean> {
    this.#assertWritable()
    return this.#transaction(async (sql) => {
      const [row] = await sql<{ event_count: number }[]>`
        SELECT event_count FROM robots WHERE name = ${name} FOR UPDATE`
      if (row === undefined) return false
      await Promise.all([
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
    this.#assertWritable()
    const pass = await dropPartitionsBefore(this.#sql, cutoff, this.#blocks)
    this.#partitions.clear()
    return pass
  }

  async watch(listener: CommitListener): Promise<Unwatch> {
    // Notifications are sent on the primary, and LISTEN is refused on a
    // standby.
    this.#assertWritable()
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
      SELECT ${sql.unsafe(ROBOT_COLUMNS)} FROM robots
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
      SELECT ${this.#sql.unsafe(ROBOT_COLUMNS)} FROM robots
      WHERE name = ${name} AND event_count > 0`
    return row === undefined ? undefined : toRobot(row)
  }

  readEvents(
    name: string,
    options: ReadEventsOptions = {},
  ): AsyncIterable<EventPage> {
    const layout = this.#blocks
    const reach = blockReach(layout)
    return pagesByTimestamp(options, async (from, to, max) => {
      // The blocks that may hold the page, then the robot's tail, in one
      // statement (one snapshot). Blocks hold `blockEvents` at most: one
      // more than the page needs covers a first block that starts before
      // `from`. A block ends at most `reach` after its first event: the
      // range of `last_ts` names the partitions to read.
      const blocks = Math.ceil(max / layout.blockEvents) + 1
      const rows = await this.#sql`
        (SELECT 0 AS kind, first_ts AS ts, data FROM blocks
         WHERE robot = ${name} AND last_ts >= ${from} AND first_ts <= ${to}
           AND last_ts <= ${to + reach}
         ORDER BY last_ts LIMIT ${blocks})
        UNION ALL
        (SELECT 1, tail_ts, tail FROM robots
         WHERE name = ${name} AND tail_ts <= ${to})`.values()
      // Blocks first, then the tail, each by time (not left to the order
      // UNION ALL happens to keep).
      rows.sort(
        (a, b) =>
          (a[0] as number) - (b[0] as number) ||
          (a[1] as number) - (b[1] as number),
      )
      const page = emptyColumns()
      let blocksRead = 0
      for (const row of rows) {
        if (page.ts.length === max) break
        // The tail comes after every block; when the block limit was
        // reached, more blocks may come first: the next page reads them.
        if (row[0] === 1 && blocksRead === blocks) break
        if (row[0] === 0) blocksRead++
        const data = row[2] as Uint8Array
        const firstTs = row[1] as number
        copyRange(
          row[0] === 0
            ? decodeBlock(data, firstTs)
            : decodeTail({
                tail: data,
                tail_ts: firstTs,
                tail_odo: 0,
                tail_carry: 0,
              }),
          from,
          to,
          max,
          page,
        )
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
   * at or before `end`, with their running odometers, from at most two
   * blocks and the robot's tail.
   *
   * One statement reads the tail and the blocks that hold them, looked up
   * in the partition of `start` and of `end` only: a statement that may
   * reach several partitions costs the planner each one. A block found
   * nowhere there (the robot was silent across a partition's end) is
   * looked for further by a second statement.
   */
  async #bounds(
    name: string,
    start: number,
    end: number | undefined,
  ): Promise<{ first?: FoundEvent; last?: FoundEvent }> {
    const sql = this.#sql
    const layout = this.#blocks
    const reach = blockReach(layout)
    /** The last timestamp of the partition of `ts`. */
    const partitionLast = (ts: number) =>
      (partitionOf(ts, layout) + 1) * layout.partitionMs - 1
    const firstTo = Math.min(start + reach, partitionLast(start))
    // kind 0: the robot's tail; 1: the first block ending in
    // [start, firstTo]; 2: the first block ending in [end, endTo];
    // 3: the last block ending in [endFrom, end).
    let endParts = sql``
    let endTo = 0
    let endFrom = 0
    if (end !== undefined) {
      endTo = Math.min(end + reach, partitionLast(end))
      endFrom = Math.max(start, partitionOf(end, layout) * layout.partitionMs)
      endParts = sql`
      UNION ALL
      (SELECT 2, first_ts, odo, odo_carry, data FROM blocks
       WHERE robot = ${name} AND last_ts >= ${end} AND last_ts <= ${endTo}
       ORDER BY last_ts LIMIT 1)
      UNION ALL
      (SELECT 3, first_ts, odo, odo_carry, data FROM blocks
       WHERE robot = ${name} AND last_ts >= ${endFrom} AND last_ts < ${end}
       ORDER BY last_ts DESC LIMIT 1)`
    }
    const rows = await sql<BlockRow[]>`
      (SELECT 0 AS kind, tail_ts AS ts, tail_odo AS odo, tail_carry AS carry,
              tail AS data
       FROM robots WHERE name = ${name} AND tail_ts IS NOT NULL)
      UNION ALL
      (SELECT 1, first_ts, odo, odo_carry, data FROM blocks
       WHERE robot = ${name} AND last_ts >= ${start} AND last_ts <= ${firstTo}
       ORDER BY last_ts LIMIT 1)
      ${endParts}`
    const of = (kind: number) => rows.find((r) => r.kind === kind)
    // Blocks hold a robot's older events, the tail its newer ones: no
    // block ends at or after the tail's first event.
    const tail = of(0)
    const blocksBefore = tail === undefined ? MAX_SAFE : tail.ts - 1
    const inTail = (ts: number) => tail !== undefined && tail.ts <= ts
    const find = (
      row: BlockRow | undefined,
      at: number,
      which: 'first' | 'last',
    ) => {
      if (row === undefined) return undefined
      if (row.kind !== 0) return eventInBlock(asStoredBlock(row), at, which)
      const events = decodeTail({
        tail: row.data,
        tail_ts: row.ts,
        tail_odo: row.odo,
        tail_carry: row.carry,
      })
      return eventInColumns(
        events,
        { total: row.odo, carry: row.carry },
        at,
        which,
      )
    }

    let first: FoundEvent | undefined
    if (inTail(start)) {
      first = find(tail, start, 'first')
    } else {
      // For an odometer, a block ending after `end + reach` holds no event
      // at or before `end`: whatever is found there is out of range.
      const limit = Math.min(
        blocksBefore,
        end === undefined ? MAX_SAFE : end + reach,
      )
      const found =
        of(1) ?? (await this.#blockIn(name, firstTo + 1, limit, 'first'))
      first = find(found ?? tail, start, 'first')
    }
    if (end === undefined) return { first }

    let last: FoundEvent | undefined
    if (inTail(end)) {
      last = find(tail, end, 'last')
    } else {
      // The block that holds `end`, or else the last one before it.
      let around = of(2)
      if (around === undefined && endTo < Math.min(end + reach, blocksBefore)) {
        around = await this.#blockIn(
          name,
          endTo + 1,
          Math.min(end + reach, blocksBefore),
          'first',
        )
      }
      const holder =
        around !== undefined && around.ts <= end
          ? around
          : (of(3) ?? (await this.#blockIn(name, start, endFrom - 1, 'last')))
      last = find(holder, end, 'last')
    }
    return { first, last }
  }

  /**
   * The first (`'first'`) or last (`'last'`) block of `name` whose last
   * event is in [from, to].
   */
  async #blockIn(
    name: string,
    from: number,
    to: number,
    which: 'first' | 'last',
  ): Promise<BlockRow | undefined> {
    if (to < from) return undefined
    const order = which === 'first' ? this.#sql`` : this.#sql`DESC`
    const [row] = await this.#sql<BlockRow[]>`
      SELECT 1 AS kind, first_ts AS ts, odo, odo_carry AS carry, data
      FROM blocks
      WHERE robot = ${name} AND last_ts >= ${from} AND last_ts <= ${to}
      ORDER BY last_ts ${order} LIMIT 1`
    return row
  }

  async close(): Promise<void> {
    await this.#commits.close()
    await this.#sql.end({ timeout: 5 })
  }
}

/** A block, or a robot's tail, as the odometer's look-ups read it. */
interface BlockRow {
  readonly kind: number
  /** The first event's timestamp. */
  readonly ts: number
  readonly odo: number
  readonly carry: number
  readonly data: Uint8Array
}

function asStoredBlock(row: BlockRow): StoredBlock {
  return {
    first_ts: row.ts,
    odo: row.odo,
    odo_carry: row.carry,
    data: row.data,
  }
}

/** The columns of a robot row that describe it (not where its events are). */
const ROBOT_COLUMNS = `name, first_ts, last_ts, last_x, last_y, odometer,
  odometer_carry, event_count, created_ms, updated_ms`

/** A value for a `bytea` sent in an array of text, for `decode(…, 'base64')`. */
function base64Of(value: Uint8Array | null): string | null {
  return value === null ? null : Buffer.from(value).toString('base64')
}

function positionKey(robot: string, ts: number): string {
  return `${ts} ${robot}`
}
