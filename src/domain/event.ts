/**
 * A location event and its one parser: the wire line `x,y,timestamp,robot_name`.
 * Everything behind this parser trusts the event's types and ranges.
 */

/** One location event of one robot, as validated at the edge. */
export interface TelemetryEvent {
  /** Robot name, exact and case-sensitive. */
  readonly robot: string
  /** Integer from 0 to 2^53−1, in the client's unit (milliseconds in practice). */
  readonly timestamp: number
  readonly x: number
  readonly y: number
}

/** A line that did not parse, with a message that names the field and the rule. */
export interface MalformedLine {
  readonly error: string
}

/** Longest robot name, in Unicode code points. */
export const MAX_ROBOT_NAME_LENGTH = 150

/** Largest timestamp: the largest integer a JSON number carries exactly. */
export const MAX_TIMESTAMP = Number.MAX_SAFE_INTEGER

// A decimal number: optional sign, digits with an optional fraction (or a
// fraction alone), optional exponent. No hex, no `Infinity`, no `NaN`.
// The parsers below read this grammar character by character; the pattern
// is the grammar's statement, and what the tests check them against.
export const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/
const CONTROL = /\p{Cc}/u
// Unicode White_Space, not JavaScript's \s (which also takes U+FEFF).
const EDGE_SPACE = /^\p{White_Space}|\p{White_Space}$/u

const PLUS = 0x2b
const MINUS = 0x2d
const DOT = 0x2e
const ZERO = 0x30
const RETURN = 0x0d

/** 10^k for k from 0 to 22: every one of them is a double exactly. */
const EXACT_POWERS_OF_TEN = Array.from({ length: 23 }, (_, k) => 10 ** k)
/** Digits whose integer is below 2^53, so exact as a double. */
const EXACT_DIGITS = 15

/** The digit at `i` of `text` (0 to 9), or -1 for another character. */
function digitAt(text: string, i: number): number {
  const d = text.charCodeAt(i) - ZERO
  return d >= 0 && d <= 9 ? d : -1
}

/**
 * Checks a robot name against the rules of ingest. (The HTTP API takes any
 * name: one that breaks these rules names no robot, like any unknown name.)
 * Returns `undefined` when the name is valid, else why it is not.
 */
export function robotNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'robot_name is empty'
  // Printable ASCII without the space (the usual name) can break only the
  // rules of length and dots: no control character, no white space.
  let printable = name.length <= MAX_ROBOT_NAME_LENGTH
  for (let i = 0; printable && i < name.length; i++) {
    const c = name.charCodeAt(i)
    printable = c > 0x20 && c < 0x7f
  }
  if (!printable) {
    // UTF-16 length bounds the code point count from above, so only long
    // names need the (slower) code point count.
    if (
      name.length > MAX_ROBOT_NAME_LENGTH &&
      [...name].length > MAX_ROBOT_NAME_LENGTH
    ) {
      return `robot_name is longer than ${MAX_ROBOT_NAME_LENGTH} characters`
    }
    if (CONTROL.test(name)) return 'robot_name contains a control character'
    if (EDGE_SPACE.test(name)) {
      return 'robot_name starts or ends with white space'
    }
  }
  // URLs cannot address a path segment `.` or `..` (RFC 3986 §5.2.4).
  if (name === '.' || name === '..') return 'robot_name cannot be "." or ".."'
  return undefined
}

/**
 * Checks a timestamp field (decimal digits only) and returns its value, or
 * a message saying why it is not a timestamp.
 */
export function parseTimestamp(text: string, field: string): number | string {
  return timestampIn(text, 0, text.length, field)
}

/** {@link parseTimestamp} of `text` from `start` to `end` (exclusive). */
function timestampIn(
  text: string,
  start: number,
  end: number,
  field: string,
): number | string {
  if (start === end) return `${field} must be a non-negative integer`
  // Exact while below 2^53; above, rounding is monotone, so any text above
  // 2^53−1 comes to at least 2^53.
  let value = 0
  for (let i = start; i < end; i++) {
    const d = digitAt(text, i)
    if (d < 0) return `${field} must be a non-negative integer`
    value = value * 10 + d
  }
  if (value > MAX_TIMESTAMP) {
    return `${field} must be at most ${MAX_TIMESTAMP}`
  }
  return value
}

