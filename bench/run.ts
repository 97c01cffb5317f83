/**
 * `npm run bench`: starts the built server as its own process on temporary
 * stores, drives it from a separate load-generator process over 127.0.0.1,
 * measures the ceilings with the same generator, and writes BENCHMARKS.md
 * and the same figures as JSON beside it. `npm run bench -- --compare
 * A.json B.json` compares two runs' JSON instead (results.ts).
 *
 * The options are in {@link USAGE} and, with what each scenario measures
 * and how long a run takes, in bench/README.md.
 */
import { execFileSync } from 'node:child_process'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs'
import { cpus, release, tmpdir, totalmem } from 'node:os'
import { basename, dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import postgres from 'postgres'
import type { LoadOptions, LoadResult } from './load.ts'
import {
  browserSkip,
  CHROMIUM_PATH,
  formationSkip,
  INFLUXD_PATH,
  IngestClient,
  killAll,
  LiveClient,
  makeTempDir,
  removeTempDir,
  runJsonProcess,
  startFormation,
  startListening,
  waitFor,
  writeTokens,
  type Formation,
  type ListeningProcess,
  type Stopped,
} from '../test/support/index.ts'
import { cpuSeconds, memory, FileSizeMeter, ProcessMeter } from './proc.ts'
import { summarize } from './stats.ts'
import { ms, pct } from './format.ts'
import type { FetchResult, OdometerResult, QueryOptions } from './query.ts'
import {
  configOf,
  ROW_LABELS,
  writeReport,
  type DashboardRow,
  type DiskRow,
  type FailoverReport,
  type FetchRow,
  type IngestRow,
  type LiveRow,
  type MillionRow,
  type OdometerRow,
  type PreloadRow,
  type RetentionRow,
  type RunConfig,
  type RestartFigures,
  type RunReport,
  type ServerFigures,
  type ShutdownRow,
  type StorageRow,
} from './report.ts'
import { LIVE_STEP, LIVE_T0, ROBOT_PREFIX, robotName } from './fleet.ts'
import {
  backendOf,
  DEFAULT_SCENARIOS,
  FETCH_FORMATS,
  ODOMETER_ROWS,
  ON_REQUEST_SCENARIOS,
  SCENARIOS,
  type LoadRowId,
  type Scenario,
  type StorageRowId,
  type StoreName,
} from './figures.ts'
import { compareCommand } from './compare.ts'
import type { DashboardOptions, DashboardResult } from './dashboard.ts'
import { frameFigures } from './frames.ts'
import { streamThroughFailovers, type FailoverStream } from './failover.ts'
import { jsonBeside, redactStore, writeResults } from './results.ts'
import { peerSkip, runPeer, type PeerReport } from './peer.ts'
import type {
  PreloadRobot,
  RetentionOptions,
  RetentionResult,
  StoreLoadOptions,
  StoreLoadResult,
} from './store-load.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const script = (path: string) => fileURLToPath(new URL(path, import.meta.url))
/** The built server of a checkout. */
const cliOf = (checkout: string) => join(checkout, 'dist', 'src', 'cli.js')
const BARE_WS = script('./bare-ws.js')
const LOAD = script('./load.js')
const STORE_LOAD = script('./store-load.js')
const QUERY = script('./query.js')
const DASHBOARD = script('./dashboard.js')
const INFLUX_LOAD = script('./influx-load.js')
/** How long a server has to end after SIGTERM before it is killed. */
const STOP_TIMEOUT_MS = 60_000
/** Count bound of each flood load (its time bound ends it first). */
const FLOOD_MAX_EVENTS = 100_000_000
/** Time bound of the million-robot load (its count bound ends it first). */
const MILLION_MAX_MS = 600_000
/** `GET /api/robots?limit=100` requests timed after the first one. */
const LIST_REQUESTS = 20
/** The page of the dashboard scenario, CSS pixels (as the browser test's). */
const DASHBOARD_VIEWPORT = { width: 1280, height: 900 } as const
/**
 * How long the page records after the load's measured window should have
 * ended: the load starts after the page is open, and opens its connections
 * first. A recording that still falls short is listed as a problem.
 */
const DASHBOARD_MARGIN_MS = 3000
/** Ingest of the retention scenario before its baseline, timed nowhere. */
const RETENTION_WARMUP_MS = 1000
/** How long its ingest may wait for the retention pass to end. */
const RETENTION_MAX_PASS_MS = 120_000
/** Streaming before the first failover: its longest silence is the baseline. */
const FAILOVER_BASELINE_MS = 5000
/** Streaming between the end of one failover and the start of the next. */
const FAILOVER_SETTLE_MS = 2000
const MB = 1024 * 1024

// --- settings ---

interface Settings extends RunConfig {
  readonly quick: boolean
  readonly store: string | undefined
  readonly scenarios: readonly Scenario[]
  /** The report (markdown). */
  readonly out: string
  /** The figures as JSON. */
  readonly json: string
  /** Time bound of each preload. */
  readonly preloadTimeoutMs: number
  /**
   * The checkout whose built server is measured (`--server DIR`); this one
   * when absent. The harness is always this checkout's, so a baseline and
   * a change are measured the same way.
   */
  readonly server: string
}

/** `--compare A.json B.json`: compares two runs instead of running one. */
interface CompareSettings {
  readonly compare: readonly [string, string]
  /** A markdown file whose History section gets the comparison. */
  readonly history: string | undefined
  readonly title: string | undefined
}

const USAGE = `usage: npm run bench -- [--quick] [--store URL] [--scenarios ${SCENARIOS.join(',')}]
       (default: all but ${ON_REQUEST_SCENARIOS.join(', ')}, run only when named)
       [--out FILE] [--json FILE] [--connections N] [--robots N]
       [--lines-per-frame N] [--window N] [--duration SECONDS]
       [--server DIR] [--peer influxdb] [--peer-writers N] [--peer-batch N]
       npm run bench -- --compare A.json B.json [--history FILE] [--title TEXT]
`

function positive(name: string, text: string | undefined, fallback: number) {
  if (text === undefined) return fallback
  const value = Number(text)
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`--${name} must be a positive integer, not ${text}`)
  }
  return value
}

function parseSettings(argv: string[]): Settings | CompareSettings | 'help' {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      quick: { type: 'boolean', default: false },
      store: { type: 'string' },
      scenarios: { type: 'string' },
      out: { type: 'string' },
      json: { type: 'string' },
      connections: { type: 'string' },
      robots: { type: 'string' },
      'lines-per-frame': { type: 'string' },
      window: { type: 'string' },
      duration: { type: 'string' },
      server: { type: 'string' },
      peer: { type: 'string' },
      'peer-writers': { type: 'string' },
      'peer-batch': { type: 'string' },
      compare: { type: 'boolean', default: false },
      history: { type: 'string' },
      title: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help) return 'help'
  if (values.compare) {
    const [a, b, ...rest] = positionals
    if (a === undefined || b === undefined || rest.length > 0) {
      throw new Error('--compare takes two JSON files: A.json B.json')
    }
    return {
      compare: [a, b],
      history:
        values.history === undefined ? undefined : resolve(values.history),
      title: values.title,
    }
  }
  if (positionals.length > 0) {
    throw new Error(`unexpected argument ${positionals[0]}`)
  }
  if (values.history !== undefined || values.title !== undefined) {
    throw new Error('--history and --title go with --compare')
  }
  const quick = values.quick === true
  if (values.peer !== undefined && values.peer !== 'influxdb') {
    throw new Error(`--peer knows influxdb only, not ${values.peer}`)
  }
  const scenarios =
    values.scenarios === undefined
      ? values.peer === undefined
        ? [...DEFAULT_SCENARIOS]
        : ['peer']
      : values.scenarios.split(',').map((s) => s.trim())
  if (values.peer !== undefined && !scenarios.includes('peer')) {
    scenarios.push('peer')
  }
  for (const s of scenarios) {
    if (!(SCENARIOS as readonly string[]).includes(s)) {
      throw new Error(`unknown scenario ${s}; known: ${SCENARIOS.join(', ')}`)
    }
  }
  if (values.store?.startsWith('sqlite::memory:')) {
    throw new Error('--store sqlite::memory: cannot be preloaded: give a file')
  }
  const robots = positive('robots', values.robots, 1000)
  const fetchEvents = quick ? 100_000 : 1_000_000
  const out = resolve(values.out ?? join(ROOT, 'BENCHMARKS.md'))
  return {
    quick,
    store: values.store,
    scenarios: SCENARIOS.filter((s) => scenarios.includes(s)),
    out,
    json: resolve(values.json ?? jsonBeside(out)),
    connections: positive('connections', values.connections, 64),
    robots,
    linesPerFrame: positive('lines-per-frame', values['lines-per-frame'], 10),
    window: positive('window', values.window, 64),
    warmupMs: quick ? 1000 : 2000,
    durationMs: 1000 * positive('duration', values.duration, quick ? 3 : 10),
    maxEvents: quick ? 5_000_000 : 20_000_000,
    storageBatch: 5000,
    preloadBatch: 10_000,
    fleetEvents: quick ? 100_000 : 10_000_000,
    drivingEvents: quick ? 100_000 : 2_000_000,
    tracks: quick
      ? [1000, 10_000, fetchEvents]
      : [10_000, fetchEvents, 10_000_000],
    fetchEvents,
    odometerRequests: quick ? 300 : 2000,
    odometerWarmup: quick ? 600 : 2000,
    floodConnections: 16,
    floodLinesPerFrame: 10_000,
    floodSmallLinesPerFrame: 10,
    floodWindow: 64,
    floodDurationMs: quick ? 5000 : 20_000,
    floodTailMs: 10_000,
    millionRobots: quick ? 100_000 : 1_000_000,
    millionLinesPerFrame: 5000,
    millionWindow: 32,
    dashboardHz: 10,
    retentionRobots: quick ? 100 : 1000,
    retentionOldEvents: quick ? 1000 : 2000,
    retentionBatch: 100,
    retentionBaselineMs: quick ? 2000 : 3000,
    retentionTailMs: quick ? 1000 : 2000,
    failoverRobots: 32,
    failoverHz: 10,
    failoverServers: 2,
    failoverPlanned: quick ? 2 : 5,
    peerRounds: quick ? 2 : 3,
    peerRobots: quick ? 100 : 1000,
    peerWriters: positive('peer-writers', values['peer-writers'], 4),
    peerBatch: positive('peer-batch', values['peer-batch'], 5000),
    peerReads: quick ? 200 : 1000,
    preloadTimeoutMs: quick ? 5 * 60_000 : 60 * 60_000,
    server: resolve(values.server ?? ROOT),
  }
}

