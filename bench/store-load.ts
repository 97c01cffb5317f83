/**
 * Drives a store in-process, without the network: its own process, started
 * by run.ts as `node dist/bench/store-load.js '<StoreLoadOptions as JSON>'`.
 *
 * - `ceiling`: the storage ceiling. `append()` of batches over robots
 *   interleaved round-robin, each robot's timestamps increasing, warmed up
 *   then timed; nothing else runs in the process. With `raw` (PostgreSQL
 *   only), the same batches go into a table of the same shape as `events`
 *   by one multi-row INSERT each, without the rules, the robots' rows or
 *   their locks: what the database itself takes.
 * - `preload`: fills a store for the query and into-10M scenarios with big
 *   batches, either robots interleaved (the fleet store) or each robot's
 *   events in order (the long tracks), showing progress on stderr.
 *
 * It prints one JSON line on stdout ({@link StoreLoadResult}).
 */
import { performance } from 'node:perf_hooks'
import type { TelemetryEvent } from '../src/domain/event.ts'
import postgres from 'postgres'
import { createFleet } from '../src/cli/motion.ts'
import { openBackend } from '../src/store/open.ts'
import {
  LIVE_STEP,
  LIVE_T0,
  PRELOAD_STEP,
  PRELOAD_T0,
  preloadPosition,
  robotName,
} from './fleet.ts'
import { summarize, type LatencySummary } from './stats.ts'

/** Milliseconds between two events of a robot of the driving fleet (10 Hz). */
const DRIVING_STEP = 100

/** A robot of a preload and how many events it gets. */
export interface PreloadRobot {
  /** Its index, which sets its name and positions (fleet.ts `robotName`, `preloadPosition`). */
  readonly index: number
  readonly events: number
}

/** What run.ts asks of one store-load run. */
export type StoreLoadOptions =
  | {
      readonly mode: 'ceiling'
      readonly store: string
      /** Plain batched INSERTs instead of the store (PostgreSQL only). */
      readonly raw?: boolean
      readonly robots: number
      readonly batchSize: number
      readonly warmupMs: number
      readonly durationMs: number
      readonly maxEvents: number
    }
  | {
      readonly mode: 'preload'
      readonly store: string
      readonly robots: readonly PreloadRobot[]
      /** `interleaved`: round-robin over robots; `sequential`: one robot after another. */
      readonly order: 'interleaved' | 'sequential'
      /**
       * `zigzag` (default): fleet.ts `preloadPosition`, a second apart;
       * `driving`: the `simulate` motion model (seed 42), robots
       * interleaved at 10 Hz, positions to the millimetre.
       */
      readonly positions?: 'zigzag' | 'driving'
      readonly batchSize: number
      /** Shown in progress lines. */
      readonly label: string
    }

/** The one JSON line a run prints. */
export interface StoreLoadResult {
  readonly type: 'result'
  readonly mode: 'ceiling' | 'preload'
  /** Events appended in the timed part (all of them for a preload). */
  readonly events: number
  readonly seconds: number
  readonly eventsPerSecond: number
  /** Events over the time spent inside `append()` only. */
  readonly appendEventsPerSecond: number
  /** Outcomes other than `ok`. */
  readonly nonOk: number
  /** Time of one `append()` of a batch (ms). */
  readonly batchLatency: LatencySummary
  readonly cpuSeconds: number
  readonly cpuPercent: number
  /** Peak resident set of this process, bytes. */
  readonly peakRssBytes: number
}

function appendRate(events: number, latencies: number[]): number {
  const ms = latencies.reduce((a, b) => a + b, 0)
  return ms > 0 ? events / (ms / 1000) : 0
}

/** Something that takes batches: the store, or plain INSERTs. */
interface Sink {
  append(events: TelemetryEvent[]): Promise<readonly string[]>
  close(): Promise<void>
}