/**
 * The coordinate in `text` from `start` to `end` (exclusive), or why it is
 * not one: a {@link DECIMAL} whose value is finite; -0 is 0.
 */
function coordinateIn(
  text: string,
  start: number,
  end: number,
  field: string,
): number | string {
  let i = start
  const sign = text.charCodeAt(i)
  if (sign === PLUS || sign === MINUS) i++
  let mantissa = 0
  let digits = 0
  let fraction = 0
  for (let d; i < end && (d = digitAt(text, i)) >= 0; i++, digits++) {
    mantissa = mantissa * 10 + d
  }
  if (i < end && text.charCodeAt(i) === DOT) {
    let d
    for (i++; i < end && (d = digitAt(text, i)) >= 0; i++, fraction++) {
      mantissa = mantissa * 10 + d
    }
    digits += fraction
  }
  if (digits === 0) return `${field} is not a decimal number`
  let value: number
  if (i === end && digits <= EXACT_DIGITS && fraction < 23) {
    // Both the integer of the digits and 10^fraction are doubles exactly,
    // and IEEE division rounds correctly: the value Number() would give.
    value = mantissa / EXACT_POWERS_OF_TEN[fraction]!
    if (sign === MINUS) value = -value
  } else {
    // An exponent, or more digits than a double holds exactly.
    const piece = text.slice(start, end)
    if (!DECIMAL.test(piece)) return `${field} is not a decimal number`
    value = Number(piece)
    if (!Number.isFinite(value)) return `${field} is not a finite number`
  }
  // -0 and 0 are one position.
  return value === 0 ? 0 : value
}

/**
 * Parses one line `x,y,timestamp,robot_name` (a trailing `\r` is tolerated).
 * The name is the rest of the line after the third comma, so it may itself
 * hold commas. The fields are read in place: the name is the line's only
 * new string.
 *
 * @example
 * parseEventLine('1.5,-2,1700000000000,Bender')
 * // { robot: 'Bender', timestamp: 1700000000000, x: 1.5, y: -2 }
 * parseEventLine('1,2,x,Bender') // { error: 'timestamp must be a non-negative integer' }
 */
export function parseEventLine(line: string): TelemetryEvent | MalformedLine {
  return parseEventAt(line, 0, line.length)
}

/**
 * {@link parseEventLine} of the line of `text` from `start` to `end`
 * (exclusive), read in place: a frame's lines are parsed where they lie in
 * its text, with no string made for the line.
 */
export function parseEventAt(
  text: string,
  start: number,
  end: number,
): TelemetryEvent | MalformedLine {
  if (end > start && text.charCodeAt(end - 1) === RETURN) end--
  if (end === start) return { error: 'empty line' }
  const c1 = text.indexOf(',', start)
  const c2 = c1 < 0 || c1 >= end ? -1 : text.indexOf(',', c1 + 1)
  const c3 = c2 < 0 || c2 >= end ? -1 : text.indexOf(',', c2 + 1)
  if (c3 < 0 || c3 >= end) {
    return { error: 'expected 4 fields: x,y,timestamp,robot_name' }
  }
  const x = coordinateIn(text, start, c1, 'x')
  if (typeof x === 'string') return { error: x }
  const y = coordinateIn(text, c1 + 1, c2, 'y')
  if (typeof y === 'string') return { error: y }
  const timestamp = timestampIn(text, c2 + 1, c3, 'timestamp')
  if (typeof timestamp === 'string') return { error: timestamp }
  const robot = text.slice(c3 + 1, end)
  const problem = robotNameProblem(robot)
  if (problem !== undefined) return { error: problem }
  return { robot, timestamp, x, y }
}

/** Tells a parsed event from a malformed line. */
export function isMalformed(
  parsed: TelemetryEvent | MalformedLine,
): parsed is MalformedLine {
  return (parsed as MalformedLine).error !== undefined
}
