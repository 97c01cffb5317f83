import { STATUS_CODES } from 'node:http'

/**
 * The error catalog: every error the server reports, on HTTP or on the ingest
 * WebSocket, has one stable code here. A code is never renamed or reused;
 * docs/errors.md has one row per entry.
 *
 * On HTTP an error becomes `{ statusCode, code, error, message }`; on the
 * WebSocket a rejected line becomes `ERR <code in lower case> <message>`.
 *
 * @example
 * throw new TelemetryError('ROBOT_NOT_FOUND', { message: 'robot "Bender" not found' })
 */
export const ERROR_CATALOG = {
  /** An ingest line does not parse (wire code `malformed`). */
  MALFORMED: { status: 400, message: 'the event line is malformed' },
  /** An event older than the robot's latest stored event (wire code `stale`). */
  STALE: {
    status: 409,
    message: "the event is older than the robot's latest event",
  },
  /** A stored event has this timestamp but another position (wire code `conflict`). */
  CONFLICT: {
    status: 409,
    message: 'another event of this robot is stored at this timestamp',
  },
  /** The store failed; nothing was stored (wire code `unavailable`). */
  UNAVAILABLE: { status: 503, message: 'the store is unavailable' },
  /**
   * An ingest line for a robot outside the token's `robots`, or a request
   * whose token's role may not use the endpoint (wire code `forbidden`).
   */
  FORBIDDEN: {
    status: 403,
    message: 'the token may not do this',
  },
  /** An ingest line over the token's events per second (wire code `rate_limited`). */
  RATE_LIMITED: {
    status: 429,
    message: "the event is over the token's events per second",
  },
  /** No token, or one the tokens file does not hold. */
  UNAUTHORIZED: {
    status: 401,
    message: 'a valid token is needed',
  },
  /**
   * A request over the token's requests per second, or an ingest upgrade
   * over its open connections.
   */
  TOO_MANY_REQUESTS: {
    status: 429,
    message: 'too many requests with this token',
  },
  /** An ingest upgrade over the connection limit (`--max-connections`). */
  TOO_MANY_CONNECTIONS: {
    status: 503,
    message: 'too many ingest connections',
  },
  /** A live feed stream over the limit (`--max-live-streams`). */
  TOO_MANY_STREAMS: {
    status: 503,
    message: 'too many live streams',
  },
  /** A query parameter is invalid. */
  INVALID_QUERY: { status: 400, message: 'a query parameter is invalid' },
  /** The path has broken percent-encoding. */
  INVALID_URL: { status: 400, message: 'the URL cannot be decoded' },
  /** The request line and headers together exceed Node's 16 KiB limit. */
  HEADERS_TOO_LARGE: {
    status: 431,
    message: 'the request line and headers are too large',
  },
  /** Any other request the HTTP layer rejects before it reaches a route. */
  BAD_REQUEST: { status: 400, message: 'the request is invalid' },
  /** The named robot has no stored event. */
  ROBOT_NOT_FOUND: { status: 404, message: 'robot not found' },
  /** No route matches the method and path. */
  ROUTE_NOT_FOUND: { status: 404, message: 'route not found' },
  /** An unexpected failure; details go to the log, never to the client. */
  INTERNAL: { status: 500, message: 'internal server error' },
} as const satisfies Record<string, { status: number; message: string }>

/** One of the stable codes of {@link ERROR_CATALOG}. */
export type ErrorCode = keyof typeof ERROR_CATALOG

/** Options of {@link TelemetryError}. */
export interface TelemetryErrorOptions {
  /** What went wrong, for a person; defaults to the catalog's message. */
  message?: string
  /** The underlying error, kept for the log. */
  cause?: unknown
}

/**
 * The one error class of the server: a catalog code, its HTTP status and a
 * message. Shaped like hono's `HTTPException`.
 */
export class TelemetryError extends Error {
  readonly code: ErrorCode
  readonly status: number

  constructor(code: ErrorCode, options?: TelemetryErrorOptions) {
    super(options?.message ?? ERROR_CATALOG[code].message, {
      cause: options?.cause,
    })
    this.name = 'TelemetryError'
    this.code = code
    this.status = ERROR_CATALOG[code].status
  }

  /** The wire code of the ingest protocol: the catalog code in lower case. */
  get wireCode(): string {
    return this.code.toLowerCase()
  }
}

/** The JSON body of an HTTP error, as fastify sends it. */
export interface ErrorBody {
  readonly statusCode: number
  readonly code: ErrorCode
  readonly error: string
  readonly message: string
}

/**
 * Renders an error as the one HTTP error body of the server. Errors we know
 * render themselves; anything else becomes `INTERNAL` with no detail.
 */
export function errorBody(error: unknown): ErrorBody {
  const known =
    error instanceof TelemetryError ? error : new TelemetryError('INTERNAL')
  return {
    statusCode: known.status,
    code: known.code,
    error: STATUS_CODES[known.status] ?? 'Error',
    message: known.message,
  }
}

/**
 * A whole HTTP/1.1 error response as raw text, for the places where no
 * framework reply exists: a refused WebSocket upgrade, a request Node could
 * not parse.
 */
export function rawHttpError(
  error: TelemetryError,
  headers: Readonly<Record<string, string>> = {},
): string {
  const body = JSON.stringify(errorBody(error))
  return (
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? 'Error'}\r\n` +
    Object.entries(headers)
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join('') +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n\r\n' +
    body
  )
}
