/**
 * The line judge of the ingest fuzz test (fuzz-ws.e2e.test.ts): what
 * docs/protocol.md makes of one line before the rule of ingest (an event, or
 * a malformed line and the field that fails), how a frame splits into
 * lines, and the check of a reply line. Written from protocol.md, not from
 * the server's parser.
 */
import assert from 'node:assert/strict'
import { isUtf8 } from 'node:buffer'
import { MAX_TIMESTAMP, assertNoLeak, type Outcome } from '../support/index.ts'

/** The fields of an event line, in the order the server checks them. */
export const FIELDS = ['x', 'y', 'timestamp', 'robot_name'] as const
export type Field = (typeof FIELDS)[number]

/** What the protocol says of one line, before the rule of ingest. */
export type LineVerdict =
  | {
      readonly kind: 'event'
      readonly robot: string
      readonly x: number
      readonly y: number
      readonly timestamp: number
    }
  | {
      readonly kind: 'malformed'
      /** The first field that fails, or why the line cannot be read at all. */
      readonly why: Field | 'empty' | 'fields' | 'utf8'
    }

// protocol.md, "The event line": an optional sign, digits with an optional
// fraction or a fraction alone, an optional exponent with an optional sign.
const DECIMAL_NUMBER =
  /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/
const ONLY_DIGITS = /^[0-9]+$/
const CONTROL_CHAR = /\p{Cc}/u
const EDGE_WHITE_SPACE = /^\p{White_Space}|\p{White_Space}$/u

function coordinate(text: string): number | undefined {
  if (!DECIMAL_NUMBER.test(text)) return undefined
  const value = Number(text)
  if (!Number.isFinite(value)) return undefined
  return value === 0 ? 0 : value
}

/** Whether a robot name follows the rules of protocol.md. */
export function nameIsValid(name: string): boolean {
  const codePoints = [...name].length
  return (
    codePoints >= 1 &&
    codePoints <= 150 &&
    !CONTROL_CHAR.test(name) &&
    !EDGE_WHITE_SPACE.test(name) &&
    name !== '.' &&
    name !== '..'
  )
}

/** Whether a timestamp field is valid (digits only, at most 2^53−1). */
export function timestampIsValid(text: string): boolean {
  return ONLY_DIGITS.test(text) && BigInt(text) <= BigInt(MAX_TIMESTAMP)
}

/** Judges one line (the bytes between two `\n`) as protocol.md says. */
export function judgeLine(bytes: Buffer): LineVerdict {
  if (!isUtf8(bytes)) return { kind: 'malformed', why: 'utf8' }
  let line = bytes.toString('utf8')
  if (line.endsWith('\r')) line = line.slice(0, -1)
  if (line === '') return { kind: 'malformed', why: 'empty' }
  const parts: string[] = []
  let rest = line
  for (let i = 0; i < 3; i++) {
    const comma = rest.indexOf(',')
    if (comma < 0) return { kind: 'malformed', why: 'fields' }
    parts.push(rest.slice(0, comma))
    rest = rest.slice(comma + 1)
  }
  const x = coordinate(parts[0]!)
  if (x === undefined) return { kind: 'malformed', why: 'x' }
  const y = coordinate(parts[1]!)
  if (y === undefined) return { kind: 'malformed', why: 'y' }
  if (!timestampIsValid(parts[2]!)) {
    return { kind: 'malformed', why: 'timestamp' }
  }
  if (!nameIsValid(rest)) return { kind: 'malformed', why: 'robot_name' }
  return { kind: 'event', robot: rest, x, y, timestamp: Number(parts[2]!) }
}

/**
 * Splits a text frame into lines as protocol.md says: on the byte `\n`, one
 * final `\n` ending the last line rather than starting an empty one, and an
 * empty frame being one empty line.
 */
export function splitFrame(frame: Buffer): Buffer[] {
  const lines: Buffer[] = []
  let start = 0
  for (;;) {
    const end = frame.indexOf(0x0a, start)
    if (end < 0) {
      lines.push(frame.subarray(start))
      break
    }
    lines.push(frame.subarray(start, end))
    start = end + 1
  }
  if (lines.length > 1 && lines[lines.length - 1]!.length === 0) lines.pop()
  return lines
}

/** Reply texts the protocol fixes exactly. */
export const REPLY = {
  empty: 'ERR malformed empty line',
  utf8: 'ERR malformed line is not valid UTF-8',
  binary: 'ERR malformed binary frames are not accepted',
} as const

/**
 * Checks a reply line against what is expected of it: `OK`, `DUP`,
 * `ERR stale …`, `ERR conflict …`, or `ERR malformed …` naming exactly the
 * expected field (the message may change, the field it names may not).
 */
export function assertReplyLine(
  actual: string | undefined,
  expected: Outcome | LineVerdict | 'binary',
  what: string,
): void {
  const got = actual ?? '(no reply line)'
  if (expected === 'OK' || expected === 'DUP') {
    assert.equal(got, expected, what)
  } else if (expected === 'stale' || expected === 'conflict') {
    assert.match(got, new RegExp(`^ERR ${expected} \\S`), what)
  } else if (expected === 'binary') {
    assert.equal(got, REPLY.binary, what)
  } else if (expected.kind === 'event') {
    assert.fail(`${what}: an event has no fixed reply`)
  } else if (expected.why === 'empty' || expected.why === 'utf8') {
    assert.equal(got, REPLY[expected.why], what)
  } else {
    assert.match(got, /^ERR malformed \S/, what)
    if (expected.why !== 'fields') {
      const named = new Set(
        [...got.matchAll(/\b(x|y|timestamp|robot_name)\b/g)].map((m) => m[1]),
      )
      assert.deepEqual(
        [...named],
        [expected.why],
        `${what}: the reply ${JSON.stringify(got)} names the field ${expected.why}`,
      )
    }
  }
  assertNoLeak(got, what)
}
