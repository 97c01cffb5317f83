/**
 * Fuzzing the HTTP API: seeded random query strings, paths, methods and
 * bodies whose answer is known in advance from docs/api.md and
 * docs/errors.md (the exact status and code, and for a 200 the exact body),
 * plus raw malformed HTTP on a TCP socket. Every error must be a 4xx JSON
 * body of the catalog; no answer may be a 500, show a stack trace, a source
 * path or SQL.
 *
 * Replay a run with TEST_SEED=<seed> (the seed is printed at the start).
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import {
  IngestClient,
  MAX_TIMESTAMP,
  Random,
  assertCatalogError,
  assertError,
  assertNoLeak,
  byCodePoint,
  expectedOdometer,
  http,
  looksLikeLeak,
  mapLimit,
  rawExchange,
  repeatLine,
  seedNote,
  show,
  startServer,
  testSeed,
  withTimeout,
  withoutTimes,
  type ApiEvent,
  type HttpOptions,
  type ServerProcess,
  type TextResponse,
} from '../support/index.ts'

const SEED = testSeed()
console.log(`fuzz-http: ${seedNote(SEED)}`)

// --- the stored robots ---

/** Steps whose lengths are integers, so that odometers are exact. */
const STEPS: readonly [number, number][] = [
  [3, 4],
  [-3, 4],
  [4, -3],
  [0, 5],
  [-5, 0],
  [6, 8],
  [0, 0],
]

/** Names that need percent-encoding, quoting in CSV, or sort oddly. */
const FIXTURE_NAMES = [
  'Bender',
  'a/b',
  '100% sure',
  '🤖 unit 7',
  'say "hi", then go',
  "it's",
  'q?x=1#f&y=2',
  'a+b',
  'Ünïcödé ロボット',
  '%zz',
  '..x',
  'Z',
  'zz top',
  'Edge of time',
]

function makeFixture(rng: Random): Map<string, ApiEvent[]> {
  const robots = new Map<string, ApiEvent[]>()
  for (const name of FIXTURE_NAMES) {
    const timestamps = new Set<number>()
    if (name === 'Edge of time') {
      for (const t of [
        0,
        MAX_TIMESTAMP - 3,
        MAX_TIMESTAMP - 1,
        MAX_TIMESTAMP,
      ]) {
        timestamps.add(t)
      }
    } else {
      const n = rng.int(1, 12)
      while (timestamps.size < n) timestamps.add(rng.below(300))
    }
    let x = rng.int(-20, 20)
    let y = rng.int(-20, 20)
    const events: ApiEvent[] = []
    for (const timestamp of [...timestamps].sort((a, b) => a - b)) {
      events.push({ robot: name, x, y, timestamp })
      const [dx, dy] = rng.pick(STEPS)
      x += dx
      y += dy
    }
    robots.set(name, events)
  }
  return robots
}

// --- what the API answers, from docs/api.md ---

type Route =
  'healthz' | 'metrics' | 'openapi' | 'robots' | 'robot' | 'events' | 'odometer'

const ROUTE_PARAMS: Readonly<Record<Route, readonly string[]>> = {
  healthz: [],
  metrics: [],
  openapi: [],
  robots: ['limit', 'after'],
  robot: [],
  events: ['start_time', 'end_time', 'limit', 'after'],
  odometer: ['start_time', 'end_time'],
}

const TIMESTAMP = /^[0-9]+$/
/** What /healthz answers while the store takes writes. */
const HEALTHY = { status: 'ok', store: { writable: true } }

/** A parsed query, or the parameters that make it invalid. */
type Parsed =
  | { readonly ok: true; readonly values: ReadonlyMap<string, string> }
  | { readonly ok: false; readonly invalid: readonly string[] }

/** Judges the decoded pairs of a query for a route, as api.md says. */
function parseQuery(route: Route, pairs: readonly [string, string][]): Parsed {
  const invalid: string[] = []
  const values = new Map<string, string>()
  for (const name of ROUTE_PARAMS[route]) {
    const given = pairs.filter(([key]) => key === name)
    if (given.length > 1) {
      invalid.push(name)
      continue
    }
    const value = given[0]?.[1] ?? ''
    if (value === '') continue
    let valid: boolean
    if (name === 'limit') {
      const max = route === 'robots' ? 10_000 : 100_000
      valid = /^[1-9][0-9]*$/.test(value) && Number(value) <= max
    } else if (name === 'after' && route === 'robots') {
      valid = true
    } else {
      valid = TIMESTAMP.test(value) && BigInt(value) <= BigInt(MAX_TIMESTAMP)
    }
    if (valid) values.set(name, value)
    else invalid.push(name)
  }
  return invalid.length > 0 ? { ok: false, invalid } : { ok: true, values }
}

/** The format the events route writes for an `Accept` header of {@link ACCEPTS}. */
function eventFormat(accept: string | undefined): 'json' | 'ndjson' | 'csv' {
  return ACCEPTS.get(accept) ?? assert.fail(`no format for Accept ${accept}`)
}

