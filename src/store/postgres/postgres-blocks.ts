/**
 * The blocks of the PostgreSQL store (migration 4): how a robot's recent
 * events are packed into `blocks`, and how the partitions of `blocks` are
 * made and dropped (block-codec.ts reads events out of a block).
 *
 * A robot's events are, oldest first, in its blocks (each of
 * `layout.block_events` events, packed with src/store/block-codec.ts) and
 * then in `recent`, one row each. Both are written in the batch's
 * transaction, under the lock of the robot's row (postgres-store.ts), so
 * a reader's single statement sees every event in exactly one of them.
 *
 * `blocks` is partitioned by range of `last_ts`: partition `blocks_pN`
 * holds the blocks whose last event is in
 * [N × partition_ms, (N + 1) × partition_ms). A retention pass drops the
 * partitions whose upper bound is at or before its cutoff: every event in
 * them is older. Partitions are made on demand: a batch whose blocks need
 * a partition that does not exist is rolled back ({@link checkPartitions}),
 * and retried once {@link createPartitions} has made it.
 */
import type postgres from 'postgres'
import { encodeBlock, type EventColumns } from '../block-codec.ts'
import type { RetentionPass } from '../store.ts'

type Sql = postgres.Sql<Record<string, never>>
type Tx = postgres.TransactionSql<Record<string, never>>

/** The layout a database was made with (table `layout`). */
export interface Layout {
  /** Width of a partition of `blocks`, in timestamp units (ms). */
  readonly partitionMs: number
  /** Events a block holds. */
  readonly blockEvents: number
}

/** Reads the database's layout. */
export async function readLayout(sql: Sql): Promise<Layout> {
  const [row] = await sql<{ partition_ms: number; block_events: number }[]>`
    SELECT partition_ms, block_events FROM layout`
  return { partitionMs: row!.partition_ms, blockEvents: row!.block_events }
}

/** A run of one robot's events with their running odometers. */
export interface RunningColumns extends EventColumns {
  readonly total: number[]
  readonly carry: number[]
}

/** A row of `blocks` as written. */
export interface BlockInsert {
  readonly robot: string
  readonly first_ts: number
  readonly last_ts: number
  readonly count: number
  readonly odo: number
  readonly odo_carry: number
  readonly data: Buffer
}

/**
 * Where a robot's blocks end: after its event number `phase + k ×
 * blockEvents` for every k ≥ 0 (its first block holds its first `phase`
 * events, when `phase` is not 0), `phase` taken from its name. A fleet's
 * robots report in step: with the same ends for all, they would all reach
 * a block's worth in the same batch, and that batch would pack a block for
 * every robot (measured: p99 of a batch 5× its p50); their own phase
 * spreads the packing over the batches.
 */
export function blockPhase(robot: string, blockEvents: number): number {
  // FNV-1a over the name's UTF-16 code units.
  let hash = 0x811c9dc5
  for (let i = 0; i < robot.length; i++) {
    hash = Math.imul(hash ^ robot.charCodeAt(i), 0x01000193) >>> 0
  }
  return hash % blockEvents
}

/** How many of a robot's first `eventCount` events belong in its blocks. */
export function packedCount(
  eventCount: number,
  phase: number,
  blockEvents: number,
): number {
  if (eventCount < phase) return 0
  return phase + Math.floor((eventCount - phase) / blockEvents) * blockEvents
}

/**
 * The blocks of a robot whose events numbered from `packed` on are
 * `events`: its events up to number `upTo` (a block end, see
 * {@link blockPhase}), cut at every block end.
 */
export function packBlocks(
  robot: string,
  events: RunningColumns,
  packed: number,
  upTo: number,
  blockEvents: number,
): BlockInsert[] {
  const phase = blockPhase(robot, blockEvents)
  const rows: BlockInsert[] = []
  for (let start = packed; start < upTo;) {
    const end =
      start < phase
        ? phase
        : phase + (Math.floor((start - phase) / blockEvents) + 1) * blockEvents
    const from = start - packed
    const to = end - packed
    rows.push({
      robot,
      first_ts: events.ts[from]!,
      last_ts: events.ts[to - 1]!,
      count: to - from,
      odo: events.total[from]!,
      odo_carry: events.carry[from]!,
      // The codec's buffer is reused by the next call: copied.
      data: Buffer.from(encodeBlock(events, from, to)),
    })
    start = end
  }
  return rows
}

// --- partitions ---