/** Plain multi-row INSERTs into a table shaped like the store's `events`. */
async function rawPostgres(url: string): Promise<Sink> {
  const parsed = new URL(url)
  const schema = parsed.searchParams.get('schema') ?? 'public'
  parsed.searchParams.delete('schema')
  const sql = postgres(parsed.toString(), {
    max: 1,
    onnotice: () => {},
    connection: { search_path: schema },
  })
  await sql`CREATE SCHEMA IF NOT EXISTS ${sql(schema)}`
  await sql`
    CREATE TABLE raw_events (
      robot text COLLATE "C" NOT NULL, ts bigint NOT NULL,
      x double precision NOT NULL, y double precision NOT NULL,
      odo double precision NOT NULL, carry double precision NOT NULL,
      PRIMARY KEY (robot, ts))`
  return {
    async append(events) {
      const zeros = events.map(() => 0)
      await sql`
        INSERT INTO raw_events (robot, ts, x, y, odo, carry)
        SELECT * FROM unnest(${events.map((e) => e.robot)}::text[],
                             ${events.map((e) => String(e.timestamp))}::bigint[],
                             ${events.map((e) => e.x)}::float8[],
                             ${events.map((e) => e.y)}::float8[],
                             ${zeros}::float8[], ${zeros}::float8[])`
      return events.map(() => 'ok')
    },
    close: () => sql.end(),
  }
}

async function ceiling(
  options: Extract<StoreLoadOptions, { mode: 'ceiling' }>,
): Promise<StoreLoadResult> {
  let store: Sink
  if (options.raw === true) {
    store = await rawPostgres(options.store)
  } else {
    const backend = openBackend(options.store)
    await backend.init()
    store = backend
  }
  const names = Array.from({ length: options.robots }, (_, r) => robotName(r))
  let next = 0
  const batch = (): TelemetryEvent[] => {
    const events: TelemetryEvent[] = new Array(options.batchSize)
    for (let i = 0; i < options.batchSize; i++, next++) {
      const r = next % names.length
      const k = Math.floor(next / names.length)
      events[i] = {
        robot: names[r]!,
        timestamp: LIVE_T0 + k * LIVE_STEP,
        x: r + 0.5 * k + 0.123,
        y: 1.2 * (k & 1) + 0.456,
      }
    }
    return events
  }

  const started = performance.now()
  let measureStart = 0
  let cpuStart = process.cpuUsage()
  let events = 0
  let nonOk = 0
  const latencies: number[] = []
  let sent = 0
  for (;;) {
    const now = performance.now()
    if (measureStart === 0 && now - started >= options.warmupMs) {
      measureStart = now
      cpuStart = process.cpuUsage()
    }
    if (measureStart > 0 && now - measureStart >= options.durationMs) break
    if (sent + options.batchSize > options.maxEvents) break
    const events_ = batch()
    const t = performance.now()
    const outcomes = await store.append(events_)
    const done = performance.now()
    sent += events_.length
    for (const o of outcomes) if (o !== 'ok') nonOk++
    if (measureStart > 0) {
      events += events_.length
      latencies.push(done - t)
    }
  }
  const seconds =
    measureStart > 0 ? (performance.now() - measureStart) / 1000 : 0
  const cpu = process.cpuUsage(cpuStart)
  await store.close()
  const cpuSeconds = (cpu.user + cpu.system) / 1e6
  return {
    type: 'result',
    mode: 'ceiling',
    events,
    seconds,
    eventsPerSecond: seconds > 0 ? events / seconds : 0,
    appendEventsPerSecond: appendRate(events, latencies),
    nonOk,
    batchLatency: summarize(latencies),
    cpuSeconds,
    cpuPercent: seconds > 0 ? (100 * cpuSeconds) / seconds : 0,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
  }
}

/** The events of a preload and where they lie in time. */
interface PreloadPlan {
  readonly robots: readonly PreloadRobot[]
  readonly order: 'interleaved' | 'sequential'
  readonly positions?: 'zigzag' | 'driving'
  /**
   * A robot's `k`-th event is at `t0 + k * step` (ms); by default
   * `PRELOAD_T0` and one second (`zigzag`) or 100 ms (`driving`).
   */
  readonly time?: { readonly t0: number; readonly step: number }
}

