/**
 * The contract of the HTTP API as JSON Schema, written once. The routes of
 * routes.ts declare these schemas; Fastify validates requests with them, and
 * `@fastify/swagger` turns them into the OpenAPI document served at
 * `/api/openapi.json`, so the document cannot drift from the routes.
 *
 * Query values stay strings with a pattern. JSON Schema says badly that an
 * empty value means absent, that an integer may reach 2^53−1 (`1e3` is no
 * timestamp here, though Ajv would coerce it to 1000), or that a parameter
 * given twice is an error; the parsers of params.ts check those rules and
 * give every message (`start_time must be a non-negative integer`). A
 * pattern is never stricter than its parser, so a value the schema refuses
 * always has the parser's message.
 */
import { STATUS_CODES } from 'node:http'
import fastifySwagger from '@fastify/swagger'
import type { FastifyInstance } from 'fastify'
import { MAX_ROBOT_NAME_LENGTH, MAX_TIMESTAMP } from '../domain/event.ts'
import { ERROR_CATALOG, type ErrorCode } from '../errors.ts'
import {
  MAX_EVENTS_LIMIT,
  MAX_LIVE_ROBOTS,
  MAX_ROBOTS_LIMIT,
} from './params.ts'

// --- bodies: the components of the document ---

const timestamp = {
  type: 'integer',
  minimum: 0,
  maximum: MAX_TIMESTAMP,
} as const

/** A distance; an infinite one is `null`, as `JSON.stringify` writes it. */
function distance(description: string) {
  return {
    type: ['number', 'null'],
    minimum: 0,
    description: `${description}; null when it exceeds the largest double (about 1.8e308).`,
  } as const
}

/** The robot object of `GET /api/robots` and `GET /api/robots/{robot}`. */
export const ROBOT_SCHEMA = {
  $id: 'Robot',
  type: 'object',
  additionalProperties: false,
  required: [
    'name',
    'odometer',
    'last_x',
    'last_y',
    'first_timestamp',
    'last_timestamp',
    'event_count',
    'created_time',
    'updated_time',
  ],
  properties: {
    name: { type: 'string', description: 'Exact and case-sensitive.' },
    odometer: distance(
      'Distance travelled over the whole life: the sum of the straight-line distances between consecutive stored events, those retention removed since included',
    ),
    last_x: { type: 'number', description: 'Position of the latest event.' },
    last_y: { type: 'number' },
    first_timestamp: {
      ...timestamp,
      description:
        'Of the first event ever stored, even if retention removed it.',
    },
    last_timestamp: { ...timestamp, description: 'Of the latest event.' },
    event_count: {
      type: 'integer',
      minimum: 1,
      description:
        'Events ever stored, those retention removed since included (DUP and rejected lines are not counted).',
    },
    created_time: {
      type: 'string',
      format: 'date-time',
      description: 'Server clock (UTC) when the first event was committed.',
    },
    updated_time: {
      type: 'string',
      format: 'date-time',
      description: 'Server clock (UTC) when the latest event was committed.',
    },
  },
} as const

/** One event of `GET /api/robots/{robot}/events`. */
export const EVENT_SCHEMA = {
  $id: 'Event',
  type: 'object',
  additionalProperties: false,
  required: ['robot', 'x', 'y', 'timestamp'],
  properties: {
    robot: { type: 'string' },
    x: { type: 'number' },
    y: { type: 'number' },
    timestamp,
  },
} as const

const bound = (description: string) =>
  ({ anyOf: [timestamp, { type: 'null' }], description }) as const

/** The answer of `GET /api/robots/{robot}/odometer`. */
export const ODOMETER_SCHEMA = {
  $id: 'Odometer',
  type: 'object',
  additionalProperties: false,
  required: ['robot', 'odometer', 'start_time', 'end_time'],
  properties: {
    robot: { type: 'string' },
    odometer: distance(
      'The sum of the straight-line distances between consecutive events that both lie in the interval; 0 for fewer than two',
    ),
    start_time: bound('The lower bound after the swap; null when absent.'),
    end_time: bound('The upper bound after the swap; null when absent.'),
  },
} as const

