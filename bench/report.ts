/**
 * BENCHMARKS.md: the figures of one run, one table per scenario, the
 * targets with a verdict computed from those figures (targets.ts), and a
 * History section kept across runs (everything below the `<!-- history -->`
 * marker). Rows are found by their ids (figures.ts); the labels here are
 * only printed.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import {
  collectFigures,
  GB,
  PROJECTED_STORES,
  YEAR_FLEET,
  YEAR_FLEET_EVENTS_A_DAY,
  type Backend,
  type FigureId,
  type DashboardRowId,
  type FetchFormat,
  type FetchRowId,
  type LoadRowId,
  type LiveRowId,
  type MillionRowId,
  type OdometerRowId,
  type PreloadRowId,
  type RetentionRowId,
  type Scenario,
  type ShutdownRowId,
  type StorageRowId,
  type StoreName,
} from './figures.ts'
import { fixed, int, mb, ms, pct, table } from './format.ts'
import type { LoadResult } from './load.ts'
import type { FetchResult, OdometerFigures } from './query.ts'
import type { FrameFigures } from './frames.ts'
import type { RetentionResult, StoreLoadResult } from './store-load.ts'
import type { LatencySummary } from './stats.ts'
import type { FailoverEvent, FailoverStream } from './failover.ts'
import type { PeerReport } from './peer.ts'
import { ROBOT_PREFIX } from './fleet.ts'
import {
  describeTarget,
  evaluateTargets,
  showMeasured,
  showVerdict,
} from './targets.ts'

/** Where the History section starts; a run keeps everything below it. */
export const HISTORY_MARKER = '<!-- history -->'

// --- what a run measured ---

/** A server process over one scenario. */
export interface ServerFigures {
  /** VmRSS once listening, bytes. */
  readonly idleRss: number
  /** Peak resident set over the server's life (VmHWM and polling), bytes. */
  readonly peakRss: number
  /** Whether SIGTERM ended it with code 0 (false: code, signal or SIGKILL). */
  readonly cleanExit: boolean
  readonly exit: string
  /** From SIGTERM to the end of the process (to the SIGKILL when killed). */
  readonly stopSeconds: number
  /** Whether it outlived the stop timeout and was killed with SIGKILL. */
  readonly killed: boolean
  /** Lines the server logged on stderr (at `--log-level warn`). */
  readonly logLines: number
  /**
   * Largest size of the SQLite write-ahead log seen while the server ran
   * (polled every 50 ms), bytes; undefined on PostgreSQL.
   */
  readonly peakWalBytes?: number
}

/**
 * The live feed's delivery during the `ingest-live` loads: probe events
 * sent one at a time for a robot of their own, each matched by timestamp
 * on the probe robot's single-robot stream and on one fleet stream.
 */
export interface LiveRow {
  readonly id: LiveRowId
  /** Subscribers attached: whole-fleet, single-robot (the probe's not counted). */
  readonly fleetStreams: number
  readonly robotStreams: number
  /** Probe events answered `OK`. */
  readonly probes: number
  /** Of those, how many neither stream delivered before the end. */
  readonly missedSingle: number
  readonly missedFleet: number
  /** Delivery on the single-robot stream minus the `OK`'s arrival, ms. */
  readonly deliveryAfterOk: LatencySummary
  /** The same on the fleet stream (includes the coalescing tick), ms. */
  readonly fleetDeliveryAfterOk: LatencySummary
  /** Delivery on the single-robot stream minus the probe's send, ms. */
  readonly sendToDelivery: LatencySummary
  /** The bench process's own CPU while it read the streams, % of a core. */
  readonly readerCpuPct: number
}

/** One WebSocket load run, against the real server or bare-ws. */
export interface IngestRow {
  readonly id: LoadRowId
  readonly load: LoadResult
  /** Server CPU over the measurement window. */
  readonly serverCpuSeconds: number
  readonly windowSeconds: number
  readonly server: ServerFigures
  /** Events the store holds after the run, and how many it should. */
  readonly stored?: { readonly expected: number; readonly actual: number }
}

/** The in-process storage ceiling. */
export interface StorageRow {
  readonly id: StorageRowId
  readonly batchSize: number
  readonly robots: number
  readonly result: StoreLoadResult
}

/** A preload done before the server starts on its store. */
export interface PreloadRow {
  readonly id: PreloadRowId
  /** What was preloaded, in words (printed only). */
  readonly label: string
  readonly robots: number
  readonly order: string
  readonly result: StoreLoadResult
}

/** Odometer queries on one robot. */
export interface OdometerRow {
  readonly id: OdometerRowId
  readonly events: number
  readonly result: OdometerFigures
  readonly server: ServerFigures
}

/** One whole-track fetch. */
export interface FetchRow {
  readonly id: FetchRowId
  readonly format: FetchFormat
  readonly expected: number
  readonly result: FetchResult
  /** VmRSS just before the request, bytes. */
  readonly idleRss: number
  /** Peak resident set during the request (VmHWM reset before it), bytes. */
  readonly peakRss: number
  readonly serverCpuSeconds: number
  readonly server: ServerFigures
}

/**
 * SIGTERM sent while a load was in full swing: how long the server took to
 * end, and whether every event it answered OK is stored (counted by a
 * second server started on the same store).
 */
export interface ShutdownRow {
  readonly id: ShutdownRowId
  /** How the server ended after the SIGTERM. */
  readonly exit: { readonly seconds: number; readonly killed: boolean }
  /** How it ended, in words. */
  readonly exitText: string
  /** Reply lines `OK` read by the generator, over the whole load. */
  readonly ok: number
  /** Of those, the ones read before the SIGTERM (at most). */
  readonly okBeforeSignal: number
  /** Events of the frames never answered. */
  readonly unansweredEvents: number
  /** Events the store holds after the restart; undefined when not counted. */
  readonly stored: number | undefined
  /** Events sent in all: the store cannot hold more. */
  readonly sent: number
}

/** The restart on the million-robot store. */
export interface RestartFigures {
  /** From the start of the process to the first 200 of `GET /healthz`. */
  readonly startupSeconds: number
  /** VmRSS then, bytes. */
  readonly rssUp: number
  /** The first `GET /api/robots?limit=100`, and the median of those after it. */
  readonly listFirstMs: number
  readonly listP50Ms: number
  /** Requests after the first one. */
  readonly listRequests: number
  /** Its `X-Total-Count` header; undefined when the header is absent. */
  readonly totalCount: number | undefined
  /** Robots its first page listed. */
  readonly listed: number
}

/** The million-robot load on one connection, its stop and the restart. */
export interface MillionRow {
  readonly id: MillionRowId
  readonly robots: number
  readonly load: LoadResult
  /** OK events over the time from the first frame sent to the last reply. */
  readonly eventsPerSecond: number
  /** VmRSS before the load and once it was answered, bytes. */
  readonly rssBefore: number
  readonly rssEnd: number
  /** Robots `GET /api/robots` listed after the load, undefined: not counted. */
  readonly stored: number | undefined
  /** The first server (its clean stop is `stopSeconds`). */
  readonly server: ServerFigures
  /** The second server, on the same store; undefined when it failed. */
  readonly restart: RestartFigures | undefined
  readonly restartServer: ServerFigures | undefined
}

/**
 * The dashboard's fleet view in headless Chromium while the load generator
 * streams the fleet, paced, at `hz` events a robot a second.
 */
