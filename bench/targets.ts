/**
 * The performance targets, as data: each names the figure it is about, a
 * comparison and a threshold in that figure's unit. One function judges
 * them all ({@link evaluateTargets}); the report prints the table it gives.
 */
import { unitOf, type Backend, type FigureId, type Figures } from './figures.ts'
import { formatValue } from './format.ts'

/** The comparisons a target can make, with how each is printed. */
export const COMPARISONS = {
  '>=': '≥',
  '>': '>',
  '<=': '≤',
  '<': '<',
} as const
/** One of the keys of {@link COMPARISONS}. */
export type Comparison = keyof typeof COMPARISONS

/** One performance target. */
export interface Target {
  /** Stable id, kept across runs (the JSON results carry it). */
  readonly id: string
  /** What is measured, in words; the comparison and threshold follow it. */
  readonly what: string
  /** The figure judged; its unit is the threshold's. */
  readonly figure: FigureId
  readonly comparison: Comparison
  readonly threshold: number
  /** Judged only on this backend (absent: on every backend). */
  readonly backend?: Backend
}

/**
 * The targets of issue 3 (and issue 5's PostgreSQL one, and issue 11's
 * cost of access control), then issue 10's (memory bounded under every
 * load), then issue 12's (the dashboard stays responsive), then issue 14's
 * (a retention pass does not stop ingest), then issue 17's (ahead of
 * InfluxDB on the same machine), in report order.
 */
