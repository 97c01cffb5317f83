/**
 * Blocks: how a store packs a run of one robot's events into one row (a
 * BLOB in SQLite, a `bytea` in PostgreSQL), and reads it back bit for bit.
 *
 * Codec 2 (written since issue 14), column by column after a header:
 *
 *     0x02                       the codec
 *     count                      varint: the events
 *     modes                      one byte: timestamps, x, y (2 bits each)
 *     scales                     one byte: x's and y's decimal scale k (4 bits each)
 *     timestamps                 from the second on
 *     x, y                       each column whole
 *
 * - Timestamps: each step's change from the step before (delta of delta)
 *   as a zigzag varint: a robot at a steady rate costs one byte an event.
 *   Steps beyond 2^50 ms fall back to plain steps as unsigned varints.
 * - Positions: robots write decimals (`12.345`), which are integers once
 *   scaled by 10^k. The encoder takes, per column, the smallest k from 0
 *   to 9 at which every value comes back exactly (`v / 10^k` is the same
 *   double, sign of zero included) and writes the integers' first value,
 *   then either their steps (delta) or the change of their steps (delta of
 *   delta), whichever is shorter for this block, as zigzag varints. Smooth
 *   motion favours delta of delta (a steady speed costs a byte), a random
 *   walk plain steps. A column no scale makes exact (full-precision
 *   doubles) is written raw, 8 bytes a value.
 * - Codec 1 (no header: its first byte is its first timestamp's step, 0)
 *   is read as before: a varint step, then x and y as raw doubles.
 *
 * Varints are little-endian base 128 (LEB128); zigzag maps 0, −1, 1, −2 …
 * to 0, 1, 2, 3 … Arithmetic stays within 2^53, so all of it is exact on
 * JavaScript numbers.
 */

import { runningTotalAlong, type RunningTotal } from '../domain/rules.ts'
import { lowerBound } from '../domain/timestamps.ts'

/** A run of one robot's events, oldest first, as parallel arrays. */
export interface EventColumns {
  readonly ts: number[]
  readonly x: number[]
  readonly y: number[]
}

/** Empty columns. */
export function emptyColumns(): EventColumns {
  return { ts: [], x: [], y: [] }
}

const CODEC_2 = 2

/** How a column is written. */
const RAW = 0
const DELTA = 1
const DELTA_OF_DELTA = 2

/** Largest decimal scale tried: 10^9 (nanometres for metres). */
const MAX_SCALE = 9
const POWERS = Array.from({ length: MAX_SCALE + 1 }, (_, k) => 10 ** k)
/** Scaled values, steps and their changes stay below 2^53 from this. */
const SAFE = 2 ** 50

const TWO_POW_7 = 128

/**
 * Where blocks are encoded: one buffer, grown as needed, instead of a new
 * one a block, each held outside the collected heap until a full
 * collection of the store thread, which a steady ingest rarely runs.
 */
let scratch = Buffer.alloc(0)
let offset = 0

function writeVarint(value: number) {
  while (value >= TWO_POW_7) {
    scratch[offset++] = (value % TWO_POW_7) | 0x80
    value = Math.floor(value / TWO_POW_7)
  }
  scratch[offset++] = value
}

function zigzag(value: number): number {
  return value < 0 ? -2 * value - 1 : 2 * value
}

function varintLength(value: number): number {
  let length = 1
  while (value >= TWO_POW_7) {
    value = Math.floor(value / TWO_POW_7)
    length++
  }
  return length
}

/**
 * The smallest scale at which every value of `values[from..to)` is an
 * integer `v` with `v / 10^k` the very same double, or -1.
 */
function decimalScale(values: readonly number[], from: number, to: number) {
  for (let k = 0; k <= MAX_SCALE; k++) {
    const power = POWERS[k]!
    let exact = true
    for (let i = from; i < to && exact; i++) {
      const value = values[i]!
      const scaled = Math.round(value * power)
      // -0 scales to -0, which a varint cannot carry: raw.
      exact =
        Math.abs(scaled) < SAFE &&
        !Object.is(scaled, -0) &&
        Object.is(scaled / power, value)
    }
    if (exact) return k
  }
  return -1
}

/** Bytes of integer column `ints` as steps (delta) or changes of steps. */
function integerCost(ints: readonly number[], mode: number): number {
  let bytes = varintLength(zigzag(ints[0]!))
  let step = 0
  for (let i = 1; i < ints.length; i++) {
    const next = ints[i]! - ints[i - 1]!
    bytes += varintLength(zigzag(mode === DELTA ? next : next - step))
    step = next
  }
  return bytes
}