function csvField(name: string): string {
  return /[",\r\n]/.test(name) ? `"${name.replaceAll('"', '""')}"` : name
}

/** The body of the events route in a format. */
function renderEvents(
  events: readonly ApiEvent[],
  format: 'json' | 'ndjson' | 'csv',
): string {
  if (format === 'json') return JSON.stringify(events)
  if (format === 'ndjson') {
    return events.map((e) => `${JSON.stringify(e)}\n`).join('')
  }
  return (
    'robot,x,y,timestamp\r\n' +
    events
      .map((e) => `${csvField(e.robot)},${e.x},${e.y},${e.timestamp}\r\n`)
      .join('')
  )
}

const CONTENT_TYPES = {
  json: /^application\/json\b/,
  ndjson: /^application\/x-ndjson\b/,
  csv: /^text\/csv\b/,
} as const

/** A request and everything known of its answer. */
interface Case {
  readonly what: string
  readonly path: string
  readonly options: HttpOptions
  /** Checks the answer; it has already been checked for leaks. */
  readonly check: (answer: TextResponse) => void
}

class Api {
  readonly robots: Map<string, ApiEvent[]>
  readonly names: string[]

  constructor(robots: Map<string, ApiEvent[]>) {
    this.robots = robots
    this.names = [...robots.keys()].sort(byCodePoint)
  }

  /** The check of a GET (or HEAD) of a route with a query. */
  expect(
    route: Route,
    robot: string,
    pairs: readonly [string, string][],
    accept: string | undefined,
    head: boolean,
  ): (answer: TextResponse, what: string) => void {
    const parsed = parseQuery(route, pairs)
    if (!parsed.ok) {
      const names = new RegExp(`\\b(?:${parsed.invalid.join('|')})\\b`)
      return (answer, what) =>
        head
          ? assert.equal(answer.status, 400, what)
          : assertError(answer, 'INVALID_QUERY', what, names)
    }
    const values = parsed.values
    const num = (name: string) =>
      values.has(name) ? Number(values.get(name)) : undefined
    let body: ((answer: TextResponse, what: string) => void) | undefined
    const status = 200
    switch (route) {
      case 'healthz':
        body = (answer, what) =>
          assert.deepEqual(JSON.parse(answer.text), HEALTHY, what)
        break
      case 'metrics':
        body = (answer, what) => {
          assert.match(
            String(answer.headers.get('content-type')),
            /^text\/plain\b/,
            what,
          )
          assert.match(answer.text, /^telemetry_connections_open\b/m, what)
        }
        break
      case 'openapi':
        body = (answer, what) =>
          assert.match(
            String((JSON.parse(answer.text) as { openapi: unknown }).openapi),
            /^3\.1\./,
            what,
          )
        break
      case 'robot': {
        const events = this.robots.get(robot)
        if (events === undefined) {
          return (answer, what) =>
            head
              ? assert.equal(answer.status, 404, what)
              : assertError(answer, 'ROBOT_NOT_FOUND', what)
        }
        body = (answer, what) => {
          const got = withoutTimes(JSON.parse(answer.text))
          assert.equal(got.name, robot, what)
          assert.equal(got.event_count, events.length, what)
          assert.equal(
            got.last_timestamp,
            events[events.length - 1]!.timestamp,
            what,
          )
        }
        break
      }
      case 'robots': {
        const afterName = values.get('after')
        const limit = num('limit')
        const all = this.names.filter(
          (name) => afterName === undefined || byCodePoint(name, afterName) > 0,
        )
        const page = limit === undefined ? all : all.slice(0, limit)
        const more = page.length < all.length
        body = (answer, what) => {
          const got = JSON.parse(answer.text) as {
            name: string
            event_count: number
          }[]
          assert.deepEqual(
            got.map((r) => [r.name, r.event_count]),
            page.map((name) => [name, this.robots.get(name)!.length]),
            what,
          )
          assert.equal(
            answer.headers.get('link') !== null,
            more,
            `${what}: Link`,
          )
        }
        break
      }
      case 'events':
      case 'odometer': {
        let start = num('start_time')
        let end = num('end_time')
        if (start !== undefined && end !== undefined && start > end) {
          ;[start, end] = [end, start]
        }
        const events = this.robots.get(robot) ?? []
        const inInterval = events.filter(
          (e) =>
            (start === undefined || e.timestamp >= start) &&
            (end === undefined || e.timestamp <= end),
        )
        if (route === 'odometer') {
          const expected = {
            robot,
            odometer: expectedOdometer(events, start, end),
            start_time: start ?? null,
            end_time: end ?? null,
          }
          body = (answer, what) =>
            assert.deepEqual(JSON.parse(answer.text), expected, what)
          break
        }
        const afterTime = num('after')
        const given = ['start_time', 'end_time'].filter((n) => values.has(n))
        const swapped =
          given.length === 2 &&
          Number(values.get('start_time')) > Number(values.get('end_time'))
        if (afterTime !== undefined && swapped) {
          // api.md does not say whether `after` applies before or after the
          // swap: only the status is known.
          break
        }
        const fromAfter = inInterval.filter(
          (e) => afterTime === undefined || e.timestamp > afterTime,
        )
        const limit = num('limit')
        const page = limit === undefined ? fromAfter : fromAfter.slice(0, limit)
        const more = page.length < fromAfter.length
        const format = eventFormat(accept)
        const text = renderEvents(page, format)
        body = (answer, what) => {
          assert.match(
            String(answer.headers.get('content-type')),
            CONTENT_TYPES[format],
            `${what}: content type for Accept ${String(accept)}`,
          )
          assert.equal(answer.text, text, what)
          assert.equal(
            answer.headers.get('link') !== null,
            more,
            `${what}: Link`,
          )
        }
        break
      }
    }
    return (answer, what) => {
      assert.equal(
        answer.status,
        status,
        `${what}: status; body ${answer.text.slice(0, 300)}`,
      )
      if (head) assert.equal(answer.text, '', `${what}: HEAD has no body`)
      else body?.(answer, what)
    }
  }
}

// --- the generator ---

/** Characters that are not percent-encoded in a path segment or query. */
const UNRESERVED = /[A-Za-z0-9\-._~]/

/**
 * Percent-encodes a key, value or path segment as `encodeURIComponent` does,
 * then encodes some more unreserved characters too (`_` as `%5F`, `a` as
 * `%61`), in upper or lower case hex: the same text once decoded.
 */
function encode(rng: Random, text: string, plusForSpace = false): string {
  let out = ''
  for (const char of text) {
    if (UNRESERVED.test(char) && rng.chance(0.1)) {
      const hex = char.charCodeAt(0).toString(16).padStart(2, '0')
      out += `%${rng.chance(0.5) ? hex.toUpperCase() : hex}`
    } else if (char === ' ' && plusForSpace && rng.chance(0.5)) {
      out += '+'
    } else {
      const encoded = encodeURIComponent(char)
      out += rng.chance(0.3)
        ? encoded.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase())
        : encoded
    }
  }
  return out
}

