/**
 * The blocks of the PostgreSQL store (migrations 4 and 5): how a robot's
 * newest events wait in its row's tail and are packed into `blocks`, and
 * how the partitions of `blocks` are made and dropped (block-codec.ts
 * reads events out of a block).
 *
 * A robot's events are, oldest first, in its blocks (each a run of its
 * events packed with src/store/block-codec.ts) and then in the tail of its
 * row in `robots`: its events since its last block end, fewer than a
 * block's worth, in chunks of the same codec ({@link TailRow}). A batch
 * appends each robot's accepted events to its tail as a chunk, or, when
 * they reach a block end, packs the tail and them into blocks and writes
 * the rest as the new tail ({@link advanceTail}); all of it in the
 * batch's transaction, under the lock of the robot's row
 * (postgres-store.ts), so a reader's single statement sees every event in
 * exactly one place.
 *
 * `blocks` is partitioned by range of `last_ts`: partition `blocks_pN`
 * holds the blocks whose last event is in
 * [N × partition_ms, (N + 1) × partition_ms). A retention pass drops the
 * partitions whose upper bound is at or before its cutoff: every event in
 * them is older. Partitions are made on demand: a batch whose blocks need
 * a partition that does not exist is rolled back ({@link checkPartitions}),
 * and retried once {@link createPartitions} has made it.
 *
 * No block spans `partition_ms` or more (a run that would is cut in
 * several rows): the block that holds a time `t` then ends before
 * `t + partition_ms`, so every look-up of a block can name a range of
 * `last_ts` one partition wide and the planner skips every other
 * partition ({@link blockReach}).
 */
import type postgres from 'postgres'
import {
  decodeChunks,
  emptyColumns,
  encodeBlock,
  encodeChunk,
  type EventColumns,
} from '../block-codec.ts'
import { addStep, distance, type RunningTotal } from '../../domain/rules.ts'
import type { RetentionPass } from '../store.ts'

type Sql = postgres.Sql<Record<string, never>>
type Tx = postgres.TransactionSql<Record<string, never>>

/** The layout a database was made with (table `layout`). */
export interface Layout {
  /** Width of a partition of `blocks`, in timestamp units (ms). */
  readonly partitionMs: number
  /** Events a block holds. */
  readonly blockEvents: number
  /**
   * The longest time from a block's first event to its last that blocks
   * packed before migration 5 took (those after it span less than
   * `partitionMs`).
   */
  readonly blockSpan: number
}

/** Reads the database's layout. */
export async function readLayout(sql: Sql | Tx): Promise<Layout> {
  const [row] = await sql<
    { partition_ms: number; block_events: number; block_span: number }[]
  >`SELECT partition_ms, block_events, block_span FROM layout`
  return {
    partitionMs: row!.partition_ms,
    blockEvents: row!.block_events,
    blockSpan: row!.block_span,
  }
}

/**
 * The longest time from a block's first event to its last: the block that
 * holds an event at time `t` ends in [t, t + reach].
 */
export function blockReach(layout: Layout): number {
  return Math.max(layout.partitionMs - 1, layout.blockSpan)
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
 * {@link blockPhase}), cut at every block end, and wherever a block would
 * span `partitionMs` or more.
 */
export function packBlocks(
  robot: string,
  events: RunningColumns,
  packed: number,
  upTo: number,
  layout: Pick<Layout, 'blockEvents' | 'partitionMs'>,
): BlockInsert[] {
  const { blockEvents, partitionMs } = layout
  const phase = blockPhase(robot, blockEvents)
  const rows: BlockInsert[] = []
  const ts = events.ts
  for (let start = packed; start < upTo;) {
    const end =
      start < phase
        ? phase
        : phase + (Math.floor((start - phase) / blockEvents) + 1) * blockEvents
    for (let from = start - packed; from < end - packed;) {
      let to = from + 1
      while (to < end - packed && ts[to]! - ts[from]! < partitionMs) to++
      rows.push({
        robot,
        first_ts: ts[from]!,
        last_ts: ts[to - 1]!,
        count: to - from,
        odo: events.total[from]!,
        odo_carry: events.carry[from]!,
        // The codec's buffer is reused by the next call: copied.
        data: Buffer.from(encodeBlock(events, from, to)),
      })
      from = to
    }
    start = end
  }
  return rows
}

// --- the tail ---

/**
 * A robot's events not in a block yet, as its row keeps them: `tail` is
 * a run of chunks, one per batch that added events, each the offset of its
 * first timestamp from `tail_ts` (a varint) and then a block of codec 2
 * (block-codec.ts). So a batch appends its chunk to the row's value in
 * SQL (`tail || chunk`), without reading the tail: it is read only by the
 * batch that packs it into blocks, or that judges an event against it.
 */
