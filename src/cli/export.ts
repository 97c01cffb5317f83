/**
 * `fleet-telemetry export --robot NAME`: a robot's events from the HTTP
 * API (`GET /api/robots/{robot}/events`, docs/api.md), page after page by
 * the `Link: <…>; rel="next"` header, written as CSV (one header line) or
 * NDJSON to a file or to stdout; or, with `--format mcap`, the MCAP file of
 * `GET /api/robots/{robot}/events.mcap` in one request. Each body is
 * streamed through as it comes, so memory stays bounded whatever the
 * number of events.
 */
import { once } from 'node:events'
import { createWriteStream } from 'node:fs'
import { rename, rm } from 'node:fs/promises'
import { InvalidArgumentError, Option } from 'commander'
import {
  UsageError,
  createProgram,
  integerFrom,
  runProgram,
  tokenOption,
  urlOption,
  type ServerUrls,
} from './options.ts'
import { McapMessageCounter } from './mcap-counter.ts'
import { count, startProgressBar } from './progress.ts'

/** The largest page the API gives (docs/api.md, `limit`). */
const MAX_PAGE = 100_000

/** Largest timestamp of the API: 2^53−1. */
const MAX_TIMESTAMP = Number.MAX_SAFE_INTEGER

const FORMATS = ['csv', 'ndjson', 'mcap'] as const
type Format = (typeof FORMATS)[number]

const MEDIA_TYPES: Readonly<Record<Format, string>> = {
  csv: 'text/csv',
  ndjson: 'application/x-ndjson',
  mcap: 'application/vnd.mcap',
}

/** The profiles of `--format mcap` (docs/robotics.md). */
const PROFILES = ['json', 'ros2'] as const
type Profile = (typeof PROFILES)[number]

const EXAMPLES = `
--from and --to are inclusive bounds on the events' timestamps: an integer
(the robots' unit, milliseconds in practice), or an ISO 8601 date-time,
read as milliseconds since the epoch (2026-01-31T08:00:00Z). CSV is
robot,x,y,timestamp with CRLF line ends, as the API writes it; NDJSON is one
{"robot","x","y","timestamp"} object a line. MCAP is the file of
GET /api/robots/{robot}/events.mcap, for Foxglove, Lichtblick and ROS 2
tools (--profile json or ros2). With --out the file appears
only once it is complete, and a progress bar goes to stderr on a terminal
(plain lines otherwise); a summary line always goes to stderr.

Exit codes: 0 exported; 1 no such robot, a refused token, or a failure of
the server or of the output; 2 a usage error.

Examples:
  fleet-telemetry export --robot Bender > bender.csv
  fleet-telemetry export --robot Bender --format ndjson --from 2026-01-31T00:00:00Z --out day.ndjson
  fleet-telemetry export --robot Bender --format mcap --profile ros2 --out bender.mcap
  fleet-telemetry export --robot 'Nibbler 1' --url https://telemetry.example --token "$READ_TOKEN"
`

interface ExportOptions {
  readonly robot: string
  readonly from?: number
  readonly to?: number
  readonly format: Format
  readonly profile?: Profile
  readonly out?: string
  readonly url: ServerUrls
  readonly token?: string
  readonly pageSize: number
}

/** `--from`/`--to`: digits as they are, or an ISO 8601 date-time in milliseconds. */
function timestamp(text: string): number {
  let value: number
  if (/^\d+$/.test(text)) {
    value = Number(text)
  } else if (
    /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?$/.test(
      text,
    )
  ) {
    value = Date.parse(text)
  } else {
    value = NaN
  }
  if (!Number.isInteger(value) || value < 0 || value > MAX_TIMESTAMP) {
    throw new InvalidArgumentError(
      `must be a timestamp from 0 to ${MAX_TIMESTAMP}, or an ISO 8601 date-time`,
    )
  }
  return value
}