/** Random text of any Unicode characters (no lone surrogates). */
function randomText(rng: Random, max: number): string {
  const pools = [
    'abcdefghijklmnopqrstuvwxyz',
    'ABCXYZ0123456789',
    ' !"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~',
    'éüßøñ日本語ロボット🤖👩‍🚀🇫🇷\u00a0\u200b\ufeff\u2028',
    '\u0000\u0001\t\n\r\u001f\u007f\u0085',
  ]
  let out = ''
  for (let i = rng.int(1, max); i > 0; i--) {
    out += rng.string(1, rng.pick(pools))
  }
  return out
}

const VALID_TIMESTAMPS = (rng: Random): string =>
  rng.pick([
    () => String(rng.below(320)),
    () => String(rng.below(320)),
    () => '0',
    () => String(MAX_TIMESTAMP),
    () => String(MAX_TIMESTAMP - rng.below(5)),
    () => '0'.repeat(rng.int(1, 20)) + String(rng.below(320)),
    () => '0'.repeat(10_000) + String(rng.below(320)),
    () => '',
  ])()

const BAD_TIMESTAMPS = [
  'abc',
  '-1',
  '-0',
  '+1',
  ' 1',
  '1 ',
  '1.5',
  '1.',
  '1e3',
  '1e999',
  '0x10',
  'NaN',
  'Infinity',
  '9007199254740992',
  String(2 ** 53),
  '18446744073709551616',
  '9'.repeat(10_000),
  'x'.repeat(10_000),
  '١٢',
  '１',
  '%',
  '%zz',
  '[]',
  '1,2',
  '1;2',
  '\u0000',
  'null',
  'undefined',
  'true',
]

function limitValue(rng: Random, max: number): string {
  return rng.pick([
    () => String(rng.int(1, 5)),
    () => String(rng.int(1, 20)),
    () => String(max),
    () => '',
    () => rng.pick(['0', '-1', '-0', '+1', '1.5', '1.0', '1e3', '0x10', 'abc']),
    () => String(max + 1),
    () => String(max * 10),
    () => '9'.repeat(10_000),
    () => ' 1',
  ])()
}