export interface TailRow {
  /** The chunks; `null` when there are no events. */
  readonly tail: Uint8Array | null
  /** The first event's timestamp; `null` when there are none. */
  readonly tail_ts: number | null
  /** The running odometer at the first event (rules.ts, RunningTotal). */
  readonly tail_odo: number
  readonly tail_carry: number
}

/** A tail's events; empty when it has none. */
export function decodeTail(row: TailRow): EventColumns {
  return row.tail === null
    ? emptyColumns()
    : decodeChunks(row.tail, row.tail_ts!)
}

/** The row values of a tail holding exactly `columns`, in one chunk. */
export function encodeTail(
  columns: EventColumns,
  first: RunningTotal,
): TailRow {
  const n = columns.ts.length
  if (n === 0) return { tail: null, tail_ts: null, tail_odo: 0, tail_carry: 0 }
  return {
    tail: encodeChunk(columns, 0, n, columns.ts[0]!),
    tail_ts: columns.ts[0]!,
    tail_odo: first.total,
    tail_carry: first.carry,
  }
}

/**
 * `columns` with the running odometer at each event, from `first`, the
 * running odometer at the first: the steps added one by one, as ingest
 * added them, so every total is the same to the bit.
 */
export function withRunningTotals(
  columns: EventColumns,
  first: RunningTotal,
): RunningColumns {
  const total: number[] = []
  const carry: number[] = []
  let running = first
  const { x, y } = columns
  for (let i = 0; i < columns.ts.length; i++) {
    if (i > 0) {
      running = addStep(
        running.total,
        running.carry,
        distance(x[i - 1]!, y[i - 1]!, x[i]!, y[i]!),
      )
    }
    total.push(running.total)
    carry.push(running.carry)
  }
  return { ...columns, total, carry }
}

/**
 * Whether a robot with `count` events, `packed` of them in blocks, has
 * events to pack: a block end past `packed`.
 */
export function reachesBlockEnd(
  robot: string,
  count: number,
  packed: number,
  layout: Pick<Layout, 'blockEvents'>,
): boolean {
  const { blockEvents } = layout
  return (
    packedCount(count, blockPhase(robot, blockEvents), blockEvents) > packed
  )
}

/** What a robot's new events make of its tail. */
export type TailAdvance =
  | {
      /** Nothing reaches a block end: `chunk` is appended to the tail. */
      readonly kind: 'append'
      readonly chunk: Buffer
      /** The tail's first event and its running odometer, after. */
      readonly row: Omit<TailRow, 'tail'>
    }
  | {
      /** Events reached a block end: blocks to insert, and a new tail. */
      readonly kind: 'pack'
      readonly blocks: BlockInsert[]
      /** The robot's events packed into blocks, after. */
      readonly packed: number
      readonly row: TailRow
    }

/**
 * Adds `added` (a robot's accepted events, after every stored one, with
 * their running odometers) to the tail of `row`, of `tailCount` events.
 * When they reach a block end, `tail` (its events, decoded from the row)
 * is needed: what reaches the end is packed, the rest is the new tail.
 * `packed` counts the robot's events in blocks before.
 */
export function advanceTail(
  robot: string,
  row: Omit<TailRow, 'tail'>,
  tailCount: number,
  tail: EventColumns | undefined,
  added: RunningColumns,
  packed: number,
  layout: Layout,
): TailAdvance {
  const count = packed + tailCount + added.ts.length
  const upTo = packedCount(
    count,
    blockPhase(robot, layout.blockEvents),
    layout.blockEvents,
  )
  if (upTo === packed) {
    const start: Omit<TailRow, 'tail'> =
      row.tail_ts !== null
        ? row
        : {
            tail_ts: added.ts[0]!,
            tail_odo: added.total[0]!,
            tail_carry: added.carry[0]!,
          }
    return {
      kind: 'append',
      chunk: encodeChunk(added, 0, added.ts.length, start.tail_ts!),
      row: start,
    }
  }
  if (tail === undefined || tail.ts.length !== tailCount) {
    throw new Error(`the tail of ${robot} was not read before packing it`)
  }
  const all = concatRunning(
    withRunningTotals(tail, { total: row.tail_odo, carry: row.tail_carry }),
    added,
  )
  const blocks = packBlocks(robot, all, packed, upTo, layout)
  const k = upTo - packed
  const rest: EventColumns = {
    ts: all.ts.slice(k),
    x: all.x.slice(k),
    y: all.y.slice(k),
  }
  const first = { total: all.total[k] ?? 0, carry: all.carry[k] ?? 0 }
  return { kind: 'pack', blocks, packed: upTo, row: encodeTail(rest, first) }
}

/** `a` then `b`, as new columns. */
function concatColumns(a: EventColumns, b: EventColumns): EventColumns {
  return { ts: a.ts.concat(b.ts), x: a.x.concat(b.x), y: a.y.concat(b.y) }
}

