/**
 * The OpenAPI 3.1 document served at `/api/openapi.json`. A test checks that
 * it names exactly the routes the server has.
 */
import { ERROR_CATALOG } from '../errors.ts'
import { MAX_ROBOT_NAME_LENGTH, MAX_TIMESTAMP } from '../domain/event.ts'
import { MAX_EVENTS_LIMIT, MAX_ROBOTS_LIMIT } from './params.ts'

const timestamp = {
  type: 'integer',
  minimum: 0,
  maximum: MAX_TIMESTAMP,
} as const

const robotParam = {
  name: 'robot',
  in: 'path',
  required: true,
  description: `Robot name, URL-encoded; exact and case-sensitive. Ingest takes names of 1 to ${MAX_ROBOT_NAME_LENGTH} characters; any other name is an unknown robot.`,
  schema: { type: 'string' },
} as const

const timeParams = [
  {
    name: 'start_time',
    in: 'query',
    description:
      'Inclusive lower bound; empty or absent is open. Swapped with end_time when greater.',
    schema: timestamp,
  },
  {
    name: 'end_time',
    in: 'query',
    description: 'Inclusive upper bound; empty or absent is open.',
    schema: timestamp,
  },
] as const

const errorResponse = (description: string) => ({
  description,
  content: {
    'application/json': { schema: { $ref: '#/components/schemas/Error' } },
  },
})

/** Every route may answer an error from the catalog (docs/errors.md). */
const anyError = errorResponse(
  'An error from the catalog, e.g. 400 INVALID_URL or 431 HEADERS_TOO_LARGE',
)

const linkHeader = {
  Link: {
    description: 'Present when a next page exists: `<url>; rel="next"`.',
    schema: { type: 'string' },
  },
} as const

/** The OpenAPI document of the HTTP API. */
export const OPENAPI_DOCUMENT = {
  openapi: '3.1.0',
  info: {
    title: 'Fleet telemetry API',
    version: '0.1.0',
    description:
      'Reads what robots streamed to ws://HOST:PORT/upstream (see docs/protocol.md).',
  },
  paths: {
    '/metrics': {
      get: {
        summary:
          'Prometheus metrics of ingest, commits, connections and the process (docs/api.md lists them).',
        responses: {
          default: anyError,
          '200': {
            description: 'Prometheus text exposition format 0.0.4',
            content: { 'text/plain': { schema: { type: 'string' } } },
          },
        },
      },
    },
    '/healthz': {
      get: {
        summary: 'Readiness: 200 once the server serves.',
        responses: {
          default: anyError,
          '200': {
            description: 'Ready',
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  properties: { status: { const: 'ok' } },
                },
              },
            },
          },
        },
      },
    },
    '/api/openapi.json': {
      get: {
        summary: 'This document.',
        responses: {
          default: anyError,
          '200': { description: 'The OpenAPI document' },
        },
      },
    },
    '/api/robots': {
      get: {
        summary: 'Robots sorted by name (code point order).',
        parameters: [
          {
            name: 'limit',
            in: 'query',
            description: 'At most this many robots; absent means all.',
            schema: { type: 'integer', minimum: 1, maximum: MAX_ROBOTS_LIMIT },
          },
          {
            name: 'after',
            in: 'query',
            description: 'Only robots whose name sorts after this one.',
            schema: { type: 'string' },
          },
        ],
        responses: {
          default: anyError,
          '200': {
            description: 'The robots',
            headers: linkHeader,
            content: {
              'application/json': {
                schema: {
                  type: 'array',
                  items: { $ref: '#/components/schemas/Robot' },
                },
              },
            },
          },
          '400': errorResponse('INVALID_QUERY'),
        },
      },
    },
    '/api/robots/{robot}': {
      get: {
        summary: 'One robot.',
        parameters: [robotParam],
        responses: {
          default: anyError,
          '200': {
            description: 'The robot',
            content: {
              'application/json': {
                schema: { $ref: '#/components/schemas/Robot' },
              },
            },
          },
          '404': errorResponse('ROBOT_NOT_FOUND'),
        },
      },
    },
    '/api/robots/{robot}/events': {
      get: {
        summary:
          "A robot's events in the interval, by ascending timestamp; [] for an unknown robot.",
        parameters: [
          robotParam,
          ...timeParams,
          {
            name: 'limit',
            in: 'query',
            description: 'At most this many events; absent means all.',
            schema: { type: 'integer', minimum: 1, maximum: MAX_EVENTS_LIMIT },
          },
          {
            name: 'after',
            in: 'query',
            description: 'Only events after this timestamp.',
            schema: timestamp,
          },
        ],
        responses: {
          default: anyError,
          '200': {
            description: 'The events, streamed',
            headers: linkHeader,
            content: {
              'application/json': {
                schema: {
                  type: 'array',
                  items: { $ref: '#/components/schemas/Event' },
                },
              },
              'application/x-ndjson': {
                schema: { $ref: '#/components/schemas/Event' },
              },
              'text/csv': {
                schema: {
                  type: 'string',
                  description:
                    'Header robot,x,y,timestamp then one row per event.',
                },
              },
            },
          },
          '400': errorResponse('INVALID_QUERY'),
        },
      },
    },
    '/api/robots/{robot}/odometer': {
      get: {
        summary:
          'Distance travelled between consecutive events that both lie in the interval; 0 for an unknown robot.',
        parameters: [robotParam, ...timeParams],
        responses: {
          default: anyError,
          '200': {
            description: 'The odometer',
            content: {
              'application/json': {
                schema: { $ref: '#/components/schemas/Odometer' },
              },
            },
          },
          '400': errorResponse('INVALID_QUERY'),
        },
      },
    },
  },
  components: {
    schemas: {
      Robot: {
        type: 'object',
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
          name: { type: 'string' },
          odometer: { type: 'number' },
          last_x: { type: 'number' },
          last_y: { type: 'number' },
          first_timestamp: timestamp,
          last_timestamp: timestamp,
          event_count: { type: 'integer', minimum: 1 },
          created_time: { type: 'string', format: 'date-time' },
          updated_time: { type: 'string', format: 'date-time' },
        },
      },
      Event: {
        type: 'object',
        required: ['robot', 'x', 'y', 'timestamp'],
        properties: {
          robot: { type: 'string' },
          x: { type: 'number' },
          y: { type: 'number' },
          timestamp,
        },
      },
      Odometer: {
        type: 'object',
        required: ['robot', 'odometer', 'start_time', 'end_time'],
        properties: {
          robot: { type: 'string' },
          odometer: { type: 'number' },
          start_time: { oneOf: [timestamp, { type: 'null' }] },
          end_time: { oneOf: [timestamp, { type: 'null' }] },
        },
      },
      Error: {
        type: 'object',
        required: ['statusCode', 'code', 'error', 'message'],
        properties: {
          statusCode: { type: 'integer' },
          code: { enum: Object.keys(ERROR_CATALOG) },
          error: { type: 'string' },
          message: { type: 'string' },
        },
      },
    },
  },
} as const