export interface DashboardRow {
  readonly id: DashboardRowId
  /** The paced load (its measured window is the frames' window). */
  readonly load: LoadResult
  readonly hz: number
  /** Server CPU over the measured window. */
  readonly serverCpuSeconds: number
  readonly windowSeconds: number
  readonly server: ServerFigures
  /** The page's frames and long tasks inside the measured window. */
  readonly frames: FrameFigures
  /** The fleet table at the end: its rows and its count line. */
  /** The robots the fleet table holds (its count line), and that line. */
  readonly shown: { readonly rows: number; readonly text: string }
  /**
   * Seconds from the start of the generator's process to the table first
   * showing every robot (checked every 250 ms); undefined when it never did.
   */
  readonly fullSeconds: number | undefined
  /** The browser's version, and the page's viewport (CSS pixels). */
  readonly browser: string
  readonly viewport: { readonly width: number; readonly height: number }
}

/** A retention pass under a steady ingest (store-load.ts `retention`). */
export interface RetentionRow {
  readonly id: RetentionRowId
  readonly robots: number
  /** Old events preloaded per robot. */
  readonly oldEvents: number
  /** Events per `append()` of the steady ingest. */
  readonly batchSize: number
  /** Ingest untimed, then timed before the pass, then after it (ms). */
  readonly warmupMs: number
  readonly baselineMs: number
  readonly tailMs: number
  readonly result: RetentionResult
}

/**
 * Issue 15's failover scenario: the `ingest` and `latency` loads against
 * a single node and against a primary with a synchronous secondary, then
 * robots streaming through failovers of that formation (failover.ts).
 */
export interface FailoverReport {
  /** The loads, `failover-single`, `-sync`, `-single-paced`, `-sync-paced`. */
  readonly loads: IngestRow[]
  /** The rate both paced loads asked: the fleet (`robots`) at `failoverHz`. */
  readonly rate: number
  /** Seconds each formation took to start (its `startFormation`). */
  readonly formations: { readonly nodes: 1 | 2; readonly seconds: number }[]
  /** Undefined when the stream did not run to its end. */
  readonly stream: FailoverStream | undefined
  /**
   * Lines each streaming server logged at warn or above: expected while
   * its store changes primary, so counted and not listed as problems.
   */
  readonly streamLogLines: number[]
}

/** Bytes on disk of one store, after its last server closed. */
export interface DiskRow {
  readonly name: StoreName
  readonly events: number
  readonly bytes: number
  readonly files: string[]
}

/** The counts a run used; printed as Settings and saved in the JSON results. */
export interface RunConfig {
  readonly connections: number
  readonly robots: number
  readonly window: number
  readonly linesPerFrame: number
  readonly warmupMs: number
  readonly durationMs: number
  /** Count bound of each generator run. */
  readonly maxEvents: number
  readonly storageBatch: number
  readonly preloadBatch: number
  /** Events of the fleet store, over `robots` robots. */
  readonly fleetEvents: number
  /** Events of the driving fleet store, over `robots` robots. */
  readonly drivingEvents: number
  /** Events of the robots of the odometer scenario, smallest first. */
  readonly tracks: readonly number[]
  /** Events of the robot fetched whole. */
  readonly fetchEvents: number
  readonly odometerWarmup: number
  readonly odometerRequests: number
  /** The flood scenario: connections, lines per frame (large and small), window. */
  readonly floodConnections: number
  readonly floodLinesPerFrame: number
  readonly floodSmallLinesPerFrame: number
  readonly floodWindow: number
  /** Measured per flood load (after the warm-up), and the time it goes on after. */
  readonly floodDurationMs: number
  readonly floodTailMs: number
  /** The million scenario: robots (one event each), lines per frame, window. */
  readonly millionRobots: number
  readonly millionLinesPerFrame: number
  readonly millionWindow: number
  /** The dashboard scenario: events a robot a second, paced. */
  readonly dashboardHz: number
  /** The retention scenario: robots, and old events preloaded per robot. */
  readonly retentionRobots: number
  readonly retentionOldEvents: number
  /** Events per append of its steady ingest, and its timed windows. */
  readonly retentionBatch: number
  readonly retentionBaselineMs: number
  readonly retentionTailMs: number
  /** The failover scenario's stream: robots, their events a second, servers. */
  readonly failoverRobots: number
  readonly failoverHz: number
  readonly failoverServers: number
  /** Planned failovers of the stream (one unplanned follows them). */
  readonly failoverPlanned: number
  /** The peer scenario: rounds, robots, InfluxDB's writers and batch, reads. */
  readonly peerRounds: number
  readonly peerRobots: number
  readonly peerWriters: number
  readonly peerBatch: number
  readonly peerReads: number
}

/** How the Settings table names each count, in its order. */
const SETTING_LABELS = {
  connections: 'connections',
  robots: 'robots',
  window: 'frames in flight per connection (window)',
  linesPerFrame: 'lines per frame (batched row)',
  warmupMs: 'warm-up per load (ms)',
  durationMs: 'measured per load (ms)',
  maxEvents: 'count bound per load (events)',
  storageBatch: 'storage ceiling batch (events)',
  preloadBatch: 'preload batch (events)',
  fleetEvents: 'fleet store preload (events)',
  drivingEvents: 'driving fleet store preload (events)',
  tracks: 'odometer robots (events)',
  fetchEvents: 'fetched track (events)',
  odometerWarmup: 'odometer warm-up requests (all robots)',
  odometerRequests: 'odometer requests per robot',
  floodConnections: 'flood: connections',
  floodLinesPerFrame: 'flood: lines per frame',
  floodSmallLinesPerFrame: 'flood: lines per frame of the small-frame run',
  floodWindow: 'flood: frames in flight per connection',
  floodDurationMs: 'flood: measured per load (ms)',
  floodTailMs: 'flood: load on after the window, SIGTERM at its start (ms)',
  millionRobots: 'million: robots (one event each)',
  millionLinesPerFrame: 'million: lines per frame',
  millionWindow: 'million: frames in flight (one connection)',
  dashboardHz: 'dashboard: events per robot per second (paced)',
  retentionRobots: 'retention: robots',
  retentionOldEvents:
    'retention: old events per robot (30 days of them, ending 40 days ago)',
  retentionBatch: 'retention: events per append of the steady ingest',
  retentionBaselineMs: 'retention: ingest timed before the pass (ms)',
  retentionTailMs: 'retention: ingest timed after the pass (ms)',
  failoverRobots: 'failover: robots streaming through the failovers',
  failoverHz: 'failover: events per robot per second (paced)',
  failoverServers: 'failover: server processes they stream through',
  failoverPlanned: 'failover: planned failovers (then one unplanned)',
  peerRounds: 'peer: rounds (server and InfluxDB in turns)',
  peerRobots: 'peer: robots (2,000 events each)',
  peerWriters: 'peer: InfluxDB writers',
  peerBatch: 'peer: lines per InfluxDB write request',
  peerReads: 'peer: reads of each kind (after as many warm-up reads)',
} as const satisfies Record<keyof RunConfig, string>

/** The {@link RunConfig} part of an object that has more (run.ts settings). */
export function configOf(settings: RunConfig): RunConfig {
  const keys = Object.keys(SETTING_LABELS) as (keyof RunConfig)[]
  return Object.fromEntries(
    keys.map((k) => [k, settings[k]]),
  ) as unknown as RunConfig
}