// --- stores ---

/**
 * The stores of a run, one per scenario, made empty on first use and
 * removed at the end. With `sqlite:` each store gets its own folder (so
 * every file the store creates is counted on disk): in a fresh temporary
 * folder by default, or beside the given file. With `postgres://…` each
 * store is its own schema `bench_<run>_<name>` in the given database, and
 * its size on disk is that of its tables with their indexes and TOAST.
 */
class Stores {
  readonly postgres: string | undefined
  readonly #base: string
  readonly #file: string
  readonly #temporary: boolean
  readonly #created = new Set<StoreName>()
  readonly #tag: string

  constructor(url: string | undefined, tag: string) {
    this.#tag = tag
    if (url === undefined) {
      this.#base = mkdtempSync(join(tmpdir(), 'telemetry-bench-'))
      this.#file = 'telemetry.db'
      this.#temporary = true
    } else if (url.startsWith('sqlite:')) {
      const path = resolve(url.slice('sqlite:'.length))
      this.#base = dirname(path)
      this.#file = basename(path)
      this.#temporary = false
    } else {
      this.postgres = url
      this.#base = ''
      this.#file = ''
      this.#temporary = false
    }
  }

  #dir(name: StoreName) {
    return join(this.#base, this.#temporary ? name : `bench-${name}`)
  }

