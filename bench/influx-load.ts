/**
 * The peer's load generator: its own process, started by peer.ts as
 * `node dist/bench/influx-load.js '<InfluxLoadOptions as JSON>'`.
 *
 * It writes the events the server's generator (load.ts) sends, robot for
 * robot and timestamp for timestamp, to InfluxDB's `/write` as line
 * protocol (`pose,robot=NAME x=…,y=… TIMESTAMP`, precision ms), the way
 * InfluxDB's documentation asks a fast writer to: requests of `batch`
 * lines from `writers` writers at once, each on a keep-alive connection of
 * its own. Writer w owns robots w, w + writers, …, and takes their events
 * round-robin, as a connection of load.ts does.
 *
 * Stdout carries `phase` lines (`measure` as the first request leaves,
 * `end` after the last answer) and one `result` line ({@link
 * InfluxLoadResult}).
 */
import { Agent, request } from 'node:http'
import { performance } from 'node:perf_hooks'
import { livePositions, robotName } from './fleet.ts'
import { summarize, type LatencySummary } from './stats.ts'

/** What peer.ts asks of one run. */
export interface InfluxLoadOptions {
  /** `http://127.0.0.1:PORT` */
  readonly url: string
  readonly database: string
  readonly writers: number
  /** Lines per write request. */
  readonly batch: number
  readonly robots: number
  /** Events in all, spread evenly over the robots. */
  readonly events: number
  /** Timestamp of each robot's first event, then + `step` per event. */
  readonly t0: number
  readonly step: number
  /** Time bound of the whole run. */
  readonly maxMs: number
}

/** The one JSON line a run prints last. */
export interface InfluxLoadResult {
  readonly type: 'result'
  /** Points InfluxDB answered 204 for. */
  readonly written: number
  readonly requests: number
  /** Requests answered other than 204, and the first few answers. */
  readonly failed: number
  readonly failures: string[]
  /** From the first request sent to the last answer read. */
  readonly seconds: number
  readonly eventsPerSecond: number
  /** Send of a request to its answer (ms). */
  readonly latency: LatencySummary
  /** The generator's own CPU, core-seconds. */
  readonly clientCpuSeconds: number
}

/** One writer: its robots and where each is in its track. */
class Writer {
  readonly #names: string[]
  readonly #positions: string[][]
  readonly #next: number[]
  #cursor = 0
  /** Events this writer still has to write. */
  remaining: number

  constructor(robots: number[], events: number) {
    this.#names = robots.map((r) => robotName(r))
    this.#positions = robots.map((r) => livePositions(r))
    this.#next = robots.map(() => 0)
    this.remaining = events
  }

  /** The next `lines` events, as line protocol. */
  body(lines: number, t0: number, step: number): string {
    let out = ''
    for (let i = 0; i < lines; i++) {
      const r = this.#cursor
      this.#cursor = r + 1 === this.#names.length ? 0 : r + 1
      const k = this.#next[r]!
      this.#next[r] = k + 1
      const cycle = this.#positions[r]!
      const [x, y] = cycle[k % cycle.length]!.split(',')
      out += `pose,robot=${this.#names[r]} x=${x},y=${y} ${t0 + k * step}\n`
    }
    this.remaining -= lines
    return out
  }
}

async function main(options: InfluxLoadOptions): Promise<InfluxLoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.writers })
  const url = `${options.url}/write?db=${encodeURIComponent(options.database)}&precision=ms`
  // Events per robot as the total allows, whole frames per writer.
  const perRobot = Math.floor(options.events / options.robots)
  const writers: Writer[] = []
  for (let w = 0; w < options.writers; w++) {
    const robots: number[] = []
    for (let r = w; r < options.robots; r += options.writers) robots.push(r)
    if (robots.length > 0)
      writers.push(new Writer(robots, robots.length * perRobot))
  }

  const latencies: number[] = []
  const failures: string[] = []
  let written = 0
  let requests = 0
  let failed = 0

  const post = (body: string) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(
        url,
        { method: 'POST', agent, headers: { 'content-type': 'text/plain' } },
        (res) => {
          let text = ''
          res.setEncoding('utf8')
          res.on('data', (chunk: string) => (text += chunk))
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
          res.on('error', reject)
        },
      )
      req.on('error', reject)
      req.end(body)
    })

  const started = performance.now()
  const deadline = started + options.maxMs
  const cpuStart = process.cpuUsage()
  process.stdout.write(
    `${JSON.stringify({ type: 'phase', phase: 'measure' })}\n`,
  )
  let lastAnswer = started
  await Promise.all(
    writers.map(async (writer) => {
      while (writer.remaining > 0 && performance.now() < deadline) {
        const lines = Math.min(options.batch, writer.remaining)
        const body = writer.body(lines, options.t0, options.step)
        const t = performance.now()
        const res = await post(body)
        lastAnswer = performance.now()
        latencies.push(lastAnswer - t)
        requests++
        if (res.status === 204) written += lines
        else {
          failed++
          if (failures.length < 5)
            failures.push(`${res.status} ${res.text.slice(0, 200)}`)
        }
      }
    }),
  )
  const cpu = process.cpuUsage(cpuStart)
  process.stdout.write(`${JSON.stringify({ type: 'phase', phase: 'end' })}\n`)
  agent.destroy()
  const seconds = (lastAnswer - started) / 1000
  return {
    type: 'result',
    written,
    requests,
    failed,
    failures,
    seconds,
    eventsPerSecond: seconds > 0 ? written / seconds : 0,
    latency: summarize(latencies),
    clientCpuSeconds: (cpu.user + cpu.system) / 1e6,
  }
}

const options = JSON.parse(process.argv[2] ?? '{}') as InfluxLoadOptions
main(options).then(
  (result) => {
    process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0))
  },
  (error: unknown) => {
    process.stderr.write(
      `influx-load: ${(error as Error).stack ?? String(error)}\n`,
    )
    process.exit(1)
  },
)
