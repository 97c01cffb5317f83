/**
 * The ids of a bench run: its scenarios, the stores it fills, the rows its
 * report shows and the figures it measures. Code finds rows and figures by
 * these ids; labels are only printed (report.ts). A figure id is
 * `<row>.<metric>`, such as `ingest.events_per_s` or `odometer-large.p99_ms`;
 * the figures computed from several rows are `run.<metric>`.
 */
import type { PeerIngest, PeerReport } from './peer.ts'
import type { RunReport } from './report.ts'
import { summarize } from './stats.ts'

// --- scenarios and stores ---

/** Every scenario, in the order a run measures them (`--scenarios`). */
export const SCENARIOS = [
  'bare-ws',
  'store',
  'ingest',
  'ingest-tokens',
  'ingest-live',
  'ingest-batch',
  'ingest-10m',
  'ingest-sync-full',
  'latency',
  'dashboard',
  'odometer',
  'fetch',
  'disk',
  'retention',
  'flood',
  'million',
  'peer',
  'failover',
] as const
/** One of {@link SCENARIOS}. */
export type Scenario = (typeof SCENARIOS)[number]

/**
 * Scenarios a run measures only when `--scenarios` names them: `failover`
 * builds PostgreSQL formations of its own (pg_auto_failover, as root) and
 * takes minutes, whatever `--store` says.
 */
export const ON_REQUEST_SCENARIOS = [
  'failover',
] as const satisfies readonly Scenario[]

/** What a run measures without `--scenarios`: every scenario but those. */
export const DEFAULT_SCENARIOS: readonly Scenario[] = SCENARIOS.filter(
  (s) => !(ON_REQUEST_SCENARIOS as readonly Scenario[]).includes(s),
)

/**
 * The stores of a run, one per use, each a folder (SQLite) or a schema
 * (PostgreSQL) of its own: `fleet` is preloaded with the whole fleet (the
 * `ingest-10m` store), `driving` holds a fleet of robots driving at 10 Hz
 * with positions to the millimetre (the `simulate` motion model, for bytes
 * on disk), `tracks` holds the long tracks of `odometer` and
 * `fetch`; `flood` and `million` are those scenarios' stores, each read
 * again by a second server after the first stopped; `dashboard` is the
 * empty store the dashboard scenario streams the fleet into; `retention`
 * holds old events for a retention pass (no server opens it).
 */
export const STORES = [
  'ceiling',
  'plain-insert',
  'ingest',
  'ingest-tokens',
  'ingest-live',
  'ingest-batch',
  'fleet',
  'driving',
  'sync-full',
  'latency-max',
  'latency',
  'dashboard',
  'tracks',
  'flood-small',
  'flood',
  'million',
  'retention',
] as const
/** One of {@link STORES}. */
export type StoreName = (typeof STORES)[number]

/** The store backends the bench runs on. */
export const BACKENDS = ['sqlite', 'postgres'] as const
/** One of {@link BACKENDS}. */
export type Backend = (typeof BACKENDS)[number]

/** The backend of a `--store` URL (none: temporary SQLite files). */
export function backendOf(store: string | undefined): Backend {
  return store === undefined || store.startsWith('sqlite:')
    ? 'sqlite'
    : 'postgres'
}

// --- rows ---

/**
 * Runs of the load generator: the bare-ws ceilings, the ingest scenarios
 * and the paced latency runs. `latency-max` is the unpaced empty-store run
 * that sets the paced rate when `ingest` is not in the run. `ingest-tokens`
 * is the `ingest` load with access control on, `ingest-live` the same load
 * with live-feed subscribers attached. `flood` is the flood of
 * 10,000-line frames, `flood-small` the same load in 10-line frames.
 * The `failover-*` rows are the `ingest` load (unpaced) and the `latency`
 * load (paced) against pg_auto_failover formations: `single`, one node
 * without replication, and `sync`, a primary with a synchronous secondary.
 */
export const LOAD_ROWS = [
  'bare-ws',
  'bare-ws-corked',
  'bare-ws-corked-batch',
  'ingest',
  'ingest-tokens',
  'ingest-live',
  'ingest-batch',
  'ingest-10m',
  'ingest-sync-full',
  'latency-max',
  'latency-floor',
  'latency',
  'flood-small',
  'flood',
  'failover-single',
  'failover-sync',
  'failover-single-paced',
  'failover-sync-paced',
] as const
/** One of {@link LOAD_ROWS}. */
export type LoadRowId = (typeof LOAD_ROWS)[number]

/** The storage ceilings: the store's `append()`, and plain INSERTs (PostgreSQL). */
export const STORAGE_ROWS = ['store-append', 'store-plain-insert'] as const
/** One of {@link STORAGE_ROWS}. */
export type StorageRowId = (typeof STORAGE_ROWS)[number]

/** The preloads, one per preloaded store. */
export const PRELOAD_ROWS = [
  'preload-fleet',
  'preload-tracks',
  'preload-driving',
] as const
/** One of {@link PRELOAD_ROWS}. */
export type PreloadRowId = (typeof PRELOAD_ROWS)[number]

