/**
 * Reading the HTTP API: `fetch` with the body read as text, JSON reads that
 * check the content type, the one reader of a robot's events, and
 * `node:http` requests that send a path exactly as given.
 *
 * @example
 * const events = await readEvents(server, 'Bender', { start_time: 0, end_time: 1 })
 */
import assert from 'node:assert/strict'
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http'
import type { ApiEvent } from './oracle.ts'
import { SAFETY_TIMEOUT_MS } from './wait.ts'

/** A server, or a proxy in front of servers: where requests go. */
export interface Origin {
  /** `http://HOST:PORT` */
  readonly url: string
  /** A token sent as `Authorization: Bearer …` with every request, when set. */
  readonly token?: string
}

/** `init` with the origin's token as a Bearer header, unless it has one. */
function withToken(origin: Origin, init: RequestInit = {}): RequestInit {
  if (origin.token === undefined) return init
  const headers = new Headers(init.headers)
  if (!headers.has('authorization')) {
    headers.set('authorization', `Bearer ${origin.token}`)
  }
  return { ...init, headers }
}

/** A response with its body read as text. */
export interface TextResponse {
  readonly status: number
  readonly headers: Headers
  readonly text: string
}

/** `fetch` of a path on the server, with the body read as text. */
export async function request(
  origin: Origin,
  path: string,
  init?: RequestInit,
): Promise<TextResponse> {
  const response = await fetch(origin.url + path, withToken(origin, init))
  return {
    status: response.status,
    headers: response.headers,
    text: await response.text(),
  }
}

/** A JSON response: checks the content type and parses the body. */
export async function getJson(
  origin: Origin,
  path: string,
  init?: RequestInit,
): Promise<{ status: number; headers: Headers; body: unknown }> {
  const response = await request(origin, path, init)
  assert.match(
    response.headers.get('content-type') ?? '',
    /^application\/json\b/,
    `content type of ${path}`,
  )
  return {
    status: response.status,
    headers: response.headers,
    body: JSON.parse(response.text),
  }
}

/** The path of a robot's route, the name percent-encoded: `/api/robots/a%2Fb/events`. */
export function robotPath(name: string, rest = ''): string {
  return `/api/robots/${encodeURIComponent(name)}${rest}`
}

/**
 * The query of a robot's route: a query string such as `?start_time=1`, or
 * its parameters (undefined ones left out).
 */
export type RouteQuery =
  string | Readonly<Record<string, string | number | undefined>>

function search(query: RouteQuery): string {
  if (typeof query === 'string') return query
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined) params.set(key, String(value))
  }
  return params.size === 0 ? '' : `?${params}`
}

/**
 * A robot's stored events, `GET /api/robots/{robot}/events`: all of them,
 * or those the query selects. Checks the status, 200, and that the body is
 * an array.
 */
export async function readEvents(
  origin: Origin,
  robot: string,
  query: RouteQuery = '',
): Promise<ApiEvent[]> {
  const path = robotPath(robot, `/events${search(query)}`)
  const response = await getJson(origin, path)
  assert.equal(response.status, 200, `events of ${JSON.stringify(robot)}`)
  assert.ok(Array.isArray(response.body), 'the events are an array')
  return response.body as ApiEvent[]
}

/**
 * A robot's odometer, `GET /api/robots/{robot}/odometer`: the whole body
 * (`robot`, `odometer`, `start_time`, `end_time`), checking the status, 200.
 */
export async function readOdometer(
  origin: Origin,
  robot: string,
  query: RouteQuery = '',
): Promise<Record<string, unknown>> {
  const path = robotPath(robot, `/odometer${search(query)}`)
  const response = await getJson(origin, path)
  assert.equal(response.status, 200, path)
  return response.body as Record<string, unknown>
}

const ISO_8601 =
  /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/

