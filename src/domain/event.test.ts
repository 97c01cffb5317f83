import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Random, seedNote, testSeed } from '../../test/support/random.ts'
import {
  DECIMAL,
  MAX_TIMESTAMP,
  parseEventAt,
  parseEventLine,
  robotNameProblem,
} from './event.ts'

describe('parseEventLine', () => {
  it('should parse a well-formed line', () => {
    assert.deepStrictEqual(parseEventLine('1.5,-2,1700000000000,Bender'), {
      robot: 'Bender',
      timestamp: 1700000000000,
      x: 1.5,
      y: -2,
    })
  })

  it('should take the rest of the line after the third comma as the name', () => {
    assert.deepStrictEqual(parseEventLine('0,0,1,a,b, c'), {
      robot: 'a,b, c',
      timestamp: 1,
      x: 0,
      y: 0,
    })
  })

  it('should tolerate one trailing carriage return', () => {
    assert.deepStrictEqual(parseEventLine('0,0,1,r\r'), {
      robot: 'r',
      timestamp: 1,
      x: 0,
      y: 0,
    })
  })

  it('should accept every decimal form of a coordinate', () => {
    for (const [text, value] of [
      ['-1.5e3', -1500],
      ['.5', 0.5],
      ['+2', 2],
      ['3.', 3],
      ['1E-2', 0.01],
      ['-0', 0],
      ['007', 7],
    ] as const) {
      const parsed = parseEventLine(`${text},0,1,r`)
      assert.ok(!('error' in parsed), text)
      assert.equal(parsed.x, value, text)
      assert.ok(!Object.is(parsed.x, -0), 'negative zero is zero')
    }
  })

  it('should reject coordinates that are not finite decimal numbers', () => {
    for (const text of [
      '',
      ' 1',
      '1 ',
      '0x10',
      'NaN',
      'Infinity',
      '-Infinity',
      '1e999',
      '1e',
      '.',
      '--1',
      '1_000',
      '١',
    ]) {
      assert.deepStrictEqual(
        parseEventLine(`${text},0,1,r`),
        {
          error:
            text === '1e999'
              ? 'x is not a finite number'
              : 'x is not a decimal number',
        },
        JSON.stringify(text),
      )
    }
    assert.deepStrictEqual(parseEventLine('0,NaN,1,r'), {
      error: 'y is not a decimal number',
    })
  })

  it('should accept timestamps from 0 to 2^53−1 and nothing else', () => {
    assert.equal(
      (parseEventLine('0,0,0,r') as { timestamp: number }).timestamp,
      0,
    )
    assert.equal(
      (parseEventLine('0,0,9007199254740991,r') as { timestamp: number })
        .timestamp,
      Number.MAX_SAFE_INTEGER,
    )
    for (const text of ['-1', '1.5', '1e3', '', ' 1', '0x1', '+1']) {
      assert.deepStrictEqual(
        parseEventLine(`0,0,${text},r`),
        { error: 'timestamp must be a non-negative integer' },
        text,
      )
    }
    for (const text of [
      '9007199254740992',
      '9007199254740993',
      '1'.repeat(400),
    ]) {
      assert.deepStrictEqual(parseEventLine(`0,0,${text},r`), {
        error: 'timestamp must be at most 9007199254740991',
      })
    }
  })

  it('should read every field as the grammar and Number() say, on random text', () => {
    // The parser reads fields in place, with a shortcut for short decimals:
    // checked against the statement of each rule, on text near the rules.
    const seed = testSeed()
    const random = Random.derive(seed, 0)
    const digits = (n: number) =>
      Array.from({ length: n }, () => random.below(10)).join('')
    const pieces = ['', '-', '+', '.', 'e', 'E', 'e-', '1', '0', 'x', ' ']
    const text = () => {
      let out = ''
      for (let n = random.int(1, 5); n > 0; n--) {
        out += random.chance(0.6)
          ? digits(random.pick([1, 2, 3, 8, 15, 16, 17, 25]))
          : random.pick(pieces)
      }
      return out
    }
    const coordinate = (t: string) => {
      const value = Number(t)
      if (!DECIMAL.test(t)) return 'x is not a decimal number'
      if (!Number.isFinite(value)) return 'x is not a finite number'
      return value === 0 ? 0 : value
    }
    const timestamp = (t: string) => {
      if (!/^\d+$/.test(t)) return 'timestamp must be a non-negative integer'
      if (Number(t) > MAX_TIMESTAMP) {
        return `timestamp must be at most ${MAX_TIMESTAMP}`
      }
      return Number(t)
    }
    for (let i = 0; i < 20_000; i++) {
      const x = text()
      const ts = random.chance(0.5) ? digits(random.int(0, 20)) : text()
      const parsed = parseEventLine(`${x},0,${ts},r`)
      const want = [coordinate(x), timestamp(ts)]
      const got =
        'error' in parsed
          ? parsed.error
          : typeof want[0] === 'string'
            ? parsed.x
            : parsed.timestamp
      const first = want.find((w) => typeof w === 'string')
      if (first !== undefined) {
        assert.equal(
          got,
          first,
          `${JSON.stringify([x, ts])}, ${seedNote(seed)}`,
        )
      } else {
        assert.ok(!('error' in parsed))
        assert.ok(Object.is(parsed.x, want[0]), `x ${x}, ${seedNote(seed)}`)
        assert.equal(parsed.timestamp, want[1], `ts ${ts}, ${seedNote(seed)}`)
      }
    }
  })

  it('should read a line in place within a longer text, never past its end', () => {
    const text = '1,2,3\n4,5,6,r\r\n7,8\n9,9,9,name,with,commas'
    const lines = text.split('\n')
    let start = 0
    for (const line of lines) {
      const end = start + line.length
      assert.deepStrictEqual(
        parseEventAt(text, start, end),
        parseEventLine(line),
        line,
      )
      start = end + 1
    }
    assert.deepStrictEqual(parseEventAt(text, 0, 5), {
      error: 'expected 4 fields: x,y,timestamp,robot_name',
    })
    assert.deepStrictEqual(parseEventAt(text, 6, 13), {
      robot: 'r',
      timestamp: 6,
      x: 4,
      y: 5,
    })
  })

  it('should say how many fields a short line lacks', () => {
    for (const line of ['1', '1,2', '1,2,3', 'garbage']) {
      assert.deepStrictEqual(parseEventLine(line), {
        error: 'expected 4 fields: x,y,timestamp,robot_name',
      })
    }
    assert.deepStrictEqual(parseEventLine(''), { error: 'empty line' })
    assert.deepStrictEqual(parseEventLine('\r'), { error: 'empty line' })
  })
})