/** A query of random pairs, some repeated, for a route. */
function randomPairs(rng: Random, route: Route): [string, string][] {
  const known = ['start_time', 'end_time', 'limit', 'after']
  const unknown = [
    'x',
    'foo',
    'Limit',
    'START_TIME',
    'start_time[]',
    'limit[a]',
    'after.',
    '__proto__',
    'constructor',
    'toString',
    'hasOwnProperty',
    'start time',
    'ａfter',
    '',
    'q',
  ]
  // At most one value of 10 KB, so that the URL stays under 16 KiB.
  let long = false
  const bounded = (make: () => string) => {
    for (;;) {
      const value = make()
      if (value.length < 1000) return value
      if (!long) {
        long = true
        return value
      }
    }
  }
  const timestamp = () =>
    bounded(() =>
      rng.chance(0.6) ? VALID_TIMESTAMPS(rng) : rng.pick(BAD_TIMESTAMPS),
    )
  const pairs: [string, string][] = []
  for (let n = rng.int(0, 4); n > 0; n--) {
    const key = rng.chance(0.75)
      ? rng.pick(rng.chance(0.8) ? [...ROUTE_PARAMS[route], ...known] : known)
      : rng.pick(unknown)
    let value: string
    if (key === 'limit') {
      value = bounded(() =>
        limitValue(rng, route === 'robots' ? 10_000 : 100_000),
      )
    } else if (key === 'after' && route === 'robots') {
      value = bounded(() =>
        rng.chance(0.5)
          ? rng.pick([...FIXTURE_NAMES, '', 'a', 'Z', '~', '\u{10ffff}'])
          : rng.chance(0.05)
            ? 'z'.repeat(10_000)
            : randomText(rng, 8),
      )
    } else {
      value = timestamp()
    }
    pairs.push([key, value])
    if (rng.chance(0.1)) pairs.push([key, rng.chance(0.5) ? '' : timestamp()])
  }
  return pairs
}

function queryString(rng: Random, pairs: readonly [string, string][]): string {
  if (pairs.length === 0) return rng.chance(0.1) ? '?' : ''
  return (
    '?' +
    pairs
      .map(([key, value]) => {
        const k = encode(rng, key, true)
        const v = encode(rng, value, true)
        return value === '' && rng.chance(0.3) ? k : `${k}=${v}`
      })
      .join('&')
  )
}

/** A name no robot has, that does not look like a leak when echoed. */
function unknownName(rng: Random, api: Api): string {
  for (;;) {
    const name = randomText(rng, 30)
    if (
      name !== '.' &&
      name !== '..' &&
      !api.robots.has(name) &&
      !looksLikeLeak(name) &&
      encodeURIComponent(name).length < 4000
    ) {
      return name
    }
  }
}

function routePath(route: Route, segment: string): string {
  switch (route) {
    case 'healthz':
      return '/healthz'
    case 'metrics':
      return '/metrics'
    case 'openapi':
      return '/api/openapi.json'
    case 'robots':
      return '/api/robots'
    case 'robot':
      return `/api/robots/${segment}`
    default:
      return `/api/robots/${segment}/${route}`
  }
}

/**
 * Accept headers, and the format each gets (api.md, Content negotiation):
 * the highest q-value wins, the first listed among equals, JSON when none of
 * the three is acceptable.
 */
const ACCEPTS = new Map<string | undefined, 'json' | 'ndjson' | 'csv'>([
  [undefined, 'json'],
  ['application/json', 'json'],
  ['application/x-ndjson', 'ndjson'],
  ['text/csv', 'csv'],
  ['TEXT/CSV; q=0.5', 'csv'],
  ['text/html, text/csv;q=0.9, application/json', 'json'],
  ['application/xml, application/x-ndjson', 'ndjson'],
  ['*/*', 'json'],
  ['application/*', 'json'],
  ['text/csv-schema', 'json'],
  ['garbage', 'json'],
  [',,,', 'json'],
  [';;;', 'json'],
  ['text/csv;charset=utf-8, application/json', 'csv'],
  ['application/json;q=0, text/csv', 'csv'],
  [' application/x-ndjson ', 'ndjson'],
  ['constructor', 'json'],
  ['__proto__', 'json'],
  ['a'.repeat(1000), 'json'],
])

/** A GET or HEAD of a known route, with a random query and Accept header. */
function routeCase(rng: Random, api: Api, i: number): Case {
  const route = rng.weighted<Route>({
    healthz: 1,
    metrics: 1,
    openapi: 1,
    robots: 6,
    robot: 4,
    events: 10,
    odometer: 6,
  })
  const robot = rng.chance(0.7)
    ? rng.pick(FIXTURE_NAMES)
    : unknownName(rng, api)
  const pairs = randomPairs(rng, route)
  const accept = rng.pick([...ACCEPTS.keys()])
  const head = rng.chance(0.08)
  const path = routePath(route, encode(rng, robot)) + queryString(rng, pairs)
  const check = api.expect(route, robot, pairs, accept, head)
  const what = `seed ${SEED}, request ${i}: ${head ? 'HEAD' : 'GET'} ${show(path, 300)} (Accept ${String(accept)}; pairs ${show(JSON.stringify(pairs), 300)})`
  return {
    what,
    path,
    options: {
      method: head ? 'HEAD' : 'GET',
      headers: accept === undefined ? {} : { accept },
    },
    check: (answer) => check(answer, what),
  }
}