  #schema(name: StoreName) {
    return `bench_${this.#tag}_${name.replace(/[^a-z0-9]/gi, '_')}`
  }

  /** The URL of store `name`, made empty on first use. */
  url(name: StoreName): string {
    if (this.postgres !== undefined) {
      this.#created.add(name)
      const url = new URL(this.postgres)
      url.searchParams.set('schema', this.#schema(name))
      return url.toString()
    }
    const dir = this.#dir(name)
    if (!this.#created.has(name)) {
      if (existsSync(dir)) {
        throw new Error(`${dir} exists already; the bench does not reuse it`)
      }
      mkdirSync(dir, { recursive: true })
      this.#created.add(name)
    }
    return `sqlite:${join(dir, this.#file)}`
  }

  /** What store `name` holds on disk and its total size, or undefined. */
  async disk(
    name: StoreName,
  ): Promise<{ bytes: number; files: string[] } | undefined> {
    if (!this.#created.has(name)) return
    if (this.postgres !== undefined) {
      const sql = postgres(this.postgres, { max: 1, onnotice: () => {} })
      try {
        const rows = await sql<{ relname: string; bytes: string }[]>`
          SELECT c.relname, pg_total_relation_size(c.oid)::text AS bytes
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = ${this.#schema(name)} AND c.relkind = 'r'
          ORDER BY c.relname`
        const files = rows.map(
          (r) =>
            `${r.relname} (${Number(r.bytes).toLocaleString('en-US')}, indexes included)`,
        )
        const bytes = rows.reduce((sum, r) => sum + Number(r.bytes), 0)
        return { bytes, files }
      } finally {
        await sql.end()
      }
    }
    const dir = this.#dir(name)
    let bytes = 0
    const files: string[] = []
    const walk = (d: string) => {
      for (const entry of readdirSync(d, { withFileTypes: true })) {
        const path = join(d, entry.name)
        if (entry.isDirectory()) walk(path)
        else {
          const size = statSync(path).size
          bytes += size
          files.push(`${relative(dir, path)} (${size.toLocaleString('en-US')})`)
        }
      }
    }
    walk(dir)
    return { bytes, files }
  }

  /** Removes every store this run created (never the given URL's own file). */
  async cleanup() {
    const created = [...this.#created]
    this.#created.clear()
    if (this.postgres !== undefined) {
      const sql = postgres(this.postgres, { max: 1, onnotice: () => {} })
      try {
        for (const name of created) {
          await sql`DROP SCHEMA IF EXISTS ${sql(this.#schema(name))} CASCADE`
        }
      } finally {
        await sql.end()
      }
      return
    }
    if (this.#temporary) {
      rmSync(this.#base, { recursive: true, force: true })
    } else {
      for (const name of created) {
        rmSync(this.#dir(name), { recursive: true, force: true })
      }
    }
  }
}

// --- the run ---

/** Live-feed subscribers of `ingest-live`: whole-fleet streams. */
const LIVE_FLEET_STREAMS = 10
/** Single-robot streams of `ingest-live`, each on a robot of its own. */
const LIVE_ROBOT_STREAMS = 100
/** The robot of the live probe: of the bench's prefix, outside the fleet. */
const PROBE_ROBOT = `${ROBOT_PREFIX}live-probe`
/** One probe event every so many ms. */
const PROBE_INTERVAL_MS = 50
/** At most so many probe events per load (a bound; 50 ms apart, 100 s). */
const PROBE_MAX = 2000

/** One probe event of `ingest-live` and its times (`performance.now()`). */
interface ProbeSample {
  readonly timestamp: number
  readonly sentAt: number
  readonly okAt: number
  readonly ok: boolean
  /** Sent inside the load's measured window. */
  readonly inWindow: boolean
  /** Read on the probe robot's single-robot stream. */
  readonly singleAt: number | undefined
  /** Read on the first fleet stream. */
  readonly fleetAt: number | undefined
}

/** A tokens file the server reads, and the tokens in it the bench uses. */
interface BenchTokens {
  readonly file: string
  /** Sent by the generator: role ingest, scoped to the fleet's robots. */
  readonly ingest: string
  /** Sent by the count after the run: role read. */
  readonly read: string
}

function say(message: string) {
  process.stderr.write(`${message}\n`)
}

const fmt = (n: number) =>
  Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a'

class Bench {
  readonly s: Settings
  readonly stores: Stores
  readonly problems: string[] = []
  readonly ceilings: IngestRow[] = []
  readonly storage: StorageRow[] = []
  readonly ingest: IngestRow[] = []
  readonly latency: IngestRow[] = []
  latencyTargetRate: number | undefined
  /** The events/s of the `ingest` and `ingest-tokens` loads run again. */
  accessRepeat: { plain: number; tokens: number } | undefined
  /** The events/s of the `ingest` and `ingest-live` loads run again. */
  liveRepeat: { plain: number; live: number } | undefined
  readonly live: LiveRow[] = []
  readonly preloads: PreloadRow[] = []
  readonly odometer: OdometerRow[] = []
  readonly fetch: FetchRow[] = []
  readonly flood: IngestRow[] = []
  readonly shutdown: ShutdownRow[] = []
  readonly million: MillionRow[] = []
  readonly dashboard: DashboardRow[] = []
  readonly retention: RetentionRow[] = []
  failover: FailoverReport | undefined
  peer: PeerReport | undefined
  peerSkipped: string | undefined
  /** The stop of each server, once asked for (see {@link stopServer}). */
  readonly #stops = new Map<ListeningProcess, Promise<Stopped>>()
  /** Bytes on disk per store, measured each time a server on it closed. */
  readonly disk = new Map<StoreName, DiskRow>()
  /** Events each preloaded store holds, by store name. */
  readonly preloaded = new Map<StoreName, number>()
  readonly runTag = Date.now().toString(36).slice(-4)

  constructor(settings: Settings) {
    this.s = settings
    this.stores = new Stores(settings.store, this.runTag)
  }

  problem(text: string) {
    // One line each, of a readable length: stderr tails can be long.
    const line = text.replace(/\s+/g, ' ').trim()
    const message = line.length > 500 ? `${line.slice(0, 500)}…` : line
    this.problems.push(message)
    say(`  PROBLEM: ${message}`)
  }

  loadOptions(url: string, overrides: Partial<LoadOptions>): LoadOptions {
    return {
      url,
      connections: this.s.connections,
      robots: this.s.robots,
      linesPerFrame: 1,
      window: this.s.window,
      warmupMs: this.s.warmupMs,
      durationMs: this.s.durationMs,
      maxEvents: this.s.maxEvents,
      rate: 0,
      t0: LIVE_T0,
      step: LIVE_STEP,
      drainTimeoutMs: 15_000,
      ...overrides,
    }
  }

  /** Runs the load generator against a server process; CPU over its window. */
  async runLoad(
    server: ListeningProcess,
    options: LoadOptions,
    what: string,
    hooks: {
      /** Called as the measured window starts, after the CPU is read. */
      onMeasure?: () => void
      /** Called as the measured window ends, after the CPU is read. */
      onEnd?: () => void
      /** The server is stopped during the load: lost frames are expected. */
      closing?: boolean
    } = {},
  ): Promise<{ load: LoadResult; cpu: number; window: number }> {
    let cpuAt = NaN
    let tAt = NaN
    let cpu = NaN
    let window = NaN
    const load = await runJsonProcess<LoadResult>(LOAD, options, {
      timeoutMs:
        options.warmupMs +
        options.durationMs +
        (options.tailMs ?? 0) +
        options.drainTimeoutMs +
        30_000,
      onPhase: (phase) => {
        if (phase === 'measure') {
          cpuAt = cpuSeconds(server.pid)
          tAt = performance.now()
          hooks.onMeasure?.()
        } else if (phase === 'end' && Number.isFinite(tAt)) {
          cpu = cpuSeconds(server.pid) - cpuAt
          window = (performance.now() - tAt) / 1000
        }
        if (phase === 'end') hooks.onEnd?.()
      },
    })
    const lpf = options.linesPerFrame
    say(
      `  ${what}: ${fmt(load.eventsPerSecond)} events/s, ack p50 ${ms(load.latency.p50)} ms p99 ${ms(load.latency.p99)} ms, server CPU ${pct((100 * cpu) / window)}, non-OK ${load.nonOk}`,
    )
    if (load.nonOk > 0) {
      this.problem(
        `${what}: ${load.nonOk} reply lines were not OK, e.g. ${JSON.stringify(load.nonOkSamples)}`,
      )
    }
    if (load.badFrames > 0) {
      this.problem(
        `${what}: ${load.badFrames} reply frames did not hold ${lpf} line(s)`,
      )
    }
    if (load.unanswered > 0 && hooks.closing !== true) {
      this.problem(`${what}: ${load.unanswered} frames were never answered`)
    }
    if (load.connectionFailures > 0 && hooks.closing !== true) {
      this.problem(
        `${what}: ${load.connectionFailures} connections failed or closed early: ${load.connectionErrors.join('; ')}`,
      )
    }
    if (load.countBound) {
      say(`  ${what}: the count bound (${fmt(options.maxEvents)}) ended it`)
    }
    return { load, cpu, window }
  }

  /**
   * SIGTERM to a server, then SIGKILL if it has not ended within 60 s; the
   * same stop for every caller, so a body that signals the server itself
   * and {@link withServer} after it see the one SIGTERM and its times.
   */
  stopServer(server: ListeningProcess): Promise<Stopped> {
    let stop = this.#stops.get(server)
    if (stop === undefined) {
      stop = server.stop(STOP_TIMEOUT_MS)
      this.#stops.set(server, stop)
    }
    return stop
  }

  /**
   * Starts the real server on store `name`, runs `body` (given the time the
   * process was started, `performance.now()`), counts the events the store
   * holds over HTTP (unless `count` is false or the body stopped the
   * server; with `readToken` for a server started with `--tokens`), stops
   * the server with SIGTERM (unless the body did, with {@link stopServer})
   * and measures the store's bytes on disk. `name` may instead be a store
   * address that is not one of the run's (a failover formation's): its
   * bytes on disk are not measured. With `logsExpected` the lines the
   * server logs at warn or above are counted, not listed as problems.
   */
  async withServer<T>(
    name: StoreName | { readonly url: string },
    what: string,
    body: (server: ListeningProcess, startedAt: number) => Promise<T>,
    options: {
      extraArgs?: readonly string[]
      count?: boolean
      readToken?: string
      logsExpected?: boolean
    } = {},
  ): Promise<{ value: T; server: ServerFigures; stored: number | undefined }> {
    const url = typeof name === 'string' ? this.stores.url(name) : name.url
    const startedAt = performance.now()
    const server = await startListening(
      cliOf(this.s.server),
      [
        '--host',
        '127.0.0.1',
        '--port',
        '0',
        '--store',
        url,
        '--log-level',
        'warn',
        ...(options.extraArgs ?? []),
      ],
      { timeoutMs: 120_000, outputLimit: 20_000 },
    )
    const idleRss = memory(server.pid).rss
    const meter = new ProcessMeter(server.pid)
    const wal = url.startsWith('sqlite:')
      ? new FileSizeMeter(`${url.slice('sqlite:'.length)}-wal`)
      : undefined
    let outcome: { value: T } | { error: unknown }
    let stored: number | undefined
    try {
      outcome = { value: await body(server, startedAt) }
      if (options.count !== false && !this.#stops.has(server)) {
        stored = await countStored(server.url, options.readToken).catch(
          (error: unknown) => {
            this.problem(
              `${what}: cannot list robots after the run: ${(error as Error).message}`,
            )
            return undefined
          },
        )
      }
    } catch (error) {
      outcome = { error }
    }
    const peak = meter.stop().peakRss
    const peakWalBytes = wal?.stop()
    const exit = await this.stopServer(server)
    const logLines = server
      .stderr()
      .split('\n')
      .filter((l) => l.trim() !== '')
    const figures: ServerFigures = {
      idleRss,
      peakRss: peak,
      cleanExit: exit.code === 0 && !exit.killed,
      exit: exit.killed
        ? `did not exit within ${STOP_TIMEOUT_MS / 1000} s of SIGTERM; killed`
        : `exit ${exit.code ?? exit.signal} ${exit.seconds.toFixed(1)} s after SIGTERM`,
      stopSeconds: exit.seconds,
      killed: exit.killed,
      logLines: logLines.length,
      ...(peakWalBytes === undefined ? {} : { peakWalBytes }),
    }
    if (!figures.cleanExit) {
      this.problem(
        `${what}: the server did not shut down cleanly: ${figures.exit}`,
      )
    }
    if (options.logsExpected === true) {
      // Expected (a failover): the first few, shortened, as progress.
      for (const line of logLines.slice(0, 3)) {
        say(`  ${what} logged: ${line.slice(0, 300)}`)
      }
    } else if (logLines.length > 0) {
      this.problem(
        `${what}: the server logged ${logLines.length} line(s) at warn or above, first: ${logLines[0]!.slice(0, 300)}`,
      )
    }
    if ('error' in outcome) throw outcome.error
    const { value } = outcome
    const disk =
      typeof name === 'string' ? await this.stores.disk(name) : undefined
    if (
      typeof name === 'string' &&
      disk !== undefined &&
      stored !== undefined
    ) {
      this.disk.set(name, { name, events: stored, ...disk })
    }
    return { value, server: figures, stored }
  }

  checkStored(what: string, stored: number | undefined, expected: number) {
    if (stored !== undefined && stored !== expected) {
      this.problem(
        `${what}: the store holds ${fmt(stored)} events, expected ${fmt(expected)} (preload + OK replies)`,
      )
    }
  }

  // --- scenarios ---

  async bareWs() {
    const runs: [LoadRowId, boolean, number][] = [
      ['bare-ws', false, 1],
      ['bare-ws-corked', true, 1],
      ['bare-ws-corked-batch', true, this.s.linesPerFrame],
    ]
    for (const [id, cork, lines] of runs) {
      this.ceilings.push(
        await this.bareRun(
          id,
          cork,
          this.loadOptions('', { linesPerFrame: lines }),
        ),
      )
    }
  }

  /** One generator run against a fresh bare-ws process (`url` is filled in). */
  async bareRun(
    id: LoadRowId,
    cork: boolean,
    options: LoadOptions,
  ): Promise<IngestRow> {
    const server = await startListening(BARE_WS, cork ? ['--cork'] : [], {
      timeoutMs: 30_000,
      outputLimit: 20_000,
    })
    const idleRss = memory(server.pid).rss
    const meter = new ProcessMeter(server.pid)
    let outcome: Awaited<ReturnType<Bench['runLoad']>>
    try {
      outcome = await this.runLoad(
        server,
        { ...options, url: server.upstreamUrl },
        `${id} (${ROW_LABELS[id]}), ${options.linesPerFrame} line(s)/frame${options.rate > 0 ? `, paced at ${fmt(options.rate)} events/s` : ''}`,
      )
    } catch (error) {
      meter.stop()
      await server.stop(10_000)
      throw error
    }
    const peak = meter.stop().peakRss
    const exit = await server.stop(10_000)
    return {
      id,
      load: outcome.load,
      serverCpuSeconds: outcome.cpu,
      windowSeconds: outcome.window,
      server: {
        idleRss,
        peakRss: peak,
        cleanExit: exit.code === 0,
        exit: `exit ${exit.code ?? exit.signal}`,
        stopSeconds: exit.seconds,
        killed: exit.killed,
        logLines: 0,
      },
    }
  }

  async storageCeiling() {
    await this.storageRun('store-append', 'ceiling', false)
    // On PostgreSQL, also what the database takes without the rules.
    if (this.stores.postgres !== undefined) {
      await this.storageRun('store-plain-insert', 'plain-insert', true)
    }
  }

  async storageRun(id: StorageRowId, store: StoreName, raw: boolean) {
    const label = `${id} (${ROW_LABELS[id]})`
    const options: StoreLoadOptions = {
      mode: 'ceiling',
      store: this.stores.url(store),
      raw,
      robots: this.s.robots,
      batchSize: this.s.storageBatch,
      warmupMs: this.s.warmupMs,
      durationMs: this.s.durationMs,
      maxEvents: this.s.maxEvents,
    }
    const result = await runJsonProcess<StoreLoadResult>(STORE_LOAD, options, {
      timeoutMs: this.s.warmupMs + this.s.durationMs + 120_000,
      echoStderr: true,
    })
    say(
      `  ${label}: ${fmt(result.eventsPerSecond)} events/s (${fmt(result.appendEventsPerSecond)} inside append), batch p99 ${result.batchLatency.p99.toFixed(1)} ms`,
    )
    if (result.nonOk > 0) {
      this.problem(`${label}: ${result.nonOk} outcomes were not ok`)
    }
    this.storage.push({
      id,
      batchSize: this.s.storageBatch,
      robots: this.s.robots,
      result,
    })
  }

  /**
   * The generator against a fresh server on store `name` (or a store
   * address of its own, see {@link withServer}), unpaced unless `rate`
   * (events/s) is given. With `tokens` the server reads that tokens file
   * (`--tokens`), the generator sends the ingest token and the count after
   * the run the read token.
   */
  async ingestRun(
    id: LoadRowId,
    name: StoreName | { readonly url: string },
    linesPerFrame: number,
    serverArgs: readonly string[] = [],
    tokens?: BenchTokens,
    rate = 0,
  ): Promise<IngestRow> {
    const preloaded =
      typeof name === 'string' ? (this.preloaded.get(name) ?? 0) : 0
    const what = `${id} (${ROW_LABELS[id]}), ${linesPerFrame} line(s)/frame${rate > 0 ? `, paced at ${fmt(rate)} events/s` : ''}`
    const { value, server, stored } = await this.withServer(
      name,
      what,
      (server) =>
        this.runLoad(
          server,
          this.loadOptions(server.upstreamUrl, {
            linesPerFrame,
            token: tokens?.ingest,
            rate,
          }),
          what,
        ),
      {
        extraArgs: [
          ...serverArgs,
          ...(tokens === undefined ? [] : ['--tokens', tokens.file]),
        ],
        readToken: tokens?.read,
      },
    )
    this.checkStored(what, stored, preloaded + value.load.ok)
    return {
      id,
      load: value.load,
      serverCpuSeconds: value.cpu,
      windowSeconds: value.window,
      server,
      stored:
        stored === undefined
          ? undefined
          : { expected: preloaded + value.load.ok, actual: stored },
    }
  }

  /**
   * Issue 11's cost of access control: the `ingest` load (one line per
   * frame, the same connections) against a server started with `--tokens`,
   * whose file holds the generator's ingest token scoped to the fleet by a
   * prefix, `robot-*`, so that every line passes the scope check, and a
   * read token for the count after the run. The tokens file is written by
   * the test kit's `writeTokens`, as `fleet-telemetry token create` writes
   * it, in a folder of its own removed after the run.
   */
  async ingestTokensRun(): Promise<IngestRow> {
    const dir = makeTempDir('telemetry-bench-tokens-')
    try {
      const written = writeTokens(join(dir, 'tokens.json'), [
        { name: 'bench-ingest', role: 'ingest', robots: [`${ROBOT_PREFIX}*`] },
        { name: 'bench-read', role: 'read' },
      ])
      const tokens: BenchTokens = {
        file: written.file,
        ingest: written['bench-ingest']!,
        read: written['bench-read']!,
      }
      const row = await this.ingestRun(
        'ingest-tokens',
        'ingest-tokens',
        1,
        [],
        tokens,
      )
      // With `ingest` before it, the pair is measured again in the other
      // order (plain, tokens, tokens, plain): on a shared machine the speed
      // drifts between loads by more than the 5 % the ratio is judged on,
      // and the mirrored order cancels a steady drift.
      if (this.ingest.some((r) => r.id === 'ingest')) {
        const tokensAgain = await this.repeatLoad('ingest-tokens', tokens)
        const plainAgain = await this.repeatLoad('ingest')
        this.accessRepeat = { plain: plainAgain, tokens: tokensAgain }
      }
      return row
    } finally {
      removeTempDir(dir)
    }
  }

  /**
   * The `ingest` load once more on the store of an earlier load (its
   * timestamps after that load's), with `tokens` as in
   * {@link ingestRun}; its events/s only. `round` is how many loads the
   * store took before (each gets timestamps past the ones before it), and
   * `around` runs the load inside something (the live subscribers).
   */
  async repeatLoad(
    name: StoreName,
    tokens?: BenchTokens,
    round = 1,
    around?: (
      server: ListeningProcess,
      load: () => Promise<number>,
    ) => Promise<number>,
  ): Promise<number> {
    const what = `${name} again`
    const load = (server: ListeningProcess) => () =>
      this.runLoad(
        server,
        this.loadOptions(server.upstreamUrl, {
          // Past every timestamp the loads before can have sent.
          t0: LIVE_T0 + round * LIVE_STEP * this.s.maxEvents,
          token: tokens?.ingest,
        }),
        what,
      ).then((r) => r.load.eventsPerSecond)
    const { value } = await this.withServer(
      name,
      what,
      (server) =>
        around === undefined ? load(server)() : around(server, load(server)),
      {
        extraArgs: tokens === undefined ? [] : ['--tokens', tokens.file],
        count: false,
      },
    )
    say(`  ${what}: ${fmt(value)} events/s`)
    return value
  }

  /**
   * The `ingest` load (one line per frame, the same connections) against a
   * fresh server while live-feed subscribers are attached: {@link
   * LIVE_FLEET_STREAMS} whole-fleet streams and {@link LIVE_ROBOT_STREAMS}
   * single-robot streams, each following a robot of the fleet, opened and
   * started before the load and closed after it. A probe measures the
   * delivery meanwhile ({@link withLive}). With `ingest` before it, the
   * pair is measured again in mirrored order, as for `ingest-tokens`.
   */
  async ingestLiveRun(): Promise<IngestRow> {
    const samples: ProbeSample[] = []
    let readerCpuPct = NaN
    const what = `ingest-live (${ROW_LABELS['ingest-live']}), 1 line(s)/frame`
    let probesOk = 0
    const { value, server, stored } = await this.withServer(
      'ingest-live',
      what,
      (server) =>
        this.withLive(server, 0, samples, (hooks) =>
          this.runLoad(
            server,
            this.loadOptions(server.upstreamUrl, {}),
            what,
            hooks,
          ),
        ).then((r) => {
          readerCpuPct = r.readerCpuPct
          probesOk = r.probesOk
          return r.value
        }),
    )
    this.checkStored(what, stored, value.load.ok + probesOk)
    const row: IngestRow = {
      id: 'ingest-live',
      load: value.load,
      serverCpuSeconds: value.cpu,
      windowSeconds: value.window,
      server,
      stored:
        stored === undefined
          ? undefined
          : { expected: value.load.ok + probesOk, actual: stored },
    }
    if (this.ingest.some((r) => r.id === 'ingest')) {
      const liveAgain = await this.repeatLoad(
        'ingest-live',
        undefined,
        1,
        (server, load) =>
          this.withLive(server, 1, samples, () => load()).then((r) => r.value),
      )
      // The tokens pair's repeat may have used round 1 of `ingest`.
      const plainAgain = await this.repeatLoad('ingest', undefined, 2)
      this.liveRepeat = { plain: plainAgain, live: liveAgain }
    }
    const window = samples.filter((p) => p.inWindow && p.ok)
    const after = (at: (p: ProbeSample) => number | undefined) =>
      window.flatMap((p) => {
        const t = at(p)
        return t === undefined ? [] : [t - p.okAt]
      })
    const live: LiveRow = {
      id: 'ingest-live',
      fleetStreams: LIVE_FLEET_STREAMS,
      robotStreams: LIVE_ROBOT_STREAMS,
      probes: window.length,
      missedSingle: window.filter((p) => p.singleAt === undefined).length,
      missedFleet: window.filter((p) => p.fleetAt === undefined).length,
      deliveryAfterOk: summarize(after((p) => p.singleAt)),
      fleetDeliveryAfterOk: summarize(after((p) => p.fleetAt)),
      sendToDelivery: summarize(
        window.flatMap((p) =>
          p.singleAt === undefined ? [] : [p.singleAt - p.sentAt],
        ),
      ),
      readerCpuPct,
    }
    say(
      `  live delivery after OK: single robot p50 ${ms(live.deliveryAfterOk.p50)} p99 ${ms(live.deliveryAfterOk.p99)} ms, fleet p50 ${ms(live.fleetDeliveryAfterOk.p50)} p99 ${ms(live.fleetDeliveryAfterOk.p99)} ms (${live.probes} probes; bench process ${pct(readerCpuPct)} of a core)`,
    )
    // The fleet streams send the latest position of each robot per tick:
    // a probe event followed by the next within one tick is not sent
    // there. The probe robot's own stream must have every one.
    if (live.missedSingle > 0) {
      this.problem(
        `ingest-live: of ${live.probes} probe events answered OK, ${live.missedSingle} never came on the probe robot's stream`,
      )
    }
    this.live.push(live)
    return row
  }

  /**
   * Runs `body` (a load, given the hooks of its measured window) while the
   * live subscribers are attached to `server`, and a probe sends one event
   * every {@link PROBE_INTERVAL_MS} for {@link PROBE_ROBOT} over an
   * IngestClient of its own, waiting for each `OK`; one more single-robot
   * stream follows that robot. Each probe's send, `OK` and delivery times
   * (on that stream and on the first fleet stream, matched by timestamp)
   * go to `samples`. `round` keeps the probe's timestamps past those of
   * an earlier run on the same store.
   */
  async withLive<T>(
    server: ListeningProcess,
    round: number,
    samples: ProbeSample[],
    body: (hooks: { onMeasure: () => void; onEnd: () => void }) => Promise<T>,
  ): Promise<{ value: T; probesOk: number; readerCpuPct: number }> {
    const origin = { url: server.url }
    const clients: LiveClient[] = []
    let probe: IngestClient | undefined
    let trim: NodeJS.Timeout | undefined
    try {
      const fleet: LiveClient[] = []
      for (let i = 0; i < LIVE_FLEET_STREAMS; i++) {
        fleet.push(await LiveClient.open(origin))
        clients.push(fleet[i]!)
      }
      const robots = Math.min(LIVE_ROBOT_STREAMS, this.s.robots)
      for (let i = 0; i < robots; i++) {
        const robot = robotName(Math.floor((i * this.s.robots) / robots))
        clients.push(await LiveClient.open(origin, { robots: [robot] }))
      }
      const single = await LiveClient.open(origin, { robots: [PROBE_ROBOT] })
      clients.push(single)
      for (const c of clients) {
        if (c.status !== 200) {
          throw new Error(`GET /api/live answered ${c.status}: ${c.body}`)
        }
      }
      await Promise.all(clients.map((c) => c.started()))
      probe = await IngestClient.connect(server.wsUrl)
      // The streams keep every event they read: keep only the probe's
      // deliveries on the measured fleet stream, and drop the rest.
      const fleetAt = new Map<number, number>()
      const sweep = () => {
        for (const e of fleet[0]!.events) {
          if (e.type === 'position' && e.data.robot === PROBE_ROBOT) {
            if (!fleetAt.has(e.data.timestamp)) {
              fleetAt.set(e.data.timestamp, e.receivedAt)
            }
          }
        }
        for (const c of clients) if (c !== single) c.events.length = 0
      }
      trim = setInterval(sweep, 200)
      const mine: ProbeSample[] = []
      let inWindow = false
      let stop = false
      const base = LIVE_T0 + round * LIVE_STEP * this.s.maxEvents
      const client = probe
      const loop = (async () => {
        for (let k = 0; !stop && k < PROBE_MAX; k++) {
          const due = performance.now() + PROBE_INTERVAL_MS
          const timestamp = base + k * LIVE_STEP
          const frame = client.sendFrame(
            `${(k % 100) / 10},${k % 7},${timestamp},${PROBE_ROBOT}`,
          )
          const reply = await frame.replied
          mine.push({
            timestamp,
            sentAt: frame.queuedAt,
            okAt: frame.repliedAt ?? NaN,
            ok: reply === 'OK',
            inWindow,
            singleAt: undefined,
            fleetAt: undefined,
          })
          const wait = due - performance.now()
          if (wait > 0) await new Promise((r) => setTimeout(r, wait))
        }
      })()
      const cpu0 = process.cpuUsage()
      const t0 = performance.now()
      let value: T
      try {
        value = await body({
          onMeasure: () => (inWindow = true),
          onEnd: () => (inWindow = false),
        })
      } finally {
        stop = true
        await loop
      }
      const used = process.cpuUsage(cpu0)
      const readerCpuPct =
        (100 * (used.user + used.system)) / 1000 / (performance.now() - t0)
      const okTimes = new Set(mine.filter((p) => p.ok).map((p) => p.timestamp))
      const singleAt = new Map<number, number>()
      const delivered = () => {
        sweep()
        for (const e of single.events) {
          if (e.type === 'position' && !singleAt.has(e.data.timestamp)) {
            singleAt.set(e.data.timestamp, e.receivedAt)
          }
        }
        return [...okTimes].every((t) => singleAt.has(t) && fleetAt.has(t))
      }
      // The last probes' deliveries, for at most 2 s.
      const until = performance.now() + 2000
      while (!delivered() && performance.now() < until) {
        await new Promise((r) => setTimeout(r, 50))
      }
      for (const p of mine) {
        samples.push({
          ...p,
          singleAt: singleAt.get(p.timestamp),
          fleetAt: fleetAt.get(p.timestamp),
        })
      }
      if (mine.some((p) => !p.ok)) {
        this.problem(
          `ingest-live: ${mine.filter((p) => !p.ok).length} probe events were not answered OK`,
        )
      }
      return { value, probesOk: okTimes.size, readerCpuPct }
    } finally {
      clearInterval(trim)
      await probe?.close()
      for (const c of clients) c.close()
      await Promise.all(clients.map((c) => c.ended))
    }
  }

  async latencyRun() {
    let max = this.ingest.find((r) => r.id === 'ingest')?.load.eventsPerSecond
    if (max === undefined) {
      say('  no empty-store ingest in this run: measuring the maximum first')
      const row = await this.ingestRun('latency-max', 'latency-max', 1)
      max = row.load.eventsPerSecond
    }
    const rate = Math.max(1, Math.round(max / 2))
    this.latencyTargetRate = rate
    // The floor: the same paced load against bare-ws (corked), so that the
    // generator's and the network's share of the latency is visible.
    this.latency.push(
      await this.bareRun('latency-floor', true, this.loadOptions('', { rate })),
    )
    const what = `latency at ${fmt(rate)} events/s`
    const { value, server, stored } = await this.withServer(
      'latency',
      what,
      (server) =>
        this.runLoad(
          server,
          this.loadOptions(server.upstreamUrl, { rate }),
          what,
        ),
    )
    this.checkStored(what, stored, value.load.ok)
    this.latency.push({
      id: 'latency',
      load: value.load,
      serverCpuSeconds: value.cpu,
      windowSeconds: value.window,
      server,
    })
  }

  /** Robots of the odometer and fetch store: one long track each. */
  trackRobots(): PreloadRobot[] {
    const sizes = new Set<number>()
    if (this.s.scenarios.includes('odometer')) {
      for (const n of this.s.tracks) sizes.add(n)
    }
    if (this.s.scenarios.includes('fetch')) sizes.add(this.s.fetchEvents)
    return [...sizes]
      .sort((a, b) => a - b)
      .map((events, index) => ({ index, events }))
  }

  fleetRobots(): PreloadRobot[] {
    const per = Math.ceil(this.s.fleetEvents / this.s.robots)
    return Array.from({ length: this.s.robots }, (_, index) => ({
      index,
      events: per,
    }))
  }

  /** The preloads this run needs, at most two at once (one per core). */
  async preload() {
    const jobs: {
      name: 'fleet' | 'tracks'
      label: string
      robots: PreloadRobot[]
      order: 'interleaved' | 'sequential'
    }[] = []
    const wants = (s: Scenario) => this.s.scenarios.includes(s)
    // `disk` alone, or with scenarios that start no server on a store of
    // the run, measures the fleet store (Bench.diskOnly).
    const serverless: readonly Scenario[] = ['bare-ws', 'store', 'retention']
    if (
      wants('ingest-10m') ||
      (wants('disk') &&
        this.s.scenarios.every((s) => s === 'disk' || serverless.includes(s)))
    ) {
      jobs.push({
        name: 'fleet',
        label: `${fmt(this.s.fleetEvents)} events over ${fmt(this.s.robots)} robots`,
        robots: this.fleetRobots(),
        order: 'interleaved',
      })
    }
    if (wants('odometer') || wants('fetch')) {
      const robots = this.trackRobots()
      jobs.push({
        name: 'tracks',
        label: `tracks of ${robots.map((r) => fmt(r.events)).join(', ')} events`,
        robots,
        order: 'sequential',
      })
    }
    if (jobs.length === 0) return
    say(`preloading ${jobs.map((j) => j.label).join(' and ')} …`)
    await Promise.all(
      jobs.map(async (job) => {
        const result = await runJsonProcess<StoreLoadResult>(
          STORE_LOAD,
          {
            mode: 'preload',
            store: this.stores.url(job.name),
            robots: job.robots,
            order: job.order,
            batchSize: this.s.preloadBatch,
            label: job.label,
          } satisfies StoreLoadOptions,
          { timeoutMs: this.s.preloadTimeoutMs, echoStderr: true },
        )
        say(
          `  preloaded ${job.label}: ${fmt(result.events)} events in ${result.seconds.toFixed(1)} s (${fmt(result.eventsPerSecond)}/s)`,
        )
        if (result.nonOk > 0) {
          this.problem(`preload ${job.label}: ${result.nonOk} outcomes not ok`)
        }
        this.preloaded.set(job.name, result.events)
        this.preloads.push({
          id: `preload-${job.name}`,
          label: job.label,
          robots: job.robots.length,
          order: job.order,
          result,
        })
      }),
    )
  }

  async odometerRun() {
    const tracks = this.trackRobots().filter((r) =>
      this.s.tracks.includes(r.events),
    )
    let result: OdometerResult | undefined
    const { server } = await this.withServer(
      'tracks',
      'odometer',
      async (server) => {
        const options: QueryOptions = {
          mode: 'odometer',
          baseUrl: server.url,
          robots: tracks.map((t) => ({
            name: robotName(t.index),
            events: t.events,
          })),
          warmupRequests: this.s.odometerWarmup,
          requests: this.s.odometerRequests,
          maxMs: this.s.quick ? 20_000 : 120_000,
          seed: 42,
        }
        result = await runJsonProcess<OdometerResult>(QUERY, options, {
          timeoutMs: options.maxMs + 120_000,
        })
      },
    )
    for (const figures of result?.robots ?? []) {
      say(
        `  odometer on ${fmt(figures.events)} events: p50 ${figures.latency.p50.toFixed(2)} ms p99 ${figures.latency.p99.toFixed(2)} ms over ${figures.requests} requests`,
      )
      if (figures.wrong > 0) {
        this.problem(
          `odometer on ${fmt(figures.events)} events: ${figures.wrong} wrong answers, e.g. ${figures.wrongSamples[0]}`,
        )
      }
      // The tracks are smallest first, as are the odometer rows' ids.
      const id = ODOMETER_ROWS[this.s.tracks.indexOf(figures.events)]
      if (id === undefined) {
        throw new Error(`no odometer row for ${fmt(figures.events)} events`)
      }
      this.odometer.push({
        id,
        events: figures.events,
        result: figures,
        server,
      })
    }
  }

  async fetchRun() {
    const track = this.trackRobots().find(
      (r) => r.events === this.s.fetchEvents,
    )!
    for (const format of FETCH_FORMATS) {
      const what = `fetch ${format}`
      const { value, server } = await this.withServer(
        'tracks',
        what,
        async (server) => {
          const idleRss = memory(server.pid).rss
          const meter = new ProcessMeter(server.pid, { resetPeak: true })
          let cpuAt = NaN
          let cpu = NaN
          const result = await runJsonProcess<FetchResult>(
            QUERY,
            {
              mode: 'fetch',
              baseUrl: server.url,
              robot: robotName(track.index),
              events: track.events,
              format,
              maxMs: 300_000,
            } satisfies QueryOptions,
            {
              // An MCAP file is also read back once timed.
              timeoutMs: 480_000,
              onPhase: (phase) => {
                if (phase === 'measure') cpuAt = cpuSeconds(server.pid)
                if (phase === 'end') cpu = cpuSeconds(server.pid) - cpuAt
              },
            },
          )
          const { peakRss } = meter.stop()
          return { result, idleRss, peakRss, cpu }
        },
      )
      const { result } = value
      say(
        `  ${what}: ${fmt(result.eventsPerSecond)} events/s, ${(result.bytes / 1e6).toFixed(1)} MB, RSS growth ${((value.peakRss - value.idleRss) / 1024 / 1024).toFixed(1)} MB`,
      )
      if (!result.complete) {
        this.problem(
          `${what}: status ${result.status}, ${fmt(result.events)} events counted of ${fmt(track.events)} (or a badly framed body)`,
        )
      }
      this.fetch.push({
        id: `fetch-${format}`,
        format,
        expected: track.events,
        result,
        idleRss: value.idleRss,
        peakRss: value.peakRss,
        serverCpuSeconds: value.cpu,
        server,
      })
    }
  }

  /** The load of the flood scenario, in frames of `linesPerFrame` lines. */
  floodOptions(url: string, linesPerFrame: number, tailMs = 0): LoadOptions {
    return this.loadOptions(url, {
      connections: this.s.floodConnections,
      linesPerFrame,
      window: this.s.floodWindow,
      durationMs: this.s.floodDurationMs,
      maxEvents: FLOOD_MAX_EVENTS,
      tailMs,
    })
  }

  /**
   * The flood: the same load in 10-line frames (a fresh server), then in
   * 10,000-line frames, SIGTERM as that window ends while the generator
   * still sends, and a second server on the store counts what it holds.
   */
  async floodRun() {
    const small = this.s.floodSmallLinesPerFrame
    const smallWhat = `flood-small (${ROW_LABELS['flood-small']}), ${fmt(small)} lines/frame`
    const first = await this.withServer('flood-small', smallWhat, (server) =>
      this.runLoad(
        server,
        this.floodOptions(server.upstreamUrl, small),
        smallWhat,
      ),
    )
    this.checkStored(smallWhat, first.stored, first.value.load.ok)
    this.flood.push({
      id: 'flood-small',
      load: first.value.load,
      serverCpuSeconds: first.value.cpu,
      windowSeconds: first.value.window,
      server: first.server,
      stored:
        first.stored === undefined
          ? undefined
          : { expected: first.value.load.ok, actual: first.stored },
    })

    const large = this.s.floodLinesPerFrame
    const what = `flood (${ROW_LABELS.flood}), ${fmt(large)} lines/frame`
    const { value, server } = await this.withServer('flood', what, (server) =>
      this.runLoad(
        server,
        this.floodOptions(server.upstreamUrl, large, this.s.floodTailMs),
        what,
        {
          closing: true,
          onEnd: () => {
            say('  SIGTERM to the server, the flood still going')
            void this.stopServer(server)
          },
        },
      ),
    )
    const { load } = value
    say(`  ${what}: ${server.exit}`)
    this.flood.push({
      id: 'flood',
      load,
      serverCpuSeconds: value.cpu,
      windowSeconds: value.window,
      server,
    })
    const restart = await this.withServer(
      'flood',
      'flood: the restart after SIGTERM',
      async () => undefined,
    )
    const row: ShutdownRow = {
      id: 'flood-sigterm',
      exit: { seconds: server.stopSeconds, killed: server.killed },
      exitText: server.killed
        ? `did not exit within ${STOP_TIMEOUT_MS / 1000} s; killed`
        : server.exit,
      ok: load.ok,
      okBeforeSignal: load.okAtMeasureEnd,
      unansweredEvents: load.unanswered * large,
      sent: load.sentEvents,
      stored: restart.stored,
    }
    say(
      `  after SIGTERM: ${fmt(row.ok)} events answered OK (${fmt(row.okBeforeSignal)} before the signal), ${row.stored === undefined ? 'not counted' : `${fmt(row.stored)} stored`}`,
    )
    if (row.stored !== undefined && row.stored < row.ok) {
      this.problem(
        `flood: ${fmt(row.ok - row.stored)} events answered OK before the server ended are not stored (${fmt(row.stored)} stored, ${fmt(row.ok)} OK)`,
      )
    }
    if (row.stored !== undefined && row.stored > row.sent) {
      this.problem(
        `flood: the store holds ${fmt(row.stored)} events, more than the ${fmt(row.sent)} sent`,
      )
    }
    this.shutdown.push(row)
  }

  /**
   * A million robots, one event each, on one connection; then a clean stop
   * and a second server on the same store: its start-up, its RSS, and
   * `GET /api/robots?limit=100`.
   */
  async millionRun() {
    const robots = this.s.millionRobots
    const what = `million (${fmt(robots)} robots, one event each)`
    const { value, server, stored } = await this.withServer(
      'million',
      what,
      async (server) => {
        const rssBefore = memory(server.pid).rss
        const { load } = await this.runLoad(
          server,
          this.loadOptions(server.upstreamUrl, {
            connections: 1,
            robots,
            linesPerFrame: this.s.millionLinesPerFrame,
            window: this.s.millionWindow,
            warmupMs: 0,
            durationMs: MILLION_MAX_MS,
            maxEvents: robots,
            drainTimeoutMs: 60_000,
            cycle: 1,
          }),
          what,
        )
        return { load, rssBefore, rssEnd: memory(server.pid).rss }
      },
    )
    const { load, rssBefore, rssEnd } = value
    if (load.ok !== robots) {
      this.problem(
        `${what}: ${fmt(load.ok)} events answered OK, not ${fmt(robots)}`,
      )
    }
    this.checkStored(what, stored, load.ok)
    const eventsPerSecond =
      load.lastReplySeconds > 0 ? load.ok / load.lastReplySeconds : NaN
    say(
      `  ${what}: ${fmt(eventsPerSecond)} events/s, RSS ${fmt(rssBefore / MB)} MB before, ${fmt(rssEnd / MB)} MB at the end (${fmt((rssEnd - rssBefore) / robots)} bytes/robot); ${server.exit}`,
    )
    let restart: RestartFigures | undefined
    let restartServer: ServerFigures | undefined
    try {
      const again = await this.withServer(
        'million',
        `${what}: the restart`,
        (server, startedAt) => this.restartFigures(server, startedAt, robots),
        { count: false },
      )
      restart = again.value
      restartServer = again.server
      say(
        `  restart: /healthz after ${restart.startupSeconds.toFixed(2)} s, RSS ${fmt(restart.rssUp / MB)} MB; GET /api/robots?limit=100 ${restart.listFirstMs.toFixed(1)} ms first, p50 ${restart.listP50Ms.toFixed(1)} ms; X-Total-Count ${restart.totalCount === undefined ? 'absent' : fmt(restart.totalCount)}`,
      )
    } catch (error) {
      this.problem(`${what}: the restart failed: ${(error as Error).message}`)
    }
    this.million.push({
      id: 'million',
      robots,
      load,
      eventsPerSecond,
      rssBefore,
      rssEnd,
      stored,
      server,
      restart,
      restartServer,
    })
  }

  /** The figures of a server just started on the million-robot store. */
  async restartFigures(
    server: ListeningProcess,
    startedAt: number,
    robots: number,
  ): Promise<RestartFigures> {
    await waitFor(
      async () => {
        try {
          const response = await fetch(`${server.url}/healthz`)
          await response.arrayBuffer()
          return response.status === 200
        } catch {
          return false
        }
      },
      'GET /healthz answers 200',
      { timeoutMs: 120_000, intervalMs: 10 },
    )
    const startupSeconds = (performance.now() - startedAt) / 1000
    const rssUp = memory(server.pid).rss
    const list = async () => {
      const t0 = performance.now()
      const response = await fetch(`${server.url}/api/robots?limit=100`)
      const body = (await response.json()) as unknown
      const took = performance.now() - t0
      if (response.status !== 200 || !Array.isArray(body)) {
        throw new Error(`GET /api/robots?limit=100: ${response.status}`)
      }
      return { ms: took, response, listed: body.length }
    }
    const first = await list()
    const times: number[] = []
    for (let i = 0; i < LIST_REQUESTS; i++) times.push((await list()).ms)
    const header = first.response.headers.get('x-total-count')
    const totalCount = header === null ? undefined : Number(header)
    if (totalCount !== undefined && totalCount !== robots) {
      this.problem(
        `million: X-Total-Count is ${header}, the store holds ${fmt(robots)} robots`,
      )
    }
    if (first.listed !== Math.min(100, robots)) {
      this.problem(`million: GET /api/robots?limit=100 listed ${first.listed}`)
    }
    return {
      startupSeconds,
      rssUp,
      listFirstMs: first.ms,
      listP50Ms: summarize(times).p50,
      listRequests: LIST_REQUESTS,
      totalCount,
      listed: first.listed,
    }
  }

  /**
   * The dashboard's fleet view in headless Chromium (dashboard.ts, its own
   * process) while the generator streams the fleet paced at `dashboardHz`
   * events a robot a second: the page is opened on the empty store first,
   * then the load runs, and the page's frames and long tasks inside the
   * load's measured window are kept (frames.ts). Without Chromium the
   * scenario is skipped with a problem: the bench never downloads a browser.
   */
  async dashboardRun() {
    const skip = browserSkip()
    if (skip !== false) {
      this.problem(
        `dashboard skipped: ${skip}; the bench never downloads a browser`,
      )
      return
    }
    const hz = this.s.dashboardHz
    const robots = this.s.robots
    const rate = robots * hz
    const what = `dashboard (${fmt(robots)} robots at ${hz} Hz, ${fmt(rate)} events/s paced)`
    const wall = () => performance.timeOrigin + performance.now()
    const { value, server, stored } = await this.withServer(
      'dashboard',
      what,
      async (server) => {
        const options: DashboardOptions = {
          url: server.url,
          robots,
          recordMs: this.s.warmupMs + this.s.durationMs + DASHBOARD_MARGIN_MS,
          openTimeoutMs: 60_000,
          viewport: DASHBOARD_VIEWPORT,
        }
        let ready: () => void = () => {}
        const isReady = new Promise<void>((resolve) => (ready = resolve))
        const page = runJsonProcess<DashboardResult>(DASHBOARD, options, {
          // Starting the browser and opening the page, then the recording.
          timeoutMs: 2 * options.openTimeoutMs + options.recordMs + 30_000,
          onPhase: (phase) => {
            if (phase === 'ready') ready()
          },
        })
        // A page that fails before it is open ends the scenario here.
        await Promise.race([isReady, page])
        let start = NaN
        let end = NaN
        const loadStarted = wall()
        const { load, cpu, window } = await this.runLoad(
          server,
          this.loadOptions(server.upstreamUrl, { rate }),
          what,
          {
            onMeasure: () => (start = wall()),
            onEnd: () => (end = wall()),
          },
        )
        const result = await page
        return { load, cpu, window, result, start, end, loadStarted }
      },
    )
    const { load, result, start, end } = value
    this.checkStored(what, stored, load.ok)
    const frames = frameFigures(result.frames, result.longTasks, start, end)
    const row: DashboardRow = {
      id: 'dashboard',
      load,
      hz,
      serverCpuSeconds: value.cpu,
      windowSeconds: value.window,
      server,
      frames,
      // The robots the table holds, from its count line ("N of N robots"):
      // it draws only the rows in view.
      shown: {
        rows: Number(
          /^(\d+) of \d+ robots$/.exec(result.countText)?.[1] ?? NaN,
        ),
        text: result.countText,
      },
      fullSeconds:
        result.fullAt === null
          ? undefined
          : (result.fullAt - value.loadStarted) / 1000,
      browser: result.browser,
      viewport: DASHBOARD_VIEWPORT,
    }
    say(
      `  ${what}: frames ${frames.framesPerSecond.toFixed(1)}/s, interval p50 ${ms(frames.intervals.p50)} ms p99 ${ms(frames.intervals.p99)} ms max ${ms(frames.intervals.max)} ms; ${frames.longTasks} long tasks, ${fmt(frames.longTaskMs)} ms; table: ${result.countText} (${fmt(result.rows)} rows); ${fmt(load.eventsPerSecond)} events/s`,
    )
    if (!frames.covered) {
      this.problem(
        `${what}: the page's recording does not span the load's measured window, so its frames are left out`,
      )
    }
    // The table draws only the rows in view; its count line says how many
    // robots it holds.
    if (result.countText !== `${robots} of ${robots} robots`) {
      this.problem(
        `${what}: the fleet table says "${result.countText}", not ${fmt(robots)} of ${fmt(robots)} robots`,
      )
    }
    for (const error of result.errors.slice(0, 5)) {
      this.problem(`${what}: the page logged an error: ${error}`)
    }
    if (result.errors.length > 5) {
      this.problem(
        `${what}: the page logged ${result.errors.length - 5} more errors`,
      )
    }
    this.dashboard.push(row)
  }

  async diskOnly() {
    // Only when no other scenario closed a server on a store of this run.
    if (this.disk.size > 0) return
    if (!this.preloaded.has('fleet')) await this.preload()
    await this.withServer('fleet', 'disk', async () => undefined)
  }

  /**
   * The driving fleet (the `simulate` motion model at 10 Hz, positions to
   * the millimetre) loaded into a store of its own, which a server then
   * opens and closes: its bytes on disk, beside the random walk's.
   */
  async drivingDisk() {
    const per = Math.ceil(this.s.drivingEvents / this.s.robots)
    const robots = Array.from({ length: this.s.robots }, (_, index) => ({
      index,
      events: per,
    }))
    const label = `a driving fleet of ${fmt(robots.length)} robots, ${fmt(per)} events each`
    say(`preloading ${label} …`)
    const result = await runJsonProcess<StoreLoadResult>(
      STORE_LOAD,
      {
        mode: 'preload',
        store: this.stores.url('driving'),
        robots,
        order: 'interleaved',
        positions: 'driving',
        batchSize: this.s.preloadBatch,
        label,
      } satisfies StoreLoadOptions,
      { timeoutMs: this.s.preloadTimeoutMs, echoStderr: true },
    )
    if (result.nonOk > 0) {
      this.problem(`preload ${label}: ${result.nonOk} outcomes not ok`)
    }
    this.preloaded.set('driving', result.events)
    this.preloads.push({
      id: 'preload-driving',
      label,
      robots: robots.length,
      order: 'interleaved',
      result,
    })
    await this.withServer('driving', 'disk', async () => undefined)
  }

  /**
   * A retention pass under a steady ingest, in a store-load process of its
   * own on store `retention` (store-load.ts `retention`; no server).
   */
  async retentionRun() {
    const s = this.s
    const options: RetentionOptions = {
      mode: 'retention',
      store: this.stores.url('retention'),
      robots: s.retentionRobots,
      oldEvents: s.retentionOldEvents,
      positions: 'driving',
      preloadBatch: s.preloadBatch,
      batchSize: s.retentionBatch,
      warmupMs: RETENTION_WARMUP_MS,
      baselineMs: s.retentionBaselineMs,
      tailMs: s.retentionTailMs,
      maxMs:
        RETENTION_WARMUP_MS +
        s.retentionBaselineMs +
        RETENTION_MAX_PASS_MS +
        s.retentionTailMs,
      maxEvents: s.maxEvents,
    }
    say(
      `  retention: ${fmt(options.robots * options.oldEvents)} old events over ${fmt(options.robots)} robots, then a pass under ingest …`,
    )
    const result = await runJsonProcess<RetentionResult>(STORE_LOAD, options, {
      timeoutMs: s.preloadTimeoutMs + options.maxMs + 60_000,
      echoStderr: true,
    })
    say(
      `  retention: removed ${fmt(result.removed.events)} events (${fmt(result.removed.units)} units) in ${result.passSeconds.toFixed(3)} s; append p99 ${ms(result.baseline.latency.p99)} ms before, worst ${ms(result.pass.latency.max)} ms during the pass`,
    )
    if (result.nonOk > 0) {
      this.problem(`retention: ${result.nonOk} outcomes were not ok`)
    }
    if (result.removed.events === 0) {
      this.problem('retention: the pass removed no event')
    }
    if (result.ingestEndedFirst) {
      this.problem(
        `retention: the ingest's bound ended it before the pass ended (after ${result.passSeconds.toFixed(1)} s)`,
      )
    }
    this.retention.push({
      id: 'retention',
      robots: options.robots,
      oldEvents: options.oldEvents,
      batchSize: options.batchSize,
      warmupMs: options.warmupMs,
      baselineMs: options.baselineMs,
      tailMs: options.tailMs,
      result,
    })
  }

  /**
   * Issue 15's failover scenario, on pg_auto_failover formations it builds
   * itself (test/support/formation.ts), whatever `--store` says: on a
   * single node, the `ingest` load unpaced and then paced at the fleet's
   * rate (`--robots` × `failoverHz`); the formation stopped, the same two
   * loads on a primary
   * with a synchronous secondary, then robots streaming through
   * `failoverServers` servers on that formation while its primary changes
   * (failover.ts). Each load has a fresh schema. Skipped, with a problem,
   * where pg_auto_failover cannot run (`formationSkip`).
   */
  async failoverRun() {
    const skip = formationSkip()
    if (skip !== false) {
      this.problem(`failover skipped: ${skip}`)
      return
    }
    const loads: IngestRow[] = []
    const formations: { nodes: 1 | 2; seconds: number }[] = []
    const streamLogLines: number[] = []
    // Both formations are paced at the fleet's own rate, its robots
    // reporting at `failoverHz` as the stream's robots do. Half the single
    // node's unpaced rate (the `latency` scenario's choice) was not kept to
    // on two cores (server, generator and PostgreSQL on them): answered
    // above the rate asked, p50 near 200 ms, so both rows measured a
    // backlog, not what a synchronous commit adds.
    const rate = this.s.robots * this.s.failoverHz
    let stream: FailoverStream | undefined
    /** The unpaced and the paced load on `formation`, each on its schema. */
    const loadsOn = async (
      formation: Formation,
      unpaced: LoadRowId,
      paced: LoadRowId,
    ) => {
      const schema = unpaced.replace(/-/g, '_')
      loads.push(await this.ingestRun(unpaced, onSchema(formation, schema), 1))
      const row = await this.ingestRun(
        paced,
        onSchema(formation, `${schema}_paced`),
        1,
        [],
        undefined,
        rate,
      )
      loads.push(row)
      const achieved = row.load.eventsPerSecond
      if (Math.abs(achieved - rate) > 0.05 * rate) {
        this.problem(
          `failover: ${paced} (${ROW_LABELS[paced]}) answered ${fmt(achieved)} events/s of the ${fmt(rate)} asked: the server did not keep to the pace, so its ack latencies include a backlog`,
        )
      }
    }
    try {
      await this.withFormation(1, formations, (single) =>
        loadsOn(single, 'failover-single', 'failover-single-paced'),
      )
      await this.withFormation(2, formations, async (pair) => {
        await loadsOn(pair, 'failover-sync', 'failover-sync-paced')
        stream = await this.failoverStream(pair, streamLogLines)
      })
    } finally {
      this.failover = { loads, rate, formations, stream, streamLogLines }
    }
    const s = stream
    if (s === undefined) return
    for (const mismatch of s.mismatches.slice(0, 5)) {
      this.problem(
        `failover: the events stored are not those acknowledged: ${mismatch}`,
      )
    }
    if (s.mismatches.length > 5) {
      this.problem(
        `failover: ${s.mismatches.length - 5} more robots' event_count differ from their acknowledged events`,
      )
    }
  }

  /**
   * Starts a formation of `nodes` nodes, runs `body` on it and stops it;
   * how long the start took goes to `built`.
   */
  async withFormation(
    nodes: 1 | 2,
    built: { nodes: 1 | 2; seconds: number }[],
    body: (formation: Formation) => Promise<void>,
  ) {
    say(`  starting a pg_auto_failover formation of ${nodes} node(s) …`)
    const t0 = performance.now()
    const formation = await startFormation({ nodes })
    const seconds = (performance.now() - t0) / 1000
    built.push({ nodes, seconds })
    const states = (await formation.state())
      .map((n) => `${n.name} ${n.current}`)
      .join(', ')
    say(`  formation started in ${seconds.toFixed(1)} s: ${states}`)
    try {
      await body(formation)
    } finally {
      await formation.stop()
    }
  }

  /**
   * The robots' stream through the failovers of `formation`: one server
   * per `failoverServers` on it (store `bench_failover_stream`), each
   * started inside the one before so that every one is stopped by
   * {@link withServer}; their warnings (the store changing primary) are
   * counted into `logLines`, not listed as problems.
   */
  async failoverStream(
    formation: Formation,
    logLines: number[],
  ): Promise<FailoverStream> {
    const store = onSchema(formation, 'failover_stream')
    const s = this.s
    say(
      `  ${s.failoverRobots} robots at ${s.failoverHz} Hz through ${s.failoverServers} servers: ${s.failoverPlanned} planned failovers, then one unplanned`,
    )
    const serve = async (
      started: ListeningProcess[],
    ): Promise<FailoverStream> => {
      if (started.length === s.failoverServers) {
        return streamThroughFailovers(formation, started, {
          robots: s.failoverRobots,
          hz: s.failoverHz,
          planned: s.failoverPlanned,
          unplanned: true,
          baselineMs: FAILOVER_BASELINE_MS,
          settleMs: FAILOVER_SETTLE_MS,
          say,
          problem: (text) => this.problem(text),
        })
      }
      const k = started.length
      const { value, server } = await this.withServer(
        store,
        `failover: server ${k + 1} of the stream`,
        (server) => serve([...started, server]),
        { count: false, logsExpected: true },
      )
      logLines[k] = server.logLines
      return value
    }
    return serve([])
  }

  async run(): Promise<void> {
    const wants = (s: Scenario) => this.s.scenarios.includes(s)
    const step = async (name: Scenario, fn: () => Promise<void>) => {
      if (!wants(name)) return
      say(`▶ ${name}`)
      try {
        await fn()
      } catch (error) {
        this.problem(`${name} failed: ${(error as Error).message}`)
      }
    }
    try {
      await this.preload()
    } catch (error) {
      this.problem(`preload failed: ${(error as Error).message}`)
    }
    await step('bare-ws', () => this.bareWs())
    await step('store', () => this.storageCeiling())
    await step('ingest', async () => {
      this.ingest.push(await this.ingestRun('ingest', 'ingest', 1))
    })
    await step('ingest-tokens', async () => {
      this.ingest.push(await this.ingestTokensRun())
    })
    await step('ingest-live', async () => {
      this.ingest.push(await this.ingestLiveRun())
    })
    await step('ingest-batch', async () => {
      this.ingest.push(
        await this.ingestRun(
          'ingest-batch',
          'ingest-batch',
          this.s.linesPerFrame,
        ),
      )
    })
    await step('ingest-10m', async () => {
      if (!this.preloaded.has('fleet')) throw new Error('no preloaded store')
      this.ingest.push(await this.ingestRun('ingest-10m', 'fleet', 1))
    })
    await step('ingest-sync-full', async () => {
      this.ingest.push(
        await this.ingestRun('ingest-sync-full', 'sync-full', 1, [
          '--sync',
          'full',
        ]),
      )
    })
    await step('latency', () => this.latencyRun())
    await step('dashboard', () => this.dashboardRun())
    await step('odometer', () => this.odometerRun())
    await step('fetch', () => this.fetchRun())
    await step('disk', async () => {
      await this.diskOnly()
      await this.drivingDisk()
    })
    await step('retention', () => this.retentionRun())
    await step('flood', () => this.floodRun())
    await step('million', () => this.millionRun())
    await step('peer', () => this.peerRun())
    await step('failover', () => this.failoverRun())
  }

  /** The peer scenario (peer.ts), skipped with a hint without InfluxDB. */
  async peerRun() {
    const skip = peerSkip()
    if (skip !== false) {
      this.peerSkipped = skip
      say(`  peer skipped: ${skip}`)
      return
    }
    this.peer = await runPeer(
      {
        loadScript: LOAD,
        queryScript: QUERY,
        influxLoadScript: INFLUX_LOAD,
        withServer: (store, what, body) =>
          this.withServer(store, what, (server) => body(server)),
        problem: (text) => this.problem(text),
        say,
      },
      {
        rounds: this.s.peerRounds,
        robots: this.s.peerRobots,
        connections: this.s.connections,
        window: this.s.window,
        writers: this.s.peerWriters,
        batch: this.s.peerBatch,
        reads: this.s.peerReads,
        warmupReads: this.s.peerReads,
      },
    )
  }
}

/** A formation's store address, with a schema of its own for one load. */
function onSchema(formation: Formation, name: string): { url: string } {
  const url = formation.url
  return { url: `${url}${url.includes('?') ? '&' : '?'}schema=bench_${name}` }
}

/**
 * Sum of `event_count` over every robot, through `GET /api/robots`; with
 * `token` (a read token) on a server started with `--tokens`.
 */
async function countStored(baseUrl: string, token?: string): Promise<number> {
  let total = 0
  let next: string | undefined = '/api/robots?limit=10000'
  const headers =
    token === undefined ? undefined : { authorization: `Bearer ${token}` }
  for (let pages = 0; next !== undefined && pages < 1000; pages++) {
    const response = await fetch(`${baseUrl}${next}`, { headers })
    if (response.status !== 200) {
      throw new Error(`GET ${next}: ${response.status}`)
    }
    const robots = (await response.json()) as { event_count: number }[]
    for (const r of robots) total += r.event_count
    next = /<([^>]+)>;\s*rel="next"/.exec(
      response.headers.get('link') ?? '',
    )?.[1]
  }
  return total
}

/** How the server's `--store` looks in the report's commands. */
function storeExample(store: string | undefined): string {
  if (store === undefined)
    return 'sqlite:$TMPDIR/telemetry-bench-XXXXXX/<store>/telemetry.db'
  if (!store.startsWith('sqlite:')) return redactStore(store)
  const path = store.slice('sqlite:'.length)
  return `sqlite:${join(dirname(path), 'bench-<store>', basename(path))}`
}

// --- machine and commit ---

function cpuModel(): string {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8')
    return /^model name\s*:\s*(.+)$/m.exec(info)?.[1]?.trim() ?? 'unknown'
  } catch {
    return cpus()[0]?.model ?? 'unknown'
  }
}

/**
 * The short hash of HEAD, and whether the tree has changes other than the
 * files this run writes (a run before it left them changed; they do not
 * change what is measured).
 */
function commit(
  tree: string,
  written: readonly string[],
): {
  commit: string
  dirty: boolean
} {
  try {
    const git = (...args: string[]) =>
      execFileSync('git', args, {
        cwd: tree,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim()
    const head = git('rev-parse', '--short', 'HEAD')
    const exclude = written
      .map((path) => relative(tree, path))
      .filter((path) => !path.startsWith('..'))
      .map((path) => `:(exclude)${path}`)
    const status = git('status', '--porcelain', '--', '.', ...exclude)
    return { commit: head, dirty: status !== '' }
  } catch {
    return { commit: 'unknown', dirty: false }
  }
}

// --- main ---

async function main(): Promise<number> {
  let settings: Settings | CompareSettings | 'help'
  try {
    settings = parseSettings(process.argv.slice(2))
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n\n${USAGE}`)
    return 2
  }
  if (settings === 'help') {
    process.stdout.write(USAGE)
    return 0
  }
  if ('compare' in settings) {
    try {
      process.stdout.write(compareCommand(settings))
    } catch (error) {
      process.stderr.write(`bench: ${(error as Error).message}\n`)
      return 2
    }
    if (settings.history !== undefined) {
      say(`added the comparison to the History of ${settings.history}`)
    }
    return 0
  }
  for (const path of [
    cliOf(settings.server),
    BARE_WS,
    LOAD,
    STORE_LOAD,
    QUERY,
    DASHBOARD,
    INFLUX_LOAD,
  ]) {
    if (!existsSync(path)) {
      process.stderr.write(`bench: ${path} is missing: run npm run build\n`)
      return 2
    }
  }

  const started = new Date()
  const t0 = performance.now()
  const bench = new Bench(settings)
  const stop = (signalName: string) => {
    say(`bench: ${signalName}: stopping the processes it started`)
    killAll()
    void bench.stores
      .cleanup()
      .catch(() => {})
      .finally(() => process.exit(130))
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)

  const s = settings
  say(
    `bench${s.quick ? ' (quick)' : ''}: ${s.scenarios.join(', ')} on ${s.store ?? 'temporary sqlite files'}`,
  )
  try {
    await bench.run()
  } finally {
    killAll()
    await bench.stores.cleanup()
  }

  const args = process.argv.slice(2)
  const example = bench.loadOptions('ws://127.0.0.1:PORT/upstream', {})
  const report: RunReport = {
    quick: s.quick,
    started,
    seconds: (performance.now() - t0) / 1000,
    machine: {
      cores: cpus().length,
      cpuModel: cpuModel(),
      memoryBytes: totalmem(),
      kernel: release(),
    },
    node: process.version,
    // The commit of the server measured.
    ...commit(s.server, [s.out, s.json]),
    backend: backendOf(s.store),
    store:
      s.store === undefined
        ? 'sqlite: fresh temporary files, one folder per store'
        : redactStore(s.store),
    json: relative(dirname(s.out), s.json),
    commands: [
      `npm run bench${args.length > 0 ? ` -- ${args.map(redactStore).join(' ')}` : ''}`,
      '# the server, once per scenario, on that scenario\u2019s store:',
      `node ${s.server === resolve(ROOT) ? '' : `${s.server}/`}dist/src/cli.js --host 127.0.0.1 --port 0 --store ${storeExample(s.store)} --log-level warn`,
      ...(s.scenarios.includes('ingest-live')
        ? [
            `# ingest-live: the same server, with ${LIVE_FLEET_STREAMS} GET /api/live (whole fleet) and ${LIVE_ROBOT_STREAMS + 1} GET /api/live?robot=NAME streams read by the bench process, and a probe sending an event for ${PROBE_ROBOT} every ${PROBE_INTERVAL_MS} ms`,
          ]
        : []),
      ...(s.scenarios.includes('ingest-tokens')
        ? [
            `# ingest-tokens: the same server with --tokens $TMPDIR/telemetry-bench-tokens-XXXXXX/tokens.json (an ingest token scoped to ${ROBOT_PREFIX}*, a read token), the generator with "token":"<the ingest token>"`,
          ]
        : []),
      '# the ceilings:',
      'node dist/bench/bare-ws.js [--cork]',
      `node dist/bench/store-load.js '{"mode":"ceiling","robots":${s.robots},"batchSize":${s.storageBatch},…}'`,
      ...(s.scenarios.includes('retention')
        ? [
            '# retention: old events, then a pass under a steady ingest, in-process (no server):',
            `node dist/bench/store-load.js '{"mode":"retention","robots":${s.retentionRobots},"oldEvents":${s.retentionOldEvents},"batchSize":${s.retentionBatch},…}'`,
          ]
        : []),
      '# the load generator (empty-store ingest; other runs change linesPerFrame, rate):',
      `node dist/bench/load.js '${JSON.stringify(example)}'`,
      `node dist/bench/query.js '{"mode":"odometer"|"fetch",…}'`,
      ...(s.scenarios.includes('failover')
        ? [
            '# failover: the same server on pg_auto_failover formations the bench starts (test/support/formation.ts), one node then two, whatever --store says; a schema per load:',
            `node dist/src/cli.js --host 127.0.0.1 --port 0 --store 'postgres://postgres@127.0.0.1:PORT1,127.0.0.1:PORT2/postgres?target_session_attrs=read-write&schema=bench_failover_<load>' --log-level warn`,
          ]
        : []),
      ...(s.scenarios.includes('peer')
        ? [
            `# peer: the same server on fresh SQLite stores at 1, 10 and 100 lines a frame, and InfluxDB (${INFLUXD_PATH}, a configuration of its own in $TMPDIR/telemetry-influxdb-XXXXXX) written by:`,
            `node dist/bench/influx-load.js '{"url":"http://127.0.0.1:PORT","database":"bench","writers":${s.peerWriters},"batch":${s.peerBatch},"robots":${s.peerRobots},…}'`,
            `node dist/bench/query.js '{"mode":"intervals","target":"server"|"influxdb",…}'`,
          ]
        : []),
      ...(s.scenarios.includes('dashboard')
        ? [
            `# dashboard: the page in headless Chromium (${CHROMIUM_PATH}), then the generator paced at ${s.dashboardHz} events per robot per second`,
            `node dist/bench/dashboard.js '{"url":"http://127.0.0.1:PORT","robots":${s.robots},…}'`,
          ]
        : []),
    ],
    config: configOf(s),
    scenarios: [...s.scenarios],
    ceilings: bench.ceilings,
    storage: bench.storage,
    ingest: bench.ingest,
    latency: bench.latency,
    latencyTargetRate: bench.latencyTargetRate,
    accessRepeat: bench.accessRepeat,
    liveRepeat: bench.liveRepeat,
    live: bench.live,
    preloads: bench.preloads,
    odometer: bench.odometer,
    fetch: bench.fetch,
    flood: bench.flood,
    shutdown: bench.shutdown,
    million: bench.million,
    dashboard: bench.dashboard,
    retention: bench.retention,
    failover: bench.failover,
    peer: bench.peer,
    peerSkipped: bench.peerSkipped,
    disk: [...bench.disk.values()],
    problems: bench.problems,
  }
  writeReport(s.out, report)
  await writeResults(s.json, report)
  say(
    `wrote ${s.out} and ${s.json} in ${report.seconds.toFixed(0)} s${bench.problems.length > 0 ? `, with ${bench.problems.length} problem(s)` : ''}`,
  )
  return 0
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    killAll()
    process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`)
    process.exit(1)
  },
)