describe('robotNameProblem', () => {
  it('should accept names of 1 to 150 code points', () => {
    assert.equal(robotNameProblem('a'), undefined)
    assert.equal(robotNameProblem('a'.repeat(150)), undefined)
    assert.equal(robotNameProblem('😀'.repeat(150)), undefined)
    assert.equal(
      robotNameProblem('R2-D2 / \'Ünïcödé\' %41 "x" ; DROP TABLE'),
      undefined,
    )
  })

  it('should reject empty, long, control, padded and dot names', () => {
    assert.equal(robotNameProblem(''), 'robot_name is empty')
    assert.equal(
      robotNameProblem('a'.repeat(151)),
      'robot_name is longer than 150 characters',
    )
    assert.equal(
      robotNameProblem('😀'.repeat(151)),
      'robot_name is longer than 150 characters',
    )
    for (const name of ['a\tb', 'a\u0000', '\u007f', 'a\u0085b']) {
      assert.equal(
        robotNameProblem(name),
        'robot_name contains a control character',
        JSON.stringify(name),
      )
    }
    for (const name of [' a', 'a ', '\u00a0a', 'a\u3000']) {
      assert.equal(
        robotNameProblem(name),
        'robot_name starts or ends with white space',
        JSON.stringify(name),
      )
    }
    assert.equal(robotNameProblem('.'), 'robot_name cannot be "." or ".."')
    assert.equal(robotNameProblem('..'), 'robot_name cannot be "." or ".."')
    assert.equal(robotNameProblem('...'), undefined)
    // Unicode White_Space only: a byte order mark is a format character.
    assert.equal(robotNameProblem('\ufeffBOM first'), undefined)
    assert.equal(robotNameProblem('BOM last\ufeff'), undefined)
    assert.equal(
      robotNameProblem('a\u2029'),
      'robot_name starts or ends with white space',
    )
  })
})
