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
const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/
const DIGITS = /^\d+$/
const CONTROL = /\p{Cc}/u
// Unicode White_Space, not JavaScript's \s (which also takes U+FEFF).
const EDGE_SPACE = /^\p{White_Space}|\p{White_Space}$/u

/**
 * Checks a robot name against the rules of ingest. (The HTTP API takes any
 * name: one that breaks these rules names no robot, like any unknown name.)
 * Returns `undefined` when the name is valid, else why it is not.
 */
export function robotNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'robot_name is empty'
  // UTF-16 length bounds the code point count from above, so only long names
  // need the (slower) code point count.
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
  // URLs cannot address a path segment `.` or `..` (RFC 3986 §5.2.4).
  if (name === '.' || name === '..') return 'robot_name cannot be "." or ".."'
  return undefined
}

/**
 * Checks a timestamp field (decimal digits only) and returns its value, or
 * a message saying why it is not a timestamp.
 */
export function parseTimestamp(text: string, field: string): number | string {
  if (!DIGITS.test(text)) {
    return `${field} must be a non-negative integer`
  }
  const value = Number(text)
  // Rounding is monotone, so any text above 2^53−1 parses to at least 2^53.
  if (value > MAX_TIMESTAMP) {
    return `${field} must be at most ${MAX_TIMESTAMP}`
  }
  return value
}

function parseCoordinate(text: string, field: string): number | string {
  if (!DECIMAL.test(text)) return `${field} is not a decimal number`
  const value = Number(text)
  if (!Number.isFinite(value)) return `${field} is not a finite number`
  // -0 and 0 are one position.
  return value === 0 ? 0 : value
}

/**
 * Parses one line `x,y,timestamp,robot_name` (a trailing `\r` is tolerated).
 * The name is the rest of the line after the third comma, so it may itself
 * hold commas.
 *
 * @example
 * parseEventLine('1.5,-2,1700000000000,Bender')
 * // { robot: 'Bender', timestamp: 1700000000000, x: 1.5, y: -2 }
 * parseEventLine('1,2,x,Bender') // { error: 'timestamp must be a non-negative integer' }
 */
export function parseEventLine(line: string): TelemetryEvent | MalformedLine {
  if (line.endsWith('\r')) line = line.slice(0, -1)
  if (line.length === 0) return { error: 'empty line' }
  const c1 = line.indexOf(',')
  const c2 = c1 < 0 ? -1 : line.indexOf(',', c1 + 1)
  const c3 = c2 < 0 ? -1 : line.indexOf(',', c2 + 1)
  if (c3 < 0) {
    return { error: 'expected 4 fields: x,y,timestamp,robot_name' }
  }
  const x = parseCoordinate(line.slice(0, c1), 'x')
  if (typeof x === 'string') return { error: x }
  const y = parseCoordinate(line.slice(c1 + 1, c2), 'y')
  if (typeof y === 'string') return { error: y }
  const timestamp = parseTimestamp(line.slice(c2 + 1, c3), 'timestamp')
  if (typeof timestamp === 'string') return { error: timestamp }
  const robot = line.slice(c3 + 1)
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