/** The odometer robots, by the size of their track (settings: `tracks`). */
export const ODOMETER_ROWS = [
  'odometer-small',
  'odometer-medium',
  'odometer-large',
] as const
/** One of {@link ODOMETER_ROWS}. */
export type OdometerRowId = (typeof ODOMETER_ROWS)[number]

/**
 * The whole-track fetches, one per format: the events as a JSON array and
 * as NDJSON, and the MCAP export of the same events (issue 16) in its json
 * and ros2 profiles.
 */
export const FETCH_ROWS = [
  'fetch-json',
  'fetch-ndjson',
  'fetch-mcap',
  'fetch-mcap-ros2',
] as const
/** One of {@link FETCH_ROWS}. */
export type FetchRowId = (typeof FETCH_ROWS)[number]

/** The format of each fetch row, as `bench/query.ts` takes it. */
export const FETCH_FORMATS = ['json', 'ndjson', 'mcap', 'mcap-ros2'] as const
/** One of {@link FETCH_FORMATS}: row `fetch-<format>`. */
export type FetchFormat = (typeof FETCH_FORMATS)[number]

/**
 * SIGTERM while the flood is in full swing: the time to exit, and the
 * events answered OK against those a second server finds stored.
 */
export const SHUTDOWN_ROWS = ['flood-sigterm'] as const
/** One of {@link SHUTDOWN_ROWS}. */
export type ShutdownRowId = (typeof SHUTDOWN_ROWS)[number]

/** The million-robot load, its clean stop and the restart on its store. */
export const MILLION_ROWS = ['million'] as const
/** One of {@link MILLION_ROWS}. */
export type MillionRowId = (typeof MILLION_ROWS)[number]

/**
 * The dashboard's fleet view in headless Chromium while the fleet streams
 * at 10 Hz a robot: its frames, its long tasks, the robots its table shows.
 */
export const DASHBOARD_ROWS = ['dashboard'] as const
/** One of {@link DASHBOARD_ROWS}. */
export type DashboardRowId = (typeof DASHBOARD_ROWS)[number]

/**
 * The live feed under the `ingest` load (`ingest-live`, also a load row):
 * the delay from a probe event's commit (its `OK`) to its delivery on a
 * single-robot stream and on a whole-fleet stream.
 */
export const LIVE_ROWS = ['ingest-live'] as const
/** One of {@link LIVE_ROWS}. */
export type LiveRowId = (typeof LIVE_ROWS)[number]

/**
 * A retention pass (`Store.removeBefore`) while a steady ingest goes on,
 * in-process on a store of old events: what it removed, how long it took,
 * and the ingest's append times before and during it.
 */
export const RETENTION_ROWS = ['retention'] as const
/** One of {@link RETENTION_ROWS}. */
export type RetentionRowId = (typeof RETENTION_ROWS)[number]

/**
 * Robots streaming through server processes on a primary with a
 * synchronous secondary while the primary changes: the planned failovers
 * (`pg_autoctl perform failover`), the unplanned one (the primary's keeper
 * and PostgreSQL killed), and the whole stream (every acknowledged event
 * stored?).
 */
export const FAILOVER_ROWS = [
  'failover-planned',
  'failover-unplanned',
  'failover-stream',
] as const
/** One of {@link FAILOVER_ROWS}. */
export type FailoverRowId = (typeof FAILOVER_ROWS)[number]

/**
 * The peer scenario (issue 17): the server at 1, 10 and 100 lines a frame
 * and InfluxDB, the same events, medians over the rounds (peer.ts).
 */
export const PEER_ROWS = [
  'peer-server-1',
  'peer-server-10',
  'peer-server-100',
  'peer-influxdb',
] as const
/** One of {@link PEER_ROWS}. */
export type PeerRowId = (typeof PEER_ROWS)[number]

/** The frame sizes the server is measured at by the peer scenario. */
export const PEER_FRAME_SIZES = [1, 10, 100] as const
/** One of {@link PEER_FRAME_SIZES}. */
export type PeerFrameSize = (typeof PEER_FRAME_SIZES)[number]
/** The frame size whose store the peer scenario's reads are measured on. */
export const PEER_READ_FRAME_SIZE: PeerFrameSize = 10

/** Bytes on disk of one store. */
export type DiskRowId = `disk-${StoreName}`

/**
 * The fleet a year of storage is projected for ("A year of the fleet" in
 * the report): robots reporting `hz` times a second for `days` days, and
 * the days a store kept with `--retain 30d` holds.
 */
export const YEAR_FLEET = {
  robots: 1000,
  hz: 10,
  days: 365,
  retainDays: 30,
} as const

/** Events the {@link YEAR_FLEET} reports a day: 864 million. */
export const YEAR_FLEET_EVENTS_A_DAY =
  YEAR_FLEET.robots * YEAR_FLEET.hz * 86_400

/** The stores whose bytes an event the year is projected from. */
export const PROJECTED_STORES = [
  'fleet',
  'driving',
] as const satisfies readonly StoreName[]

