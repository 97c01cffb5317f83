/**
 * The events of the stores in `fixtures/`, written by earlier layouts: the
 * tests of the migrations open them with today's code and read every event
 * back.
 * - `blocks-v1.db`: the block layout before codec 2 (raw doubles, see
 *   ../block-codec.ts), closed cleanly.
 * - `store-v2.db`: schema version 2, written by the store at commit
 *   4ffc133 in batches of 100 events and left without a clean close (its
 *   write-ahead log folded in by another connection): each robot has two
 *   blocks (events 0-511) and its tail (512-699) in the log, and the log
 *   still holds the packed events too.
 *
 * Three robots with the values a codec finds hard: positions to the
 * millimetre, full-precision doubles, and extremes (huge, tiny, zero,
 * integers); timestamps a second apart with jitter, and a long gap.
 */
import type { TelemetryEvent } from '../../domain/event.ts'

export const FIXTURE_EVENTS_PER_ROBOT = 700

/** A small seeded generator (mulberry32), so the fixture needs nothing else. */
export function generator(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Every event of the fixture, robot by robot, in timestamp order. */
export function fixtureEvents(): TelemetryEvent[] {
  const events: TelemetryEvent[] = []
  const random = generator(20261201)
  const extremes = [0, 1e300, -1e300, 5e-324, -2.5e-308, 123456789, -7, 0.1]
  for (let r = 0; r < 3; r++) {
    let ts = 1_600_000_000_000 + r
    for (let k = 0; k < FIXTURE_EVENTS_PER_ROBOT; k++) {
      ts += k === 400 ? 86_400_000 : 1000 + Math.floor(random() * 7)
      let x: number
      let y: number
      if (r === 0) {
        x = Number((k * 0.137 + random() * 0.01).toFixed(3))
        y = Number((50 - k * 0.021).toFixed(3))
      } else if (r === 1) {
        x = (random() - 0.5) * 2000
        y = random() * 1e-3
      } else {
        x = extremes[k % extremes.length]!
        y = extremes[(k * 3 + 1) % extremes.length]!
      }
      events.push({ robot: `fixture-${r}`, timestamp: ts, x, y })
    }
  }
  return events
}
