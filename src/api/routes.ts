/**
 * The HTTP API, where stored events are read. Each route declares its
 * schemas (schemas.ts), which Fastify checks first and the OpenAPI document
 * is generated from; then it parses its query (params.ts) and asks the
 * store. This file is also the one place where errors become HTTP responses.
 */
import { Readable } from 'node:stream'
import type {
  FastifyError,
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
} from 'fastify'
import { errorBody, TelemetryError } from '../errors.ts'
import type { Metrics } from '../metrics.ts'
import type { EventPage, Robot, Store } from '../store/store.ts'
import { chooseEventFormat, renderEvents } from './formats.ts'
import { parseEventsQuery, parseRobotsQuery, parseTimeQuery } from './params.ts'
import {
  DEFAULT_RESPONSE,
  EVENTS_QUERY,
  LINK_HEADER,
  TOTAL_COUNT_HEADER,
  ODOMETER_QUERY,
  ROBOT_PARAMS,
  ROBOTS_QUERY,
  errorResponse,
  jsonResponse,
  registerSchemas,
} from './schemas.ts'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route's query parser: it names the parameter its schema refused. */
    parseQuery?: (query: unknown) => unknown
  }
}

/** Options of {@link registerApi}. */
export interface ApiOptions {
  /** Where deletes go. */
  readonly store: Store
  /** Where reads go: `store`, or a replica of it (`--read-store`). */
  readonly reads: Store
  readonly metrics: Metrics
}

interface RobotParams {
  robot: string
}

/** The robot object of the API (snake_case, ISO 8601 times). */
export function robotJson(robot: Robot) {
  return {
    name: robot.name,
    odometer: robot.odometer,
    last_x: robot.lastX,
    last_y: robot.lastY,
    first_timestamp: robot.firstTimestamp,
    last_timestamp: robot.lastTimestamp,
    event_count: robot.eventCount,
    created_time: new Date(robot.createdMs).toISOString(),
    updated_time: new Date(robot.updatedMs).toISOString(),
  }
}

/** A `Link` header to the next page: the request's path and query, with `after` set. */
function nextLink(url: string, after: string | number): string {
  const next = new URL(url, 'http://host')
  next.searchParams.set('after', String(after))
  return `<${next.pathname}${next.search}>; rel="next"`
}

function sendError(reply: FastifyReply, error: unknown) {
  const body = errorBody(error)
  return reply.code(body.statusCode).type('application/json').send(body)
}

function routeNotFound(request: FastifyRequest): TelemetryError {
  return new TelemetryError('ROUTE_NOT_FOUND', {
    message: `no route for ${request.method} ${request.url.split('?', 1)[0]}`,
  })
}

/**
 * The catalog error of a request that a route's schema refused, worded as
 * the hand-written parsers word it, never as Ajv does.
 */
function refusedBySchema(
  error: FastifyError,
  request: FastifyRequest,
): TelemetryError {
  // The one rule on a path is a non-empty robot segment: `/api/robots/` and
  // `/api/robots//events` are no route (docs/api.md).
  if (error.validationContext === 'params') return routeNotFound(request)
  try {
    request.routeOptions.config.parseQuery?.(request.query)
  } catch (parsed) {
    if (parsed instanceof TelemetryError) return parsed
    throw parsed
  }
  // Unreachable while no pattern is stricter than its parser (the query
  // table of test/e2e/openapi.e2e.test.ts); still a catalog error.
  const name = error.validation?.[0]?.instancePath.slice(1) || 'a parameter'
  return new TelemetryError('INVALID_QUERY', { message: `${name} is invalid` })
}

const NO_HOST = 'BAD_REQUEST: an HTTP/1.1 request without Host'
const ROBOT_TAGS = ['robots']
const SERVER_TAGS = ['server']