/** Every row of a report. */
export type RowId =
  | LoadRowId
  | StorageRowId
  | PreloadRowId
  | OdometerRowId
  | FetchRowId
  | ShutdownRowId
  | MillionRowId
  | DashboardRowId
  | LiveRowId
  | RetentionRowId
  | FailoverRowId
  | PeerRowId
  | DiskRowId

// --- metrics ---

/** Every metric a figure can have, with its unit. */
export const METRICS = {
  events_per_s: 'events/s',
  append_events_per_s: 'events/s',
  ack_p50_ms: 'ms',
  ack_p99_ms: 'ms',
  ack_max_ms: 'ms',
  server_cpu_pct: '%',
  server_cpu_us_per_event: 'µs/event',
  server_peak_rss_mb: 'MB',
  server_peak_wal_mb: 'MB',
  generator_cpu_pct: '%',
  batch_p50_ms: 'ms',
  batch_p99_ms: 'ms',
  cpu_pct: '%',
  peak_rss_mb: 'MB',
  seconds: 's',
  events: 'events',
  p50_ms: 'ms',
  p99_ms: 'ms',
  max_ms: 'ms',
  first_byte_ms: 'ms',
  rss_growth_mb: 'MB',
  bytes: 'bytes',
  bytes_per_event: 'bytes/event',
  bare_ws_ceiling_events_per_s: 'events/s',
  ingest_of_bare_ws_pct: '%',
  ingest_10m_of_empty_pct: '%',
  ingest_tokens_of_plain_pct: '%',
  ingest_live_of_plain_pct: '%',
  ingest_live_cpu_of_plain_pct: '%',
  ingest_of_plain_insert_pct: '%',
  odometer_large_over_small: '×',
  flood_large_over_small: '×',
  exit_seconds: 's',
  ok_events: 'events',
  stored_events: 'events',
  ok_not_stored: 'events',
  unanswered_events: 'events',
  robots: 'robots',
  rss_before_mb: 'MB',
  rss_end_mb: 'MB',
  bytes_per_robot: 'bytes/robot',
  stop_seconds: 's',
  startup_seconds: 's',
  rss_up_mb: 'MB',
  list_first_ms: 'ms',
  list_p50_ms: 'ms',
  total_count: 'robots',
  robots_shown: 'robots',
  frames_per_s: 'frames/s',
  frame_p50_ms: 'ms',
  frame_p99_ms: 'ms',
  frame_max_ms: 'ms',
  long_tasks: 'tasks',
  long_task_ms: 'ms',
  delivery_after_ok_p50_ms: 'ms',
  delivery_after_ok_p99_ms: 'ms',
  fleet_delivery_after_ok_p50_ms: 'ms',
  fleet_delivery_after_ok_p99_ms: 'ms',
  send_to_delivery_p50_ms: 'ms',
  send_to_delivery_p99_ms: 'ms',
  old_events: 'events',
  events_removed: 'events',
  units_removed: 'units',
  pass_seconds: 's',
  worst_pause_ms: 'ms',
  baseline_p50_ms: 'ms',
  baseline_p99_ms: 'ms',
  baseline_max_ms: 'ms',
  pass_p50_ms: 'ms',
  pass_p99_ms: 'ms',
  baseline_events_per_s: 'events/s',
  pass_events_per_s: 'events/s',
  year_gb: 'GB',
  retain_30d_gb: 'GB',
  failovers: 'failovers',
  silence_p50_ms: 'ms',
  silence_max_ms: 'ms',
  baseline_silence_ms: 'ms',
  unavailable_replies: 'replies',
  dup_replies: 'replies',
  reconnects: 'reconnects',
  acked_events: 'events',
  acked_not_stored: 'events',
  failover_sync_of_single_pct: '%',
  failover_sync_ack_p99_over_single: '×',
  cpu_s_per_million: 's',
  compacted_bytes_per_event: 'bytes/event',
  idle_rss_mb: 'MB',
  odometer_p50_ms: 'ms',
  odometer_p99_ms: 'ms',
  window_p50_ms: 'ms',
  window_p99_ms: 'ms',
  peer_ingest_1_of_influxdb_pct: '%',
  peer_ingest_10_of_influxdb_pct: '%',
  peer_ingest_100_of_influxdb_pct: '%',
  peer_ingest_100_over_10: '×',
  peer_ingest_10_over_1: '×',
  peer_cpu_10_of_influxdb_pct: '%',
  peer_disk_of_influxdb_compacted_pct: '%',
  peer_idle_rss_over_influxdb: '×',
  peer_peak_rss_of_influxdb_pct: '%',
  peer_odometer_p50_over_influxdb: '×',
  peer_window_p50_over_influxdb: '×',
  peer_window_p99_over_influxdb: '×',
} as const
/** One of the keys of {@link METRICS}. */
export type Metric = keyof typeof METRICS

