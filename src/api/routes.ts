/**
 * The HTTP API, where stored events are read. Each route parses its input
 * first (params.ts), then asks the store. This file is also the one place
 * where errors become HTTP responses.
 */
import { Readable } from 'node:stream'
import type { FastifyInstance, FastifyReply } from 'fastify'
import { errorBody, TelemetryError } from '../errors.ts'
import type { Metrics } from '../metrics.ts'
import type { EventPage, Robot, Store } from '../store/store.ts'
import { chooseEventFormat, renderEvents } from './formats.ts'
import { OPENAPI_DOCUMENT } from './openapi.ts'
import { parseEventsQuery, parseRobotsQuery, parseTimeQuery } from './params.ts'

/** Options of {@link registerApi}. */
export interface ApiOptions {
  readonly store: Store
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

/** Registers every route, the error handler and the not-found handler. */
export function registerApi(app: FastifyInstance, options: ApiOptions) {
  const { store, metrics } = options

  app.setErrorHandler((error, request, reply) => {
    if (error instanceof TelemetryError) return sendError(reply, error)
    const status = (error as { statusCode?: number }).statusCode
    if (typeof status === 'number' && status >= 400 && status < 500) {
      // A request fastify itself refused (for example a body it cannot
      // parse): a client error, without the framework's wording.
      return sendError(reply, new TelemetryError('BAD_REQUEST'))
    }
    request.log.error({ err: error }, 'request failed')
    return sendError(reply, error)
  })

  app.setNotFoundHandler((request, reply) =>
    sendError(
      reply,
      new TelemetryError('ROUTE_NOT_FOUND', {
        message: `no route for ${request.method} ${request.url.split('?', 1)[0]}`,
      }),
    ),
  )

  app.get('/healthz', async () => ({ status: 'ok' }))

  app.get('/metrics', async (request, reply) => {
    reply.type(metrics.registry.contentType)
    return metrics.registry.metrics()
  })

  app.get('/api/openapi.json', async () => OPENAPI_DOCUMENT)

  app.get('/api/robots', async (request, reply) => {
    const { limit, after } = parseRobotsQuery(request.query)
    const robots = await store.listRobots({
      after,
      limit: limit === undefined ? undefined : limit + 1,
    })
    if (limit !== undefined && robots.length > limit) {
      robots.length = limit
      reply.header('Link', nextLink(request.url, robots[limit - 1]!.name))
    }
    return robots.map(robotJson)
  })

  app.get<{ Params: RobotParams }>('/api/robots/:robot', async (request) => {
    const name = request.params.robot
    const robot = await store.getRobot(name)
    if (robot === undefined) {
      throw new TelemetryError('ROBOT_NOT_FOUND', {
        message: `robot ${JSON.stringify(name)} has no stored event`,
      })
    }
    return robotJson(robot)
  })

  app.get<{ Params: RobotParams }>(
    '/api/robots/:robot/events',
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
        const pages = store.readEvents(name, { start, end: query.end })
        return reply.send(Readable.from(renderEvents(pages, format)))
      }
      // A page: read one event more than asked to know if a next page exists.
      const events = {
        ts: [] as number[],
        x: [] as number[],
        y: [] as number[],
      }
      for await (const page of store.readEvents(name, {
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
    async (request) => {
      const name = request.params.robot
      const { start, end, startTime, endTime } = parseTimeQuery(request.query)
      const odometer = await store.odometer(name, { start, end })
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
