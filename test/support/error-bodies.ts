/**
 * The JSON error bodies of docs/errors.md: every error is exactly
 * `{statusCode, code, error, message}`, its code from the catalog with the
 * catalog's status, and no answer shows a stack trace, a source path or SQL.
 */
import assert from 'node:assert/strict'
import { STATUS_CODES } from 'node:http'
import { request, type Origin, type TextResponse } from './http-api.ts'

/** The catalog of docs/errors.md: each code and its HTTP status. */
export const CODE_STATUS = {
  MALFORMED: 400,
  STALE: 409,
  CONFLICT: 409,
  UNAVAILABLE: 503,
  FORBIDDEN: 403,
  RATE_LIMITED: 429,
  UNAUTHORIZED: 401,
  TOO_MANY_REQUESTS: 429,
  TOO_MANY_CONNECTIONS: 503,
  TOO_MANY_STREAMS: 503,
  INVALID_QUERY: 400,
  INVALID_URL: 400,
  HEADERS_TOO_LARGE: 431,
  BAD_REQUEST: 400,
  ROBOT_NOT_FOUND: 404,
  ROUTE_NOT_FOUND: 404,
  INTERNAL: 500,
} as const

/** A code of the catalog. */
export type ErrorCode = keyof typeof CODE_STATUS

/** Every code of the catalog. */
export const ERROR_CODES = Object.keys(CODE_STATUS) as readonly ErrorCode[]

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

/**
 * Checks a whole error body: exactly `{statusCode, code, error, message}`,
 * `error` the reason phrase of the status, a non-empty message without a
 * stack trace, matching `message` when given.
 */
export function assertErrorBody(
  response: { readonly status: number; readonly text: string },
  status: number,
  code: ErrorCode,
  message?: RegExp,
): void {
  assert.equal(response.status, status, `status; body: ${response.text}`)
  const body = JSON.parse(response.text) as Record<string, unknown>
  const text = body.message
  assert.equal(typeof text, 'string', 'message is a string')
  assert.deepEqual(body, {
    statusCode: status,
    code,
    error: STATUS_CODES[status],
    message: text,
  })
  assert.notEqual(text, '')
  assert.doesNotMatch(text as string, /\n\s+at /, 'no stack trace')
  if (message !== undefined) assert.match(text as string, message)
}

/** `fetch` of a path, then {@link assertErrorBody}, also checking the JSON content type. */
export async function assertErrorResponse(
  origin: Origin,
  path: string,
  status: number,
  code: ErrorCode,
  message?: RegExp,
  init?: RequestInit,
): Promise<void> {
  const response = await request(origin, path, init)
  assert.match(
    response.headers.get('content-type') ?? '',
    /^application\/json\b/,
    `content type of ${path}`,
  )
  assertErrorBody(response, status, code, message)
}

/**
 * Checks a JSON error body of any 4xx catalog code (whichever the body
 * names) and returns the code. Never 500, never a code outside the catalog,
 * never a leak.
 */
export function assertCatalogError(
  response: TextResponse,
  what: string,
): ErrorCode {
  assert.ok(
    response.status >= 400 && response.status < 500,
    `${what}: a 4xx, not ${response.status}; body: ${response.text.slice(0, 300)}`,
  )
  assert.match(
    response.headers.get('content-type') ?? '',
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
    ERROR_CODES.includes(code) && code !== 'INTERNAL',
    `${what}: code ${String(code)} is a 4xx code of the catalog`,
  )
  assertErrorBody(response, CODE_STATUS[code], code)
  assertNoLeak(response.text, what)
  return code
}

/** Checks an error of one catalog code, with its status and JSON content type. */
export function assertError(
  response: TextResponse,
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