/** Pieces of broken percent-encoding (errors.md: INVALID_URL). */
const BROKEN_ESCAPES = [
  '%',
  '%z',
  '%zz',
  '%G0',
  '%0G',
  '%-1',
  '%+1',
  '%%',
  '%2',
  '%E0%A4%A',
  '%E0%A4',
  '%C0%AF',
  '%C3',
  '%C3%28',
  '%80',
  '%FF',
  '%FE%FF',
  '%ED%A0%80',
  '%F4%90%80%80',
  '%F8%88%80%80%80',
]

/** Robot names that stay ASCII once percent-encoded. */
const ASCII_NAMES = FIXTURE_NAMES.filter((name) => /^[\x20-\x7e]*$/.test(name))

/**
 * A path with broken percent-encoding somewhere: 400 INVALID_URL. The
 * broken piece goes between two characters, never inside an escape, and an
 * incomplete escape is followed by `~`, so that no valid escape results.
 */
function brokenUrlCase(rng: Random, api: Api, i: number): Case {
  const route = rng.pick<Route>([
    'robot',
    'events',
    'odometer',
    'robot',
    'healthz',
    'robots',
  ])
  let broken = rng.pick(BROKEN_ESCAPES)
  if (/%[0-9A-Fa-f]?$/.test(broken)) broken += '~'
  let path: string
  if (route === 'healthz' || route === 'robots' || rng.chance(0.2)) {
    // Anywhere in the path, even in a part of the route.
    const plain = routePath(route, encodeURIComponent(rng.pick(ASCII_NAMES)))
    const cuts = [...plain].flatMap((_, at) =>
      at > 0 && plain[at - 1] !== '%' && plain[at - 2] !== '%' ? [at] : [],
    )
    const at = rng.pick([...cuts, plain.length])
    path = plain.slice(0, at) + broken + plain.slice(at)
  } else {
    const pieces = [...unknownName(rng, api)].map((c) => encode(rng, c))
    pieces.splice(rng.below(pieces.length + 1), 0, broken)
    path = routePath(route, pieces.join(''))
  }
  if (rng.chance(0.3)) path += '?start_time=1&limit=2'
  const what = `seed ${SEED}, request ${i}: GET ${show(path, 300)}`
  return {
    what,
    path,
    options: {},
    check: (answer) => assertError(answer, 'INVALID_URL', what),
  }
}

/** A path no route has: 404 ROUTE_NOT_FOUND. */
function noRouteCase(rng: Random, api: Api, i: number): Case {
  const robot = encode(rng, rng.pick([...FIXTURE_NAMES, unknownName(rng, api)]))
  const mutations = [
    '/HEALTHZ',
    '/Healthz',
    '/healthz/',
    '/healthz/x',
    '//healthz',
    '/Metrics',
    '/metrics/',
    '/metrics.json',
    '/API/robots',
    '/api/Robots',
    '/api/robot',
    '/api//robots',
    '//api/robots',
    '/api',
    '/api/',
    '/robots',
    '/api/v1/robots',
    '/upstream',
    '/upstream/',
    '/api/openapi',
    '/api/openapi.json/',
    '/api/OpenAPI.json',
    '/api/openapi.yaml',
    '/favicon.ico',
    // The dashboard's files are exact paths (docs/dashboard.md).
    '/index.htm',
    '/app.js/',
    '/Style.css',
    '/.env',
    '/admin',
    `/api/robots/${robot}/`,
    `/api/robots/${robot}/events/`,
    `/api/robots/${robot}/odometer/`,
    `/api/robots/${robot}/events/x`,
    `/api/robots/${robot}/odometer/0`,
    `/api/robots/${robot}/Events`,
    `/api/robots/${robot}/ODOMETER`,
    `/api/robots/${robot}/event`,
    `/api/robots/${robot}/odometers`,
    `/api/robots/${robot}/x`,
    `/api/robots/${robot}//events`,
    `/api/robots/${robot}/events/${robot}`,
  ]
  let path: string
  if (rng.chance(0.6)) {
    path = rng.pick(mutations)
  } else {
    // Random segments; the first one cannot begin any route.
    const first = rng.pick([..."-_~!$'()*+,;=:@0123456789"])
    const segments = Array.from({ length: rng.int(1, 4) }, () => {
      let name: string
      do name = randomText(rng, 12)
      while (looksLikeLeak(name))
      return encode(rng, name)
    })
    path = `/${first}${segments.join('/')}`
    if (looksLikeLeak(decodeURIComponent(path))) path = `/${first}`
  }
  path += queryString(rng, randomPairs(rng, 'events'))
  const what = `seed ${SEED}, request ${i}: GET ${show(path, 300)}`
  return {
    what,
    path,
    options: {},
    check: (answer) => assertError(answer, 'ROUTE_NOT_FOUND', what),
  }
}

/** Methods whose JSON body the server parses (errors.md: BAD_REQUEST if it does not). */
const BODY_METHODS = ['PUT', 'DELETE', 'PATCH', 'OPTIONS', 'POST']

