/**
 * Helpers of the fuzz tests (fuzz-ws and fuzz-http): a seeded random
 * generator, an oracle of the ingest protocol written from docs/protocol.md
 * (not from the server's parser), and raw HTTP clients that send exactly the
 * bytes they are given. Nothing here imports from `src/`.
 */
import assert from 'node:assert/strict'
import { isUtf8 } from 'node:buffer'
import { randomInt } from 'node:crypto'
import {
  Agent,
  request as httpRequest,
  type IncomingHttpHeaders,
} from 'node:http'
import { connect } from 'node:net'
import { ERROR_CODES, MAX_TIMESTAMP, assertErrorBody } from './helpers.ts'

// --- seeds and random numbers ---

/**
 * The seed of a fuzz run: `FUZZ_SEED` when set (an integer from 0 to
 * 2^32−1), else a fresh random one. Print it so that a failing run can be
 * replayed with `FUZZ_SEED=<seed>`.
 */
export function fuzzSeed(): number {
  const text = process.env.FUZZ_SEED
  if (text === undefined || text === '') return randomInt(2 ** 32)
  assert.match(text, /^\d+$/, 'FUZZ_SEED is an integer')
  const seed = Number(text)
  assert.ok(seed < 2 ** 32, 'FUZZ_SEED is below 2^32')
  return seed
}

/** A small seeded generator (mulberry32): the same seed, the same run. */
export class Rng {
  #state: number

  constructor(seed: number) {
    this.#state = seed >>> 0
  }

  /** A float in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n)
  }

  /** An integer in [min, max]. */
  range(min: number, max: number): number {
    return min + this.int(max - min + 1)
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p
  }

  pick<T>(items: readonly T[]): T {
    assert.ok(items.length > 0, 'pick from a non-empty list')
    return items[this.int(items.length)]!
  }

  /** Picks a key of `weights` with probability proportional to its weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as [K, number][]
    const total = entries.reduce((sum, [, w]) => sum + w, 0)
    let r = this.next() * total
    for (const [key, weight] of entries) {
      r -= weight
      if (r < 0) return key
    }
    return entries[entries.length - 1]![0]
  }

  /** `n` random bytes; `exclude` bytes are replaced by 0x41 ('A'). */
  bytes(n: number, exclude: readonly number[] = []): Buffer {
    const out = Buffer.alloc(n)
    for (let i = 0; i < n; i++) {
      const b = this.int(256)
      out[i] = exclude.includes(b) ? 0x41 : b
    }
    return out
  }

  /** A string of `n` characters drawn from `alphabet` (by code point). */
  string(n: number, alphabet: string): string {
    const chars = [...alphabet]
    let out = ''
    for (let i = 0; i < n; i++) out += this.pick(chars)
    return out
  }

  /** A derived generator, so that one consumer does not shift another's draws. */
  fork(): Rng {
    return new Rng(this.int(2 ** 32))
  }

  /** The generator of part `k` of a run: the same whatever other parts run. */
  static part(seed: number, k: number): Rng {
    return new Rng((seed + Math.imul(k, 0x9e3779b9)) >>> 0)
  }
}

// --- the ingest protocol, as docs/protocol.md states it ---

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

/** What the rule of ingest answers to an event (protocol.md, "The rule of ingest"). */
export type Outcome = 'OK' | 'DUP' | 'stale' | 'conflict'

/** The stored events of one robot, as the rule of ingest builds them. */
export class RobotModel {
  /** Stored positions by timestamp. */
  readonly stored = new Map<number, readonly [number, number]>()
  /** The latest stored timestamp, -1 while nothing is stored. */
  latest = -1

  /** The outcome of an event, which is stored when it is `OK`. */
  apply(x: number, y: number, timestamp: number): Outcome {
    if (this.latest < 0 || timestamp > this.latest) {
      this.stored.set(timestamp, [x, y])
      this.latest = timestamp
      return 'OK'
    }
    const at = this.stored.get(timestamp)
    if (at === undefined) return 'stale'
    return at[0] === x && at[1] === y ? 'DUP' : 'conflict'
  }

