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
 * - `retention`: the store opened as the server opens it (`openStore`: on
 *   SQLite the store thread, so that batches and the pass's chunks take
 *   turns as in the server), preloaded with old events (30 days of them,
 *   ending 40 days ago), then fed a steady ingest of small batches, one
 *   `append()` in flight at a time, each timed; after a baseline a
 *   retention pass (`removeBefore`, cutoff 7 days ago) runs while the
 *   ingest goes on, and the ingest goes on a little after it ends. The
 *   longest `append()` during the pass is its worst ingest pause.
 *
 * It prints one JSON line on stdout ({@link StoreLoadResult}, or
 * {@link RetentionResult} for `retention`).
 */
import { performance } from 'node:perf_hooks'
import type { TelemetryEvent } from '../src/domain/event.ts'
import postgres from 'postgres'
import { createFleet } from '../src/cli/motion.ts'
import { openBackend, openStore } from '../src/store/open.ts'
import type { RetentionPass } from '../src/store/store.ts'
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
  | RetentionOptions

/** What run.ts asks of a `retention` run. */
export interface RetentionOptions {
  readonly mode: 'retention'
  readonly store: string
  /** Robots, each preloaded with `oldEvents` events, then ingested round-robin. */
  readonly robots: number
  readonly oldEvents: number
  /** Positions of the events, as for a preload (default `zigzag`). */
  readonly positions?: 'zigzag' | 'driving'
  /** Events per `append()` of the preload. */
  readonly preloadBatch: number
  /** Events per `append()` of the steady ingest. */
  readonly batchSize: number
  /** Ingest timed nowhere, then the baseline, before the pass starts. */
  readonly warmupMs: number
  readonly baselineMs: number
  /** Ingest after the pass has ended. */
  readonly tailMs: number
  /**
   * Bounds of the steady ingest: it stops after so long (then only the
   * pass is awaited) or so many events, whichever comes first.
   */
  readonly maxMs: number
  readonly maxEvents: number
}

/** The `append()` calls of the steady ingest inside one window. */
export interface IngestWindow {
  readonly appends: number
  /** Events of those appends. */
  readonly events: number
  /** From the first one's start to the last one's end. */
  readonly seconds: number
  readonly eventsPerSecond: number
  /** The time of each `append()`, ms. */
  readonly latency: LatencySummary
}

/** The one JSON line of a `retention` run. */
export interface RetentionResult {
  readonly type: 'result'
  readonly mode: 'retention'
  /** Events preloaded, and how long that took. */
  readonly oldEvents: number
  readonly preloadSeconds: number
  /** The first and last preloaded timestamp, and the pass's cutoff (ms since the epoch). */
  readonly oldFrom: number
  readonly oldTo: number
  readonly cutoff: number
  /** What the pass removed. */
  readonly removed: RetentionPass
  /** From the call of `removeBefore` to its result. */
  readonly passSeconds: number
  /** Appends that ended before the pass started. */
  readonly baseline: IngestWindow
  /** Appends that overlapped the pass: the longest is its worst pause. */
  readonly pass: IngestWindow
  /** Appends that started after the pass ended. */
  readonly after: IngestWindow
  /** Outcomes other than `ok` over the whole run. */
  readonly nonOk: number
  /**
   * Whether a bound (time or count) ended the ingest before the pass
   * ended: the pass was then awaited with no ingest going on.
   */
  readonly ingestEndedFirst: boolean
  /** Peak resident set of this process, bytes (on SQLite, with the store thread). */
  readonly peakRssBytes: number
}

/** The one JSON line a `ceiling` or `preload` run prints. */
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
    const backend = await openBackend(options.store)
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
  const store = await openBackend(options.store)
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

const DAY_MS = 86_400_000

/** The appends of the steady ingest whose times fall in a window. */
function ingestWindow(
  appends: readonly { start: number; end: number; events: number }[],
): IngestWindow {
  const events = appends.reduce((n, a) => n + a.events, 0)
  const seconds =
    appends.length === 0 ? 0 : (appends.at(-1)!.end - appends[0]!.start) / 1000
  return {
    appends: appends.length,
    events,
    seconds,
    eventsPerSecond: seconds > 0 ? events / seconds : 0,
    latency: summarize(appends.map((a) => a.end - a.start)),
  }
}