/** Everything a run produced. */
export interface RunReport {
  readonly quick: boolean
  readonly started: Date
  readonly seconds: number
  readonly machine: {
    readonly cores: number
    readonly cpuModel: string
    readonly memoryBytes: number
    readonly kernel: string
  }
  readonly node: string
  /** Short hash of HEAD, or `unknown`. */
  readonly commit: string
  /** Whether the work tree had changes. */
  readonly dirty: boolean
  readonly backend: Backend
  /** The store as printed: the `--store` URL without its password, or what the default is. */
  readonly store: string
  /** Where the figures of this run went as JSON, relative to the report. */
  readonly json: string
  readonly commands: string[]
  readonly config: RunConfig
  readonly scenarios: Scenario[]
  readonly ceilings: IngestRow[]
  readonly storage: StorageRow[]
  readonly ingest: IngestRow[]
  readonly latency: IngestRow[]
  readonly latencyTargetRate?: number
  /**
   * The `ingest` and `ingest-tokens` loads measured a second time, in the
   * other order, for the ratio of the two (figures.ts).
   */
  readonly accessRepeat?: { readonly plain: number; readonly tokens: number }
  /**
   * The `ingest` and `ingest-live` loads measured a second time, in the
   * other order, for the ratio of the two (figures.ts).
   */
  readonly liveRepeat?: { readonly plain: number; readonly live: number }
  /** The live feed's delivery delays of `ingest-live`. */
  readonly live?: LiveRow[]
  readonly preloads: PreloadRow[]
  readonly odometer: OdometerRow[]
  readonly fetch: FetchRow[]
  /** The flood loads, small frames first. */
  readonly flood: IngestRow[]
  readonly shutdown: ShutdownRow[]
  readonly million: MillionRow[]
  readonly dashboard: DashboardRow[]
  readonly retention: RetentionRow[]
  /** The failover scenario, when it ran (not skipped). */
  readonly failover?: FailoverReport
  /** The peer scenario, when it ran. */
  readonly peer?: PeerReport
  /** Why the peer scenario was skipped. */
  readonly peerSkipped?: string
  readonly disk: DiskRow[]
  readonly problems: string[]
}

// --- labels, printed only ---

/** How the report names each load and storage row. */
export const ROW_LABELS = {
  'bare-ws': 'bare-ws, one ws.send per reply',
  'bare-ws-corked': 'bare-ws, replies corked per tick',
  'bare-ws-corked-batch': 'bare-ws, replies corked per tick',
  ingest: 'empty store',
  'ingest-tokens': `empty store, \`--tokens\`, ingest token scoped to \`${ROBOT_PREFIX}*\``,
  'ingest-live': 'empty store, live-feed subscribers attached',
  'ingest-batch': 'empty store',
  'ingest-10m': 'store holding the fleet preload',
  'ingest-sync-full': 'empty store, `--sync full`',
  'latency-max': 'empty store (sets the paced rate)',
  'latency-floor': 'bare-ws, replies corked (floor)',
  latency: 'server',
  'flood-small': 'flood, small frames',
  flood: 'flood',
  'failover-single': 'single node, unpaced',
  'failover-sync': 'primary + synchronous secondary, unpaced',
  'failover-single-paced': 'single node, paced',
  'failover-sync-paced': 'primary + synchronous secondary, paced',
  'store-append': 'in-process `append()`',
  'store-plain-insert': 'plain batched INSERT (no rules)',
} as const satisfies Record<LoadRowId | StorageRowId, string>

/** How the report names each format of a whole-track fetch. */
const FETCH_LABELS = {
  json: 'JSON',
  ndjson: 'NDJSON',
  mcap: 'MCAP (json)',
  'mcap-ros2': 'MCAP (ros2)',
} as const satisfies Record<FetchFormat, string>

/** How the report names each store (followed by its event count). */
export const STORE_LABELS = {
  ceiling: 'the storage ceiling',
  'plain-insert': 'the plain-INSERT ceiling',
  ingest: 'after the empty-store ingest',
  'ingest-tokens': 'after the ingest with access control on',
  'ingest-live': 'after the ingest with live-feed subscribers',
  'ingest-batch': 'after the batched-frame ingest',
  fleet: 'the fleet store',
  'sync-full': 'after the `--sync full` ingest',
  'latency-max': 'after the maximum-rate run',
  latency: 'after the paced run',
  tracks: 'the odometer and fetch tracks',
  driving: 'the driving fleet store (10 Hz, to the millimetre)',
  'flood-small': 'after the small-frame flood',
  flood: 'after the flood and its SIGTERM',
  million: 'the million robots',
  dashboard: 'after the dashboard run',
  retention: 'the old events of the retention pass',
} as const satisfies Record<StoreName, string>

// --- formatting ---

function ingestTable(
  rows: IngestRow[],
  ceiling: ((linesPerFrame: number) => number | undefined) | undefined,
) {
  return table(
    [
      'Run',
      'Lines/frame',
      'Events/s',
      ...(ceiling === undefined ? [] : ['Of bare-ws ceiling']),
      'Ack p50 ms',
      'Ack p99 ms',
      'Server CPU',
      'Server core-s',
      'CPU µs/event',
      'Server peak RSS MB',
      'Peak WAL MB',
      'Non-OK replies',
      'Stored',
      'Generator CPU',
    ],
    rows.map((row) => {
      const l = row.load
      const cpuPct = (100 * row.serverCpuSeconds) / row.windowSeconds
      return [
        ROW_LABELS[row.id],
        String(l.options.linesPerFrame),
        int(l.eventsPerSecond),
        ...(ceiling === undefined
          ? []
          : [
              pct(
                (100 * l.eventsPerSecond) /
                  (ceiling(l.options.linesPerFrame) ?? NaN),
              ),
            ]),
        ms(l.latency.p50),
        ms(l.latency.p99),
        pct(cpuPct),
        fixed(row.serverCpuSeconds, 2),
        fixed((1e6 * row.serverCpuSeconds) / l.measuredEvents, 1),
        mb(row.server.peakRss),
        row.server.peakWalBytes === undefined
          ? 'n/a'
          : mb(row.server.peakWalBytes),
        int(l.nonOk),
        row.stored === undefined
          ? 'n/a'
          : row.stored.actual === row.stored.expected
            ? `${int(row.stored.actual)} ✓`
            : `${int(row.stored.actual)} of ${int(row.stored.expected)} ✗`,
        pct(l.clientCpuPercent),
      ]
    }),
  )
}

/**
 * The ceiling a real-server ingest run is compared with: the best bare-ws
 * run with as many lines per frame.
 */
export function bareCeiling(
  report: RunReport,
  linesPerFrame = 1,
): number | undefined {
  const rates = report.ceilings
    .filter((r) => r.load.options.linesPerFrame === linesPerFrame)
    .map((r) => r.load.eventsPerSecond)
  return rates.length > 0 ? Math.max(...rates) : undefined
}

// --- the document ---

