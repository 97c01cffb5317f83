import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  addStep,
  decide,
  distance,
  needsStoredPosition,
  odometerBetween,
  type RobotState,
} from './rules.ts'

const state: RobotState = {
  firstTimestamp: 10,
  lastTimestamp: 20,
  lastX: 3,
  lastY: 4,
  odometer: 5,
  odometerCarry: 0,
  eventCount: 2,
}
const ev = (timestamp: number, x: number, y: number) => ({
  robot: 'r',
  timestamp,
  x,
  y,
})

describe('decide', () => {
  it('should store the first event of a robot with odometer 0', () => {
    assert.deepStrictEqual(decide(undefined, ev(7, 1, 2)), {
      outcome: 'ok',
      state: {
        firstTimestamp: 7,
        lastTimestamp: 7,
        lastX: 1,
        lastY: 2,
        odometer: 0,
        odometerCarry: 0,
        eventCount: 1,
      },
    })
  })

  it('should store a newer event and carry the running odometer', () => {
    assert.deepStrictEqual(decide(state, ev(21, 6, 8)), {
      outcome: 'ok',
      state: {
        firstTimestamp: 10,
        lastTimestamp: 21,
        lastX: 6,
        lastY: 8,
        odometer: 10,
        odometerCarry: 0,
        eventCount: 3,
      },
    })
  })

  it('should call the latest event again a duplicate, another position a conflict', () => {
    assert.deepStrictEqual(decide(state, ev(20, 3, 4)), { outcome: 'dup' })
    assert.deepStrictEqual(decide(state, ev(20, 3, 5)), { outcome: 'conflict' })
  })

  it('should judge an older event by the event stored at its timestamp', () => {
    assert.deepStrictEqual(decide(state, ev(10, 0, 0), { x: 0, y: 0 }), {
      outcome: 'dup',
    })
    assert.deepStrictEqual(decide(state, ev(10, 0, 1), { x: 0, y: 0 }), {
      outcome: 'conflict',
    })
    assert.deepStrictEqual(decide(state, ev(15, 0, 0), undefined), {
      outcome: 'stale',
    })
    assert.deepStrictEqual(decide(state, ev(0, 0, 0)), { outcome: 'stale' })
  })

  it('should ask for the stored position only for events older than the latest', () => {
    assert.equal(needsStoredPosition(undefined, ev(1, 0, 0)), false)
    assert.equal(needsStoredPosition(state, ev(21, 0, 0)), false)
    assert.equal(needsStoredPosition(state, ev(20, 0, 0)), false)
    assert.equal(needsStoredPosition(state, ev(19, 0, 0)), true)
  })
})

describe('distance', () => {
  it('should be Euclidean and symmetric', () => {
    assert.equal(distance(0, 0, 3, 4), 5)
    assert.equal(distance(3, 4, 0, 0), 5)
    assert.equal(distance(1, 1, 1, 1), 0)
  })
})

describe('running totals', () => {
  it('should keep a small step after a long trip exactly', () => {
    // 2e16 + 1 is not a double: the step lives on in the carry.
    const start = addStep(0, 0, 1e16)
    const far = addStep(start.total, start.carry, 1e16)
    const next = addStep(far.total, far.carry, 1)
    assert.deepStrictEqual(far, { total: 2e16, carry: 0 })
    assert.deepStrictEqual(next, { total: 2e16, carry: 1 })
    assert.equal(odometerBetween(far, next), 1)
    assert.equal(odometerBetween(start, next), 1e16 + 1)
  })

  it('should match a plain sum of the steps of an interval', () => {
    let running = { total: 0, carry: 0 }
    const totals = [running]
    const steps: number[] = []
    for (let i = 0; i < 10_000; i++) {
      const step = i < 10 ? 1e12 * Math.PI : Math.SQRT2 * ((i % 97) + 0.1)
      steps.push(step)
      running = addStep(running.total, running.carry, step)
      totals.push(running)
    }
    const direct = steps.slice(5000, 6000).reduce((a, b) => a + b, 0)
    const viaTotals = odometerBetween(totals[5000]!, totals[6000]!)
    assert.ok(
      Math.abs(viaTotals - direct) <= direct * 1e-15,
      `${viaTotals} vs ${direct}`,
    )
  })
})
