/**
 * What the dashboard scenario makes of what the page recorded
 * (dashboard.ts): the frame intervals and the long tasks inside the load
 * generator's measured window, all times wall-clock milliseconds.
 */
import { summarize, type LatencySummary } from './stats.ts'

/** A long task as the page saw it: its start (wall-clock ms) and duration (ms). */
export type LongTask = readonly [start: number, duration: number]

/** The page's smoothness over one window. */
export interface FrameFigures {
  /**
   * The time from each frame's start to the next one's (ms), for every
   * pair of consecutive frames whose interval overlaps the window: a frame
   * that froze across an edge of the window is counted.
   */
  readonly intervals: LatencySummary
  /** Frames that started inside the window, per second of it. */
  readonly framesPerSecond: number
  /** Long tasks (50 ms or more) that started inside the window. */
  readonly longTasks: number
  /** Their durations summed, and the longest (0 when none), ms. */
  readonly longTaskMs: number
  readonly longestTaskMs: number
  /**
   * Whether the recording covers the whole window: a frame at or before
   * its start and one at or after its end. Without that, a freeze at an
   * edge would go unseen.
   */
  readonly covered: boolean
}

/**
 * The figures of the frames (frame starts, in order) and long tasks that a
 * page recorded, over the window `[start, end]`.
 *
 * @example
 * frameFigures([0, 16, 33, 150, 166], [[33, 110]], 10, 160)
 * // intervals 16, 17, 117, 16 (p50 16, max 117), 3 frames inside over
 * // 0.15 s, one long task of 110 ms, covered
 */
export function frameFigures(
  frames: readonly number[],
  longTasks: readonly LongTask[],
  start: number,
  end: number,
): FrameFigures {
  const intervals: number[] = []
  let inside = 0
  for (let i = 0; i < frames.length; i++) {
    const at = frames[i]!
    if (at >= start && at <= end) inside++
    if (i === 0) continue
    const before = frames[i - 1]!
    if (at > start && before < end) intervals.push(at - before)
  }
  let count = 0
  let total = 0
  let longest = 0
  for (const [at, duration] of longTasks) {
    if (at < start || at > end) continue
    count++
    total += duration
    longest = Math.max(longest, duration)
  }
  const seconds = (end - start) / 1000
  const first = frames[0]
  const last = frames.at(-1)
  return {
    intervals: summarize(intervals),
    framesPerSecond: seconds > 0 ? inside / seconds : NaN,
    longTasks: count,
    longTaskMs: total,
    longestTaskMs: longest,
    covered:
      first !== undefined &&
      last !== undefined &&
      first <= start &&
      last >= end,
  }
}