/** The metrics each kind of row has, and those of the whole run (`run.*`). */
export const ROW_METRICS = {
  load: [
    'events_per_s',
    'ack_p50_ms',
    'ack_p99_ms',
    'ack_max_ms',
    'server_cpu_pct',
    'server_cpu_us_per_event',
    'server_peak_rss_mb',
    'server_peak_wal_mb',
    'generator_cpu_pct',
  ],
  storage: [
    'events_per_s',
    'append_events_per_s',
    'batch_p50_ms',
    'batch_p99_ms',
    'cpu_pct',
    'peak_rss_mb',
  ],
  preload: ['events_per_s', 'seconds'],
  odometer: ['events', 'p50_ms', 'p99_ms', 'max_ms', 'server_peak_rss_mb'],
  fetch: [
    'events_per_s',
    'seconds',
    'first_byte_ms',
    'bytes_per_event',
    'rss_growth_mb',
    'server_peak_rss_mb',
  ],
  disk: ['events', 'bytes', 'bytes_per_event', 'year_gb', 'retain_30d_gb'],
  shutdown: [
    'exit_seconds',
    'ok_events',
    'stored_events',
    'ok_not_stored',
    'unanswered_events',
  ],
  million: [
    'robots',
    'events_per_s',
    'rss_before_mb',
    'rss_end_mb',
    'peak_rss_mb',
    'bytes_per_robot',
    'stop_seconds',
    'startup_seconds',
    'rss_up_mb',
    'list_first_ms',
    'list_p50_ms',
    'total_count',
  ],
  dashboard: [
    'robots_shown',
    'events_per_s',
    'frames_per_s',
    'frame_p50_ms',
    'frame_p99_ms',
    'frame_max_ms',
    'long_tasks',
    'long_task_ms',
    'server_cpu_pct',
    'server_peak_rss_mb',
  ],
  live: [
    'delivery_after_ok_p50_ms',
    'delivery_after_ok_p99_ms',
    'fleet_delivery_after_ok_p50_ms',
    'fleet_delivery_after_ok_p99_ms',
    'send_to_delivery_p50_ms',
    'send_to_delivery_p99_ms',
  ],
  retention: [
    'old_events',
    'events_removed',
    'units_removed',
    'pass_seconds',
    'worst_pause_ms',
    'pass_p50_ms',
    'pass_p99_ms',
    'pass_events_per_s',
    'baseline_p50_ms',
    'baseline_p99_ms',
    'baseline_max_ms',
    'baseline_events_per_s',
  ],
  failover: [
    'failovers',
    'silence_p50_ms',
    'silence_max_ms',
    'baseline_silence_ms',
    'unavailable_replies',
    'dup_replies',
    'reconnects',
    'robots',
    'acked_events',
    'stored_events',
    'acked_not_stored',
  ],
  peer: [
    'events_per_s',
    'cpu_s_per_million',
    'bytes_per_event',
    'compacted_bytes_per_event',
    'idle_rss_mb',
    'peak_rss_mb',
    'odometer_p50_ms',
    'odometer_p99_ms',
    'window_p50_ms',
    'window_p99_ms',
  ],
  run: [
    'seconds',
    'bare_ws_ceiling_events_per_s',
    'ingest_of_bare_ws_pct',
    'ingest_10m_of_empty_pct',
    'ingest_tokens_of_plain_pct',
    'ingest_live_of_plain_pct',
    'ingest_live_cpu_of_plain_pct',
    'ingest_of_plain_insert_pct',
    'odometer_large_over_small',
    'server_peak_rss_mb',
    'server_peak_wal_mb',
    'flood_large_over_small',
    'failover_sync_of_single_pct',
    'failover_sync_ack_p99_over_single',
    'peer_ingest_1_of_influxdb_pct',
    'peer_ingest_10_of_influxdb_pct',
    'peer_ingest_100_of_influxdb_pct',
    'peer_ingest_100_over_10',
    'peer_ingest_10_over_1',
    'peer_cpu_10_of_influxdb_pct',
    'peer_disk_of_influxdb_compacted_pct',
    'peer_idle_rss_over_influxdb',
    'peer_peak_rss_of_influxdb_pct',
    'peer_odometer_p50_over_influxdb',
    'peer_window_p50_over_influxdb',
    'peer_window_p99_over_influxdb',
  ],
} as const satisfies Record<string, readonly Metric[]>

type Of<K extends keyof typeof ROW_METRICS> = (typeof ROW_METRICS)[K][number]

/** The id of every figure a run can measure: `<row>.<metric>` or `run.<metric>`. */
export type FigureId =
  | `${LoadRowId}.${Of<'load'>}`
  | `${StorageRowId}.${Of<'storage'>}`
  | `${PreloadRowId}.${Of<'preload'>}`
  | `${OdometerRowId}.${Of<'odometer'>}`
  | `${FetchRowId}.${Of<'fetch'>}`
  | `${ShutdownRowId}.${Of<'shutdown'>}`
  | `${MillionRowId}.${Of<'million'>}`
  | `${DashboardRowId}.${Of<'dashboard'>}`
  | `${LiveRowId}.${Of<'live'>}`
  | `${RetentionRowId}.${Of<'retention'>}`
  | `${FailoverRowId}.${Of<'failover'>}`
  | `${PeerRowId}.${Of<'peer'>}`
  | `${DiskRowId}.${Of<'disk'>}`
  | `run.${Of<'run'>}`

