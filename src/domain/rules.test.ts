import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  decide,
  distance,
  needsStoredPosition,
  type RobotState,
} from './rules.ts'

const state: RobotState = {
  firstTimestamp: 10,
  lastTimestamp: 20,
  lastX: 3,
  lastY: 4,
  odometer: 5,
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