/** Runs `export …` (`args` after the word `export`); returns the exit code. */
export async function runExport(args: readonly string[]): Promise<number> {
  const result = { code: 0 }
  const program = createProgram(
    'export',
    "Write a robot's events from the server's API as CSV, NDJSON or MCAP.",
  )
    .requiredOption('--robot <name>', 'the robot, its name exactly')
    .addOption(
      new Option(
        '--from <t>',
        'only events at or after this timestamp',
      ).argParser(timestamp),
    )
    .addOption(
      new Option(
        '--to <t>',
        'only events at or before this timestamp',
      ).argParser(timestamp),
    )
    .addOption(
      new Option('--format <format>', 'csv, ndjson or mcap')
        .choices(FORMATS)
        .default('csv'),
    )
    .addOption(
      new Option(
        '--profile <profile>',
        'with --format mcap: json (default) or ros2',
      ).choices(PROFILES),
    )
    .addOption(
      new Option('--out <file>', 'write to this file (default: stdout)'),
    )
    .addOption(urlOption())
    .addOption(tokenOption('a read or admin'))
    .addOption(
      new Option('--page-size <n>', 'events per request')
        .default(MAX_PAGE)
        .argParser(integerFrom(1, MAX_PAGE)),
    )
    .addHelpText('after', EXAMPLES)
    .action(async (options: ExportOptions) => {
      if (options.profile !== undefined && options.format !== 'mcap') {
        throw new UsageError('--profile needs --format mcap')
      }
      result.code = await exportEvents(options)
    })
  return runProgram(program, args, result)
}

/** An error told as `export: <message>`, exit code 1. */
class ExportError extends Error {}

/** The server's JSON error message (docs/api.md, "Errors"), or the status. */
async function errorMessage(response: Response): Promise<string> {
  const text = await response.text().catch(() => '')
  try {
    const body = JSON.parse(text) as { code?: unknown; message?: unknown }
    if (typeof body.code === 'string' && typeof body.message === 'string') {
      return `${response.status} ${body.code}: ${body.message}`
    }
  } catch {
    // Not the API's JSON body: the status says enough.
  }
  return `${response.status} ${response.statusText}`
}

async function get(url: string, options: ExportOptions, accept: string) {
  const headers: Record<string, string> = { accept }
  if (options.token !== undefined) {
    headers.authorization = `Bearer ${options.token}`
  }
  try {
    return await fetch(url, { headers })
  } catch (error) {
    const cause = (error as { cause?: { message?: string } }).cause
    throw new ExportError(
      `cannot reach ${options.url.http}: ${cause?.message ?? (error as Error).message}`,
    )
  }
}

/** The `after` of a `Link: <…>; rel="next"` header (docs/api.md, "Paging"). */
function nextAfter(link: string | null): string | undefined {
  if (link === null) return undefined
  const match = /<([^>]*)>\s*;\s*rel="?next"?/.exec(link)
  if (match === null) return undefined
  // Only its `after` is taken: a proxy in front may serve the API under a prefix.
  return new URL(match[1]!, 'http://x').searchParams.get('after') ?? undefined
}