function writeIntegers(ints: readonly number[], mode: number) {
  writeVarint(zigzag(ints[0]!))
  let step = 0
  for (let i = 1; i < ints.length; i++) {
    const next = ints[i]! - ints[i - 1]!
    writeVarint(zigzag(mode === DELTA ? next : next - step))
    step = next
  }
}

/** Chooses how to write a position column: its mode, scale and integers. */
function planColumn(values: readonly number[], from: number, to: number) {
  const k = decimalScale(values, from, to)
  if (k < 0) return { mode: RAW, k: 0, ints: [] as number[] }
  const power = POWERS[k]!
  const ints: number[] = []
  for (let i = from; i < to; i++) ints.push(Math.round(values[i]! * power))
  const mode =
    integerCost(ints, DELTA_OF_DELTA) < integerCost(ints, DELTA)
      ? DELTA_OF_DELTA
      : DELTA
  return { mode, k, ints }
}

/**
 * Encodes events `from` to `to` (exclusive) of `columns` with codec 2. The
 * first timestamp is kept beside the blob (the row's `first_ts`).
 *
 * The block is valid until the next call: bind it to a statement (which
 * copies it) or copy it before encoding another.
 */
export function encodeBlock(
  columns: EventColumns,
  from: number,
  to: number,
): Buffer {
  return encodeAfter(columns, from, to, undefined)
}

/**
 * A chunk: events `from` to `to` of `columns` as a block of codec 2 after
 * the offset of their first timestamp from `baseTs` (a varint), so that
 * chunks appended one after another read back with {@link decodeChunks}.
 * A new buffer.
 */
export function encodeChunk(
  columns: EventColumns,
  from: number,
  to: number,
  baseTs: number,
): Buffer {
  return Buffer.from(encodeAfter(columns, from, to, columns.ts[from]! - baseTs))
}

/** Chunks of {@link encodeChunk}, one after another, into `into` (appending). */
export function decodeChunks(
  data: Uint8Array,
  baseTs: number,
  into: EventColumns = emptyColumns(),
): EventColumns {
  let at = 0
  while (at < data.length) {
    let offset = 0
    let scale = 1
    for (;;) {
      const byte = data[at++]!
      offset += (byte & 0x7f) * scale
      if (byte < 0x80) break
      scale *= TWO_POW_7
    }
    at = decodeCodec2(data, at, baseTs + offset, into)
  }
  return into
}

/** {@link encodeBlock}, after the varint `prefix` when one is given. */
function encodeAfter(
  columns: EventColumns,
  from: number,
  to: number,
  prefix: number | undefined,
): Buffer {
  const n = to - from
  // Prefix and header, then at most 10 bytes a timestamp and 8 a coordinate.
  if (scratch.length < 32 + n * 26) scratch = Buffer.allocUnsafe(32 + n * 26)
  offset = 0
  if (prefix !== undefined) writeVarint(prefix)
  const ts = columns.ts
  let tsMode = DELTA_OF_DELTA
  for (let i = from + 1; i < to; i++) {
    if (ts[i]! - ts[i - 1]! >= SAFE) tsMode = DELTA
  }
  const x = planColumn(columns.x, from, to)
  const y = planColumn(columns.y, from, to)

  scratch[offset++] = CODEC_2
  writeVarint(n)
  scratch[offset++] = tsMode | (x.mode << 2) | (y.mode << 4)
  scratch[offset++] = (x.k << 4) | y.k
  let step = 0
  for (let i = from + 1; i < to; i++) {
    const next = ts[i]! - ts[i - 1]!
    writeVarint(tsMode === DELTA ? next : zigzag(next - step))
    step = next
  }
  for (const [plan, values] of [
    [x, columns.x],
    [y, columns.y],
  ] as const) {
    if (plan.mode === RAW) {
      for (let i = from; i < to; i++) {
        scratch.writeDoubleLE(values[i]!, offset)
        offset += 8
      }
    } else {
      writeIntegers(plan.ints, plan.mode)
    }
  }
  return scratch.subarray(0, offset)
}

/**
 * Decodes a block of either codec into `into` (appending), given the
 * block's first timestamp. Returns `into`.
 */
