/**
 * The MCAP export over HTTP: `GET /api/robots/{robot}/events.mcap` and
 * `GET /api/export.mcap`. The file is written by robotics/mcap.ts; this is
 * the HTTP edge: the query, the headers, and a response stream that the
 * export waits on, so a slow client slows the read of the store instead of
 * filling memory, and a client that leaves stops it.
 */
import { Readable } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { TelemetryError } from '../errors.ts'
import { MAX_EXPORT_ROBOTS } from '../robotics/constants.ts'
import type { McapExportOptions } from '../robotics/mcap.ts'
import type { Store } from '../store/store.ts'
import {
  MAX_LIVE_ROBOTS,
  MCAP_PROFILES,
  type McapProfileName,
  parseExportQuery,
  parseMcapQuery,
} from './params.ts'
import {
  DEFAULT_RESPONSE,
  ROBOT_PARAMS,
  errorResponse,
  robotsParameter,
  timeQuery,
} from './schemas.ts'

/** Options of {@link registerMcap}. */
export interface McapRoutesOptions {
  /** Where reads go: the store, or a replica of it (`--read-store`). */
  readonly reads: Store
}

/**
 * The media type of MCAP, registered with IANA (`application/vnd.mcap`),
 * which the MCAP specification asks applications that send MCAP over HTTP
 * to use.
 */
export const MCAP_MEDIA_TYPE = 'application/vnd.mcap'

// --- the response stream ---

/**
 * The response body: the export pushes each piece of the file and waits
 * until the stream wants more (`_read`, called as the socket drains), so at
 * most one piece waits here beyond what the socket holds. Destroyed (the
 * client left, or the server closes), it aborts the export.
 */
class McapStream extends Readable {
  readonly #controller = new AbortController()
  #wake: (() => void) | undefined

  /** Aborted once the stream is destroyed. */
  get signal(): AbortSignal {
    return this.#controller.signal
  }

  /** Pushes bytes; resolves once more are wanted, or the stream is gone. */
  send(bytes: Uint8Array): Promise<void> {
    if (this.destroyed || this.push(bytes)) return Promise.resolve()
    return new Promise((resolve) => (this.#wake = resolve))
  }

  override _read(): void {
    const wake = this.#wake
    this.#wake = undefined
    wake?.()
  }

  override _destroy(
    error: Error | null,
    callback: (error?: Error | null) => void,
  ): void {
    this.#controller.abort()
    this._read()
    callback(error)
  }
}

/** `attachment` with the file name, ASCII and UTF-8 (RFC 6266 §4.3). */
function attachment(filename: string): string {
  const ascii = filename.replace(/[^A-Za-z0-9._-]/g, '_')
  // RFC 5987's attr-char leaves out what encodeURIComponent keeps of these.
  const encoded = encodeURIComponent(filename).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  )
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`
}

/**
 * Answers with the MCAP file of `options`, streamed. The MCAP writer, zstd
 * and the message codecs load on the first export (robotics/constants.ts).
 */
async function sendMcap(
  request: FastifyRequest,
  reply: FastifyReply,
  reads: Store,
  filename: string,
  options: Omit<McapExportOptions, 'signal' | 'profile'> & {
    readonly profile: McapProfileName
  },
) {
  reply
    .type(MCAP_MEDIA_TYPE)
    .header('content-disposition', attachment(filename))
  // HEAD: the headers of GET (chunked, no length), reading no event.
  if (request.method === 'HEAD') return reply.send(Readable.from([]))
  const [{ writeMcap }, { PROFILES }] = await Promise.all([
    import('../robotics/mcap.ts'),
    import('../robotics/messages.ts'),
  ])
  const stream = new McapStream()
  writeMcap(
    reads,
    { write: (bytes) => stream.send(bytes) },
    {
      ...options,
      profile: PROFILES[options.profile],
      signal: stream.signal,
    },
  ).then(
    () => stream.push(null),
    (error: unknown) => {
      // A client that left is no failure: the stream is gone already.
      if (!stream.signal.aborted) stream.destroy(error as Error)
    },
  )
  return reply.send(stream)
}

// --- the routes ---

const PROFILE_PARAMETER = {
  type: 'string',
  pattern: `^(${MCAP_PROFILES.join('|')})?$`,
  description:
    '`json` (the default; empty or absent is json): JSON messages with the JSON schemas of Foxglove, `foxglove.PoseInFrame` and `fleet_telemetry.Odometer`. `ros2`: CDR messages `geometry_msgs/msg/PoseStamped` and `std_msgs/msg/Float64` with ros2msg schemas, header profile ros2, for ROS 2 tools; events after 2038-01-19T03:14:07.999Z (ROS 2 times have int32 seconds) are left out.',
} as const

const MCAP_RESPONSE = {
  description:
    "An MCAP file (mcap.dev/spec), streamed: zstd-compressed chunks with message indexes, then the summary (schemas, channels, statistics, chunk indexes) and summary offsets. Per robot with an event in the interval, channels /robots/<name>/pose and /robots/<name>/odometer (channel metadata `robot`: the exact name; ros2 encodes names that are no ROS 2 name token, docs/robotics.md), one message on each per event, log time and publish time the event's timestamp read as milliseconds. Robots follow one another; readers that read by log time merge them through the index. An interval without events gives a valid file without channels.",
  headers: {
    'Content-Disposition': {
      schema: {
        type: 'string',
        pattern: '^attachment; filename="[^"]*\\.mcap"',
      },
      description: '`attachment; filename="…"; filename*=UTF-8\'\'…`',
    },
  },
  content: {
    [MCAP_MEDIA_TYPE]: {
      schema: {
        type: 'string',
        description: 'The bytes of the file.',
      },
    },
  },
} as const