const PARTITION_PREFIX = 'blocks_p'
/** Serializes the making and dropping of partitions between processes. */
const PARTITION_LOCK = 0x7e1e_0002
/** SQLSTATE check_violation: what an insert into no partition fails with. */
const CHECK_VIOLATION = '23514'

/** The partition that holds a block whose last event is at `lastTs`. */
export function partitionOf(lastTs: number, layout: Layout): number {
  return Math.floor(lastTs / layout.partitionMs)
}

/**
 * The `last_ts` of a block that found no partition, read from the error of
 * its insert; `undefined` for any other error.
 */
export function missingPartitionTs(error: unknown): number | undefined {
  const { code, detail, message } = error as {
    code?: string
    detail?: string
    message?: string
  }
  if (code !== CHECK_VIOLATION) return undefined
  if (!(message ?? '').includes('no partition of relation')) return undefined
  const match = /\(last_ts\) = \((\d+)\)/.exec(detail ?? '')
  return match === null ? undefined : Number(match[1])
}

/**
 * Thrown inside a batch's transaction when its blocks need partitions that
 * do not exist: the transaction is rolled back, the partitions made by
 * {@link createPartitions}, and the batch retried.
 */
export class MissingPartitions extends Error {
  override readonly name = 'MissingPartitions'
  readonly partitions: readonly number[]
  constructor(partitions: readonly number[]) {
    super(`blocks needs partitions ${partitions.join(', ')}`)
    this.partitions = partitions
  }
}

/** The partitions of `blocks` that exist, by number. */
export async function listPartitions(sql: Sql | Tx): Promise<Set<number>> {
  const parts = await sql<{ name: string }[]>`
    SELECT c.relname AS name FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'blocks'::regclass`
  return new Set(
    parts.map((p) => Number(p.name.slice(PARTITION_PREFIX.length))),
  )
}

/**
 * Throws {@link MissingPartitions} when `blocks` lack a partition; `known`
 * (the partitions seen so far) is read again before.
 */
export async function checkPartitions(
  sql: Tx,
  blocks: readonly BlockInsert[],
  layout: Layout,
  known: Set<number>,
): Promise<void> {
  const needed = [...new Set(blocks.map((b) => partitionOf(b.last_ts, layout)))]
  if (needed.every((n) => known.has(n))) return
  for (const n of await listPartitions(sql)) known.add(n)
  const missing = needed.filter((n) => !known.has(n))
  if (missing.length > 0) throw new MissingPartitions(missing)
}

/** Makes partitions `numbers` of `blocks` where missing, in one transaction. */
export async function createPartitions(
  sql: Sql,
  numbers: readonly number[],
  layout: Layout,
): Promise<void> {
  await sql.begin(async (tx) => {
    // Two processes never make the same partition at once.
    await tx`SELECT pg_advisory_xact_lock(${PARTITION_LOCK})`
    for (const n of numbers) {
      const from = n * layout.partitionMs
      await tx.unsafe(
        `CREATE TABLE IF NOT EXISTS ${PARTITION_PREFIX}${n} PARTITION OF blocks
         FOR VALUES FROM (${from}) TO (${from + layout.partitionMs})`,
      )
    }
  })
}

/**
 * Drops, one transaction each, the partitions of `blocks` whose every
 * event is older than `cutoff`. A transaction that dropped a partition
 * held `blocks` exclusively for the drop only; ingest waits that long.
 */
export async function dropPartitionsBefore(
  sql: Sql,
  cutoff: number,
  layout: Layout,
): Promise<RetentionPass> {
  const old = [...(await listPartitions(sql))]
    .filter((n) => (n + 1) * layout.partitionMs <= cutoff)
    .sort((a, b) => a - b)
  let events = 0
  let units = 0
  for (const n of old) {
    const name = `${PARTITION_PREFIX}${n}`
    const removed = await sql.begin(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(${PARTITION_LOCK})`
      const [found] = await tx<{ here: string | null }[]>`
        SELECT to_regclass(${name}) AS here`
      if (found?.here === null) return undefined // another process dropped it
      const [sum] = await tx.unsafe<{ events: number }[]>(
        `SELECT coalesce(sum(count), 0)::bigint AS events FROM ${name}`,
      )
      await tx.unsafe(`DROP TABLE ${name}`)
      return sum!.events
    })
    if (removed === undefined) continue
    events += removed
    units++
  }
  return { events, units }
}