/** The events of a preload in load order, produced lazily. */
function* preloadEvents(plan: PreloadPlan): Generator<TelemetryEvent> {
  const { robots } = plan
  const names = robots.map((robot) => robotName(robot.index))
  const longest = Math.max(...robots.map((r) => r.events))
  if (plan.positions === 'driving') {
    // The motion model's fleet, one step of 100 ms per round of robots.
    const { t0, step } = plan.time ?? { t0: PRELOAD_T0, step: DRIVING_STEP }
    const fleet = createFleet({ robots: names.length, seed: 42 })
    for (let k = 0; k < longest; k++) {
      const positions = fleet.step(DRIVING_STEP / 1000)
      for (let i = 0; i < robots.length; i++) {
        if (k >= robots[i]!.events) continue
        const { x, y } = positions[i]!
        yield { robot: names[i]!, timestamp: t0 + k * step, x, y }
      }
    }
    return
  }
  const { t0, step } = plan.time ?? { t0: PRELOAD_T0, step: PRELOAD_STEP }
  const emit = (i: number, k: number): TelemetryEvent => {
    const [x, y] = preloadPosition(robots[i]!.index, k)
    return { robot: names[i]!, timestamp: t0 + k * step, x, y }
  }
  if (plan.order === 'sequential') {
    for (let i = 0; i < robots.length; i++) {
      for (let k = 0; k < robots[i]!.events; k++) yield emit(i, k)
    }
    return
  }
  for (let k = 0; k < longest; k++) {
    for (let i = 0; i < robots.length; i++) {
      if (k < robots[i]!.events) yield emit(i, k)
    }
  }
}

async function preload(
  options: Extract<StoreLoadOptions, { mode: 'preload' }>,
): Promise<StoreLoadResult> {
  const store = openBackend(options.store)
  await store.init()
  const total = options.robots.reduce((n, r) => n + r.events, 0)

  const started = performance.now()
  const cpuStart = process.cpuUsage()
  let lastReport = started
  let done = 0
  let nonOk = 0
  const latencies: number[] = []
  let batch: TelemetryEvent[] = []
  const flush = async () => {
    const t = performance.now()
    const outcomes = await store.append(batch)
    latencies.push(performance.now() - t)
    for (const o of outcomes) if (o !== 'ok') nonOk++
    done += batch.length
    batch = []
    const now = performance.now()
    if (now - lastReport >= 5000) {
      lastReport = now
      const rate = done / ((now - started) / 1000)
      const eta = (total - done) / rate
      process.stderr.write(
        `  preload ${options.label}: ${done.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} events, ${Math.round(rate).toLocaleString('en-US')}/s, about ${Math.ceil(eta)} s left\n`,
      )
    }
  }
  for (const event of preloadEvents(options)) {
    batch.push(event)
    if (batch.length >= options.batchSize) await flush()
  }
  if (batch.length > 0) await flush()
  await store.close()
  const seconds = (performance.now() - started) / 1000
  const cpu = process.cpuUsage(cpuStart)
  const cpuSeconds = (cpu.user + cpu.system) / 1e6
  return {
    type: 'result',
    mode: 'preload',
    events: done,
    seconds,
    eventsPerSecond: done / seconds,
    appendEventsPerSecond: appendRate(done, latencies),
    nonOk,
    batchLatency: summarize(latencies),
    cpuSeconds,
    cpuPercent: (100 * cpuSeconds) / seconds,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
  }
}

const options = JSON.parse(process.argv[2] ?? '{}') as StoreLoadOptions
const run = options.mode === 'ceiling' ? ceiling(options) : preload(options)
run.then(
  (result) => {
    process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0))
  },
  (error: unknown) => {
    process.stderr.write(
      `store-load: ${(error as Error).stack ?? String(error)}\n`,
    )
    process.exit(1)
  },
)