/** The figures of a run by id; a figure not measured is absent. */
export type Figures = Partial<Record<FigureId, number>>

/**
 * The unit of a figure id, from its metric (the part after the last dot);
 * an id this version does not know (from another version's JSON) has `''`.
 */
export function unitOf(id: string): string {
  const metric = id.slice(id.lastIndexOf('.') + 1)
  return Object.hasOwn(METRICS, metric) ? METRICS[metric as Metric] : ''
}

// --- collecting them ---

const MB = 1024 * 1024
/** GB of the projection: 2^30 bytes, as MB are 2^20. */
export const GB = 1024 * MB

/**
 * The figures of a run, by id, in report order with the `run.*` figures
 * first; figures that are not finite numbers are left out.
 */
export function collectFigures(report: RunReport): Figures {
  const rows: Figures = {}
  const put = (id: FigureId, value: number) => {
    if (Number.isFinite(value)) rows[id] = value
  }
  const loads = (list: RunReport['ingest']) => {
    for (const row of list) {
      const l = row.load
      put(`${row.id}.events_per_s`, l.eventsPerSecond)
      put(`${row.id}.ack_p50_ms`, l.latency.p50)
      put(`${row.id}.ack_p99_ms`, l.latency.p99)
      put(`${row.id}.ack_max_ms`, l.latency.max)
      put(
        `${row.id}.server_cpu_pct`,
        (100 * row.serverCpuSeconds) / row.windowSeconds,
      )
      put(
        `${row.id}.server_cpu_us_per_event`,
        (1e6 * row.serverCpuSeconds) / l.measuredEvents,
      )
      put(`${row.id}.server_peak_rss_mb`, row.server.peakRss / MB)
      if (row.server.peakWalBytes !== undefined) {
        put(`${row.id}.server_peak_wal_mb`, row.server.peakWalBytes / MB)
      }
      put(`${row.id}.generator_cpu_pct`, l.clientCpuPercent)
    }
  }
  loads(report.ceilings)
  for (const row of report.storage) {
    const r = row.result
    put(`${row.id}.events_per_s`, r.eventsPerSecond)
    put(`${row.id}.append_events_per_s`, r.appendEventsPerSecond)
    put(`${row.id}.batch_p50_ms`, r.batchLatency.p50)
    put(`${row.id}.batch_p99_ms`, r.batchLatency.p99)
    put(`${row.id}.cpu_pct`, r.cpuPercent)
    put(`${row.id}.peak_rss_mb`, r.peakRssBytes / MB)
  }
  loads(report.ingest)
  loads(report.latency)
  loads(report.flood)
  for (const row of report.preloads) {
    put(`${row.id}.events_per_s`, row.result.eventsPerSecond)
    put(`${row.id}.seconds`, row.result.seconds)
  }
  for (const row of report.odometer) {
    put(`${row.id}.events`, row.events)
    put(`${row.id}.p50_ms`, row.result.latency.p50)
    put(`${row.id}.p99_ms`, row.result.latency.p99)
    put(`${row.id}.max_ms`, row.result.latency.max)
    put(`${row.id}.server_peak_rss_mb`, row.server.peakRss / MB)
  }
  for (const row of report.fetch) {
    put(`${row.id}.events_per_s`, row.result.eventsPerSecond)
    put(`${row.id}.seconds`, row.result.seconds)
    put(`${row.id}.first_byte_ms`, row.result.firstByteMs)
    if (row.result.events > 0) {
      put(`${row.id}.bytes_per_event`, row.result.bytes / row.result.events)
    }
    put(`${row.id}.rss_growth_mb`, (row.peakRss - row.idleRss) / MB)
    put(
      `${row.id}.server_peak_rss_mb`,
      Math.max(row.peakRss, row.server.peakRss) / MB,
    )
  }
  for (const row of report.shutdown) {
    put(`${row.id}.exit_seconds`, row.exit.seconds)
    put(`${row.id}.ok_events`, row.ok)
    put(`${row.id}.unanswered_events`, row.unansweredEvents)
    if (row.stored !== undefined) {
      put(`${row.id}.stored_events`, row.stored)
      put(`${row.id}.ok_not_stored`, Math.max(0, row.ok - row.stored))
    }
  }
  for (const row of report.million) {
    put(`${row.id}.robots`, row.robots)
    put(`${row.id}.events_per_s`, row.eventsPerSecond)
    put(`${row.id}.rss_before_mb`, row.rssBefore / MB)
    put(`${row.id}.rss_end_mb`, row.rssEnd / MB)
    put(`${row.id}.peak_rss_mb`, row.server.peakRss / MB)
    put(`${row.id}.bytes_per_robot`, (row.rssEnd - row.rssBefore) / row.robots)
    put(`${row.id}.stop_seconds`, row.server.stopSeconds)
    if (row.restart !== undefined) {
      const r = row.restart
      put(`${row.id}.startup_seconds`, r.startupSeconds)
      put(`${row.id}.rss_up_mb`, r.rssUp / MB)
      put(`${row.id}.list_first_ms`, r.listFirstMs)
      put(`${row.id}.list_p50_ms`, r.listP50Ms)
      if (r.totalCount !== undefined) {
        put(`${row.id}.total_count`, r.totalCount)
      }
    }
  }
  for (const row of report.dashboard) {
    const f = row.frames
    put(`${row.id}.robots_shown`, row.shown.rows)
    put(`${row.id}.events_per_s`, row.load.eventsPerSecond)
    // A recording that does not span the window could have missed a
    // freeze at its edge: its frames judge nothing.
    if (f.covered) {
      put(`${row.id}.frames_per_s`, f.framesPerSecond)
      put(`${row.id}.frame_p50_ms`, f.intervals.p50)
      put(`${row.id}.frame_p99_ms`, f.intervals.p99)
      put(`${row.id}.frame_max_ms`, f.intervals.max)
      put(`${row.id}.long_tasks`, f.longTasks)
      put(`${row.id}.long_task_ms`, f.longTaskMs)
    }
    put(
      `${row.id}.server_cpu_pct`,
      (100 * row.serverCpuSeconds) / row.windowSeconds,
    )
    put(`${row.id}.server_peak_rss_mb`, row.server.peakRss / MB)
  }
  for (const row of report.live ?? []) {
    put(`${row.id}.delivery_after_ok_p50_ms`, row.deliveryAfterOk.p50)
    put(`${row.id}.delivery_after_ok_p99_ms`, row.deliveryAfterOk.p99)
    put(
      `${row.id}.fleet_delivery_after_ok_p50_ms`,
      row.fleetDeliveryAfterOk.p50,
    )
    put(
      `${row.id}.fleet_delivery_after_ok_p99_ms`,
      row.fleetDeliveryAfterOk.p99,
    )
    put(`${row.id}.send_to_delivery_p50_ms`, row.sendToDelivery.p50)
    put(`${row.id}.send_to_delivery_p99_ms`, row.sendToDelivery.p99)
  }
  for (const row of report.retention) {
    const r = row.result
    put(`${row.id}.old_events`, r.oldEvents)
    put(`${row.id}.events_removed`, r.removed.events)
    put(`${row.id}.units_removed`, r.removed.units)
    put(`${row.id}.pass_seconds`, r.passSeconds)
    put(`${row.id}.worst_pause_ms`, r.pass.latency.max)
    put(`${row.id}.pass_p50_ms`, r.pass.latency.p50)
    put(`${row.id}.pass_p99_ms`, r.pass.latency.p99)
    put(`${row.id}.pass_events_per_s`, r.pass.eventsPerSecond)
    put(`${row.id}.baseline_p50_ms`, r.baseline.latency.p50)
    put(`${row.id}.baseline_p99_ms`, r.baseline.latency.p99)
    put(`${row.id}.baseline_max_ms`, r.baseline.latency.max)
    put(`${row.id}.baseline_events_per_s`, r.baseline.eventsPerSecond)
  }
  const failover = report.failover
  if (failover !== undefined) {
    loads(failover.loads)
    const stream = failover.stream
    for (const kind of ['planned', 'unplanned'] as const) {
      const events = stream?.failovers.filter((f) => f.kind === kind) ?? []
      if (events.length === 0) continue
      const id = `failover-${kind}` as const
      const sum = (f: (e: (typeof events)[number]) => number) =>
        events.reduce((n, e) => n + f(e), 0)
      const silence = summarize(events.map((e) => e.silenceMs))
      put(`${id}.failovers`, events.length)
      put(`${id}.silence_p50_ms`, silence.p50)
      put(`${id}.silence_max_ms`, silence.max)
      put(
        `${id}.unavailable_replies`,
        sum((e) => e.unavailable),
      )
      put(
        `${id}.dup_replies`,
        sum((e) => e.dups),
      )
      put(
        `${id}.reconnects`,
        sum((e) => e.reconnects),
      )
    }
    if (stream !== undefined) {
      put('failover-stream.robots', stream.robots)
      put('failover-stream.baseline_silence_ms', stream.baselineSilenceMs)
      put('failover-stream.acked_events', stream.acked)
      put('failover-stream.unavailable_replies', stream.unavailable)
      put('failover-stream.dup_replies', stream.dups)
      put('failover-stream.reconnects', stream.reconnects)
      if (stream.stored !== undefined) {
        put('failover-stream.stored_events', stream.stored)
        put(
          'failover-stream.acked_not_stored',
          Math.max(0, stream.acked - stream.stored),
        )
      }
    }
  }
  if (report.peer !== undefined) peerFigures(report.peer, put)
  for (const row of report.disk) {
    const id = `disk-${row.name}` as const
    put(`${id}.events`, row.events)
    put(`${id}.bytes`, row.bytes)
    if (row.events === 0) continue
    const perEvent = row.bytes / row.events
    put(`${id}.bytes_per_event`, perEvent)
    if ((PROJECTED_STORES as readonly StoreName[]).includes(row.name)) {
      const day = perEvent * YEAR_FLEET_EVENTS_A_DAY
      put(`${id}.year_gb`, (day * YEAR_FLEET.days) / GB)
      put(`${id}.retain_30d_gb`, (day * YEAR_FLEET.retainDays) / GB)
    }
  }
  return {
    ...deriveFigures(
      rows,
      report.seconds,
      report.accessRepeat,
      report.liveRepeat,
    ),
    ...rows,
  }
}