export const TARGETS = [
  {
    id: 'ingest-rate',
    what: 'ingest into an empty store, 1 line/frame',
    figure: 'ingest.events_per_s',
    comparison: '>=',
    threshold: 100_000,
  },
  {
    id: 'ingest-of-bare-ws',
    what: 'ingest (empty store, 1 line/frame) as a share of the bare-ws ceiling',
    figure: 'run.ingest_of_bare_ws_pct',
    comparison: '>=',
    threshold: 50,
  },
  {
    id: 'ingest-10m-of-empty',
    what: 'ingest into the preloaded fleet store as a share of the empty-store rate',
    figure: 'run.ingest_10m_of_empty_pct',
    comparison: '>=',
    threshold: 80,
  },
  {
    // Issue 11: "within 5 % of the row without".
    id: 'ingest-tokens-of-plain',
    what: 'ingest with access control on (a Bearer token scoped to the robots by a prefix) as a share of the same load without',
    figure: 'run.ingest_tokens_of_plain_pct',
    comparison: '>=',
    threshold: 95,
  },
  {
    // The live feed is written after each commit, on the thread that
    // answers the robots: 110 subscribers (10 of the whole fleet, 100 of
    // one robot each) may cost the server some CPU per event, not a
    // quarter more. Judged on the server's CPU per event, not on events/s:
    // on two cores the bench process that reads the streams (half a core)
    // takes CPU from the server, so the events/s ratio
    // (run.ingest_live_of_plain_pct, reported) measures the reader too.
    id: 'ingest-live-cpu-of-plain',
    what: 'server CPU per event with live-feed subscribers attached (10 whole-fleet streams, 100 single-robot streams) as a share of the same load without',
    figure: 'run.ingest_live_cpu_of_plain_pct',
    comparison: '<=',
    threshold: 125,
  },
  {
    id: 'ingest-of-plain-insert',
    what: 'PostgreSQL: ingest as a share of the plain batched-INSERT ceiling',
    figure: 'run.ingest_of_plain_insert_pct',
    comparison: '>=',
    threshold: 40,
    backend: 'postgres',
  },
  {
    id: 'ack-p99-half-rate',
    what: 'ack p99 paced at half the maximum rate',
    figure: 'latency.ack_p99_ms',
    comparison: '<',
    threshold: 25,
  },
  {
    id: 'odometer-p99',
    what: 'odometer p99 on the largest robot',
    figure: 'odometer-large.p99_ms',
    comparison: '<',
    threshold: 2,
  },
  {
    id: 'odometer-flat',
    what: "odometer p99 on the largest robot over the smallest robot's",
    figure: 'run.odometer_large_over_small',
    comparison: '<=',
    threshold: 1.5,
  },
  {
    id: 'ndjson-rate',
    what: 'NDJSON fetch of a whole track',
    figure: 'fetch-ndjson.events_per_s',
    comparison: '>=',
    threshold: 1_000_000,
  },
  {
    id: 'ndjson-rss-growth',
    what: "NDJSON fetch: the server's peak RSS growth",
    figure: 'fetch-ndjson.rss_growth_mb',
    comparison: '<',
    threshold: 100,
  },
  {
    id: 'disk-bytes-per-event',
    what: 'bytes on disk per event of the fleet store',
    figure: 'disk-fleet.bytes_per_event',
    comparison: '<=',
    threshold: 48,
  },
  {
    id: 'disk-driving-bytes-per-event',
    what: 'bytes on disk per event of the driving fleet store (issue 14: at most 12, stretch 8)',
    figure: 'disk-driving.bytes_per_event',
    comparison: '<=',
    threshold: 12,
    backend: 'sqlite',
  },
  {
    id: 'wal-bounded',
    what: 'SQLite: the write-ahead log at its largest while a server ran (twice the 64 MiB past which the checkpointer makes it start over)',
    figure: 'run.server_peak_wal_mb',
    comparison: '<=',
    threshold: 128,
    backend: 'sqlite',
  },
  {
    id: 'server-rss',
    what: 'server peak RSS, the largest over every scenario',
    figure: 'run.server_peak_rss_mb',
    comparison: '<',
    threshold: 300,
  },
  {
    id: 'flood-large-frames',
    what: 'flood: events/s in 10,000-line frames over 10-line frames',
    figure: 'run.flood_large_over_small',
    comparison: '>=',
    threshold: 1,
  },
  {
    id: 'flood-rss',
    what: "flood in 10,000-line frames: the server's peak RSS",
    figure: 'flood.server_peak_rss_mb',
    comparison: '<',
    threshold: 300,
  },
  {
    id: 'flood-sigterm-exit',
    what: 'SIGTERM during the flood: seconds until the server has exited',
    figure: 'flood-sigterm.exit_seconds',
    comparison: '<',
    threshold: 10,
  },
  {
    id: 'flood-sigterm-stored',
    what: 'SIGTERM during the flood: events answered OK and not stored',
    figure: 'flood-sigterm.ok_not_stored',
    comparison: '<=',
    threshold: 0,
  },
  {
    id: 'million-rss',
    what: "a million robots: the server's RSS at the end of the load",
    figure: 'million.rss_end_mb',
    comparison: '<',
    threshold: 500,
  },
  {
    id: 'million-startup',
    what: 'a million robots: restart until /healthz answers',
    figure: 'million.startup_seconds',
    comparison: '<',
    threshold: 2,
  },
  {
    // Issue 12: "with 1,000 robots streaming at 10 Hz it stays responsive".
    // 50 ms is the Long Tasks API's threshold and RAIL's budget for a chunk
    // of main-thread work, so that input is answered within 100 ms; p99
    // judges the page's slowest regular frames, those of its redraw once a
    // second (bench/README.md).
    id: 'dashboard-frame-p99',
    what: 'dashboard fleet view, the fleet streaming at 10 Hz a robot: frame interval p99 in headless Chromium',
    figure: 'dashboard.frame_p99_ms',
    comparison: '<=',
    threshold: 50,
  },
  {
    // Issue 14: "the retention pass's worst ingest pause". A bound, not a
    // ratio to the baseline: the longest append of a few seconds of
    // ingest is the machine's noise (13 to 150 ms on 2 busy cores, on
    // both stores, with no pass running), and a ratio of two maxima
    // swings with it. 1 s is several times that noise; a robot at 10 Hz
    // would have 10 events waiting. At the bench's 2 million old events
    // it bounds this size only: a SQLite pass in one transaction
    // (blocksPerRetention unbounded, tried once) took 75 ms in all. That
    // a pass lets batches in between its chunks at any size is for the
    // store's tests (threaded-store.test.ts).
    id: 'retention-worst-pause',
    what: 'retention pass under a steady ingest (100-event batches, one in flight): the longest append() while it ran',
    figure: 'retention.worst_pause_ms',
    comparison: '<=',
    threshold: 1000,
  },
  // Issue 17: ahead of InfluxDB, each a ratio of medians over the peer
  // scenario's rounds (peer.ts), both measured in the same run.
  {
    id: 'peer-ingest-100',
    what: "peer: ingest at 100 lines/frame as a share of InfluxDB's (requests of 5,000 lines from 4 writers)",
    figure: 'run.peer_ingest_100_of_influxdb_pct',
    comparison: '>=',
    threshold: 100,
  },
  {
    id: 'peer-ingest-10',
    what: "peer: ingest at 10 lines/frame as a share of InfluxDB's",
    figure: 'run.peer_ingest_10_of_influxdb_pct',
    comparison: '>=',
    threshold: 80,
  },
  {
    id: 'peer-ingest-1',
    what: "peer: ingest at 1 line/frame as a share of InfluxDB's",
    figure: 'run.peer_ingest_1_of_influxdb_pct',
    comparison: '>=',
    threshold: 40,
  },
  {
    id: 'peer-frames-100-over-10',
    what: 'peer: ingest at 100 lines/frame over 10 lines/frame (bigger frames never slower)',
    figure: 'run.peer_ingest_100_over_10',
    comparison: '>=',
    threshold: 1,
  },
  {
    id: 'peer-frames-10-over-1',
    what: 'peer: ingest at 10 lines/frame over 1 line/frame',
    figure: 'run.peer_ingest_10_over_1',
    comparison: '>=',
    threshold: 1,
  },
  {
    id: 'peer-cpu',
    what: "peer: server CPU seconds per million events at 10 lines/frame as a share of InfluxDB's",
    figure: 'run.peer_cpu_10_of_influxdb_pct',
    comparison: '<=',
    threshold: 100,
  },
  {
    id: 'peer-disk',
    what: "peer: bytes on disk per event after a clean stop (the largest of the server's three stores) as a share of InfluxDB's once compacted",
    figure: 'run.peer_disk_of_influxdb_compacted_pct',
    comparison: '<',
    threshold: 100,
  },
  {
    id: 'peer-idle-rss',
    what: "peer: the server's memory at rest over InfluxDB's",
    figure: 'run.peer_idle_rss_over_influxdb',
    comparison: '<=',
    threshold: 2,
  },
  {
    id: 'peer-peak-rss',
    what: "peer: the server's peak memory during ingest (the largest of the three frame sizes) as a share of InfluxDB's",
    figure: 'run.peer_peak_rss_of_influxdb_pct',
    comparison: '<=',
    threshold: 100,
  },
  {
    id: 'peer-odometer-p50',
    what: "peer: odometer over 1,000 events, p50, over InfluxDB's",
    figure: 'run.peer_odometer_p50_over_influxdb',
    comparison: '<=',
    threshold: 1,
  },
  {
    id: 'peer-window-p50',
    what: "peer: a 1,000-event window, p50, over InfluxDB's",
    figure: 'run.peer_window_p50_over_influxdb',
    comparison: '<=',
    threshold: 1,
  },
  {
    id: 'peer-window-p99',
    what: "peer: a 1,000-event window, p99, over InfluxDB's",
    figure: 'run.peer_window_p99_over_influxdb',
    comparison: '<=',
    threshold: 1,
  },
] as const satisfies readonly Target[]
/** The id of one of {@link TARGETS}. */
export type TargetId = (typeof TARGETS)[number]['id']

