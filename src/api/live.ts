/**
 * `GET /api/live`: the live feed as server-sent events (text/event-stream).
 * The feed itself, and what each stream is sent, is live/feed.ts; this is
 * the HTTP edge: the query, `Last-Event-ID`, the limit, the response.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { FastifyInstance } from 'fastify'
import type { LiveFeed, LiveSink } from '../live/feed.ts'
import { MAX_LIVE_ROBOTS, parseLastEventId, parseLiveQuery } from './params.ts'
import { DEFAULT_RESPONSE, errorResponse, robotsParameter } from './schemas.ts'

/** Options of {@link registerLive}. */
export interface LiveOptions {
  readonly feed: LiveFeed
}

/** How long a browser waits before it reconnects a dropped stream. */
const RETRY_MS = 1000

/** A live stream's HTTP response, as the feed writes to it. */
class ResponseSink implements LiveSink {
  readonly #response: ServerResponse

  constructor(response: ServerResponse) {
    this.#response = response
  }

  write(text: string): void {
    if (!this.closed) this.#response.write(text)
  }

  get buffered(): number {
    // The response's own queue plus its socket's.
    return this.#response.writableLength
  }

  get closed(): boolean {
    return this.#response.destroyed || this.#response.writableEnded
  }

  drained(): Promise<void> {
    const response = this.#response
    if (this.closed) return Promise.resolve()
    return new Promise((resolve) => {
      const done = () => {
        response.off('drain', done)
        response.off('close', done)
        resolve()
      }
      response.on('drain', done)
      response.on('close', done)
    })
  }

  end(cut: boolean): void {
    if (cut) this.#response.destroy()
    else this.#response.end()
  }
}

const POSITION_FIELDS =
  '`data` is a JSON object {"robot","x","y","timestamp","odometer"}, the odometer being the robot\'s lifetime odometer at that event'

/** Registers `GET /api/live`. */
export async function registerLive(
  app: FastifyInstance,
  options: LiveOptions,
): Promise<void> {
  const { feed } = options
  app.get(
    '/api/live',
    {
      schema: {
        summary:
          'The live feed: server-sent events of what is committed, for some robots or the whole fleet (docs/api.md).',
        description: `First \`event: snapshot\` with the latest position of each robot asked for (of every robot, without robot=), then \`event: position\` for events as they are committed; ${POSITION_FIELDS}. With robot=, every event of those robots in timestamp order per robot; with exactly one, each event has \`id:\` (its timestamp), and a reconnect with Last-Event-ID gets the events after it from the store instead of the snapshot. Without robot=, the latest position of each robot that moved, at most --live-hz times a second. A comment \`: keepalive\` comes every 15 s when nothing else does.`,
        tags: ['robots'],
        querystring: {
          type: 'object',
          properties: {
            robot: robotsParameter(
              `A robot to follow, exact and case-sensitive; repeatable, up to ${MAX_LIVE_ROBOTS} times. None: the whole fleet, coalesced.`,
            ),
          },
        },
        headers: {
          type: 'object',
          properties: {
            'last-event-id': {
              type: 'string',
              description:
                'With exactly one robot: the timestamp of the last event the client has. Browsers send it by themselves when they reconnect.',
            },
          },
        },
        response: {
          200: {
            description:
              'A stream of server-sent events, open until the client leaves or the server ends it (shutdown; a named-robot stream whose client stopped reading; a lost database connection). Browsers reconnect by themselves.',
            content: {
              'text/event-stream': {
                schema: {
                  type: 'string',
                  description: `Events \`snapshot\` and \`position\`: ${POSITION_FIELDS}.`,
                },
              },
            },
          },
          400: errorResponse(
            400,
            ['INVALID_QUERY', 'BAD_REQUEST'],
            'INVALID_QUERY: a robot= is no robot name, or too many; BAD_REQUEST: Last-Event-ID is not a timestamp or the stream is not of exactly one robot.',
          ),
          503: errorResponse(
            503,
            ['TOO_MANY_STREAMS'],
            'TOO_MANY_STREAMS: --max-live-streams streams are open.',
          ),
          default: DEFAULT_RESPONSE,
        },
      },
      config: { parseQuery: parseLiveQuery },
    },
    async (request, reply) => {
      const { robots } = parseLiveQuery(request.query)
      const lastEventId = parseLastEventId(
        request.headers['last-event-id'],
        robots,
      )
      const response = reply.raw
      const headers: OutgoingHttpHeaders = {
        ...(reply.getHeaders() as OutgoingHttpHeaders),
        'content-type': 'text/event-stream; charset=utf-8',
        // Never stored: neither the events nor a token in the URL.
        'cache-control': 'no-store',
        // nginx would buffer the stream otherwise (docs/deploy.md).
        'x-accel-buffering': 'no',
      }
      if (request.method === 'HEAD') {
        return reply
          .headers(headers as Record<string, string>)
          .code(200)
          .send()
      }
      const sink = new ResponseSink(response)
      // Over the limit this throws, and the answer is a 503 with a body.
      const started = feed.open(sink, { robots, lastEventId })
      reply.hijack()
      response.writeHead(200, headers)
      response.write(`retry: ${RETRY_MS}\n\n`)
      response.on('close', () => feed.closed(sink))
      started.catch((error: unknown) => {
        request.log.error({ err: error }, 'live stream failed to start')
        sink.end(true)
      })
    },
  )
}