async function exportEvents(options: ExportOptions): Promise<number> {
  const robotPath = `${options.url.http}/api/robots/${encodeURIComponent(options.robot)}`
  let out: NodeJS.WritableStream | undefined
  let partial: string | undefined
  let written = 0
  let progress: { stop(): void } | undefined
  try {
    // The robot first: a robot without events is an error, and its count the total.
    const robot = await get(robotPath, options, 'application/json')
    if (robot.status !== 200) {
      throw new ExportError(
        robot.status === 404
          ? `robot ${JSON.stringify(options.robot)} has no stored event`
          : `the server answered ${await errorMessage(robot)}`,
      )
    }
    const { event_count: eventCount } = (await robot.json()) as {
      event_count?: unknown
    }
    const total =
      options.from === undefined &&
      options.to === undefined &&
      typeof eventCount === 'number'
        ? eventCount
        : undefined

    if (options.out === undefined) {
      out = process.stdout
    } else {
      partial = `${options.out}.partial-${process.pid}`
      out = createWriteStream(partial)
      await once(out, 'open').catch((error: Error) => {
        throw new ExportError(`cannot write ${options.out}: ${error.message}`)
      })
      progress = startProgressBar(
        () => ({
          value: written,
          total,
          text: `${count(written)}${total === undefined ? '' : ` of ${count(total)}`} events`,
        }),
        { label: 'export: ' },
      )
    }
    const output = out
    let outputError: Error | undefined
    output.on('error', (error: Error) => (outputError ??= error))
    const write = async (chunk: Uint8Array) => {
      if (outputError !== undefined) throw outputError
      if (!output.write(chunk)) {
        await Promise.race([once(output, 'drain'), once(output, 'error')])
      }
      if (outputError !== undefined) throw outputError
    }

    const query = new URLSearchParams()
    if (options.from !== undefined)
      query.set('start_time', String(options.from))
    if (options.to !== undefined) query.set('end_time', String(options.to))
    const media = MEDIA_TYPES[options.format]
    /** The 200 answer to GET `path`, with a body; any other answer throws. */
    const answer = async (path: string) => {
      const response = await get(path, options, media)
      if (response.status !== 200) {
        throw new ExportError(
          `the server answered ${await errorMessage(response)}`,
        )
      }
      const { body, headers } = response
      if (body === null) throw new ExportError('an empty answer')
      return { body, headers }
    }
    if (options.format === 'mcap') {
      // One file in one request: its messages are counted as their chunks'
      // indexes go by, two a event (a pose and an odometer).
      query.set('profile', options.profile ?? 'json')
      const counter = new McapMessageCounter()
      const { body } = await answer(`${robotPath}/events.mcap?${query}`)
      for await (const piece of body) {
        counter.push(piece)
        written = Math.floor(counter.messages / 2)
        await write(piece)
      }
    } else {
      query.set('limit', String(options.pageSize))
      let first = true
      for (;;) {
        const response = await answer(`${robotPath}/events?${query}`)
        // Every CSV page starts with the header line: only the first one's is kept.
        let skipHeader = options.format === 'csv' && !first
        let header = options.format === 'csv' && first
        for await (const piece of response.body) {
          let chunk = Buffer.from(piece)
          if (skipHeader) {
            const end = chunk.indexOf(0x0a)
            if (end === -1) continue
            chunk = chunk.subarray(end + 1)
            skipHeader = false
          }
          // One line per event; names hold no line break (docs/protocol.md).
          let lines = 0
          for (
            let i = chunk.indexOf(0x0a);
            i !== -1;
            i = chunk.indexOf(0x0a, i + 1)
          ) {
            lines++
          }
          if (header && lines > 0) {
            lines--
            header = false
          }
          written += lines
          await write(chunk)
        }
        first = false
        const after = nextAfter(response.headers.get('link'))
        if (after === undefined) break
        query.set('after', after)
      }
    }

    if (partial !== undefined) {
      output.end()
      await once(output, 'finish')
      if (outputError !== undefined) throw outputError
      await rename(partial, options.out!)
      partial = undefined
    }
    progress?.stop()
    progress = undefined
    process.stderr.write(
      `export: ${written} event${written === 1 ? '' : 's'} of ${JSON.stringify(options.robot)} as ${options.format === 'mcap' ? `mcap (profile ${options.profile ?? 'json'})` : options.format} to ${options.out ?? 'stdout'}\n`,
    )
    return 0
  } catch (error) {
    progress?.stop()
    if (partial !== undefined) {
      out?.end()
      await rm(partial, { force: true })
    }
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EPIPE') return 0 // stdout closed early (`| head`): nothing more is wanted.
    if (error instanceof ExportError) {
      process.stderr.write(`export: ${error.message}\n`)
      return 1
    }
    if (code !== undefined || error instanceof TypeError) {
      // The output or the connection failed midway.
      process.stderr.write(`export: ${(error as Error).message}\n`)
      return 1
    }
    throw error
  }
}