/** The one error body of the server (docs/errors.md). */
export const ERROR_SCHEMA = {
  $id: 'Error',
  type: 'object',
  additionalProperties: false,
  required: ['statusCode', 'code', 'error', 'message'],
  properties: {
    statusCode: { type: 'integer', description: 'The HTTP status, repeated.' },
    code: {
      enum: Object.keys(ERROR_CATALOG),
      description: 'A stable code of docs/errors.md; branch on this.',
    },
    error: {
      type: 'string',
      description: 'The standard reason phrase of the status.',
    },
    message: {
      type: 'string',
      description: 'What went wrong, for people; may change.',
    },
  },
} as const

// --- responses ---

const json = (schema: object) => ({ 'application/json': { schema } })

/** An error response: the error body with this status and one of these codes. */
export function errorResponse(
  status: number,
  codes: readonly ErrorCode[],
  description: string,
) {
  return {
    description,
    content: json({
      allOf: [
        { $ref: 'Error#' },
        {
          type: 'object',
          properties: {
            statusCode: { const: status },
            code: { enum: codes },
            error: { const: STATUS_CODES[status] },
          },
        },
      ],
    }),
  }
}

/** What every route may answer besides its own responses. */
export const DEFAULT_RESPONSE = {
  description:
    'Another error of the catalog: 400 BAD_REQUEST (a request without Host, a body that does not parse), 431 HEADERS_TOO_LARGE, 500 INTERNAL.',
  content: json({ $ref: 'Error#' }),
} as const

/** A JSON response. */
export function jsonResponse(description: string, schema: object) {
  return { description, content: json(schema) }
}

/** The `Link` header of a page that has a next one (docs/api.md, Paging). */
export const LINK_HEADER = {
  Link: {
    type: 'string',
    pattern: '^<[^>]+>; rel="next"$',
    description:
      'Present when more results follow: `<path?query>; rel="next"`, the request with `after` set to the last of this page.',
  },
} as const

/** The `X-Total-Count` header of `GET /api/robots`. */
export const TOTAL_COUNT_HEADER = {
  // A header is text: a decimal integer, as the pattern says.
  'X-Total-Count': {
    type: 'string',
    pattern: '^(0|[1-9][0-9]*)$',
    description:
      'How many robots are listed (they stored an event and were not deleted since), on every page: counted without reading them (Store.countRobots).',
  },
} as const

// --- requests ---

/**
 * The path parameter `robot`. An empty segment (`/api/robots/`,
 * `/api/robots//events`) is no route: routes.ts answers ROUTE_NOT_FOUND
 * when this schema refuses it.
 */
export const ROBOT_PARAMS = {
  type: 'object',
  required: ['robot'],
  properties: {
    robot: {
      type: 'string',
      minLength: 1,
      description: `Robot name, percent-encoded as one path segment (encodeURIComponent); exact and case-sensitive. Ingest takes names of 1 to ${MAX_ROBOT_NAME_LENGTH} characters; any other name is a robot with no stored event. An empty segment is no route (404 ROUTE_NOT_FOUND).`,
    },
  },
} as const

/** Digits only; empty is absent, the parser checks the maximum. */
const timestampText = (description: string) => ({
  type: 'string',
  pattern: '^[0-9]*$',
  description: `${description} A timestamp: decimal digits, 0 to ${MAX_TIMESTAMP}; empty or absent is open.`,
})

/** Up to nine digits, as the parser takes; it checks the range. */
const limitText = (max: number, what: string) => ({
  type: 'string',
  pattern: '^[0-9]{0,9}$',
  description: `At most this many ${what}: an integer from 1 to ${max}; empty or absent means all. With it, a Link header points to the next page.`,
})