/** Checks that a value is an ISO 8601 date-time string. */
export function assertIsoTime(value: unknown, what = 'time'): void {
  assert.equal(typeof value, 'string', `${what} is a string`)
  assert.match(value as string, ISO_8601, `${what} is ISO 8601`)
  assert.ok(!Number.isNaN(Date.parse(value as string)), `${what} is a date`)
}

/**
 * Checks `created_time` and `updated_time` of a robot object (ISO 8601,
 * created not after updated) and returns the object without them, for a
 * whole-object comparison.
 */
export function withoutTimes(robot: unknown): Record<string, unknown> {
  assert.equal(typeof robot, 'object')
  assert.ok(robot !== null)
  const { created_time, updated_time, ...rest } = robot as Record<
    string,
    unknown
  >
  assertIsoTime(created_time, 'created_time')
  assertIsoTime(updated_time, 'updated_time')
  assert.ok(
    Date.parse(created_time as string) <= Date.parse(updated_time as string),
    'created_time is not after updated_time',
  )
  return rest
}

/** Fetches `/api/robots/{name}`, which must exist, and returns it without its times. */
export async function getRobot(
  origin: Origin,
  name: string,
): Promise<Record<string, unknown>> {
  const response = await getJson(origin, robotPath(name))
  assert.equal(response.status, 200, `robot ${JSON.stringify(name)} exists`)
  return withoutTimes(response.body)
}

// --- node:http ---

/** Options of {@link http}. */
export interface HttpOptions {
  readonly method?: string
  readonly headers?: Readonly<Record<string, string>>
  readonly body?: string | Buffer
  /**
   * Wait this long after the response headers before reading the body, as
   * a slow client does: the body piles up wherever it is buffered.
   */
  readonly readDelayMs?: number
}

const agent = new Agent({ keepAlive: true, maxSockets: 8 })

/** Response headers of `node:http` as a `Headers`, like `fetch` gives. */
export function toHeaders(
  raw: Readonly<Record<string, string | readonly string[] | undefined>>,
): Headers {
  const headers = new Headers()
  for (const [name, value] of Object.entries(raw)) {
    if (value === undefined) continue
    for (const one of typeof value === 'string' ? [value] : value) {
      headers.append(name, one)
    }
  }
  return headers
}

/** Reads a `node:http` (or `node:https`) response whole, its body as text. */
export function readResponse(res: IncomingMessage): Promise<TextResponse> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    res.on('data', (chunk: Buffer) => chunks.push(chunk))
    res.on('error', reject)
    res.on('end', () =>
      resolve({
        status: res.statusCode ?? 0,
        headers: toHeaders(res.headers),
        text: Buffer.concat(chunks).toString('utf8'),
      }),
    )
  })
}

/**
 * A request with `node:http`, which sends the path exactly as given (no
 * normalization of `.`, `..` or percent-encoding, unlike `fetch`). The path
 * must be ASCII.
 */
export function http(
  origin: Origin,
  path: string,
  options: HttpOptions = {},
): Promise<TextResponse> {
  const { hostname, port } = new URL(origin.url)
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: hostname,
        port: Number(port),
        path,
        method: options.method ?? 'GET',
        // Node.js sends no length for a body of DELETE or OPTIONS unless told.
        headers: {
          ...(origin.token === undefined
            ? {}
            : { authorization: `Bearer ${origin.token}` }),
          ...options.headers,
          ...(options.body === undefined
            ? {}
            : { 'content-length': String(Buffer.byteLength(options.body)) }),
        },
        agent,
      },
      (res) => {
        const delay = options.readDelayMs
        if (delay !== undefined) {
          res.pause()
          setTimeout(() => res.resume(), delay)
        }
        readResponse(res).then(resolve, reject)
      },
    )
    req.setTimeout(SAFETY_TIMEOUT_MS, () =>
      req.destroy(new Error(`${path}: no answer in ${SAFETY_TIMEOUT_MS} ms`)),
    )
    req.on('error', reject)
    req.end(options.body)
  })
}