/** Registers every route, the error handler and the not-found handler. */
export async function registerApi(app: FastifyInstance, options: ApiOptions) {
  const { store, reads, metrics } = options

  await registerSchemas(app)
  // Bodies are written by JSON.stringify, as without schemas: the response
  // schemas document them and the OpenAPI test checks real answers against
  // them. fast-json-stringify would instead drop undeclared fields and
  // coerce mismatched types, hiding a drift the test must see.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data))

  app.setErrorHandler<FastifyError>((error, request, reply) => {
    if (error instanceof TelemetryError) return sendError(reply, error)
    if (error.validation !== undefined) {
      return sendError(reply, refusedBySchema(error, request))
    }
    const status = error.statusCode
    if (typeof status === 'number' && status >= 400 && status < 500) {
      // A request fastify itself refused (for example a body it cannot
      // parse): a client error, without the framework's wording.
      return sendError(reply, new TelemetryError('BAD_REQUEST'))
    }
    request.log.error({ err: error }, 'request failed')
    return sendError(reply, error)
  })

  app.setNotFoundHandler((request, reply) =>
    sendError(reply, routeNotFound(request)),
  )

  app.get(
    '/healthz',
    {
      schema: {
        summary:
          'Readiness: 200 once the server serves (the store is open), and whether the store takes writes now. Never needs a token.',
        tags: SERVER_TAGS,
        security: [],
        response: {
          200: jsonResponse('Ready', {
            type: 'object',
            additionalProperties: false,
            required: ['status', 'store'],
            properties: {
              status: { const: 'ok' },
              store: {
                type: 'object',
                additionalProperties: false,
                required: ['writable'],
                properties: {
                  writable: {
                    type: 'boolean',
                    description:
                      'The store database answered and takes commits; false while a database failover goes on (events are then answered ERR unavailable).',
                  },
                },
              },
            },
          }),
          default: DEFAULT_RESPONSE,
        },
      },
    },
    async () => ({
      status: 'ok',
      store: { writable: (await store.health?.())?.writable ?? true },
    }),
  )

  app.get(
    '/metrics',
    {
      schema: {
        summary:
          'Prometheus metrics of ingest, commits, connections and the process (docs/api.md lists them).',
        tags: SERVER_TAGS,
        response: {
          200: {
            description: 'The Prometheus text exposition format, version 0.0.4',
            content: { 'text/plain': { schema: { type: 'string' } } },
          },
          default: DEFAULT_RESPONSE,
        },
      },
    },
    async (request, reply) => {
      reply.type(metrics.registry.contentType)
      return metrics.registry.metrics()
    },
  )

  app.get(
    '/api/openapi.json',
    {
      schema: {
        summary: 'This document: OpenAPI 3.1, generated from the routes.',
        tags: SERVER_TAGS,
        response: {
          200: jsonResponse('The OpenAPI document', {
            type: 'object',
            required: ['openapi', 'info', 'paths'],
            properties: {
              openapi: { const: '3.1.0' },
              info: { type: 'object' },
              paths: { type: 'object' },
            },
          }),
          default: DEFAULT_RESPONSE,
        },
      },
    },
    async () => app.swagger(),
  )

  app.get(
    '/api/robots',
    {
      schema: {
        summary:
          'Every robot that stored an event and was not deleted since (retention does not remove robots), sorted by name in code point order, with paging.',
        tags: ROBOT_TAGS,
        querystring: ROBOTS_QUERY,
        response: {
          200: {
            ...jsonResponse('The robots', {
              type: 'array',
              items: { $ref: 'Robot#' },
            }),
            headers: { ...LINK_HEADER, ...TOTAL_COUNT_HEADER },
          },
          400: errorResponse(
            400,
            ['INVALID_QUERY', 'BAD_REQUEST'],
            `INVALID_QUERY: limit or after is invalid or given twice; ${NO_HOST}.`,
          ),
          default: DEFAULT_RESPONSE,
        },
      },
      config: { parseQuery: parseRobotsQuery },
    },
    async (request, reply) => {
      const { limit, after } = parseRobotsQuery(request.query)
      const [robots, total] = await Promise.all([
        reads.listRobots({
          after,
          limit: limit === undefined ? undefined : limit + 1,
        }),
        reads.countRobots(),
      ])
      reply.header('X-Total-Count', String(total))
      if (limit !== undefined && robots.length > limit) {
        robots.length = limit
        reply.header('Link', nextLink(request.url, robots[limit - 1]!.name))
      }
      return robots.map(robotJson)
    },
  )

  const invalidUrl = 'INVALID_URL: broken percent-encoding in the path'
  const badPath = `${NO_HOST} or a path segment over 4096 characters`
  /** The 400 of a route whose only parameter is the robot's path segment. */
  const robotPathError = errorResponse(
    400,
    ['INVALID_URL', 'BAD_REQUEST'],
    `${invalidUrl}; ${badPath}.`,
  )
  app.get<{ Params: RobotParams }>(
    '/api/robots/:robot',
    {
      schema: {
        summary: 'One robot; 404 when it has no stored event.',
        tags: ROBOT_TAGS,
        params: ROBOT_PARAMS,
        response: {
          200: jsonResponse('The robot', { $ref: 'Robot#' }),
          400: robotPathError,
          404: errorResponse(
            404,
            ['ROBOT_NOT_FOUND'],
            'ROBOT_NOT_FOUND: the robot has no stored event.',
          ),
          default: DEFAULT_RESPONSE,
        },
      },
    },
    async (request) => {
      const name = request.params.robot
      const robot = await reads.getRobot(name)
      if (robot === undefined) {
        throw new TelemetryError('ROBOT_NOT_FOUND', {
          message: `robot ${JSON.stringify(name)} has no stored event`,
        })
      }
      return robotJson(robot)
    },
  )

  app.delete<{ Params: RobotParams }>(
    '/api/robots/:robot',
    {
      schema: {
        summary:
          'Deletes a robot and every event of it; 404 when it has no stored event. With a tokens file, only an admin token may (403 FORBIDDEN to read and ingest tokens). An event of that name committed afterwards starts a new robot.',
        tags: ROBOT_TAGS,
        params: ROBOT_PARAMS,
        response: {
          204: { type: 'null', description: 'Deleted; no body.' },
          400: robotPathError,
          404: errorResponse(
            404,
            ['ROBOT_NOT_FOUND'],
            'ROBOT_NOT_FOUND: the robot has no stored event (never had one, or was deleted already).',
          ),
          default: DEFAULT_RESPONSE,
        },
      },
      config: { need: 'delete' },
    },
    async (request, reply) => {
      // Decoded as the GET route decodes it: the same router, the same
      // parameter, so the name is the one GET finds.
      const name = request.params.robot
      if (!(await store.deleteRobot(name))) {
        throw new TelemetryError('ROBOT_NOT_FOUND', {
          message: `robot ${JSON.stringify(name)} has no stored event`,
        })
      }
      request.log.info(
        { robot: name, token: request.identity?.name },
        'robot deleted',
      )
      return reply.code(204).send()
    },
  )

  const queryErrors = errorResponse(
    400,
    ['INVALID_QUERY', 'INVALID_URL', 'BAD_REQUEST'],
    `INVALID_QUERY: a parameter is invalid or given twice; ${invalidUrl}; ${badPath}.`,
  )

  app.get<{ Params: RobotParams }>(
    '/api/robots/:robot/events',
    {
      schema: {
        summary:
          "A robot's events in an interval, by ascending timestamp, as JSON, NDJSON or CSV by the Accept header (q-values honoured, JSON when none is acceptable); [] for a robot with no stored event.",
        tags: ROBOT_TAGS,
        params: ROBOT_PARAMS,
        querystring: EVENTS_QUERY,
        response: {
          200: {
            description:
              'The events; without limit, streamed page by page (chunked)',
            headers: LINK_HEADER,
            content: {
              'application/json': {
                schema: { type: 'array', items: { $ref: 'Event#' } },
              },
              'application/x-ndjson': {
                schema: {
                  allOf: [{ $ref: 'Event#' }],
                  description:
                    'The schema of each line: one Event per line, each ending in \\n.',
                },
              },
              'text/csv': {
                schema: {
                  type: 'string',
                  pattern: '^robot,x,y,timestamp\\r\\n',
                  description:
                    'The header robot,x,y,timestamp, then one row per event; CRLF line ends, the name quoted as RFC 4180 says.',
                },
              },
            },
          },
          400: queryErrors,
          default: DEFAULT_RESPONSE,
        },
      },
      config: { parseQuery: parseEventsQuery },
    },
    async (request, reply) => {
      const name = request.params.robot
      const query = parseEventsQuery(request.query)
      const start =
        query.after === undefined
          ? query.start
          : Math.max(query.start ?? 0, query.after + 1)
      const format = chooseEventFormat(request.headers.accept, name)
      reply.type(format.contentType)
      if (query.limit === undefined) {
        const pages = reads.readEvents(name, { start, end: query.end })
        return reply.send(Readable.from(renderEvents(pages, format)))
      }
      // A page: read one event more than asked to know if a next page exists.
      const events = {
        ts: [] as number[],
        x: [] as number[],
        y: [] as number[],
      }
      for await (const page of reads.readEvents(name, {
        start,
        end: query.end,
        limit: query.limit + 1,
      })) {
        events.ts.push(...page.ts)
        events.x.push(...page.x)
        events.y.push(...page.y)
      }
      if (events.ts.length > query.limit) {
        for (const column of Object.values(events)) column.length = query.limit
        reply.header('Link', nextLink(request.url, events.ts[query.limit - 1]!))
      }
      return reply.send(Readable.from(renderEvents(onePage(events), format)))
    },
  )

  app.get<{ Params: RobotParams }>(
    '/api/robots/:robot/odometer',
    {
      schema: {
        summary:
          'The distance a robot travelled in an interval: the sum of the distances between consecutive events that both lie in it; 0 for a robot with no stored event.',
        tags: ROBOT_TAGS,
        params: ROBOT_PARAMS,
        querystring: ODOMETER_QUERY,
        response: {
          200: jsonResponse('The odometer', { $ref: 'Odometer#' }),
          400: queryErrors,
          default: DEFAULT_RESPONSE,
        },
      },
      config: { parseQuery: parseTimeQuery },
    },
    async (request) => {
      const name = request.params.robot
      const { start, end, startTime, endTime } = parseTimeQuery(request.query)
      const odometer = await reads.odometer(name, { start, end })
      return {
        robot: name,
        odometer,
        start_time: startTime,
        end_time: endTime,
      }
    },
  )
}

async function* onePage(events: EventPage) {
  if (events.ts.length > 0) yield events
}