/** Other methods Node.js knows: no route has them. */
const OTHER_METHODS = [
  'TRACE',
  'PROPFIND',
  'PROPPATCH',
  'MKCOL',
  'COPY',
  'MOVE',
  'LOCK',
  'UNLOCK',
  'SEARCH',
  'PURGE',
  'REPORT',
  'NOTIFY',
  'SUBSCRIBE',
  'UNSUBSCRIBE',
  'LINK',
  'UNLINK',
  'MKCALENDAR',
  'ACL',
  'M-SEARCH',
]

/** A known route with another method than GET or HEAD, maybe with a body. */
function methodCase(rng: Random, i: number): Case {
  const route = rng.pick<Route>([
    'healthz',
    'metrics',
    'openapi',
    'robots',
    'robot',
    'events',
    'odometer',
  ])
  const path =
    routePath(route, encode(rng, rng.pick(FIXTURE_NAMES))) +
    queryString(rng, randomPairs(rng, route))
  const withBody = rng.chance(0.6)
  const method = rng.pick(
    withBody || rng.chance(0.5)
      ? // DELETE of a robot is a route (it would delete the fixture): the
        // tests of test/e2e/delete.e2e.test.ts have it.
        BODY_METHODS.filter((m) => route !== 'robot' || m !== 'DELETE')
      : OTHER_METHODS,
  )
  const headers: Record<string, string> = {}
  let body: string | Buffer | undefined
  // errors.md: a JSON body that cannot be parsed is BAD_REQUEST (on a
  // method other than GET); anything else on no route is ROUTE_NOT_FOUND.
  let code: 'ROUTE_NOT_FOUND' | 'BAD_REQUEST' = 'ROUTE_NOT_FOUND'
  if (withBody) {
    switch (rng.below(4)) {
      case 0:
        headers['content-type'] = rng.pick([
          'application/json',
          'application/json; charset=utf-8',
          'Application/JSON',
        ])
        body = rng.pick(['{', '[1,', '{"a":', 'nope', '\u0000', "{'a':1}", ' '])
        code = 'BAD_REQUEST'
        break
      case 1:
        headers['content-type'] = 'application/json'
        body = rng.pick(['{"a":1}', '[]', '1', '"text"', 'null', '{"x":[1,2]}'])
        break
      case 2:
        headers['content-type'] = 'application/json'
        body = rng.bytes(rng.int(1, 64))
        code = 'BAD_REQUEST'
        // Random bytes that happen to be JSON are not bad.
        try {
          JSON.parse(body.toString('utf8'))
          code = 'ROUTE_NOT_FOUND'
        } catch {
          // not JSON
        }
        break
      default:
        headers['content-type'] = rng.pick([
          'application/x-unknown',
          'application/octet-stream',
          'image/png',
          'x/y',
        ])
        body = rng.bytes(rng.int(0, 200))
    }
  }
  const what = `seed ${SEED}, request ${i}: ${method} ${show(path, 300)} (${String(headers['content-type'])}: ${body === undefined ? 'no body' : show(body, 80)})`
  return {
    what,
    path,
    options: { method, headers, body },
    check: (answer) => assertError(answer, code, what),
  }
}

/** A robot path segment around the 4096-character limit. */
function segmentLengthCase(rng: Random, i: number): Case {
  const route = rng.pick<Route>(['robot', 'events', 'odometer'])
  const length = rng.int(4080, 4112)
  const name = rng.string(length, 'abcdefghijklmnopqrstuvwxyz0123456789-_~')
  const path = routePath(route, name)
  const what = `seed ${SEED}, request ${i}: GET ${route} of a ${length}-character name`
  return {
    what,
    path,
    options: {},
    check: (answer) => {
      if (length > 4096) return assertError(answer, 'BAD_REQUEST', what)
      if (route === 'robot') return assertError(answer, 'ROBOT_NOT_FOUND', what)
      assert.equal(answer.status, 200, what)
      assert.deepEqual(
        JSON.parse(answer.text),
        route === 'events'
          ? []
          : { robot: name, odometer: 0, start_time: null, end_time: null },
        what,
      )
    },
  }
}

/** Runs cases with a few requests in flight, checking every answer. */
async function runCases(server: ServerProcess, cases: readonly Case[]) {
  const statuses: Record<number, number> = {}
  await mapLimit(cases, 6, async (c) => {
    const answer = await withTimeout(http(server, c.path, c.options), c.what)
    statuses[answer.status] = (statuses[answer.status] ?? 0) + 1
    assert.ok(answer.status < 500, `${c.what}: ${answer.status} ${answer.text}`)
    assertNoLeak(answer.text, c.what)
    c.check(answer)
  })
  return statuses
}

