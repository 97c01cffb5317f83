import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { TelemetryError } from '../errors.ts'
import {
  parseEventsQuery,
  parseExportQuery,
  parseMcapQuery,
  parseRobotsQuery,
  parseTimeQuery,
} from './params.ts'

const invalid = (message: string) => (error: unknown) => {
  assert.ok(error instanceof TelemetryError)
  assert.equal(error.code, 'INVALID_QUERY')
  assert.equal(error.message, message)
  return true
}

describe('parseTimeQuery', () => {
  it('should leave absent and empty bounds open', () => {
    const open = {
      start: undefined,
      end: undefined,
      startTime: null,
      endTime: null,
    }
    assert.deepStrictEqual(parseTimeQuery({}), open)
    assert.deepStrictEqual(parseTimeQuery(undefined), open)
    assert.deepStrictEqual(
      parseTimeQuery({ start_time: '', end_time: '' }),
      open,
    )
  })

  it('should swap a start after the end', () => {
    assert.deepStrictEqual(parseTimeQuery({ start_time: '9', end_time: '3' }), {
      start: 3,
      end: 9,
      startTime: 3,
      endTime: 9,
    })
  })

  it('should reject negative, fractional, non-numeric, too large and repeated bounds', () => {
    for (const value of ['-1', '1.5', 'abc', '1e3', ' 1', '0x10']) {
      assert.throws(
        () => parseTimeQuery({ start_time: value }),
        invalid('start_time must be a non-negative integer'),
      )
    }
    assert.throws(
      () => parseTimeQuery({ end_time: '9007199254740992' }),
      invalid('end_time must be at most 9007199254740991'),
    )
    assert.throws(
      () => parseTimeQuery({ end_time: ['1', '2'] }),
      invalid('end_time must be given once'),
    )
  })
})

describe('parseEventsQuery and parseRobotsQuery', () => {
  it('should read limit and after', () => {
    assert.deepStrictEqual(parseEventsQuery({ limit: '10', after: '5' }), {
      start: undefined,
      end: undefined,
      startTime: null,
      endTime: null,
      limit: 10,
      after: 5,
    })
    assert.deepStrictEqual(parseRobotsQuery({ limit: '2', after: 'Bender' }), {
      limit: 2,
      after: 'Bender',
    })
  })

  it('should reject limits outside their range', () => {
    for (const limit of ['0', '-1', 'x', '1.5', '100001', '99999999999']) {
      assert.throws(
        () => parseEventsQuery({ limit }),
        invalid('limit must be an integer from 1 to 100000'),
      )
    }
    assert.throws(
      () => parseRobotsQuery({ limit: '10001' }),
      invalid('limit must be an integer from 1 to 10000'),
    )
  })
})

describe('parseMcapQuery and parseExportQuery', () => {
  it('should read the interval and the profile, json when absent or empty', () => {
    const open = {
      start: undefined,
      end: undefined,
      startTime: null,
      endTime: null,
    }
    assert.deepStrictEqual(parseMcapQuery({}), { ...open, profile: 'json' })
    assert.deepStrictEqual(parseMcapQuery({ profile: '' }), {
      ...open,
      profile: 'json',
    })
    assert.deepStrictEqual(
      parseMcapQuery({ start_time: '9', end_time: '3', profile: 'ros2' }),
      { start: 3, end: 9, startTime: 3, endTime: 9, profile: 'ros2' },
    )
    // The single-robot route takes no robot=.
    assert.equal('robots' in parseMcapQuery({ robot: ' x' }), false)
  })

  it('should refuse another profile, or one given twice', () => {
    for (const profile of ['ros1', 'JSON', 'json ', 'ros2,json']) {
      assert.throws(
        () => parseMcapQuery({ profile }),
        invalid('profile must be json or ros2'),
      )
    }
    assert.throws(
      () => parseMcapQuery({ profile: ['json', 'ros2'] }),
      invalid('profile must be given once'),
    )
  })

  it('should read robot= of the export as the live feed does: each once, in order', () => {
    assert.deepStrictEqual(parseExportQuery({}).robots, undefined)
    assert.deepStrictEqual(
      parseExportQuery({ robot: ['b', 'a', 'b'], profile: 'ros2' }),
      {
        start: undefined,
        end: undefined,
        startTime: null,
        endTime: null,
        profile: 'ros2',
        robots: ['b', 'a'],
      },
    )
    assert.throws(
      () => parseExportQuery({ robot: '' }),
      invalid('robot "" is no robot name: is empty'),
    )
  })
})