const NO_HOST = 'BAD_REQUEST: an HTTP/1.1 request without Host'
const TAGS = ['robots']

/** Registers the two MCAP routes. */
export async function registerMcap(
  app: FastifyInstance,
  options: McapRoutesOptions,
): Promise<void> {
  const { reads } = options

  app.get<{ Params: { robot: string } }>(
    '/api/robots/:robot/events.mcap',
    {
      schema: {
        summary:
          "A robot's events in an interval as an MCAP file for Foxglove, Lichtblick and ROS 2 tools; a valid file without channels for a robot with no event in it.",
        tags: TAGS,
        params: ROBOT_PARAMS,
        querystring: {
          type: 'object',
          properties: { ...timeQuery, profile: PROFILE_PARAMETER },
        },
        response: {
          200: MCAP_RESPONSE,
          400: errorResponse(
            400,
            ['INVALID_QUERY', 'INVALID_URL', 'BAD_REQUEST'],
            `INVALID_QUERY: a time or the profile is invalid or given twice; INVALID_URL: broken percent-encoding in the path; ${NO_HOST} or a path segment over 4096 characters.`,
          ),
          default: DEFAULT_RESPONSE,
        },
      },
      config: { parseQuery: parseMcapQuery },
    },
    async (request, reply) => {
      const robot = request.params.robot
      const query = parseMcapQuery(request.query)
      return sendMcap(request, reply, reads, `${robot}.mcap`, {
        robots: [robot],
        range: query,
        profile: query.profile,
      })
    },
  )

  app.get(
    '/api/export.mcap',
    {
      schema: {
        summary: `The events of some robots, or of the whole fleet, in an interval as one MCAP file; robots with no event in the interval are left out. A file holds at most ${MAX_EXPORT_ROBOTS} robots.`,
        tags: TAGS,
        querystring: {
          type: 'object',
          properties: {
            robot: robotsParameter(
              `A robot to export, exact and case-sensitive; repeatable, up to ${MAX_LIVE_ROBOTS} times, written in the order given. None: every robot, in code point order, when the store holds at most ${MAX_EXPORT_ROBOTS}.`,
            ),
            ...timeQuery,
            profile: PROFILE_PARAMETER,
          },
        },
        response: {
          200: MCAP_RESPONSE,
          400: errorResponse(
            400,
            ['INVALID_QUERY', 'BAD_REQUEST'],
            `INVALID_QUERY: a time or the profile is invalid or given twice, a robot= is no robot name or given too often, or no robot= while the store holds more than ${MAX_EXPORT_ROBOTS} robots; ${NO_HOST}.`,
          ),
          default: DEFAULT_RESPONSE,
        },
      },
      config: { parseQuery: parseExportQuery },
    },
    async (request, reply) => {
      const query = parseExportQuery(request.query)
      if (query.robots === undefined) {
        const count = await reads.countRobots()
        if (count > MAX_EXPORT_ROBOTS) {
          throw new TelemetryError('INVALID_QUERY', {
            message: `the store holds ${count} robots, more than one MCAP file holds (${MAX_EXPORT_ROBOTS}): name the robots with robot=`,
          })
        }
      }
      return sendMcap(request, reply, reads, 'fleet.mcap', {
        robots: query.robots,
        range: query,
        profile: query.profile,
      })
    },
  )
}
