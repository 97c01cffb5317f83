/**
 * The synthetic fleet every bench process agrees on: robot names, the
 * timestamps of preloaded and of live events, and where the robots are.
 */
import { Random } from '../test/support/random.ts'

/** First timestamp of preloaded events (ms); one event per second per robot. */
export const PRELOAD_T0 = 1_600_000_000_000
/** Milliseconds between two preloaded events of one robot. */
export const PRELOAD_STEP = 1000
/**
 * First timestamp of live events sent over the WebSocket: after every
 * preloaded event (10 million events at one per second end before it).
 */
export const LIVE_T0 = 1_700_000_000_000
/** Milliseconds between two live events of one robot. */
export const LIVE_STEP = 10

/**
 * What every robot name of the bench starts with: the `ingest-tokens`
 * scenario scopes its ingest token to `robot-*`.
 */
export const ROBOT_PREFIX = 'robot-'

/**
 * The name of robot `index` (0-based): `robot-0001` and up. Every bench
 * process names robots with it; each scenario has a store of its own, so
 * the names need no per-scenario part.
 */
export function robotName(index: number): string {
  return `${ROBOT_PREFIX}${String(index + 1).padStart(4, '0')}`
}

/**
 * Where preloaded robot `robot` is at its `k`-th event: a zig-zag whose
 * every step is 1.3 long (0.5 along x, 1.2 along y), so the odometer over
 * events `i..j` is `1.3 * (j - i)`. Coordinates are not integers, so SQLite
 * stores them as 8-byte reals, as it would real positions.
 */
export function preloadPosition(robot: number, k: number): [number, number] {
  return [robot + 0.5 * k + 0.123, 1.2 * (k & 1) + 0.456]
}

/** The distance each preloaded robot travels between consecutive events. */
export const PRELOAD_STEP_LENGTH = 1.3

/**
 * A short cycle of position texts per robot for live events (a random walk
 * with two decimals). A robot's `k`-th live event is at `cycle[k % length]`;
 * its timestamp differs at every event, so no event is a duplicate.
 */
export function livePositions(robot: number, length = 64): string[] {
  const generator = new Random(0x5eed + robot)
  const random = () => generator.next()
  let x = (random() - 0.5) * 1000
  let y = (random() - 0.5) * 1000
  const out: string[] = []
  for (let i = 0; i < length; i++) {
    x += random() * 2 - 1
    y += random() * 2 - 1
    out.push(`${x.toFixed(2)},${y.toFixed(2)}`)
  }
  return out
}