async function retention(options: RetentionOptions): Promise<RetentionResult> {
  const store = await openStore(options.store)
  await store.init()
  const robots = Array.from({ length: options.robots }, (_, index) => ({
    index,
    events: options.oldEvents,
  }))
  let nonOk = 0
  const count = (outcomes: readonly string[]) => {
    for (const o of outcomes) if (o !== 'ok') nonOk++
  }

  // 30 days of old events ending 40 days ago: all before a cutoff 7 days
  // ago, over about 30 daily partitions (PostgreSQL) or thousands of
  // blocks (SQLite).
  const oldFrom = Date.now() - 70 * DAY_MS
  const oldStep = Math.floor((30 * DAY_MS) / options.oldEvents)
  const preloadStart = performance.now()
  let lastReport = preloadStart
  let oldEvents = 0
  let batch: TelemetryEvent[] = []
  const flush = async () => {
    count(await store.append(batch))
    oldEvents += batch.length
    batch = []
    const now = performance.now()
    if (now - lastReport >= 5000) {
      lastReport = now
      process.stderr.write(
        `  retention: preloaded ${oldEvents.toLocaleString('en-US')} of ${(options.robots * options.oldEvents).toLocaleString('en-US')} old events\n`,
      )
    }
  }
  for (const event of preloadEvents({
    robots,
    order: 'interleaved',
    positions: options.positions,
    time: { t0: oldFrom, step: oldStep },
  })) {
    batch.push(event)
    if (batch.length >= options.preloadBatch) await flush()
  }
  if (batch.length > 0) await flush()
  const preloadSeconds = (performance.now() - preloadStart) / 1000

  // The steady ingest: the same robots round-robin, from now on, 10 ms
  // apart for each robot (after every old event, never before the cutoff).
  const live = preloadEvents({
    robots: robots.map((r) => ({
      ...r,
      events: Math.ceil(options.maxEvents / options.robots),
    })),
    order: 'interleaved',
    positions: options.positions,
    time: { t0: Date.now(), step: LIVE_STEP },
  })
  const appends: { start: number; end: number; events: number }[] = []
  const started = performance.now()
  let cutoff = NaN
  let passStart = Infinity
  let passEnd = Infinity
  let pass: Promise<RetentionPass> | undefined
  let sent = 0
  for (;;) {
    const now = performance.now()
    if (
      pass === undefined &&
      now - started >= options.warmupMs + options.baselineMs
    ) {
      cutoff = Date.now() - 7 * DAY_MS
      passStart = performance.now()
      pass = store.removeBefore(cutoff).finally(() => {
        passEnd = performance.now()
      })
      // Awaited below; a failure must not be an unhandled rejection meanwhile.
      pass.catch(() => {})
    }
    if (now - passEnd >= options.tailMs) break
    if (now - started >= options.maxMs) break
    if (sent + options.batchSize > options.maxEvents) break
    // Not `for … of`: its `break` would end the generator.
    const events: TelemetryEvent[] = []
    while (events.length < options.batchSize) {
      const next = live.next()
      if (next.done === true) break
      events.push(next.value)
    }
    const start = performance.now()
    count(await store.append(events))
    const end = performance.now()
    sent += events.length
    if (start - started >= options.warmupMs) {
      appends.push({ start, end, events: events.length })
    }
  }
  if (pass === undefined) {
    throw new Error(
      'the ingest ended before the pass was to start: raise maxEvents or maxMs',
    )
  }
  const ingestEndedFirst = passEnd === Infinity
  const removed = await pass
  const passSeconds = (passEnd - passStart) / 1000
  await store.close()
  return {
    type: 'result',
    mode: 'retention',
    oldEvents,
    preloadSeconds,
    oldFrom,
    oldTo: oldFrom + (options.oldEvents - 1) * oldStep,
    cutoff,
    removed,
    passSeconds,
    baseline: ingestWindow(appends.filter((a) => a.end <= passStart)),
    pass: ingestWindow(
      appends.filter((a) => a.start < passEnd && a.end > passStart),
    ),
    after: ingestWindow(appends.filter((a) => a.start >= passEnd)),
    nonOk,
    ingestEndedFirst,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
  }
}

const options = JSON.parse(process.argv[2] ?? '{}') as StoreLoadOptions
const run: Promise<StoreLoadResult | RetentionResult> =
  options.mode === 'ceiling'
    ? ceiling(options)
    : options.mode === 'retention'
      ? retention(options)
      : preload(options)
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
