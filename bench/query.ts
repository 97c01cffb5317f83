/**
 * The HTTP query client: its own process, started by run.ts as
 * `node dist/bench/query.js '<QueryOptions as JSON>'`.
 *
 * - `odometer`: sequential `GET /api/robots/{robot}/odometer` requests over
 *   random intervals of a preloaded robot, on one keep-alive connection;
 *   each answer is checked against the distance the preload put there.
 * - `fetch`: one `GET /api/robots/{robot}/events` of a whole preloaded
 *   track, as a JSON array or as NDJSON, read to the end and counted; or
 *   one `GET /api/robots/{robot}/events.mcap` of it (json or ros2 profile),
 *   kept in memory and, once timed, opened with `@mcap/core` to count its
 *   messages.
 *
 * Stdout carries `phase` lines (`measure`, `end`) and one `result` line.
 */
import { Agent, request } from 'node:http'
import { performance } from 'node:perf_hooks'
import { openMcap } from '../test/support/mcap.ts'
import type { FetchFormat } from './figures.ts'
import {
  livePositions,
  PRELOAD_STEP,
  PRELOAD_STEP_LENGTH,
  PRELOAD_T0,
  robotName,
} from './fleet.ts'
import { Random } from '../test/support/random.ts'
import { summarize, type LatencySummary } from './stats.ts'

/** What run.ts asks of one query run. */
export type QueryOptions =
  | {
      readonly mode: 'odometer'
      /** `http://127.0.0.1:PORT` */
      readonly baseUrl: string
      /** The robots and the events the preload gave each. */
      readonly robots: readonly { name: string; events: number }[]
      /** Requests before the measured ones, over all robots. */
      readonly warmupRequests: number
      /** Measured requests per robot. */
      readonly requests: number
      /** Time bound on the measured requests. */
      readonly maxMs: number
      readonly seed: number
    }
  | {
      readonly mode: 'fetch'
      readonly baseUrl: string
      readonly robot: string
      readonly events: number
      readonly format: FetchFormat
      readonly maxMs: number
    }
  | IntervalsOptions

/**
 * The peer scenario's reads (peer.ts), asked of the server or of InfluxDB
 * the same way: sequential requests on one keep-alive connection, taking
 * turns, over random robots and random runs of `span` consecutive events
 * of the ones the ingest wrote (the first `perRobot` of each robot's
 * track, fleet.ts `livePositions`, from `t0` by `step`): the odometer over
 * the run (InfluxQL: `SUM` of `SQRT(POW(DIFFERENCE(x), 2) +
 * POW(DIFFERENCE(y), 2))`), and the run's events (the events route as
 * JSON; InfluxQL `SELECT x, y`). Each answer is checked: the odometer
 * against the track's, the window's event count against `span`.
 */
export interface IntervalsOptions {
  readonly mode: 'intervals'
  readonly target: 'server' | 'influxdb'
  /** `http://127.0.0.1:PORT` */
  readonly baseUrl: string
  /** InfluxDB's database. */
  readonly database: string
  readonly robots: number
  readonly perRobot: number
  readonly span: number
  readonly t0: number
  readonly step: number
  /** Requests of each kind before the measured ones, and measured. */
  readonly warmupRequests: number
  readonly requests: number
  readonly maxMs: number
  readonly seed: number
}

/** The result line of an `intervals` run. */
export interface IntervalsResult {
  readonly type: 'result'
  readonly mode: 'intervals'
  readonly odometer: LatencySummary
  readonly window: LatencySummary
  /** Answers that were not 200 or not the expected ones. */
  readonly wrong: number
  readonly wrongSamples: string[]
}

/** The figures of one robot in an `odometer` run. */
export interface OdometerFigures {
  readonly robot: string
  readonly events: number
  readonly requests: number
  readonly latency: LatencySummary
  /** Answers that were not 200 or whose odometer was not the expected one. */
  readonly wrong: number
  readonly wrongSamples: string[]
}

/** The result line of an `odometer` run. */
export interface OdometerResult {
  readonly type: 'result'
  readonly mode: 'odometer'
  readonly seconds: number
  readonly robots: OdometerFigures[]
}