/** Renders the report (without the History section). */
export function renderReport(report: RunReport): string {
  const out: string[] = []
  const quick = report.quick ? ' (quick run)' : ''
  out.push(`# Benchmarks${quick}\n`)
  out.push(
    `Written by \`npm run bench\`${report.quick ? ' with `--quick`: every count is scaled down (see Settings), so these figures are only a smoke test; run without `--quick` for the real ones' : ''}. Everything above the History section is replaced by the next run; see [bench/README.md](bench/README.md) for what each figure means.\n`,
  )

  out.push('## Run\n')
  out.push(
    table(
      ['', ''],
      [
        ['Date', report.started.toISOString()],
        ['Duration', `${fixed(report.seconds, 0)} s`],
        ['Commit', `\`${report.commit}\`${report.dirty ? ' (dirty)' : ''}`],
        [
          'Machine',
          `${report.machine.cores} cores, ${report.machine.cpuModel}, ${fixed(report.machine.memoryBytes / 1024 ** 3, 1)} GiB memory, Linux ${report.machine.kernel}`,
        ],
        ['Node.js', report.node],
        ['Store', `\`${report.store}\` (${report.backend})`],
        ['Scenarios', report.scenarios.join(', ')],
        ['Figures as JSON', `[${report.json}](${report.json})`],
      ],
    ),
  )
  out.push('Commands:\n')
  out.push(`\`\`\`sh\n${report.commands.join('\n')}\n\`\`\`\n`)
  out.push('Settings:\n')
  out.push(
    table(
      ['Setting', 'Value'],
      [
        ['mode', report.quick ? 'quick' : 'full'],
        ...Object.entries(SETTING_LABELS).map(([key, label]) => {
          const value = report.config[key as keyof RunConfig]
          return [
            label,
            typeof value === 'number' ? int(value) : value.map(int).join(', '),
          ]
        }),
      ],
    ),
  )

  if (report.problems.length > 0) {
    out.push('## Problems seen\n')
    out.push(`${report.problems.map((p) => `- ${p}`).join('\n')}\n`)
  }

  out.push('## Targets\n')
  out.push(
    'Verdicts are computed from the figures of this run by the table of targets in `bench/targets.ts`; "Figure" is the id of the figure judged, as in the JSON results.' +
      (report.quick
        ? ' Quick run: the sizes are scaled down, so the verdicts say little.'
        : '') +
      '\n',
  )
  out.push(
    table(
      ['Target', 'Figure', 'Measured', 'Verdict'],
      evaluateTargets(collectFigures(report), report.backend).map((r) => [
        describeTarget(r.target),
        `\`${r.target.figure}\``,
        showMeasured(r),
        showVerdict(r.verdict),
      ]),
    ),
  )

  if (report.ceilings.length > 0 || report.storage.length > 0) {
    out.push('## Ceilings\n')
    out.push(
      'The same generator against a bare `ws` server that parses each line and answers `OK` without storing (network and framing ceiling), and the store driven in-process without the network (storage ceiling).\n',
    )
    if (report.ceilings.length > 0) {
      out.push(ingestTable(report.ceilings, undefined))
    }
    if (report.storage.length > 0) {
      out.push(
        table(
          [
            'Storage ceiling',
            'Batch',
            'Robots',
            'Events/s (wall)',
            'Events/s (inside append)',
            'Batch p50 ms',
            'Batch p99 ms',
            'CPU',
            'Peak RSS MB',
            'Non-OK',
          ],
          report.storage.map((s) => [
            ROW_LABELS[s.id],
            int(s.batchSize),
            int(s.robots),
            int(s.result.eventsPerSecond),
            int(s.result.appendEventsPerSecond),
            ms(s.result.batchLatency.p50),
            ms(s.result.batchLatency.p99),
            pct(s.result.cpuPercent),
            mb(s.result.peakRssBytes),
            int(s.result.nonOk),
          ]),
        ),
      )
    }
  }

  if (report.ingest.length > 0) {
    out.push('## Ingest\n')
    out.push(
      'Unpaced: each connection keeps its window of frames in flight. Events/s counts the events answered during the measured window; "Of bare-ws ceiling" divides it by the best bare-ws run with as many lines per frame; the ack latency is from the send of a frame to its reply. "Stored" is the sum of `event_count` over `GET /api/robots` after the run, against the preload plus the `OK` replies.\n',
    )
    out.push(ingestTable(report.ingest, (lines) => bareCeiling(report, lines)))
    const withTokens = collectFigures(report)['run.ingest_tokens_of_plain_pct']
    if (withTokens !== undefined) {
      out.push(
        `With access control on (\`--tokens\`; the generator sends \`Authorization: Bearer\` on each upgrade, and the server checks each line's robot against the token's \`${ROBOT_PREFIX}*\`): ${fixed(withTokens, 1)} % of the events/s of the same load without${
          report.accessRepeat === undefined
            ? ' (the row above it)'
            : `, over two pairs in mirrored order: the two rows above, then the same loads again, with tokens first (${int(report.accessRepeat.tokens)} events/s) and without second (${int(report.accessRepeat.plain)} events/s), each on the store of its first run`
        }.\n`,
      )
    }
    const figures = collectFigures(report)
    const withLive = figures['run.ingest_live_of_plain_pct']
    if (withLive !== undefined) {
      out.push(
        `With live-feed subscribers attached (\`GET /api/live\`: 10 whole-fleet streams, coalesced at the server's \`--live-hz\`, and 100 single-robot streams, each following a robot of the fleet, all read by the bench process): ${fixed(withLive, 1)} % of the events/s of the same load without${
          report.liveRepeat === undefined
            ? ' (the `ingest` row)'
            : `, over two pairs in mirrored order: \`ingest\` and \`ingest-live\`, then the same loads again, with subscribers first (${int(report.liveRepeat.live)} events/s) and without second (${int(report.liveRepeat.plain)} events/s), each on the store of its first run`
        }. The server's CPU per event with subscribers: ${fixed(figures['run.ingest_live_cpu_of_plain_pct'] ?? NaN, 1)} % of that without (the target's figure: on two cores the reader's CPU is taken from the server, so the events/s ratio measures the reader too).\n`,
      )
    }
    for (const row of report.live ?? []) {
      out.push(
        `Live delivery during that load: a probe in the bench process sent one event every 50 ms for a robot of its own over its own connection, waiting for each \`OK\`, and one more single-robot stream followed that robot (the fleet streams see it too). ${int(row.probes)} probe events answered \`OK\`; ${int(row.missedSingle)} not delivered on the single-robot stream by the end, and ${int(row.missedFleet)} not sent on the fleet stream (which sends a robot's latest position per tick: a probe event followed by the next within one tick is coalesced away). Only probe events sent inside the measured window count, over both loads with subscribers when the pair was measured twice. The \`OK\` and the feed are both written right after the same commit, so "after OK" is the delivery's time minus the \`OK\`'s arrival, as read by the one bench process: it may be negative (the feed's bytes read first). The fleet stream's delays include the wait for its next coalescing tick (up to 100 ms at the default 10 Hz). The bench process took ${pct(row.readerCpuPct)} of a core reading the streams and sending the probes, on the cores the server and the generator use.\n`,
      )
      out.push(
        table(
          ['Stream', 'Measured from', 'Samples', 'p50 ms', 'p99 ms', 'Max ms'],
          [
            ['single robot', 'the `OK`', row.deliveryAfterOk],
            ['whole fleet', 'the `OK`', row.fleetDeliveryAfterOk],
            ['single robot', 'the send', row.sendToDelivery],
          ].map(([stream, from, l]) => {
            const summary = l as LatencySummary
            return [
              stream as string,
              from as string,
              int(summary.count),
              ms(summary.p50),
              ms(summary.p99),
              ms(summary.max),
            ]
          }),
        ),
      )
    }
  }

  if (report.latency.length > 0) {
    out.push('## Ack latency at half the maximum rate\n')
    out.push(
      `Paced: ${int(report.latencyTargetRate ?? NaN)} events/s asked (half the empty-store rate of this run), spread over the connections; each connection writes what is due every few ms ("Send period"). The bare-ws row is the floor: the same paced load against a server that stores nothing.\n`,
    )
    out.push(
      table(
        [
          'Run',
          'Asked events/s',
          'Achieved events/s',
          'Ack p50 ms',
          'Ack p99 ms',
          'Ack max ms',
          'Server CPU',
          'Server peak RSS MB',
          'Send period ms',
          'Most frames waiting',
          'Non-OK replies',
          'Generator CPU',
        ],
        report.latency.map((r) => [
          ROW_LABELS[r.id],
          int(r.load.options.rate),
          int(r.load.eventsPerSecond),
          ms(r.load.latency.p50),
          ms(r.load.latency.p99),
          ms(r.load.latency.max),
          pct((100 * r.serverCpuSeconds) / r.windowSeconds),
          mb(r.server.peakRss),
          int(r.load.sendPeriodMs),
          int(r.load.maxBacklog),
          int(r.load.nonOk),
          pct(r.load.clientCpuPercent),
        ]),
      ),
    )
  }

  if (report.dashboard.length > 0) {
    out.push('## Dashboard\n')
    const d = report.dashboard[0]!
    out.push(
      `The fleet view (\`/\`) in headless Chromium (${d.browser}, ${int(d.viewport.width)}×${int(d.viewport.height)}, \`--disable-gpu\`) while the generator streams ${int(d.load.options.robots)} robots at ${int(d.hz)} Hz each, paced (${int(d.load.options.rate)} events/s, one line per frame, ${int(d.load.options.connections)} connections); the page reads \`GET /api/robots\` once, then follows the whole-fleet live feed (\`GET /api/live\`, 10 updates a second) and redraws the table and the plane at most twice a second. Over the load's measured window: the interval from each frame's start to the next (\`requestAnimationFrame\`; about 16.7 ms when nothing holds the page up), the long tasks (50 ms or more, \`PerformanceObserver\` \`longtask\`) and their total, and the robots the table shows at the end. Chromium shares the machine's cores with the server and the generator.\n`,
    )
    out.push(
      table(
        [
          'Robots',
          'Asked events/s',
          'Achieved events/s',
          'Frames/s',
          'Frame p50 ms',
          'Frame p99 ms',
          'Frame max ms',
          'Long tasks',
          'Long-task ms',
          'Longest task ms',
          'Table shows',
          'All shown after s',
          'Server CPU',
          'Server peak RSS MB',
          'Non-OK replies',
        ],
        report.dashboard.map((r) => {
          const f = r.frames
          const robots = r.load.options.robots
          return [
            int(robots),
            int(r.load.options.rate),
            int(r.load.eventsPerSecond),
            fixed(f.framesPerSecond, 1),
            ms(f.intervals.p50),
            ms(f.intervals.p99),
            ms(f.intervals.max),
            int(f.longTasks),
            int(f.longTaskMs),
            int(f.longestTaskMs),
            `${r.shown.text === '' ? int(r.shown.rows) : r.shown.text} ${r.shown.rows === robots ? '✓' : '✗'}`,
            r.fullSeconds === undefined ? 'never' : fixed(r.fullSeconds, 1),
            pct((100 * r.serverCpuSeconds) / r.windowSeconds),
            mb(r.server.peakRss),
            int(r.load.nonOk),
          ]
        }),
      ),
    )
  }

  if (report.preloads.length > 0) {
    out.push('## Preloads\n')
    out.push(
      'Straight through the store in-process (`openBackend`, `append` of big batches, `close`) before the server starts on the file; not an ingest figure.\n',
    )
    out.push(
      table(
        ['Store', 'Robots', 'Order', 'Events', 'Seconds', 'Events/s'],
        report.preloads.map((p) => [
          p.label,
          int(p.robots),
          p.order,
          int(p.result.events),
          fixed(p.result.seconds, 1),
          int(p.result.eventsPerSecond),
        ]),
      ),
    )
  }

  if (report.odometer.length > 0) {
    out.push('## Odometer queries\n')
    out.push(
      'Sequential `GET /api/robots/{robot}/odometer?start_time=&end_time=` over random intervals, one keep-alive connection, round-robin over the robots after the warm-up requests (see Settings); every answer is checked against the distance the preload put there.\n',
    )
    out.push(
      table(
        [
          'Robot events',
          'Requests',
          'p50 ms',
          'p99 ms',
          'max ms',
          'Wrong answers',
          'Server peak RSS MB',
        ],
        report.odometer.map((o) => [
          int(o.events),
          int(o.result.requests),
          ms(o.result.latency.p50),
          ms(o.result.latency.p99),
          ms(o.result.latency.max),
          int(o.result.wrong),
          mb(o.server.peakRss),
        ]),
      ),
    )
  }

  if (report.fetch.length > 0) {
    out.push('## Fetching a whole track\n')
    out.push(
      'One `GET /api/robots/{robot}/events` of every event of one robot (JSON, NDJSON), or one `GET /api/robots/{robot}/events.mcap` of the same events (MCAP, json and ros2 profiles: a pose and an odometer message an event, zstd chunks of 1 MiB, message and chunk indexes), each on a freshly started server; bytes an event are the body over the events; RSS growth is the peak during the request over the RSS just before it.\n',
    )
    out.push(
      table(
        [
          'Format',
          'Events',
          'MB',
          'Seconds',
          'Events/s',
          'First byte ms',
          'Bytes/event',
          'Server CPU',
          'Idle RSS MB',
          'Peak RSS MB',
          'Growth MB',
          'Complete',
        ],
        report.fetch.map((f) => [
          FETCH_LABELS[f.format],
          int(f.result.events),
          mb(f.result.bytes),
          fixed(f.result.seconds, 2),
          int(f.result.eventsPerSecond),
          ms(f.result.firstByteMs),
          f.result.events > 0
            ? fixed(f.result.bytes / f.result.events, 1)
            : '—',
          pct((100 * f.serverCpuSeconds) / f.result.seconds),
          mb(f.idleRss),
          mb(f.peakRss),
          mb(f.peakRss - f.idleRss),
          f.result.complete
            ? '✓'
            : `✗ (${int(f.result.events)} of ${int(f.expected)})`,
        ]),
      ),
    )
  }

  const floods = report.flood
  if (floods.length > 0 || report.shutdown.length > 0) {
    const c = report.config
    out.push('## Flood\n')
    out.push(
      `${int(c.floodConnections)} connections, each keeping up to ${int(c.floodWindow)} frames unanswered, for ${fixed(c.floodDurationMs / 1000, 0)} s after the warm-up: frames of ${int(c.floodLinesPerFrame)} valid lines, and in the same run the same load in frames of ${int(c.floodSmallLinesPerFrame)} lines, each on a fresh server. Events/s counts the events answered during the measured window; "Stored" as in Ingest.\n`,
    )
    if (floods.length > 0) {
      out.push(ingestTable(floods, undefined))
      const ratio = collectFigures(report)['run.flood_large_over_small']
      if (ratio !== undefined) {
        out.push(
          `Events/s in ${int(c.floodLinesPerFrame)}-line frames over ${int(c.floodSmallLinesPerFrame)}-line frames: ${fixed(ratio, 2)}×.\n`,
        )
      }
    }
    if (report.shutdown.length > 0) {
      out.push(
        `SIGTERM as the measured window of the ${int(c.floodLinesPerFrame)}-line flood ends, the generator still sending (for ${fixed(c.floodTailMs / 1000, 0)} s more at most); the server gets 60 s to end before SIGKILL. A second server on the same store then counts the events stored (\`GET /api/robots\`): every event answered OK must be among them.\n`,
      )
      out.push(
        table(
          [
            'Run',
            'Exit',
            'Seconds to exit',
            'OK replies (events)',
            'OK before SIGTERM',
            'Unanswered (events)',
            'Sent (events)',
            'Stored',
            'OK not stored',
          ],
          report.shutdown.map((r) => [
            r.id,
            r.exitText,
            fixed(r.exit.seconds, 1),
            int(r.ok),
            int(r.okBeforeSignal),
            int(r.unansweredEvents),
            int(r.sent),
            r.stored === undefined ? 'n/a' : int(r.stored),
            r.stored === undefined
              ? 'n/a'
              : r.stored >= r.ok
                ? '0 ✓'
                : `${int(r.ok - r.stored)} ✗`,
          ]),
        ),
      )
    }
  }

  if (report.million.length > 0) {
    const c = report.config
    out.push('## A million robots\n')
    out.push(
      `${int(c.millionRobots)} robots, one event each, in frames of ${int(c.millionLinesPerFrame)} lines, ${int(c.millionWindow)} frames in flight on one connection. Events/s is the OK events over the time from the first frame sent to the last reply; "RSS end" is the server's VmRSS once the last frame was answered, and "per robot" is its growth over the RSS before the load, divided by the robots. "Stop" is SIGTERM to exit. Then a second server starts on the same store: "Start-up" is from its start to the first 200 of \`GET /healthz\`, "RSS up" its VmRSS then; \`GET /api/robots?limit=100\` is timed once and then ${int(report.million[0]?.restart?.listRequests ?? 0)} times more (median), and its \`X-Total-Count\` header is compared with the robots.\n`,
    )
    out.push(
      table(
        [
          'Robots',
          'Events/s',
          'Stored robots',
          'RSS before MB',
          'RSS end MB',
          'Peak RSS MB',
          'Per robot (bytes)',
          'Stop',
          'Start-up s',
          'RSS up MB',
          'List first ms',
          'List p50 ms',
          'X-Total-Count',
        ],
        report.million.map((r) => [
          int(r.robots),
          int(r.eventsPerSecond),
          r.stored === undefined ? 'n/a' : int(r.stored),
          mb(r.rssBefore),
          mb(r.rssEnd),
          mb(r.server.peakRss),
          int((r.rssEnd - r.rssBefore) / r.robots),
          r.server.exit,
          r.restart === undefined ? 'n/a' : fixed(r.restart.startupSeconds, 2),
          r.restart === undefined ? 'n/a' : mb(r.restart.rssUp),
          r.restart === undefined ? 'n/a' : ms(r.restart.listFirstMs),
          r.restart === undefined ? 'n/a' : ms(r.restart.listP50Ms),
          r.restart === undefined
            ? 'n/a'
            : r.restart.totalCount === undefined
              ? 'absent'
              : r.restart.totalCount === r.robots
                ? `${int(r.restart.totalCount)} ✓`
                : `${int(r.restart.totalCount)} ✗`,
        ]),
      ),
    )
  }

  if (report.disk.length > 0) {
    out.push('## Bytes on disk\n')
    out.push(
      report.backend === 'postgres'
        ? "`pg_total_relation_size` of every table of the store's schema (heap, indexes, TOAST), after the server closed cleanly, over the events the store holds.\n"
        : "Every file in the store's folder (the database, `-wal`, `-shm` and any other), after the server closed cleanly, over the events the store holds.\n",
    )
    out.push(
      table(
        ['Store', 'Events', 'Bytes', 'Bytes/event', 'Files'],
        report.disk.map((d) => [
          `${STORE_LABELS[d.name]} (${int(d.events)} events)`,
          int(d.events),
          int(d.bytes),
          d.events > 0 ? fixed(d.bytes / d.events, 1) : 'n/a',
          d.files.join(', '),
        ]),
      ),
    )
  }

  const projected = PROJECTED_STORES.flatMap((name) =>
    report.disk.filter((d) => d.name === name && d.events > 0),
  )
  if (projected.length > 0) {
    const f = YEAR_FLEET
    const figures = collectFigures(report)
    out.push('## A year of the fleet\n')
    out.push(
      `${int(f.robots)} robots reporting at ${int(f.hz)} Hz store ${int(YEAR_FLEET_EVENTS_A_DAY)} events a day. At the bytes an event measured above, and assuming an event costs the same in a store ${int(f.days)} days long as in the one measured, with retention off (every event kept) a year of them takes the "Year" column; with \`--retain ${f.retainDays}d\` the store holds the last ${f.retainDays} days (column "${f.retainDays} days"). GB and TB are 2^30 and 2^40 bytes, as MB are 2^20 here.${report.quick ? " Quick run: the stores measured are small, so their fixed costs (schema, robots' rows, events not yet packed) weigh on each event, and these projections say little." : ''}\n`,
    )
    out.push(
      table(
        [
          'Store',
          'Bytes/event',
          'A day',
          `${f.retainDays} days (\`--retain ${f.retainDays}d\`)`,
          `Year (${f.days} days, retention off)`,
          'Figures',
        ],
        projected.map((d) => {
          const id = `disk-${d.name}` as const
          const perEvent = d.bytes / d.events
          return [
            STORE_LABELS[d.name],
            fixed(perEvent, 1),
            size(perEvent * YEAR_FLEET_EVENTS_A_DAY),
            size((figures[`${id}.retain_30d_gb`] ?? NaN) * GB),
            size((figures[`${id}.year_gb`] ?? NaN) * GB),
            `\`${id}.retain_30d_gb\`, \`${id}.year_gb\``,
          ]
        }),
      ),
    )
  }

  if (report.retention.length > 0) {
    out.push('## Retention\n')
    for (const row of report.retention) {
      const r = row.result
      const units = report.backend === 'postgres' ? 'partitions' : 'blocks'
      out.push(
        `A retention pass while ingest goes on, in a process of its own (\`store-load.js\`, mode \`retention\`) with the store opened as the server opens it (\`openStore\`${report.backend === 'sqlite' ? ': on its store thread, so that batches and the chunks of the pass take turns' : ''}): ${int(row.robots)} robots get ${int(row.oldEvents)} old events each (${int(r.oldEvents)} in all, ${fixed(r.preloadSeconds, 1)} s), spread over 30 days that end 40 days before the run; then a steady ingest of ${int(row.batchSize)}-event batches over the same robots, timestamped from the run's start on, one \`append()\` in flight at a time, each timed. After ${fixed(row.warmupMs / 1000, 0)} s of warm-up and ${fixed(row.baselineMs / 1000, 0)} s of baseline, \`removeBefore(now − 7 days)\` runs while the ingest goes on, and the ingest goes on ${fixed(row.tailMs / 1000, 0)} s after the pass ends. "During the pass" counts every append that overlapped it; the longest of them is the pass's worst ingest pause. Events/s are those appends' events over the time from the first one's start to the last one's end. The pass removes whole ${units} only, so some old events may stay: ${report.backend === 'postgres' ? "those not yet packed into a block (a robot's last few, in the tail of its row)" : "each robot's latest block, and events not yet packed into one"}.\n`,
      )
      out.push(
        table(
          [
            'Old events',
            'Removed events',
            `Removed ${units}`,
            'Pass seconds',
            'Worst pause ms',
            'Ingest ended first',
          ],
          [
            [
              int(r.oldEvents),
              int(r.removed.events),
              int(r.removed.units),
              fixed(r.passSeconds, 3),
              ms(r.pass.latency.max),
              r.ingestEndedFirst ? 'yes ✗' : 'no',
            ],
          ],
        ),
      )
      out.push(
        table(
          [
            'Ingest',
            'Appends',
            'Events',
            'Seconds',
            'Events/s',
            'Append p50 ms',
            'Append p99 ms',
            'Append max ms',
          ],
          (
            [
              ['before the pass (baseline)', r.baseline],
              ['during the pass', r.pass],
              ['after the pass', r.after],
            ] as const
          ).map(([label, w]) => [
            label,
            int(w.appends),
            int(w.events),
            fixed(w.seconds, 2),
            int(w.eventsPerSecond),
            ms(w.latency.p50),
            ms(w.latency.p99),
            ms(w.latency.max),
          ]),
        ),
      )
    }
  }
  if (report.peer !== undefined || report.peerSkipped !== undefined) {
    out.push(...peerSection(report))
  }
  if (report.failover !== undefined) out.push(...failoverSection(report))
  return out.join('\n')
}

