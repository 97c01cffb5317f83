import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { frameFigures } from './frames.ts'

/** Frame starts every `step` ms from `from` to `to` (both included). */
function steady(from: number, to: number, step: number): number[] {
  const out: number[] = []
  for (let t = from; t <= to; t += step) out.push(t)
  return out
}

describe('frameFigures', () => {
  it('should measure the intervals between frames inside the window', () => {
    const figures = frameFigures(steady(0, 2000, 20), [], 500, 1500)
    assert.equal(figures.intervals.p50, 20)
    assert.equal(figures.intervals.p99, 20)
    assert.equal(figures.intervals.max, 20)
    // 520 … 1500: the interval ending at 500 only touches the window.
    assert.equal(figures.intervals.count, 50)
    // 500 … 1500 inclusive: 51 frames over one second.
    assert.equal(figures.framesPerSecond, 51)
    assert.equal(figures.covered, true)
  })

  it('should count a frame that froze across an edge of the window', () => {
    // Frozen from 400 to 700, the window starting at 500.
    const frames = [...steady(0, 400, 20), ...steady(700, 2000, 20)]
    const figures = frameFigures(frames, [], 500, 1500)
    assert.equal(figures.intervals.max, 300)
    const late = frameFigures(
      [...steady(0, 1400, 20), ...steady(1800, 2000, 20)],
      [],
      500,
      1500,
    )
    assert.equal(late.intervals.max, 400)
  })

  it('should give the p99 of the slowest frames, nearest-rank', () => {
    // 100 intervals: 98 of 10 ms and two of 200 ms.
    const frames = [0]
    for (let i = 1; i <= 100; i++)
      frames.push(frames.at(-1)! + (i > 98 ? 200 : 10))
    const figures = frameFigures(frames, [], 0, frames.at(-1)!)
    assert.equal(figures.intervals.count, 100)
    assert.equal(figures.intervals.p50, 10)
    assert.equal(figures.intervals.p99, 200)
    assert.equal(figures.intervals.max, 200)
  })

  it('should count and total the long tasks that start inside the window', () => {
    const figures = frameFigures(
      steady(0, 2000, 20),
      [
        [400, 300],
        [600, 80],
        [1200, 120],
        [1600, 60],
      ],
      500,
      1500,
    )
    assert.equal(figures.longTasks, 2)
    assert.equal(figures.longTaskMs, 200)
    assert.equal(figures.longestTaskMs, 120)
    assert.equal(frameFigures([0, 2000], [], 500, 1500).longestTaskMs, 0)
  })

  it('should say when the recording does not span the window', () => {
    assert.equal(
      frameFigures(steady(600, 2000, 20), [], 500, 1500).covered,
      false,
    )
    assert.equal(
      frameFigures(steady(0, 1400, 20), [], 500, 1500).covered,
      false,
    )
    const none = frameFigures([], [], 500, 1500)
    assert.equal(none.covered, false)
    assert.equal(none.intervals.count, 0)
    assert.ok(Number.isNaN(none.intervals.p99))
  })
})