/** The result line of a `fetch` run. */
export interface FetchResult {
  readonly type: 'result'
  readonly mode: 'fetch'
  readonly status: number
  readonly contentType: string
  readonly bytes: number
  /** Events counted in the body. */
  readonly events: number
  readonly seconds: number
  readonly firstByteMs: number
  readonly eventsPerSecond: number
  /** Whether the body held exactly the expected events, well framed. */
  readonly complete: boolean
}

const agent = new Agent({ keepAlive: true, maxSockets: 1 })

/** One GET; resolves with the status, content type and body. */
function get(
  url: string,
  headers: Record<string, string> = {},
  onChunk?: (chunk: Buffer) => void,
): Promise<{ status: number; contentType: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers }, (res) => {
      const parts: Buffer[] = []
      res.on('data', (chunk: Buffer) => {
        if (onChunk) onChunk(chunk)
        else parts.push(chunk)
      })
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          contentType: String(res.headers['content-type'] ?? ''),
          body: Buffer.concat(parts).toString('utf8'),
        }),
      )
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

const phase = (name: string) =>
  process.stdout.write(`${JSON.stringify({ type: 'phase', phase: name })}\n`)

async function odometer(
  options: Extract<QueryOptions, { mode: 'odometer' }>,
): Promise<OdometerResult> {
  const generator = new Random(options.seed)
  const random = () => generator.next()
  const robots = options.robots.map((robot) => ({
    ...robot,
    base: `${options.baseUrl}/api/robots/${encodeURIComponent(robot.name)}/odometer`,
    latencies: [] as number[],
    wrong: 0,
    wrongSamples: [] as string[],
  }))

  // A random interval [start, end] that holds events i..j exactly: the
  // bounds fall anywhere in the second before event i and after event j.
  const one = async (robot: (typeof robots)[number]): Promise<number> => {
    const n = robot.events
    let i = Math.floor(random() * n)
    let j = Math.floor(random() * n)
    if (i > j) [i, j] = [j, i]
    const start = PRELOAD_T0 + i * PRELOAD_STEP - Math.floor(random() * 1000)
    const end = PRELOAD_T0 + j * PRELOAD_STEP + Math.floor(random() * 1000)
    const expected = PRELOAD_STEP_LENGTH * (j - i)
    const t = performance.now()
    const res = await get(`${robot.base}?start_time=${start}&end_time=${end}`)
    const ms = performance.now() - t
    let value = NaN
    if (res.status === 200) {
      value = (JSON.parse(res.body) as { odometer: number }).odometer
    }
    if (!(Math.abs(value - expected) <= 1e-6 * Math.max(1, expected))) {
      robot.wrong++
      if (robot.wrongSamples.length < 5) {
        robot.wrongSamples.push(
          `start_time=${start}&end_time=${end}: ${res.status} ${res.body.slice(0, 200)} (expected ${expected})`,
        )
      }
    }
    return ms
  }

  // Requests go round-robin over the robots, so that every robot is
  // measured under the same conditions (JIT, caches, the machine's noise).
  for (let k = 0; k < options.warmupRequests; k++) {
    await one(robots[k % robots.length]!)
  }
  for (const robot of robots) {
    robot.wrong = 0
    robot.wrongSamples.length = 0
  }
  phase('measure')
  const started = performance.now()
  for (
    let k = 0;
    k < options.requests * robots.length &&
    performance.now() - started < options.maxMs;
    k++
  ) {
    const robot = robots[k % robots.length]!
    robot.latencies.push(await one(robot))
  }
  const seconds = (performance.now() - started) / 1000
  phase('end')
  return {
    type: 'result',
    mode: 'odometer',
    seconds,
    robots: robots.map((r) => ({
      robot: r.name,
      events: r.events,
      requests: r.latencies.length,
      latency: summarize(r.latencies),
      wrong: r.wrong,
      wrongSamples: r.wrongSamples,
    })),
  }
}