/** The side-by-side section (issue 17), from `report.peer`. */
function peerSection(report: RunReport): string[] {
  const out = ['## Side by side with InfluxDB\n']
  const p = report.peer
  if (p === undefined) {
    out.push(`Not measured in this run: ${report.peerSkipped}.\n`)
    return out
  }
  const f = collectFigures(report)
  const st = p.settings
  out.push(
    `The same ${int(p.events)} events (${int(st.robots)} robots, 2,000 each, the generator's positions and timestamps) into this server and into InfluxDB (${p.version}, Debian's \`influxdb\` package, \`influxd\` with its defaults: the write-ahead log fsynced on every write request) on the same machine, in ${st.rounds} rounds that take turns (the server first in odd rounds, InfluxDB in even ones); each figure is the median over the rounds, each ratio is of the medians. The server: a fresh process on a fresh SQLite store (\`--sync normal\`, its default) per frame size, ${int(st.connections)} connections with ${int(st.window)} frames in flight each, every event answered \`OK\` after its commit. InfluxDB: \`/write\` requests of ${int(st.batch)} lines (precision ms) from ${st.writers} writers on keep-alive connections, each answered 204 after its write. Events/s are the events answered over the time from the first send to the last answer; CPU is the server process's over the same time (all its threads); memory at rest is its RSS 2 s after it started, empty; the peak is the largest RSS during the ingest. Disk is the store's folder (the server) or the database's data and WAL folders (InfluxDB) after a clean stop; InfluxDB's compacted figure is after it was started again on its files with \`cache-snapshot-write-cold-duration\` and \`compact-full-write-cold-duration\` of 1 s and its files stopped changing. Reads: ${int(st.reads)} of each kind after as many warm-up reads, one at a time on one keep-alive connection, over random robots and random runs of 1,000 consecutive events: the odometer (\`GET …/odometer\`; InfluxQL \`SUM\` of \`SQRT(POW(DIFFERENCE(x), 2) + POW(DIFFERENCE(y), 2))\`) and the events (\`GET …/events\`, JSON; InfluxQL \`SELECT x, y\`), every answer checked; the server's on its 10-lines-a-frame store.\n`,
  )
  const server = (lpf: 1 | 10 | 100, metric: string) =>
    f[`peer-server-${lpf}.${metric}` as FigureId] ?? NaN
  const influx = (metric: string) =>
    f[`peer-influxdb.${metric}` as FigureId] ?? NaN
  const ratio = (a: number, b: number) =>
    Number.isFinite(a / b) ? `${fixed(a / b, 2)}×` : 'n/a'
  const rows: string[][] = []
  const each = (
    label: string,
    metric: string,
    show: (n: number) => string,
    theirs = influx(metric),
  ) => {
    for (const lpf of [1, 10, 100] as const) {
      const ours = server(lpf, metric)
      rows.push([
        `${label}, ${lpf} line${lpf === 1 ? '' : 's'}/frame`,
        show(ours),
        show(theirs),
        ratio(ours, theirs),
      ])
    }
  }
  each('ingest, events/s', 'events_per_s', int)
  each('CPU seconds per million events', 'cpu_s_per_million', (n) =>
    fixed(n, 2),
  )
  each('disk bytes an event after a clean stop', 'bytes_per_event', (n) =>
    fixed(n, 1),
  )
  const compacted = influx('compacted_bytes_per_event')
  rows.push([
    'disk bytes an event, InfluxDB once compacted',
    '',
    fixed(compacted, 1),
    ratio(
      Math.max(
        server(1, 'bytes_per_event'),
        server(10, 'bytes_per_event'),
        server(100, 'bytes_per_event'),
      ),
      compacted,
    ) + ' (the largest of the three)',
  ])
  each('memory at rest, MB', 'idle_rss_mb', (n) => fixed(n, 1))
  each('peak memory during ingest, MB', 'peak_rss_mb', (n) => fixed(n, 1))
  for (const [label, metric] of [
    ['odometer over 1,000 events, p50 ms', 'odometer_p50_ms'],
    ['odometer over 1,000 events, p99 ms', 'odometer_p99_ms'],
    ['1,000-event window, p50 ms', 'window_p50_ms'],
    ['1,000-event window, p99 ms', 'window_p99_ms'],
  ] as const) {
    const ours = server(10, metric)
    const theirs = influx(metric)
    rows.push([label, ms(ours), ms(theirs), ratio(ours, theirs)])
  }
  out.push(table(['', 'This server', 'InfluxDB', 'Ratio'], rows))
  out.push('Each round:\n')
  const roundRows: string[][] = []
  p.rounds.forEach((round, r) => {
    const runs = [
      ...round.server.map((run) => ({
        who: `server, ${run.linesPerFrame} line${run.linesPerFrame === 1 ? '' : 's'}/frame`,
        run,
        compacted: NaN,
      })),
      {
        who: `InfluxDB, ${int(st.batch)}-line requests`,
        run: round.influxdb,
        compacted: round.influxdb.compactedBytes,
      },
    ]
    const ordered =
      round.first === 'server' ? runs : [runs.at(-1)!, ...runs.slice(0, -1)]
    for (const { who, run, compacted } of ordered) {
      roundRows.push([
        String(r + 1),
        who,
        int(run.events),
        fixed(run.seconds, 2),
        int(run.eventsPerSecond),
        fixed((1e6 * run.cpuSeconds) / run.events, 2),
        mb(run.idleRss),
        mb(run.peakRss),
        fixed(run.diskBytes / run.events, 1),
        Number.isFinite(compacted) ? fixed(compacted / run.events, 1) : '',
        run.stored === run.events
          ? `${int(run.stored)} ✓`
          : `${int(run.stored ?? NaN)} ✗`,
        run.reads === undefined
          ? ''
          : `${ms(run.reads.odometer.p50)} / ${ms(run.reads.odometer.p99)}`,
        run.reads === undefined
          ? ''
          : `${ms(run.reads.window.p50)} / ${ms(run.reads.window.p99)}`,
        run.reads === undefined ? '' : int(run.reads.wrong),
      ])
    }
  })
  out.push(
    table(
      [
        'Round',
        'Run',
        'Events',
        'Seconds',
        'Events/s',
        'CPU s per million',
        'Rest MB',
        'Peak MB',
        'Disk B/event',
        'Compacted B/event',
        'Stored',
        'Odometer p50 / p99 ms',
        'Window p50 / p99 ms',
        'Wrong answers',
      ],
      roundRows,
    ),
  )
  return out
}