export function decodeBlock(
  data: Uint8Array,
  firstTs: number,
  into: EventColumns = emptyColumns(),
): EventColumns {
  if (data[0] !== CODEC_2) return decodeCodec1(data, firstTs, into)
  decodeCodec2(data, 0, firstTs, into)
  return into
}

/**
 * Decodes the codec-2 block that starts at byte `start` of `data` into
 * `into` (appending); returns the offset of the byte after it, so that
 * blocks written one after another can be read in turn.
 */
function decodeCodec2(
  data: Uint8Array,
  start: number,
  firstTs: number,
  into: EventColumns,
): number {
  if (data[start] !== CODEC_2) throw new Error('not a block of codec 2')
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  let at = start + 1
  const varint = () => {
    let value = 0
    let scale = 1
    for (;;) {
      const byte = data[at++]!
      value += (byte & 0x7f) * scale
      if (byte < 0x80) return value
      scale *= TWO_POW_7
    }
  }
  const signed = () => {
    const value = varint()
    return value % 2 === 0 ? value / 2 : -(value + 1) / 2
  }
  const n = varint()
  const modes = data[at++]!
  const scales = data[at++]!
  let ts = firstTs
  into.ts.push(ts)
  let step = 0
  for (let i = 1; i < n; i++) {
    step = (modes & 3) === DELTA ? varint() : step + signed()
    ts += step
    into.ts.push(ts)
  }
  const columns = [
    [(modes >> 2) & 3, scales >> 4, into.x],
    [(modes >> 4) & 3, scales & 15, into.y],
  ] as const
  for (const [mode, k, out] of columns) {
    if (mode === RAW) {
      for (let i = 0; i < n; i++) {
        out.push(view.getFloat64(at, true))
        at += 8
      }
      continue
    }
    const power = POWERS[k]!
    let value = signed()
    out.push(value / power)
    let change = 0
    for (let i = 1; i < n; i++) {
      change = mode === DELTA ? signed() : change + signed()
      value += change
      out.push(value / power)
    }
  }
  return at
}

/** Codec 1: per event a varint step, then x and y as raw doubles. */
function decodeCodec1(
  data: Uint8Array,
  firstTs: number,
  into: EventColumns,
): EventColumns {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  let at = 0
  let ts = firstTs
  while (at < data.length) {
    let delta = 0
    let scale = 1
    for (;;) {
      const byte = data[at++]!
      delta += (byte & 0x7f) * scale
      if (byte < 0x80) break
      scale *= TWO_POW_7
    }
    ts += delta
    into.ts.push(ts)
    into.x.push(view.getFloat64(at, true))
    into.y.push(view.getFloat64(at + 8, true))
    at += 16
  }
  return into
}

// --- reading events out of blocks, for both stores ---

/** A stored block: enough to find an event in it and its running odometer. */
export interface StoredBlock {
  readonly first_ts: number
  /** The running odometer at the block's first event (rules.ts, RunningTotal). */
  readonly odo: number
  readonly odo_carry: number
  readonly data: Uint8Array
}

/** An event found for an odometer bound, with its running odometer. */
export interface FoundEvent {
  readonly ts: number
  readonly running: RunningTotal
}

/**
 * In a block: the first event at or after `bound` (`'first'`) or the last
 * at or before it (`'last'`); `undefined` when it holds none. A block keeps
 * the running odometer of its first event only; the others' are
 * recomputed by adding the steps as ingest did, so they are the same to
 * the bit.
 */
export function eventInBlock(
  block: StoredBlock,
  bound: number,
  which: 'first' | 'last',
): FoundEvent | undefined {
  return eventInColumns(
    decodeBlock(block.data, block.first_ts),
    { total: block.odo, carry: block.odo_carry },
    bound,
    which,
  )
}

/**
 * {@link eventInBlock} on a run of events already decoded, given the
 * running odometer at its first event.
 */
export function eventInColumns(
  columns: EventColumns,
  first: RunningTotal,
  bound: number,
  which: 'first' | 'last',
): FoundEvent | undefined {
  const index =
    which === 'first'
      ? lowerBound(columns.ts, bound)
      : lowerBound(columns.ts, bound + 1) - 1
  if (index < 0 || index >= columns.ts.length) return undefined
  return {
    ts: columns.ts[index]!,
    running: runningTotalAlong(first, columns.x, columns.y, index),
  }
}

/**
 * Appends the events of `columns` within [from, to] to `out` until it holds
 * `max`; returns the last timestamp of `columns` (-1 when empty).
 */
export function copyRange(
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
