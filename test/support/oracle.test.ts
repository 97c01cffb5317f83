import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  RobotModel,
  byCodePoint,
  expectedOdometer,
  odometerMatches,
  replyKind,
} from './oracle.ts'

describe('the oracle', () => {
  test('judges events as the rule of ingest does: OK, DUP, stale and conflict', () => {
    const bender = new RobotModel('Bender')
    assert.equal(bender.apply(0, 0, 10), 'OK')
    assert.equal(bender.apply(3, 4, 20), 'OK')
    assert.equal(bender.apply(3, 4, 20), 'DUP')
    assert.equal(bender.apply(-0, 0, 10), 'DUP')
    assert.equal(bender.apply(0, 1, 10), 'conflict')
    assert.equal(bender.apply(0, 0, 15), 'stale')
    assert.equal(bender.apply(0, 0, 5), 'stale')
    assert.deepEqual(bender.events, [
      { robot: 'Bender', x: 0, y: 0, timestamp: 10 },
      { robot: 'Bender', x: 3, y: 4, timestamp: 20 },
    ])
  })

  test('gives the odometer of an interval from the events inside it, bounds swapped', () => {
    const odo = new RobotModel('Odo', [
      { robot: 'Odo', x: 0, y: 0, timestamp: 0 },
      { robot: 'Odo', x: 3, y: 4, timestamp: 10 },
      { robot: 'Odo', x: 3, y: 0, timestamp: 20 },
      { robot: 'Odo', x: 0, y: 0, timestamp: 30 },
    ])
    assert.equal(odo.odometer(), 12)
    assert.equal(odo.odometer(5, 25), 4)
    assert.equal(odo.odometer(25, 5), 4)
    assert.equal(odo.odometer(11, 19), 0)
    assert.equal(odo.odometer(20), 3)
    assert.equal(odo.odometer(undefined, 20), 9)
    assert.equal(odo.summary()?.odometer, 12)
  })

  test('knows what a retention pass left: removed timestamps are stale, figures cover the whole life', () => {
    const odo = new RobotModel('Odo', [
      { robot: 'Odo', x: 0, y: 0, timestamp: 0 },
      { robot: 'Odo', x: 3, y: 4, timestamp: 10 },
      { robot: 'Odo', x: 3, y: 0, timestamp: 20 },
      { robot: 'Odo', x: 0, y: 0, timestamp: 30 },
    ])
    odo.removeOldest(2)
    assert.deepEqual(
      odo.stored.map((e) => e.timestamp),
      [20, 30],
    )
    assert.equal(odo.judge(0, 0, 0), 'stale')
    assert.equal(odo.judge(3, 4, 10), 'stale')
    assert.equal(odo.judge(3, 0, 20), 'DUP')
    assert.equal(odo.storedOdometer(), 3)
    assert.equal(odo.storedOdometer(0, 25), 0)
    assert.equal(odo.storedOdometer(5, 35), 3)
    assert.equal(odo.odometer(), 12)
    assert.equal(odo.summary()?.event_count, 4)
    assert.equal(odo.summary()?.first_timestamp, 0)
    // Every event removed: the latest is still judged against the state.
    odo.removeOldest(4)
    assert.deepEqual(odo.stored, [])
    assert.equal(odo.judge(0, 0, 30), 'DUP')
    assert.equal(odo.judge(1, 0, 30), 'conflict')
    assert.equal(odo.judge(3, 0, 20), 'stale')
    assert.equal(odo.storedOdometer(), 0)
  })

  test('keeps the rounding in a carry: a step of 1 after a trip of 2e16 is exact', () => {
    const events = [0, 1e16, 0, 1].map((x, i) => ({
      robot: 'Long trip',
      x,
      y: 0,
      timestamp: i + 1,
    }))
    // A plain double sum would give 2e16 + 1 = 2e16 and an interval of 0.
    assert.equal(expectedOdometer(events, 3, 4), 1)
  })

  test('compares odometers with one relative tolerance, exactly at 0', () => {
    assert.ok(odometerMatches(1e6 + 1e-4, 1e6))
    assert.ok(!odometerMatches(1 + 1e-8, 1))
    assert.ok(odometerMatches(0, 0))
    assert.ok(!odometerMatches(1e-300, 0))
    assert.ok(!odometerMatches('1', 1))
  })

  test('classifies reply lines and orders names by code point', () => {
    assert.equal(replyKind('OK'), 'OK')
    assert.equal(replyKind('ERR stale older than the latest'), 'stale')
    assert.equal(replyKind('ERR malformed empty line'), 'malformed')
    assert.equal(replyKind('ERR stale'), 'other')
    assert.deepEqual(['😀', 'Ａ', 'a', 'B'].sort(byCodePoint), [
      'B',
      'a',
      'Ａ',
      '😀',
    ])
  })
})