  /** The stored events as the HTTP API lists them. */
  events(robot: string) {
    return [...this.stored.entries()]
      .sort(([a], [b]) => a - b)
      .map(([timestamp, [x, y]]) => ({ robot, x, y, timestamp }))
  }
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

// --- what an answer must never show ---

/** A stack frame, a source path, or SQL text. */
const LEAK =
  /\n\s*at |\bat [\w.<>]+ \(|\bat (?:file:\/\/|node:\w|\/\S+:\d+)|[\w-]+\.(?:ts|js|mjs|cjs):\d+|\/(?:src|dist|node_modules)\/|\b(?:SELECT|INSERT|DELETE FROM|sqlite|SQLITE_\w+)\b/i

/** Checks that a text shows no stack trace, source path or SQL. */
export function assertNoLeak(text: string, what: string): void {
  assert.doesNotMatch(text, LEAK, `${what}: no stack trace, path or SQL`)
}

/** Whether a generated input would itself look like a leak when echoed. */
export function looksLikeLeak(text: string): boolean {
  return LEAK.test(text)
}

// --- HTTP ---

type ErrorCode = (typeof ERROR_CODES)[number]

/** The status of each catalog code, as docs/errors.md lists them. */
export const CODE_STATUS: Readonly<Record<string, number>> = {
  MALFORMED: 400,
  STALE: 409,
  CONFLICT: 409,
  UNAVAILABLE: 503,
  TOO_MANY_CONNECTIONS: 503,
  INVALID_QUERY: 400,
  INVALID_URL: 400,
  HEADERS_TOO_LARGE: 431,
  BAD_REQUEST: 400,
  ROBOT_NOT_FOUND: 404,
  ROUTE_NOT_FOUND: 404,
  INTERNAL: 500,
}

/** A response read to its end. */
export interface HttpAnswer {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly text: string
}

/**
 * Checks a JSON error body of any 4xx catalog code (whichever the body names)
 * and returns the code. Never 500, never a code outside the catalog.
 */
export function assertCatalogError(
  response: HttpAnswer,
  what: string,
): ErrorCode {
  assert.ok(
    response.status >= 400 && response.status < 500,
    `${what}: a 4xx, not ${response.status}; body: ${response.text.slice(0, 300)}`,
  )
  assert.match(
    String(response.headers['content-type'] ?? ''),
    /^application\/json\b/,
    `${what}: a JSON error body`,
  )
  let body: { code?: unknown }
  try {
    body = JSON.parse(response.text) as { code?: unknown }
  } catch {
    assert.fail(`${what}: the body is not JSON: ${response.text.slice(0, 300)}`)
  }
  const code = body.code as ErrorCode
  assert.ok(
    (ERROR_CODES as readonly unknown[]).includes(code) && code !== 'INTERNAL',
    `${what}: code ${String(code)} is a 4xx code of the catalog`,
  )
  const status = CODE_STATUS[code]
  assert.ok(status !== undefined, `${what}: code ${code} is in errors.md`)
  assertErrorBody(response, status, code)
  assertNoLeak(response.text, what)
  return code
}

/** Checks an error of one catalog code, with its JSON content type. */
export function assertError(
  response: HttpAnswer,
  code: ErrorCode,
  what: string,
  message?: RegExp,
): void {
  assert.equal(
    response.status,
    CODE_STATUS[code],
    `${what}: status; body: ${response.text.slice(0, 300)}`,
  )
  assert.equal(assertCatalogError(response, what), code, `${what}: code`)
  if (message !== undefined) {
    const text = (JSON.parse(response.text) as { message: string }).message
    assert.match(text, message, `${what}: message`)
  }
}

/** Options of {@link http}. */
export interface HttpOptions {
  readonly method?: string
  readonly headers?: Readonly<Record<string, string>>
  readonly body?: string | Buffer
}

const agent = new Agent({ keepAlive: true, maxSockets: 8 })

/**
 * A request with `node:http`, which sends the path exactly as given (no
 * normalization of `.`, `..` or percent-encoding, unlike `fetch`). The path
 * must be ASCII.
 */
export function http(
  server: { readonly url: string },
  path: string,
  options: HttpOptions = {},
): Promise<HttpAnswer> {
  const { hostname, port } = new URL(server.url)
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: hostname,
        port: Number(port),
        path,
        method: options.method ?? 'GET',
        // Node.js sends no length for a body of DELETE or OPTIONS unless told.
        headers:
          options.body === undefined
            ? options.headers
            : {
                ...options.headers,
                'content-length': String(Buffer.byteLength(options.body)),
              },
        agent,
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('error', reject)
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        )
      },
    )
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer to ${path}`)))
    req.on('error', reject)
    req.end(options.body)
  })
}

/** Decodes a chunked body (RFC 9112 §7.1); trailers are ignored. */
function dechunk(body: Buffer): Buffer {
  const parts: Buffer[] = []
  let at = 0
  for (;;) {
    const eol = body.indexOf('\r\n', at)
    if (eol < 0) break
    const size = parseInt(body.subarray(at, eol).toString('latin1'), 16)
    if (!(size > 0)) break
    parts.push(body.subarray(eol + 2, eol + 2 + size))
    at = eol + 2 + size + 2
  }
  return Buffer.concat(parts)
}

/** What a raw exchange got back. */
export interface RawAnswer extends HttpAnswer {
  /** Bytes received in all (0: the server closed without a word). */
  readonly received: number
}

/**
 * Writes `data` as is on a new TCP connection and resolves with the first
 * response once the server has closed the connection. Rejects when the
 * server neither answers nor closes within `timeoutMs`.
 */
export function rawExchange(
  server: { readonly url: string },
  data: Buffer | string,
  timeoutMs = 5000,
): Promise<RawAnswer> {
  const { hostname, port } = new URL(server.url)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(data))
    const chunks: Buffer[] = []
    socket.setTimeout(timeoutMs, () =>
      socket.destroy(new Error(`no answer and no close in ${timeoutMs} ms`)),
    )
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // A reset after a complete answer is still an answer.
      if (error.code === 'ECONNRESET' && chunks.length > 0) return
      reject(error)
    })
    socket.on('close', () => {
      const all = Buffer.concat(chunks)
      const split = all.indexOf('\r\n\r\n')
      const head = (split < 0 ? all : all.subarray(0, split)).toString('latin1')
      const [statusLine = '', ...fields] = head.split('\r\n')
      const headers: IncomingHttpHeaders = {}
      for (const field of fields) {
        const colon = field.indexOf(':')
        if (colon > 0) {
          headers[field.slice(0, colon).trim().toLowerCase()] = field
            .slice(colon + 1)
            .trim()
        }
      }
      let body: Buffer = split < 0 ? Buffer.alloc(0) : all.subarray(split + 4)
      if (/chunked/i.test(String(headers['transfer-encoding'] ?? ''))) {
        body = dechunk(body)
      } else if (headers['content-length'] !== undefined) {
        body = body.subarray(0, Number(headers['content-length']))
      }
      resolve({
        status: Number(/^HTTP\/1\.[01] (\d{3})\b/.exec(statusLine)?.[1] ?? 0),
        headers,
        text: body.toString('utf8'),
        received: all.length,
      })
    })
  })
}

// --- order ---

/** Compares strings by Unicode code points, the order of `GET /api/robots`. */
export function byCodePoint(a: string, b: string): number {
  const x = [...a].map((c) => c.codePointAt(0)!)
  const y = [...b].map((c) => c.codePointAt(0)!)
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i]! - y[i]!
  }
  return x.length - y.length
}

// --- time ---

/** Resolves with `promise`, or rejects when it takes longer than `ms`. */
export async function within<T>(
  ms: number,
  promise: Promise<T>,
  what: string,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what}: no answer within ${ms} ms`)),
      ms,
    )
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** A short, printable form of a generated input for failure messages. */
export function show(data: string | Buffer, max = 120): string {
  const text =
    typeof data === 'string'
      ? JSON.stringify(data)
      : isUtf8(data)
        ? JSON.stringify(data.toString('utf8'))
        : `bytes ${data.toString('hex')}`
  return text.length > max ? `${text.slice(0, max)}…(${text.length})` : text
}