/**
 * The peer scenario's figures: each the median over the rounds of that
 * round's figure (peer.ts).
 */
function peerFigures(
  peer: PeerReport,
  put: (id: FigureId, value: number) => void,
): void {
  const median = (values: number[]) => summarize(values).p50
  const over = <T>(runs: T[], figure: (run: T) => number) =>
    median(runs.map(figure).filter((v) => Number.isFinite(v)))
  const influx = peer.rounds.map((r) => r.influxdb)
  const rows: [PeerRowId, PeerIngest[]][] = [
    ...PEER_FRAME_SIZES.map(
      (lpf) =>
        [
          `peer-server-${lpf}` as PeerRowId,
          peer.rounds.flatMap((r) =>
            r.server.filter((s) => s.linesPerFrame === lpf),
          ),
        ] as [PeerRowId, PeerIngest[]],
    ),
    ['peer-influxdb', influx],
  ]
  for (const [id, runs] of rows) {
    if (runs.length === 0) continue
    put(
      `${id}.events_per_s`,
      over(runs, (r) => r.eventsPerSecond),
    )
    put(
      `${id}.cpu_s_per_million`,
      over(runs, (r) => (1e6 * r.cpuSeconds) / r.events),
    )
    put(
      `${id}.bytes_per_event`,
      over(runs, (r) => r.diskBytes / r.events),
    )
    put(
      `${id}.idle_rss_mb`,
      over(runs, (r) => r.idleRss / MB),
    )
    put(
      `${id}.peak_rss_mb`,
      over(runs, (r) => r.peakRss / MB),
    )
    const reads = runs.flatMap((r) => (r.reads === undefined ? [] : [r.reads]))
    if (reads.length > 0) {
      put(
        `${id}.odometer_p50_ms`,
        over(reads, (r) => r.odometer.p50),
      )
      put(
        `${id}.odometer_p99_ms`,
        over(reads, (r) => r.odometer.p99),
      )
      put(
        `${id}.window_p50_ms`,
        over(reads, (r) => r.window.p50),
      )
      put(
        `${id}.window_p99_ms`,
        over(reads, (r) => r.window.p99),
      )
    }
  }
  if (influx.length > 0) {
    put(
      'peer-influxdb.compacted_bytes_per_event',
      over(influx, (r) => r.compactedBytes / r.events),
    )
  }
}