/** `start_time` and `end_time`, as every interval route takes them. */
export const timeQuery = {
  start_time: timestampText(
    'Inclusive lower bound; swapped with end_time when greater.',
  ),
  end_time: timestampText('Inclusive upper bound.'),
} as const

/** The query of `GET /api/robots/{robot}/odometer`. */
export const ODOMETER_QUERY = {
  type: 'object',
  properties: timeQuery,
} as const

/** A repeatable `robot=` parameter (`GET /api/live`, `GET /api/export.mcap`). */
export function robotsParameter(description: string) {
  return {
    anyOf: [
      { type: 'string' },
      { type: 'array', items: { type: 'string' }, maxItems: MAX_LIVE_ROBOTS },
    ],
    description,
  } as const
}

/** The query of `GET /api/robots/{robot}/events`. */
export const EVENTS_QUERY = {
  type: 'object',
  properties: {
    ...timeQuery,
    limit: limitText(MAX_EVENTS_LIMIT, 'events'),
    after: timestampText(
      'Only events after this timestamp (the last of the previous page); with start_time, the later wins.',
    ),
  },
} as const

/** The query of `GET /api/robots`. */
export const ROBOTS_QUERY = {
  type: 'object',
  properties: {
    limit: limitText(MAX_ROBOTS_LIMIT, 'robots'),
    after: {
      type: 'string',
      description:
        'Only robots whose name sorts after this one, in code point order (the last of the previous page).',
    },
  },
} as const

// --- the document ---

/**
 * Registers the shared schemas and `@fastify/swagger`, which collects every
 * route declared after it into the OpenAPI document (`app.swagger()`).
 */
export async function registerSchemas(app: FastifyInstance): Promise<void> {
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Fleet telemetry API',
        version: '0.1.0',
        description:
          'Reads what robots streamed to ws://HOST:PORT/upstream (docs/protocol.md); docs/api.md has an example of every route. Every route is a GET (HEAD works too), but DELETE /api/robots/{robot}, which only an admin token may use. In a query an empty value means absent, unknown parameters are ignored, and a parameter given twice or out of its range is 400 INVALID_QUERY naming it. Every error has the body of the Error schema, with a code of docs/errors.md.',
      },
      tags: [
        {
          name: 'server',
          description: 'Readiness, metrics and this document.',
        },
        { name: 'robots', description: 'What the robots sent, read back.' },
      ],
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description:
              'A token of role read or admin (docs/security.md), when the server runs with --tokens; without it no token is needed. DELETE /api/robots/{robot} takes an admin token only (403 FORBIDDEN to the others). GET requests may give it as the access_token query parameter instead (RFC 6750 §2.3). No token or an unknown one: 401 UNAUTHORIZED with WWW-Authenticate: Bearer; an ingest token: 403 FORBIDDEN; over --max-token-requests-per-second: 429 TOO_MANY_REQUESTS.',
          },
        },
      },
      // Every route but /healthz (which says so itself): a token, or none
      // when the server has no tokens file.
      security: [{ bearer: [] }, {}],
    },
    // OpenAPI 3.1 schemas are JSON Schema 2020-12, which has `const`.
    convertConstToEnum: false,
    // The document reads top-down: what it is, its tags, the routes, then
    // the shared schemas.
    transformObject: (document) => {
      if (!('openapiObject' in document)) return document.swaggerObject
      const { openapi, info, tags, security, paths } = document.openapiObject
      return Object.assign(
        { openapi, info, tags, security, paths },
        document.openapiObject,
      )
    },
    // Shared schemas keep their names: #/components/schemas/Robot.
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) =>
        typeof json.$id === 'string' ? json.$id : `def-${i}`,
    },
  })
  for (const schema of [
    ROBOT_SCHEMA,
    EVENT_SCHEMA,
    ODOMETER_SCHEMA,
    ERROR_SCHEMA,
  ]) {
    app.addSchema(schema)
  }
}