/** What a target's figure gave. */
export type Verdict = 'met' | 'missed' | 'not measured'

/** One target judged on one run's figures. */
export interface TargetResult {
  readonly target: Target
  /** The figure's value; undefined when the run did not measure it. */
  readonly value: number | undefined
  readonly verdict: Verdict
}

/** Whether `value` meets `threshold` under `comparison`. */
export function meets(
  value: number,
  comparison: Comparison,
  threshold: number,
): boolean {
  switch (comparison) {
    case '>=':
      return value >= threshold
    case '>':
      return value > threshold
    case '<=':
      return value <= threshold
    case '<':
      return value < threshold
  }
}

/**
 * Judges every target that applies to `backend` on a run's figures: met,
 * missed, or not measured when the figure is absent or not finite.
 *
 * @example evaluateTargets({ 'ingest.events_per_s': 139_532 }, 'sqlite')[0]
 * // { target: TARGETS[0], value: 139532, verdict: 'met' }
 */
export function evaluateTargets(
  figures: Figures,
  backend: Backend,
  targets: readonly Target[] = TARGETS,
): TargetResult[] {
  return targets
    .filter((t) => t.backend === undefined || t.backend === backend)
    .map((target) => {
      const value = figures[target.figure]
      if (value === undefined || !Number.isFinite(value)) {
        return { target, value: undefined, verdict: 'not measured' as const }
      }
      return {
        target,
        value,
        verdict: meets(value, target.comparison, target.threshold)
          ? ('met' as const)
          : ('missed' as const),
      }
    })
}

/**
 * A target in words, its threshold printed from the data: `odometer p99 on
 * the largest robot < 2 ms`.
 */
export function describeTarget(target: Target): string {
  const unit = unitOf(target.figure)
  const threshold =
    unit === '×'
      ? `${target.threshold}×`
      : `${target.threshold.toLocaleString('en-US')}${unit === '' ? '' : ` ${unit}`}`
  return `${target.what} ${COMPARISONS[target.comparison]} ${threshold}`
}

/** A verdict as the report prints it. */
export function showVerdict(verdict: Verdict): string {
  return verdict === 'met'
    ? '✅ met'
    : verdict === 'missed'
      ? '❌ missed'
      : 'not measured'
}

/** The measured value of a result in its unit, or `n/a`. */
export function showMeasured(result: TargetResult): string {
  return result.value === undefined
    ? 'n/a'
    : formatValue(result.value, unitOf(result.target.figure))
}
