import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { judgeBatch, storedPositionsNeeded, type StoredState } from './batch.ts'
import { decide, type RobotState } from './rules.ts'

const ev = (robot: string, timestamp: number, x: number, y: number) => ({
  robot,
  timestamp,
  x,
  y,
})

/** A store holding robot `r` with events at 10 (0,0) and 20 (3,4). */
function storedR(): StoredState & { asked: [string, number][] } {
  const state: RobotState = {
    firstTimestamp: 10,
    lastTimestamp: 20,
    lastX: 3,
    lastY: 4,
    odometer: 5,
    odometerCarry: 0,
    eventCount: 2,
  }
  const asked: [string, number][] = []
  return {
    asked,
    stateOf: (robot) => (robot === 'r' ? state : undefined),
    storedAt: (robot, ts) => {
      asked.push([robot, ts])
      return robot === 'r' && ts === 10 ? { x: 0, y: 0 } : undefined
    },
  }
}

describe('judgeBatch', () => {
  it('should judge each event against the ones before it in the batch', () => {
    const stored = storedR()
    const events = [
      ev('n', 1, 0, 0), // a new robot
      ev('n', 1, 0, 0), // the same again: dup, from the batch
      ev('n', 3, 3, 4), // newer
      ev('n', 1, 9, 9), // accepted earlier in the batch, another position
      ev('n', 2, 0, 0), // older, nothing there
      ev('r', 20, 3, 4), // the stored latest again
      ev('r', 10, 0, 0), // an older stored event again
      ev('r', 10, 1, 1), // an older stored timestamp, another position
      ev('r', 15, 0, 0), // older, nothing stored there
      ev('r', 23, 6, 8), // newer
      ev('r', 21, 0, 0), // between the stored latest and the batch's
    ]
    const { outcomes, changes } = judgeBatch(events, stored)
    assert.deepStrictEqual(outcomes, [
      'ok',
      'dup',
      'ok',
      'conflict',
      'stale',
      'dup',
      'dup',
      'conflict',
      'stale',
      'ok',
      'stale',
    ])
    // Only positions stored before the batch, and older than its latest,
    // are asked of the store.
    assert.deepStrictEqual(stored.asked, [
      ['r', 10],
      ['r', 10],
      ['r', 15],
    ])
    assert.deepStrictEqual([...changes.keys()], ['n', 'r'])
    const n = changes.get('n')!
    assert.deepStrictEqual(
      { ts: n.ts, x: n.x, y: n.y, total: n.total, carry: n.carry },
      { ts: [1, 3], x: [0, 3], y: [0, 4], total: [0, 5], carry: [0, 0] },
    )
    assert.deepStrictEqual(n.after, {
      firstTimestamp: 1,
      lastTimestamp: 3,
      lastX: 3,
      lastY: 4,
      odometer: 5,
      odometerCarry: 0,
      eventCount: 2,
    })
    const r = changes.get('r')!
    assert.deepStrictEqual(r.after, {
      firstTimestamp: 10,
      lastTimestamp: 23,
      lastX: 6,
      lastY: 8,
      odometer: 10,
      odometerCarry: 0,
      eventCount: 3,
    })
  })

  it('should give the same outcomes and states as deciding the events one by one', () => {
    const stored = storedR()
    const events = [
      ev('r', 25, 1, 1),
      ev('r', 25, 1, 1),
      ev('r', 30, 2, 2),
      ev('r', 26, 0, 0),
      ev('q', 5, 1, 0),
      ev('q', 6, 2, 0),
    ]
    const states = new Map<string, RobotState | undefined>()
    const oneByOne = events.map((event) => {
      const state = states.has(event.robot)
        ? states.get(event.robot)
        : stored.stateOf(event.robot)
      const decision = decide(state, event)
      if (decision.outcome === 'ok') states.set(event.robot, decision.state)
      return decision
    })
    const { outcomes, changes } = judgeBatch(events, stored)
    assert.deepStrictEqual(
      outcomes,
      oneByOne.map((d) => d.outcome),
    )
    assert.deepStrictEqual(changes.get('r')!.after, states.get('r'))
    assert.deepStrictEqual(changes.get('q')!.after, states.get('q'))
  })

  it('should list no change for a batch that stores nothing', () => {
    const { outcomes, changes } = judgeBatch(
      [ev('r', 20, 3, 4), ev('r', 1, 0, 0)],
      storedR(),
    )
    assert.deepStrictEqual(outcomes, ['dup', 'stale'])
    assert.equal(changes.size, 0)
  })
})

describe('storedPositionsNeeded', () => {
  it('should list the events older than their robot latest before the batch', () => {
    const stored = storedR()
    assert.deepStrictEqual(
      storedPositionsNeeded(
        [
          ev('r', 10, 0, 0),
          ev('r', 20, 3, 4),
          ev('r', 21, 0, 0),
          ev('new', 1, 0, 0),
          ev('r', 15, 0, 0),
        ],
        stored.stateOf,
      ),
      { robots: ['r', 'r'], timestamps: [10, 15] },
    )
  })
})