async function intervals(options: IntervalsOptions): Promise<IntervalsResult> {
  const generator = new Random(options.seed)
  const random = () => generator.next()
  const tracks = new Map<number, number[][]>()
  const track = (robot: number) => {
    let points = tracks.get(robot)
    if (points === undefined) {
      points = livePositions(robot).map((p) => p.split(',').map(Number))
      tracks.set(robot, points)
    }
    return points
  }
  const odometerOf = (robot: number, i: number, j: number) => {
    const points = track(robot)
    let sum = 0
    for (let k = i + 1; k <= j; k++) {
      const [x0, y0] = points[(k - 1) % points.length]!
      const [x1, y1] = points[k % points.length]!
      sum += Math.hypot(x1! - x0!, y1! - y0!)
    }
    return sum
  }
  const influx = (q: string) =>
    `${options.baseUrl}/query?db=${encodeURIComponent(options.database)}&epoch=ms&q=${encodeURIComponent(q)}`
  let wrong = 0
  const wrongSamples: string[] = []
  const miss = (what: string) => {
    wrong++
    if (wrongSamples.length < 5) wrongSamples.push(what)
  }

  /** One request of `kind` over a random run; its time in ms. */
  const one = async (kind: 'odometer' | 'window'): Promise<number> => {
    const robot = Math.floor(random() * options.robots)
    const i = Math.floor(random() * (options.perRobot - options.span + 1))
    const j = i + options.span - 1
    const start = options.t0 + i * options.step
    const end = options.t0 + j * options.step
    const name = robotName(robot)
    const where = `WHERE robot = '${name}' AND time >= ${start}ms AND time <= ${end}ms`
    const url =
      options.target === 'server'
        ? `${options.baseUrl}/api/robots/${encodeURIComponent(name)}/${kind === 'odometer' ? 'odometer' : 'events'}?start_time=${start}&end_time=${end}`
        : influx(
            kind === 'odometer'
              ? `SELECT SUM(d) FROM (SELECT SQRT(POW(DIFFERENCE(x), 2) + POW(DIFFERENCE(y), 2)) AS d FROM pose ${where})`
              : `SELECT x, y FROM pose ${where}`,
          )
    const t = performance.now()
    const res = await get(url)
    const ms = performance.now() - t
    const what = `${kind} ${name} ${start}..${end}`
    if (res.status !== 200) {
      miss(`${what}: ${res.status} ${res.body.slice(0, 200)}`)
      return ms
    }
    const body = JSON.parse(res.body) as unknown
    if (kind === 'odometer') {
      const value =
        options.target === 'server'
          ? (body as { odometer: number }).odometer
          : (influxValues(body)[0]?.[1] as number | undefined)
      const expected = odometerOf(robot, i, j)
      if (
        !(Math.abs((value ?? NaN) - expected) <= 1e-6 * Math.max(1, expected))
      ) {
        miss(`${what}: ${value} (expected ${expected})`)
      }
    } else {
      const count =
        options.target === 'server'
          ? (body as unknown[]).length
          : influxValues(body).length
      if (count !== options.span)
        miss(`${what}: ${count} events (expected ${options.span})`)
    }
    return ms
  }

  for (let k = 0; k < options.warmupRequests; k++) {
    await one('odometer')
    await one('window')
  }
  wrong = 0
  wrongSamples.length = 0
  phase('measure')
  const started = performance.now()
  const odometers: number[] = []
  const windows: number[] = []
  for (
    let k = 0;
    k < options.requests && performance.now() - started < options.maxMs;
    k++
  ) {
    odometers.push(await one('odometer'))
    windows.push(await one('window'))
  }
  phase('end')
  return {
    type: 'result',
    mode: 'intervals',
    odometer: summarize(odometers),
    window: summarize(windows),
    wrong,
    wrongSamples,
  }
}

/** The rows of an InfluxDB `/query` answer's first series. */
function influxValues(body: unknown): unknown[][] {
  const result = (
    body as { results?: { series?: { values?: unknown[][] }[] }[] }
  ).results?.[0]
  return result?.series?.[0]?.values ?? []
}

/**
 * One timed GET of a whole body, read chunk by chunk (`onChunk`), between
 * the `measure` and `end` phases; past `maxMs` the process ends (exit 1).
 */