/** Row ids whose `server_peak_rss_mb` is the real server's (not bare-ws). */
const NOT_THE_SERVER: readonly string[] = [
  'bare-ws',
  'bare-ws-corked',
  'bare-ws-corked-batch',
  'latency-floor',
]

/**
 * The `run.*` figures, computed from the rows' figures: the ratios the
 * targets are about, and the server's largest peak RSS over every scenario.
 */
export function deriveFigures(
  rows: Figures,
  seconds: number,
  accessRepeat?: RunReport['accessRepeat'],
  liveRepeat?: RunReport['liveRepeat'],
): Figures {
  const out: Figures = {}
  const put = (id: FigureId, value: number | undefined) => {
    if (value !== undefined && Number.isFinite(value)) out[id] = value
  }
  put('run.seconds', seconds)
  const ceilings = [
    rows['bare-ws.events_per_s'],
    rows['bare-ws-corked.events_per_s'],
  ].filter((v) => v !== undefined)
  const ceiling = ceilings.length > 0 ? Math.max(...ceilings) : undefined
  put('run.bare_ws_ceiling_events_per_s', ceiling)
  const empty = rows['ingest.events_per_s']
  const ratio = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined || b === 0 ? undefined : a / b
  put('run.ingest_of_bare_ws_pct', 100 * (ratio(empty, ceiling) ?? NaN))
  put(
    'run.ingest_10m_of_empty_pct',
    100 * (ratio(rows['ingest-10m.events_per_s'], empty) ?? NaN),
  )
  // Issue 11: the cost of access control, the same load without it the
  // base; over both pairs when the run measured them twice (run.ts).
  const again = accessRepeat
  const withTokens = rows['ingest-tokens.events_per_s']
  put(
    'run.ingest_tokens_of_plain_pct',
    100 *
      ((again === undefined || withTokens === undefined || empty === undefined
        ? ratio(withTokens, empty)
        : ratio(withTokens + again.tokens, empty + again.plain)) ?? NaN),
  )
  // The cost of the live feed's subscribers, measured the same way.
  const withLive = rows['ingest-live.events_per_s']
  put(
    'run.ingest_live_of_plain_pct',
    100 *
      ((liveRepeat === undefined ||
      withLive === undefined ||
      empty === undefined
        ? ratio(withLive, empty)
        : ratio(withLive + liveRepeat.live, empty + liveRepeat.plain)) ?? NaN),
  )
  // The server's own cost: its CPU per event. On two cores the events/s
  // above also measure the bench process that reads the 110 streams.
  put(
    'run.ingest_live_cpu_of_plain_pct',
    100 *
      (ratio(
        rows['ingest-live.server_cpu_us_per_event'],
        rows['ingest.server_cpu_us_per_event'],
      ) ?? NaN),
  )
  put(
    'run.ingest_of_plain_insert_pct',
    100 * (ratio(empty, rows['store-plain-insert.events_per_s']) ?? NaN),
  )
  put(
    'run.odometer_large_over_small',
    ratio(rows['odometer-large.p99_ms'], rows['odometer-small.p99_ms']),
  )
  const peaks = Object.entries(rows)
    .filter(
      ([id]) =>
        id.endsWith('.server_peak_rss_mb') &&
        !NOT_THE_SERVER.includes(id.slice(0, id.indexOf('.'))),
    )
    .map(([, value]) => value)
  if (peaks.length > 0) put('run.server_peak_rss_mb', Math.max(...peaks))
  const wals = Object.entries(rows)
    .filter(([id]) => id.endsWith('.server_peak_wal_mb'))
    .map(([, value]) => value)
  if (wals.length > 0) put('run.server_peak_wal_mb', Math.max(...wals))
  put(
    'run.flood_large_over_small',
    ratio(rows['flood.events_per_s'], rows['flood-small.events_per_s']),
  )
  // Issue 17: the server against InfluxDB, medians of the same rounds.
  const influx = (metric: Of<'peer'>) => rows[`peer-influxdb.${metric}`]
  const server = (lpf: PeerFrameSize, metric: Of<'peer'>) =>
    rows[`peer-server-${lpf}.${metric}`]
  for (const lpf of PEER_FRAME_SIZES) {
    put(
      `run.peer_ingest_${lpf}_of_influxdb_pct`,
      100 * (ratio(server(lpf, 'events_per_s'), influx('events_per_s')) ?? NaN),
    )
  }
  put(
    'run.peer_ingest_100_over_10',
    ratio(server(100, 'events_per_s'), server(10, 'events_per_s')),
  )
  put(
    'run.peer_ingest_10_over_1',
    ratio(server(10, 'events_per_s'), server(1, 'events_per_s')),
  )
  put(
    'run.peer_cpu_10_of_influxdb_pct',
    100 *
      (ratio(server(10, 'cpu_s_per_million'), influx('cpu_s_per_million')) ??
        NaN),
  )
  // The server's largest store, whatever its frames, against InfluxDB's
  // files once compacted.
  const disks = PEER_FRAME_SIZES.map((lpf) =>
    server(lpf, 'bytes_per_event'),
  ).filter((v) => v !== undefined)
  put(
    'run.peer_disk_of_influxdb_compacted_pct',
    100 *
      (ratio(
        disks.length > 0 ? Math.max(...disks) : undefined,
        influx('compacted_bytes_per_event'),
      ) ?? NaN),
  )
  const idles = PEER_FRAME_SIZES.map((lpf) =>
    server(lpf, 'idle_rss_mb'),
  ).filter((v) => v !== undefined)
  put(
    'run.peer_idle_rss_over_influxdb',
    ratio(
      idles.length > 0 ? summarize(idles).p50 : undefined,
      influx('idle_rss_mb'),
    ),
  )
  const peerPeaks = PEER_FRAME_SIZES.map((lpf) =>
    server(lpf, 'peak_rss_mb'),
  ).filter((v) => v !== undefined)
  put(
    'run.peer_peak_rss_of_influxdb_pct',
    100 *
      (ratio(
        peerPeaks.length > 0 ? Math.max(...peerPeaks) : undefined,
        influx('peak_rss_mb'),
      ) ?? NaN),
  )
  const read = PEER_READ_FRAME_SIZE
  put(
    'run.peer_odometer_p50_over_influxdb',
    ratio(server(read, 'odometer_p50_ms'), influx('odometer_p50_ms')),
  )
  put(
    'run.peer_window_p50_over_influxdb',
    ratio(server(read, 'window_p50_ms'), influx('window_p50_ms')),
  )
  put(
    'run.peer_window_p99_over_influxdb',
    ratio(server(read, 'window_p99_ms'), influx('window_p99_ms')),
  )
  // Issue 15: synchronous replication against a single node, same run.
  put(
    'run.failover_sync_of_single_pct',
    100 *
      (ratio(
        rows['failover-sync.events_per_s'],
        rows['failover-single.events_per_s'],
      ) ?? NaN),
  )
  put(
    'run.failover_sync_ack_p99_over_single',
    ratio(
      rows['failover-sync-paced.ack_p99_ms'],
      rows['failover-single-paced.ack_p99_ms'],
    ),
  )
  return out
}