describe(`HTTP API fuzz (${seedNote(SEED)})`, () => {
  let server: ServerProcess
  let api: Api
  let requests = 0

  before(async () => {
    server = await startServer()
    api = new Api(makeFixture(Random.derive(SEED, 0)))
    const client = await IngestClient.connect(server.wsUrl)
    const lines = [...api.robots.values()].flatMap((events) =>
      events.map((e) => `${e.x},${e.y},${e.timestamp},${e.robot}`),
    )
    assert.equal(
      await client.send(lines.join('\n')),
      repeatLine('OK', lines.length),
    )
    await client.end()
  })
  after(async () => {
    await server?.dispose()
  })

  test('answers random queries on every route exactly as api.md says: the right data, or 400 INVALID_QUERY naming a bad parameter', async (t) => {
    const r = Random.derive(SEED, 2)
    const cases = Array.from({ length: 1000 }, (_, i) => routeCase(r, api, i))
    const statuses = await runCases(server, cases)
    requests += cases.length
    t.diagnostic(
      `${cases.length} requests; statuses ${JSON.stringify(statuses)}`,
    )
    assert.ok((statuses[200] ?? 0) > 0 && (statuses[400] ?? 0) > 0)
  })

  test('answers random paths: 400 INVALID_URL for broken percent-encoding, 404 ROUTE_NOT_FOUND for no route, 400 BAD_REQUEST for a segment over 4096 characters', async (t) => {
    const r = Random.derive(SEED, 3)
    const cases = Array.from({ length: 600 }, (_, i) => {
      switch (r.below(5)) {
        case 0:
        case 1:
          return brokenUrlCase(r, api, i)
        case 2:
        case 3:
          return noRouteCase(r, api, i)
        default:
          return segmentLengthCase(r, i)
      }
    })
    const statuses = await runCases(server, cases)
    requests += cases.length
    t.diagnostic(
      `${cases.length} requests; statuses ${JSON.stringify(statuses)}`,
    )
  })

  test('answers other methods on known routes with 404 ROUTE_NOT_FOUND, or 400 BAD_REQUEST for a JSON body that does not parse', async (t) => {
    const r = Random.derive(SEED, 4)
    const cases = Array.from({ length: 300 }, (_, i) => methodCase(r, i))
    const statuses = await runCases(server, cases)
    requests += cases.length
    t.diagnostic(
      `${cases.length} requests; statuses ${JSON.stringify(statuses)}`,
    )
  })

  test('answers any request of over 16 KiB of request line and headers with 431 HEADERS_TOO_LARGE and closes the connection', async () => {
    const r = Random.derive(SEED, 5)
    const shapes = [
      () =>
        `/api/robots/Bender/events?start_time=${'1'.repeat(r.int(17_000, 40_000))}`,
      () =>
        `/api/robots?${Array.from({ length: r.int(2200, 3000) }, () => 'limit=1').join('&')}`,
      () => `/api/robots/${'%41'.repeat(r.int(6000, 9000))}`,
      () =>
        `/${Array.from({ length: r.int(9000, 12000) }, () => 'a').join('/')}`,
      () => `/nope?${'x'.repeat(r.int(17_000, 20_000))}`,
    ]
    for (const [i, shape] of shapes.entries()) {
      const path = shape()
      const what = `seed ${SEED}, long URL ${i} (${path.length} characters)`
      const answer = await withTimeout(
        rawExchange(server, `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`),
        what,
      )
      // Resolved: the server closed the connection after its answer.
      assertError(answer, 'HEADERS_TOO_LARGE', what)
    }
    const header = `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Junk: ${'j'.repeat(r.int(17_000, 30_000))}\r\n\r\n`
    assertError(
      await withTimeout(rawExchange(server, header), 'a long header'),
      'HEADERS_TOO_LARGE',
      'a long header',
    )
    // Just under the limit: answered as usual.
    const below = await http(
      server,
      `/api/robots/Bender/events?start_time=${'0'.repeat(12_000)}`,
    )
    assert.equal(below.status, 200, 'a 12 KB URL')
    assert.deepEqual(
      JSON.parse(below.text),
      api.robots.get('Bender'),
      'start_time of 12,000 zeros is 0',
    )
    requests += shapes.length + 2
  })

  test('answers random bytes as the request line with 400 BAD_REQUEST and closes the connection', async (t) => {
    const r = Random.derive(SEED, 6)
    let n = 0
    const outcomes: Record<string, number> = {}
    for (let i = 0; i < 60; i++) {
      // Any bytes but CR and LF, not starting like a method (A–Z).
      const line = r.bytes(r.int(1, 100), [0x0d, 0x0a])
      if (line[0]! >= 0x41 && line[0]! <= 0x5a) line[0] = 0x21
      const data = Buffer.concat([line, Buffer.from('\r\nHost: x\r\n\r\n')])
      const what = `seed ${SEED}, raw request ${i}: ${show(data)}`
      const answer = await withTimeout(rawExchange(server, data), what)
      assertError(answer, 'BAD_REQUEST', what)
      n++
    }
    for (let i = 0; i < 60; i++) {
      // A method, then random bytes as the target: never a route.
      const target = r.bytes(r.int(1, 60), [0x0d, 0x0a, 0x20])
      if ('/*hH'.includes(String.fromCharCode(target[0]!))) target[0] = 0x21
      const method = r.pick(['GET', 'HEAD', 'POST', 'DELETE', 'OPTIONS'])
      const data = Buffer.concat([
        Buffer.from(`${method} `),
        target,
        Buffer.from(' HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
      ])
      const what = `seed ${SEED}, raw target ${i}: ${show(data)}`
      const answer = await withTimeout(rawExchange(server, data), what)
      if (method === 'HEAD' && answer.status >= 400 && answer.text === '') {
        assert.ok(answer.status < 500, what)
      } else {
        const code = assertCatalogError(answer, what)
        outcomes[code] = (outcomes[code] ?? 0) + 1
      }
      n++
    }
    for (let i = 0; i < 60; i++) {
      // A valid request line, then a random header line.
      const header = r.bytes(r.int(1, 60), [0x0d, 0x0a])
      const data = Buffer.concat([
        Buffer.from('GET /healthz HTTP/1.1\r\nHost: x\r\n'),
        header,
        Buffer.from('\r\nConnection: close\r\n\r\n'),
      ])
      const what = `seed ${SEED}, raw header ${i}: ${show(data)}`
      const answer = await withTimeout(rawExchange(server, data), what)
      if (answer.status === 200) {
        assert.deepEqual(JSON.parse(answer.text), HEALTHY, what)
      } else {
        const code = assertCatalogError(answer, what)
        outcomes[code] = (outcomes[code] ?? 0) + 1
      }
      n++
    }
    // Malformed framing: not valid HTTP.
    const framing = [
      'GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n',
      'GET /healthz HTTP/1.1\nHost: x\n\n',
      'get /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
      'FOO /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\n: no name\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nX: a\u0000b\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n',
      'GET /api/robots/\u00ff\u00fe HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /api/robots/a\u0001b HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET api/robots HTTP/1.1\r\nHost: x\r\n\r\n',
    ]
    for (const text of framing) {
      const what = `raw ${JSON.stringify(text)}`
      const answer = await withTimeout(
        rawExchange(server, Buffer.from(text, 'latin1')),
        what,
      )
      assertError(answer, 'BAD_REQUEST', what)
      n++
    }
    requests += n
    t.diagnostic(
      `${n} raw requests; codes of random targets and header lines: ${JSON.stringify(outcomes)}`,
    )
  })

  test('answers a WebSocket upgrade to any path but /upstream with 404 ROUTE_NOT_FOUND in JSON', async () => {
    const r = Random.derive(SEED, 7)
    for (let i = 0; i < 40; i++) {
      let path = r.pick([
        () => noRouteCase(r, api, i).path,
        () => brokenUrlCase(r, api, i).path,
        () => routeCase(r, api, i).path,
        () => `/upstream/${encode(r, unknownName(r, api))}`,
        () => `/Upstream?${encode(r, randomText(r, 10))}`,
      ])()
      // A plain GET to /upstream is no route, but an upgrade to it, with
      // any query, is the ingest endpoint (protocol.md): not this case.
      if (path.split('?', 1)[0] === '/upstream') path = `/x${path}`
      const data =
        `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'
      const what = `seed ${SEED}, upgrade ${i}: ${show(path, 200)}`
      const answer = await withTimeout(rawExchange(server, data), what)
      assertError(answer, 'ROUTE_NOT_FOUND', what)
    }
    requests += 40
  })

  test('answers an HTTP/1.1 request without a Host header with 400 BAD_REQUEST in JSON, as errors.md says of a request that is not valid HTTP', async () => {
    for (const path of ['/healthz', '/api/robots', '/nope']) {
      const answer = await withTimeout(
        rawExchange(server, `GET ${path} HTTP/1.1\r\n\r\n`),
        `GET ${path} without Host`,
      )
      assertError(answer, 'BAD_REQUEST', `GET ${path} HTTP/1.1 without Host`)
    }
  })

  test('answers a CONNECT request with a 4xx JSON error of the catalog, not a silent close', async () => {
    for (const target of ['/api/robots', '127.0.0.1:1', 'example.com:443']) {
      const answer = await withTimeout(
        rawExchange(server, `CONNECT ${target} HTTP/1.1\r\nHost: x\r\n\r\n`),
        `CONNECT ${target}`,
      )
      assert.ok(answer.received > 0, `CONNECT ${target}: some answer`)
      assertCatalogError(answer, `CONNECT ${target}`)
    }
  })

  test('after all that, still answers and logged no failed request', async (t) => {
    const health = await withTimeout(http(server, '/healthz'), 'healthz')
    assert.equal(health.status, 200)
    const list = await withTimeout(http(server, '/api/robots'), 'robots')
    assert.deepEqual(
      (JSON.parse(list.text) as { name: string }[]).map((r) => r.name),
      api.names,
    )
    // An unexpected failure is logged at level error (50) or fatal (60).
    const failures = server
      .stderr()
      .split('\n')
      .filter((line) => /"level":(50|60)\b/.test(line))
    assert.deepEqual(failures, [], 'no error in the server log')
    t.diagnostic(`${requests} requests in all`)
    console.log(`fuzz-http: ${requests} requests in all`)
  })
})
