/**
 * Reads of the SQLite store: a robot's events are in its blocks (older)
 * and then in its tail in memory (newer), so every read looks in the
 * blocks up to the robot's last sealed timestamp, and in the tail after it.
 * A robot is a slot of the fleet (sqlite-fleet.ts), loaded by the caller.
 */
import { type RunningTotal, type StoredPosition } from '../../domain/rules.ts'
import { lowerBound } from '../../domain/timestamps.ts'
import {
  copyRange,
  decodeBlock,
  emptyColumns,
  eventInBlock,
  type EventColumns,
  type FoundEvent,
} from '../block-codec.ts'
import type { Fleet, Tail } from './sqlite-fleet.ts'
import type { BlockRow, Statements } from './sqlite-sql.ts'

/** Events of `robot` from `from` to `to`, oldest first, at most `max`. */
export function readPage(
  sql: Statements,
  fleet: Fleet,
  slot: number,
  from: number,
  to: number,
  max: number,
): EventColumns {
  const out = emptyColumns()
  const id = fleet.id(slot)
  if (from <= fleet.sealedLastTs(slot)) {
    const startBlock = sql.blockStartingAtOrBefore.pluck().get(id, from)
    const blocks = sql.blocksFrom.iterate(
      id,
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
  if (fleet.tailCount(slot) > 0) copyRange(fleet.tail(slot), from, to, max, out)
  return out
}

/**
 * The running total at the first event at or after `start` (`'first'`) or
 * at the last event at or before `end` (`'last'`); `undefined` when that
 * event is not within [start, end]. Two of these make an odometer.
 */
export function runningTotalAt(
  sql: Statements,
  fleet: Fleet,
  slot: number,
  start: number,
  end: number,
  which: 'first' | 'last',
): RunningTotal | undefined {
  const found =
    which === 'first'
      ? firstAtOrAfter(sql, fleet, slot, start)
      : lastAtOrBefore(sql, fleet, slot, end)
  if (found === undefined || found.ts < start || found.ts > end) {
    return undefined
  }
  return found.running
}

/**
 * The position stored at `ts`, for an event older than the robot's latest;
 * `undefined` when nothing is stored there.
 */
export function storedPositionAt(
  sql: Statements,
  fleet: Fleet,
  slot: number,
  ts: number,
): StoredPosition | undefined {
  const tailFirst = fleet.tailFirstTs(slot)
  if (tailFirst !== undefined && ts >= tailFirst) {
    return fleet.tailPositionAt(slot, ts)
  }
  if (ts > fleet.sealedLastTs(slot)) return undefined
  const block = sql.blockAtOrBefore.get(fleet.id(slot), ts) as
    BlockRow | undefined
  if (block === undefined) return undefined
  return positionIn(decodeBlock(block.data, block.first_ts), ts)
}

function positionIn(
  columns: EventColumns,
  ts: number,
): StoredPosition | undefined {
  const i = lowerBound(columns.ts, ts)
  return columns.ts[i] === ts
    ? { x: columns.x[i]!, y: columns.y[i]! }
    : undefined
}

function firstAtOrAfter(
  sql: Statements,
  fleet: Fleet,
  slot: number,
  start: number,
): FoundEvent | undefined {
  const id = fleet.id(slot)
  if (start <= fleet.sealedLastTs(slot)) {
    const block = sql.blockAtOrBefore.get(id, start) as BlockRow | undefined
    if (block !== undefined && block.last_ts >= start) {
      return eventInBlock(block, start, 'first')
    }
    // Between two blocks, or before the first: the next block opens it.
    const next = sql.blockAfter.get(id, start) as BlockRow | undefined
    if (next !== undefined) {
      return {
        ts: next.first_ts,
        running: { total: next.odo, carry: next.odo_carry },
      }
    }
  }
  if (fleet.tailCount(slot) === 0) return undefined
  const tail = fleet.tail(slot)
  return eventInTail(tail, lowerBound(tail.ts, start))
}

function lastAtOrBefore(
  sql: Statements,
  fleet: Fleet,
  slot: number,
  end: number,
): FoundEvent | undefined {
  if (fleet.tailCount(slot) > 0) {
    const tail = fleet.tail(slot)
    const index = lowerBound(tail.ts, end + 1) - 1
    if (index >= 0) return eventInTail(tail, index)
  }
  const block = sql.blockAtOrBefore.get(fleet.id(slot), end) as
    BlockRow | undefined
  return block === undefined ? undefined : eventInBlock(block, end, 'last')
}

function eventInTail(tail: Tail, index: number): FoundEvent | undefined {
  if (index < 0 || index >= tail.ts.length) return undefined
  return {
    ts: tail.ts[index]!,
    running: { total: tail.total[index]!, carry: tail.carry[index]! },
  }
}