/** `a` then `b`, as new columns. */
export function concatRunning(
  a: RunningColumns,
  b: RunningColumns,
): RunningColumns {
  return {
    ...concatColumns(a, b),
    total: a.total.concat(b.total),
    carry: a.carry.concat(b.carry),
  }
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

/**
 * Partitions made in one transaction at most: each takes locks (on the
 * table, its index and TOAST), and a transaction's locks are bounded by
 * the server's lock table (`max_locks_per_transaction`, 64 by default).
 */
const PARTITIONS_PER_TRANSACTION = 16

/** Makes partitions `numbers` of `blocks` where missing. */
export async function createPartitions(
  sql: Sql,
  numbers: readonly number[],
  layout: Layout,
): Promise<void> {
  for (let i = 0; i < numbers.length; i += PARTITIONS_PER_TRANSACTION) {
    const some = numbers.slice(i, i + PARTITIONS_PER_TRANSACTION)
    await sql.begin((tx) => makePartitions(tx, some, layout))
  }
}

/** Makes partitions `numbers` of `blocks` where missing, in `tx`. */
async function makePartitions(
  tx: Tx,
  numbers: readonly number[],
  layout: Layout,
): Promise<void> {
  // Two processes never make the same partition at once.
  await tx`SELECT pg_advisory_xact_lock(${PARTITION_LOCK})`
  for (const n of numbers) {
    const from = n * layout.partitionMs
    await tx.unsafe(
      `CREATE TABLE IF NOT EXISTS ${PARTITION_PREFIX}${n} PARTITION OF blocks
       FOR VALUES FROM (${from}) TO (${from + layout.partitionMs})`,
    )
  }
}

/** Inserts rows into `blocks`, in one statement. */
export function insertBlocks(sql: Tx, blocks: readonly BlockInsert[]) {
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

// --- migration 5 ---

/** Rows of `recent` read at a time by {@link packRecent}. */
const RECENT_CHUNK = 16_384

/**
 * Migration 5's step: moves the events of `recent` (the table of one row
 * an event that migration 4 kept, and that databases of schema 3 and
 * before hold all their events in) into blocks and the robots' tails,
 * robot by robot, a chunk of rows at a time, then drops it. Runs in the
 * migration's transaction, so no batch of this layout runs before it is
 * done.
 */
export async function packRecent(tx: Tx): Promise<void> {
  const layout = await readLayout(tx)
  const known = await listPartitions(tx)
  const robots = await tx<{ name: string; packed: number }[]>`
    SELECT name, packed FROM robots WHERE event_count > packed ORDER BY name`
  for (const robot of robots) {
    let packed = robot.packed
    let pending: RunningColumns = {
      ts: [],
      x: [],
      y: [],
      total: [],
      carry: [],
    }
    let after = -1
    for (;;) {
      const rows = await tx`
        SELECT ts, x, y, odo, carry FROM recent
        WHERE robot = ${robot.name} AND ts > ${after}
        ORDER BY ts LIMIT ${RECENT_CHUNK}`.values()
      for (const [ts, x, y, odo, carry] of rows) {
        pending.ts.push(ts as number)
        pending.x.push(x as number)
        pending.y.push(y as number)
        pending.total.push(odo as number)
        pending.carry.push(carry as number)
      }
      const upTo = packedCount(
        packed + pending.ts.length,
        blockPhase(robot.name, layout.blockEvents),
        layout.blockEvents,
      )
      if (upTo > packed) {
        const blocks = packBlocks(robot.name, pending, packed, upTo, layout)
        const needed = [
          ...new Set(blocks.map((b) => partitionOf(b.last_ts, layout))),
        ].filter((n) => !known.has(n))
        if (needed.length > 0) {
          await makePartitions(tx, needed, layout)
          for (const n of needed) known.add(n)
        }
        for (let i = 0; i < blocks.length; i += 256) {
          await insertBlocks(tx, blocks.slice(i, i + 256))
        }
        const k = upTo - packed
        pending = {
          ts: pending.ts.slice(k),
          x: pending.x.slice(k),
          y: pending.y.slice(k),
          total: pending.total.slice(k),
          carry: pending.carry.slice(k),
        }
        packed = upTo
      }
      if (rows.length < RECENT_CHUNK) break
      after = rows[rows.length - 1]![0] as number
    }
    const tail = encodeTail(pending, {
      total: pending.total[0] ?? 0,
      carry: pending.carry[0] ?? 0,
    })
    await tx`
      UPDATE robots SET packed = ${packed}, tail = ${tail.tail as Buffer},
        tail_ts = ${tail.tail_ts}, tail_odo = ${tail.tail_odo},
        tail_carry = ${tail.tail_carry}
      WHERE name = ${robot.name}`
  }
  await tx`DROP TABLE recent`
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