/** The PostgreSQL failover section (issue 15), from `report.failover`. */
function failoverSection(report: RunReport): string[] {
  const f = report.failover!
  const out: string[] = []
  const figures = collectFigures(report)
  const built = (nodes: 1 | 2) => {
    const seconds = f.formations.find((b) => b.nodes === nodes)?.seconds
    return seconds === undefined
      ? 'not built'
      : `built in ${fixed(seconds, 0)} s`
  }
  out.push('## PostgreSQL failover\n')
  out.push(
    `Issue 15. The \`failover\` scenario builds its own pg_auto_failover formations (\`test/support/formation.ts\`: a monitor and PostgreSQL 15 nodes on 127.0.0.1 in a temporary folder), whatever \`--store\` says, one after the other: a single node (state \`single\`, no replication; ${built(1)}), then a primary with a synchronous secondary (pg_auto_failover's default: the secondary is in \`synchronous_standby_names\`, so a commit returns once the secondary has it; ${built(2)}). The server is the process of the other scenarios with \`--store\` the formation's URI (every node, \`target_session_attrs=read-write\`), each load on a fresh schema. Unpaced is the \`ingest\` load (see Settings); paced is the same load at ${int(f.rate)} events/s on both formations, the fleet's ${int(report.config.robots)} robots at ${int(report.config.failoverHz)} Hz each, a rate both formations keep to (see bench/README.md).\n`,
  )
  if (f.loads.length > 0) {
    out.push(
      table(
        [
          'Formation, load',
          'Asked events/s',
          'Events/s',
          'Ack p50 ms',
          'Ack p99 ms',
          'Ack max ms',
          'Server CPU',
          'CPU µs/event',
          'Non-OK replies',
          'Stored',
        ],
        f.loads.map((row) => {
          const l = row.load
          return [
            ROW_LABELS[row.id],
            l.options.rate > 0 ? int(l.options.rate) : 'unpaced',
            int(l.eventsPerSecond),
            ms(l.latency.p50),
            ms(l.latency.p99),
            ms(l.latency.max),
            pct((100 * row.serverCpuSeconds) / row.windowSeconds),
            fixed((1e6 * row.serverCpuSeconds) / l.measuredEvents, 1),
            int(l.nonOk),
            row.stored === undefined
              ? 'n/a'
              : row.stored.actual === row.stored.expected
                ? `${int(row.stored.actual)} ✓`
                : `${int(row.stored.actual)} of ${int(row.stored.expected)} ✗`,
          ]
        }),
      ),
    )
    out.push(
      `With synchronous replication: ${fixed(figures['run.failover_sync_of_single_pct'] ?? NaN, 1)} % of the single node's events/s unpaced (\`run.failover_sync_of_single_pct\`), and an ack p99 ${fixed(figures['run.failover_sync_ack_p99_over_single'] ?? NaN, 2)}× the single node's at the same paced rate (\`run.failover_sync_ack_p99_over_single\`).\n`,
    )
  }
  const stream = f.stream
  if (stream === undefined) return out
  out.push(
    `Then, on the primary with its synchronous secondary, ${int(stream.robots)} robots stream through ${int(stream.servers)} server processes (robot \`r\` on server \`r % ${stream.servers}\`) for ${fixed(stream.seconds, 0)} s: each is the test kit's \`ResendingRobot\` (one event in flight, sent again after \`ERR unavailable\` or a lost connection until it is answered \`OK\` or \`DUP\`), paced at ${int(stream.hz)} events a second and sending what it holds as fast as the answers come after a silence. A failover's **silence** is the longest time without an acknowledgement to any robot, from just before the failover starts until a second of acknowledgements has come once the formation is primary + secondary again. **Planned**: \`pg_autoctl perform failover\` (it returns once the secondary is primary), one after the other, each started after 2 s of steady acknowledgements. **Unplanned**: SIGKILL to the primary's keeper and its PostgreSQL; the monitor promotes the secondary once it has judged the node unhealthy (pg_auto_failover's defaults), and once the acknowledgements have resumed the killed node is started again and rejoins as secondary ("Whole again"). For scale, the longest silence over ${fixed(stream.baselineMs / 1000, 0)} s of streaming before any failover was ${ms(stream.baselineSilenceMs)} ms.\n`,
  )
  for (const [k, end] of stream.serverEnds.entries()) {
    if (end === undefined) continue
    const during = stream.failovers.findLastIndex(
      (e) => e.atSeconds <= end.seconds,
    )
    const inside =
      during >= 0 &&
      end.seconds <=
        stream.failovers[during]!.atSeconds +
          stream.failovers[during]!.windowSeconds
    const when =
      during < 0
        ? 'before the first failover'
        : `${inside ? 'during' : 'after'} failover ${during + 1}`
    const timed = inside
      ? `failover ${during + 1} and those after it were`
      : 'the failovers after it were'
    out.push(
      `**Server ${k + 1} ended** (exit ${end.exit}) ${fixed(end.seconds, 0)} s into the stream, ${when} (see Problems seen): from then on only the robots of the other server${stream.servers > 2 ? 's' : ''} were answered, so ${timed} timed on those alone, and its robots' failed reconnects are counted in them.\n`,
    )
  }
  const summary = (kind: FailoverEvent['kind']) => {
    const id = `failover-${kind}` as const
    return [
      kind,
      int(figures[`${id}.failovers`] ?? 0),
      ms(figures[`${id}.silence_p50_ms`] ?? NaN),
      ms(figures[`${id}.silence_max_ms`] ?? NaN),
      int(figures[`${id}.unavailable_replies`] ?? NaN),
      int(figures[`${id}.reconnects`] ?? NaN),
      int(figures[`${id}.dup_replies`] ?? NaN),
    ]
  }
  out.push(
    table(
      [
        'Failovers',
        'Count',
        'Silence p50 ms',
        'Silence max ms',
        'ERR unavailable',
        'Reconnects',
        'DUP',
      ],
      [summary('planned'), summary('unplanned')],
    ),
  )
  out.push(
    table(
      [
        '#',
        'Kind',
        'Primary',
        'Silence ms',
        'Failover s',
        'Whole again s',
        'First ERR unavailable s',
        'ERR unavailable',
        'Reconnects',
        'DUP',
      ],
      stream.failovers.map((e, i) => [
        int(i + 1),
        e.kind,
        `${e.before} → ${e.after}`,
        ms(e.silenceMs),
        fixed(e.actionSeconds, 1),
        fixed(e.wholeSeconds, 1),
        e.firstUnavailableSeconds === undefined
          ? 'none'
          : fixed(e.firstUnavailableSeconds, 1),
        int(e.unavailable),
        int(e.reconnects),
        int(e.dups),
      ]),
    ),
  )
  const stored =
    stream.stored === undefined
      ? 'could not be read back ✗'
      : stream.mismatches.length === 0
        ? `${int(stream.stored)} are stored, each robot's \`event_count\` equal to its acknowledged events${stream.unended > 0 ? ` (or one more for the ${int(stream.unended)} robots whose last event was never answered)` : ''} ✓`
        : `${int(stream.stored)} are stored, and ${int(stream.mismatches.length)} robots' \`event_count\` differ from their acknowledged events ✗`
  out.push(
    `"Failover s" is \`pg_autoctl perform failover\` to its return (planned), or the kill until a second of acknowledgements had come from the promoted secondary (unplanned); "Whole again s" from the start until the formation was primary + secondary again; "First ERR unavailable s" from the start to the first \`ERR unavailable\` a robot read (until then its event in flight was neither acknowledged nor refused). \`DUP\` answers a resend of an event whose commit had succeeded though its \`OK\` was lost or never sent. Of the ${int(stream.acked)} events acknowledged over the stream (${int(stream.dups)} of them \`DUP\`; ${int(stream.unavailable)} \`ERR unavailable\` and ${int(stream.reconnects)} reconnects in all), ${stored} (\`GET /api/robots/NAME\` after the stream). The servers counted ${stream.serverFailovers.map((n) => (n === undefined ? 'n/a' : int(n))).join(' and ')} failovers of their store (\`telemetry_store_failovers_total\`) and logged ${f.streamLogLines.map(int).join(' and ')} lines at warn or above, expected while the store changes primary.\n`,
  )
  return out
}

/** Bytes as GB (2^30) under a TB, as TB (2^40) from one. */
function size(bytes: number): string {
  if (!Number.isFinite(bytes)) return 'n/a'
  return bytes >= 1024 * GB
    ? `${fixed(bytes / (1024 * GB), 2)} TB`
    : `${fixed(bytes / GB, bytes >= 100 * GB ? 0 : 1)} GB`
}

const HISTORY_INTRO = `## History

${HISTORY_MARKER}

Before/after figures of changes, each computed from the JSON results of two
runs by \`npm run bench -- --compare A.json B.json --history BENCHMARKS.md\`
(see bench/README.md). \`npm run bench\` keeps everything below the marker
above.
`

/**
 * Writes the report to `path`, keeping the History section of the file
 * already there (everything after {@link HISTORY_MARKER}).
 */
export function writeReport(path: string, report: RunReport): void {
  let history = HISTORY_INTRO
  if (existsSync(path)) {
    const old = readFileSync(path, 'utf8')
    const at = old.indexOf(HISTORY_MARKER)
    if (at >= 0) {
      history = `## History\n\n${old.slice(at)}`
    }
  }
  writeFileSync(
    path,
    `${renderReport(report)}\n${history.replace(/\n*$/, '\n')}`,
  )
}