async function timedFetch(
  url: string,
  headers: Record<string, string>,
  maxMs: number,
  onChunk: (chunk: Buffer) => void,
): Promise<{
  status: number
  contentType: string
  seconds: number
  firstByteMs: number
}> {
  let firstByte: number | undefined
  phase('measure')
  const started = performance.now()
  const timer = setTimeout(() => {
    process.stderr.write(`query: fetch exceeded ${maxMs} ms\n`)
    process.exit(1)
  }, maxMs)
  const res = await get(url, headers, (chunk) => {
    firstByte ??= performance.now()
    onChunk(chunk)
  })
  clearTimeout(timer)
  const ended = performance.now()
  phase('end')
  return {
    status: res.status,
    contentType: res.contentType,
    seconds: (ended - started) / 1000,
    firstByteMs: (firstByte ?? ended) - started,
  }
}

/**
 * The MCAP export of the track: the body kept (chunks as they come), and
 * opened once timed, by its summary; complete when its statistics count a
 * pose and an odometer message for each event of the track and its
 * messages read back through the index are as many.
 */
async function fetchMcap(
  options: Extract<QueryOptions, { mode: 'fetch' }>,
): Promise<FetchResult> {
  const profile = options.format === 'mcap-ros2' ? 'ros2' : 'json'
  const url = `${options.baseUrl}/api/robots/${encodeURIComponent(options.robot)}/events.mcap?profile=${profile}`
  const parts: Buffer[] = []
  let bytes = 0
  const res = await timedFetch(url, {}, options.maxMs, (chunk) => {
    bytes += chunk.length
    parts.push(chunk)
  })
  const { seconds } = res
  let events = 0
  let complete = false
  if (res.status === 200) {
    try {
      const mcap = await openMcap(Buffer.concat(parts))
      const messages = Number(mcap.statistics?.messageCount ?? 0n)
      events = messages / 2
      let read = 0
      for await (const _ of mcap.readMessages()) read++
      complete = events === options.events && read === messages
    } catch (error) {
      process.stderr.write(`query: the MCAP file does not read: ${error}\n`)
    }
  }
  return {
    type: 'result',
    mode: 'fetch',
    status: res.status,
    contentType: res.contentType,
    bytes,
    events,
    seconds,
    firstByteMs: res.firstByteMs,
    eventsPerSecond: events / seconds,
    complete,
  }
}

async function fetchAll(
  options: Extract<QueryOptions, { mode: 'fetch' }>,
): Promise<FetchResult> {
  if (options.format === 'mcap' || options.format === 'mcap-ros2') {
    return fetchMcap(options)
  }
  const url = `${options.baseUrl}/api/robots/${encodeURIComponent(options.robot)}/events`
  const accept =
    options.format === 'ndjson' ? 'application/x-ndjson' : 'application/json'
  let bytes = 0
  let closing = 0
  let newlines = 0
  let head = -1
  let tail = -1
  const res = await timedFetch(url, { accept }, options.maxMs, (chunk) => {
    if (head < 0 && chunk.length > 0) head = chunk[0]!
    if (chunk.length > 0) tail = chunk[chunk.length - 1]!
    bytes += chunk.length
    // Robot names of the bench hold no braces or newlines, so every `}`
    // ends one event object and every newline ends one NDJSON line.
    for (let i = chunk.indexOf(0x7d); i >= 0; i = chunk.indexOf(0x7d, i + 1)) {
      closing++
    }
    for (let i = chunk.indexOf(0x0a); i >= 0; i = chunk.indexOf(0x0a, i + 1)) {
      newlines++
    }
  })
  const { seconds } = res
  const complete =
    res.status === 200 &&
    closing === options.events &&
    (options.format === 'ndjson'
      ? newlines === options.events && tail === 0x0a
      : head === 0x5b && tail === 0x5d)
  return {
    type: 'result',
    mode: 'fetch',
    status: res.status,
    contentType: res.contentType,
    bytes,
    events: closing,
    seconds,
    firstByteMs: res.firstByteMs,
    eventsPerSecond: closing / seconds,
    complete,
  }
}

const options = JSON.parse(process.argv[2] ?? '{}') as QueryOptions
const run =
  options.mode === 'odometer'
    ? odometer(options)
    : options.mode === 'intervals'
      ? intervals(options)
      : fetchAll(options)
run.then(
  (result) => {
    process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0))
  },
  (error: unknown) => {
    process.stderr.write(`query: ${(error as Error).stack ?? String(error)}\n`)
    process.exit(1)
  },
)
