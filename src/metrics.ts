/**
 * The server's Prometheus metrics (prom-client), served at `GET /metrics`.
 * docs/api.md lists every series. Each server has its own registry, so
 * several servers in one process (the tests) never share counters.
 */
import {
  collectDefaultMetrics,
  Counter,
  Gauge,
  Histogram,
  Registry,
} from 'prom-client'
import type { StoreHealth } from './store/store.ts'
import { REFUSALS, type Refusal } from './auth/access.ts'

/** Every reply an ingest line can get, as the `reply` label. */
export const REPLY_KINDS = [
  'ok',
  'dup',
  'stale',
  'conflict',
  'malformed',
  'unavailable',
  'forbidden',
  'rate_limited',
] as const
export type ReplyKind = (typeof REPLY_KINDS)[number]

/**
 * A histogram without labels whose observation is a few array writes,
 * registered and rendered as prom-client's are. prom-client's `observe`
 * builds and hashes a labels object each call: one observation a frame
 * cost 5 % of the server's thread at one line a frame (issue 17).
 */
export class FastHistogram {
  readonly name: string
  readonly help: string
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly #bounds: readonly number[]
  /** Observations in each bucket (not cumulative); the last is above every bound. */
  readonly #counts: Float64Array
  #sum = 0
  #reset = false

  constructor(options: {
    readonly name: string
    readonly help: string
    readonly buckets: readonly number[]
    readonly registers: readonly Registry[]
  }) {
    this.name = options.name
    this.help = options.help
    this.#bounds = options.buckets
    this.#counts = new Float64Array(options.buckets.length + 1)
    for (const registry of options.registers) {
      registry.registerMetric(this as unknown as Histogram)
    }
  }

  observe(value: number): void {
    const bounds = this.#bounds
    let i = 0
    while (i < bounds.length && value > bounds[i]!) i++
    this.#counts[i]!++
    this.#sum += value
    this.#reset = false
  }

  reset(): void {
    this.#counts.fill(0)
    this.#sum = 0
    this.#reset = true
  }

  /** The series, as prom-client's Histogram gives them to the registry. */
  async get() {
    const bucket = `${this.name}_bucket`
    const values: {
      value: number
      labels: Record<string, string | number>
      metricName: string
    }[] = []
    // As prom-client: no series between a reset and the next observation.
    if (!this.#reset) {
      let count = 0
      this.#bounds.forEach((le, i) => {
        count += this.#counts[i]!
        values.push({ value: count, labels: { le }, metricName: bucket })
      })
      count += this.#counts[this.#bounds.length]!
      values.push(
        { value: count, labels: { le: '+Inf' }, metricName: bucket },
        { value: this.#sum, labels: {}, metricName: `${this.name}_sum` },
        { value: count, labels: {}, metricName: `${this.name}_count` },
      )
    }
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    }
  }
}

/** Latency buckets in seconds, from half a millisecond to 5 s. */
const SECONDS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
]

/** A counter, or one label value of one. */
export interface Increment {
  inc(value?: number): void
}

/** The metrics one server updates. */
export interface Metrics {
  readonly registry: Registry
  /** Lines received on ingest connections, answered or not yet. */
  readonly linesReceived: Counter
  /** Replies sent, per kind; `reply="ok"` counts the events stored. */
  readonly replies: Readonly<Record<ReplyKind, Increment>>
  /** Transactions that failed; their events were answered `unavailable`. */
  readonly commitsFailed: Counter
  /** Events per committed transaction. */
  readonly commitEvents: Histogram
  /** How long a commit took, from the batch leaving to its outcomes. */
  readonly commitSeconds: Histogram
  /** Ingest WebSocket connections open now. */
  readonly connectionsOpen: Gauge
  /** Ingest upgrades refused because of the connection limit. */
  readonly connectionsRefused: Counter
  /** From a frame's arrival to its reply being written. */
  readonly ackSeconds: FastHistogram
  /**
   * Seconds ingest connections spent not being read, summed over them, by
   * why: their own limits, or the server's budget (ingest/budget.ts).
   */
  readonly pausedSeconds: Readonly<Record<PauseReason, Increment>>
  /** Requests and upgrades refused by access control, by why. */
  readonly authFailures: Readonly<Record<Refusal, Increment>>
  /** Requests and upgrades over a per-token limit, by limit. */
  readonly tokenLimited: Readonly<Record<TokenLimit, Increment>>
  /** The live feed (live/feed.ts). */
  readonly live: LiveMetrics
  /** The Foxglove endpoint (robotics/foxglove.ts). */
  readonly foxglove: FoxgloveMetrics
  /** Retention passes (store/retention.ts). */
  readonly retention: RetentionMetrics
}

/** The metrics of retention (`--retain`). */
export interface RetentionMetrics {
  /** Passes that ended, whatever they removed. */
  readonly passes: Counter
  /** Passes that failed; the next one tries again. */
  readonly failures: Counter
  /** Events the passes removed. */
  readonly removedEvents: Counter
  /** Blocks (SQLite) or partitions (PostgreSQL) the passes removed. */
  readonly removedUnits: Counter
  /** How long each pass took, failed ones included. */
  readonly seconds: Histogram
  /** The cutoff of the latest pass that succeeded, in seconds since the epoch. */
  readonly cutoff: Gauge
}

/** Why the server ended a live stream, as the `reason` label. */
export const LIVE_CUTS = ['slow', 'missed'] as const
export type LiveCut = (typeof LIVE_CUTS)[number]

/** The metrics of the live feed. */
export interface LiveMetrics {
  /** Live streams open now. */
  readonly open: Gauge
  /** Streams refused over `--max-live-streams`. */
  readonly refused: Counter
  /** Streams the server ended, by why. */
  readonly cut: Readonly<Record<LiveCut, Increment>>
  /** Fleet ticks a stalled fleet stream was skipped (coalesced) for. */
  readonly coalesced: Counter
}

/** The metrics of the Foxglove endpoint. */
export interface FoxgloveMetrics {
  /** Clients connected now. */
  readonly clients: Gauge
  /** Upgrades refused over `--max-live-streams`. */
  readonly refused: Counter
  /** Messages not sent to a client with too much unsent. */
  readonly dropped: Counter
  /** Clients closed because even control messages piled up. */
  readonly disconnected: Counter
  /** Times commits may have gone by unheard (database connection lost). */
  readonly missed: Counter
}

/** The per-token limits of a refused request or upgrade, as the `limit` label. */
export const TOKEN_LIMITS = ['connections', 'requests'] as const
export type TokenLimit = (typeof TOKEN_LIMITS)[number]

/** Why an ingest connection is not read, as the `reason` label. */
export const PAUSE_REASONS = ['connection', 'server'] as const
export type PauseReason = (typeof PAUSE_REASONS)[number]

/** What the metrics read from the server when they are scraped. */
export interface MetricSources {
  /** Bytes the ingest connections hold against the server's budget. */
  readonly bytesInFlight: () => number
  /** Robots the store holds in memory (Store.robotsInMemory); 0 when absent. */
  readonly robotsInMemory?: () => Promise<number>
  /** The store's database (Store.health); absent: always writable. */
  readonly storeHealth?: () => Promise<StoreHealth>
}

/**
 * Creates a registry with the server's metrics and Node's default ones
 * (CPU, memory, event loop lag, GC).
 *
 * @example
 * const metrics = createMetrics({ bytesInFlight: () => budget.bytes })
 * metrics.replies.ok.inc()
 * console.log(await metrics.registry.metrics())
 */
export function createMetrics(sources: MetricSources): Metrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const registers = [registry]
  new Gauge({
    name: 'telemetry_ingest_bytes_in_flight',
    help: 'Bytes of ingest frames not yet answered and replies not yet written, against --max-inflight-bytes.',
    registers,
    collect() {
      this.set(sources.bytesInFlight())
    },
  })
  const { robotsInMemory, storeHealth } = sources
  // One look at the database per scrape, shared by the three below.
  let health: Promise<StoreHealth> | undefined
  const healthOnce = () => {
    if (storeHealth === undefined) return undefined
    health ??= storeHealth().finally(() =>
      setImmediate(() => (health = undefined)),
    )
    return health
  }
  new Gauge({
    name: 'telemetry_store_writable',
    help: 'Whether the store accepts writes now (1) or not (0): its database answered and takes commits.',
    registers,
    async collect() {
      const now = await healthOnce()
      this.set(now === undefined || now.writable ? 1 : 0)
    },
  })
  /** A counter that reads its total from the store's health. */
  const healthTotal = (
    name: string,
    help: string,
    total: (h: StoreHealth) => number,
  ) => {
    let counted = 0
    new Counter({
      name,
      help,
      registers,
      async collect() {
        const now = await healthOnce()
        const value = now === undefined ? 0 : total(now)
        if (value > counted) this.inc(value - counted)
        counted = Math.max(counted, value)
      },
    })
  }
  healthTotal(
    'telemetry_store_failovers_total',
    'Times the server that takes the store writes changed: failovers to another node.',
    (h) => h.failovers,
  )
  healthTotal(
    'telemetry_store_commits_unknown_total',
    'Commits whose outcome is unknown: the connection was lost after COMMIT was sent; their events were answered ERR unavailable.',
    (h) => h.commitsUnknown,
  )
  new Gauge({
    name: 'telemetry_store_robots_in_memory',
    // The help text names no backend: the fuzz tests treat a driver's
    // name in a body as a leak.
    help: 'Robots the store holds in memory: loaded when a batch or a read first names one, none at a clean start.',
    registers,
    async collect() {
      this.set(robotsInMemory === undefined ? 0 : await robotsInMemory())
    },
  })
  return {
    registry,
    // Every label value shows from the start, at 0.
    replies: labelled(registers, {
      name: 'telemetry_replies_total',
      help: 'Replies to ingest lines, by kind; reply="ok" counts the events stored.',
      label: 'reply',
      values: REPLY_KINDS,
    }),
    pausedSeconds: labelled(registers, {
      name: 'telemetry_ingest_paused_seconds_total',
      help: 'Seconds ingest connections were not read, summed over them: reason="connection" over their own limits, reason="server" over the server budget.',
      label: 'reason',
      values: PAUSE_REASONS,
    }),
    authFailures: labelled(registers, {
      name: 'telemetry_auth_failures_total',
      help: 'Requests and ingest upgrades refused by access control: reason="missing" without a token (or a malformed one), "unknown" with a token the tokens file lacks, "forbidden" with a token whose role may not.',
      label: 'reason',
      values: REFUSALS,
    }),
    tokenLimited: labelled(registers, {
      name: 'telemetry_token_limited_total',
      help: 'Ingest upgrades (limit="connections") and HTTP requests (limit="requests") refused with 429 over a per-token limit; lines over the events limit count as telemetry_replies_total{reply="rate_limited"}.',
      label: 'limit',
      values: TOKEN_LIMITS,
    }),
    linesReceived: new Counter({
      name: 'telemetry_lines_received_total',
      help: 'Lines received on ingest connections.',
      registers,
    }),
    commitsFailed: new Counter({
      name: 'telemetry_commits_failed_total',
      help: 'Store transactions that failed; their events were answered unavailable.',
      registers,
    }),
    commitEvents: new Histogram({
      name: 'telemetry_commit_events',
      help: 'Events per committed store transaction.',
      buckets: [1, 4, 16, 64, 256, 1024, 4096, 16384],
      registers,
    }),
    commitSeconds: new Histogram({
      name: 'telemetry_commit_duration_seconds',
      help: 'Time from a batch leaving for the store to its outcomes.',
      buckets: SECONDS,
      registers,
    }),
    connectionsOpen: new Gauge({
      name: 'telemetry_connections_open',
      help: 'Ingest WebSocket connections open now.',
      registers,
    }),
    connectionsRefused: new Counter({
      name: 'telemetry_connections_refused_total',
      help: 'Ingest upgrades refused because of --max-connections.',
      registers,
    }),
    ackSeconds: new FastHistogram({
      name: 'telemetry_ack_latency_seconds',
      help: "Time from a frame's arrival to its reply being written.",
      buckets: SECONDS,
      registers,
    }),
    live: {
      open: new Gauge({
        name: 'telemetry_live_streams_open',
        help: 'Live feed streams (GET /api/live) open now.',
        registers,
      }),
      refused: new Counter({
        name: 'telemetry_live_streams_refused_total',
        help: 'Live feed streams refused with 503 over --max-live-streams.',
        registers,
      }),
      cut: labelled(registers, {
        name: 'telemetry_live_streams_cut_total',
        help: 'Live feed streams the server ended: reason="slow" for a named-robot stream past --live-buffer-bytes unsent, "missed" when the feed may have missed commits (its database connection was lost).',
        label: 'reason',
        values: LIVE_CUTS,
      }),
      coalesced: new Counter({
        name: 'telemetry_live_coalesced_total',
        help: 'Fleet ticks skipped for a whole-fleet stream past --live-buffer-bytes unsent; it gets the latest positions of what moved once it drains.',
        registers,
      }),
    },
    foxglove: {
      clients: new Gauge({
        name: 'telemetry_foxglove_clients',
        help: 'Foxglove WebSocket clients (/foxglove) connected now.',
        registers,
      }),
      refused: new Counter({
        name: 'telemetry_foxglove_clients_refused_total',
        help: 'Foxglove upgrades refused with 503 over --max-live-streams.',
        registers,
      }),
      dropped: new Counter({
        name: 'telemetry_foxglove_dropped_messages_total',
        help: 'Foxglove messages not sent to a client that had more than --live-buffer-bytes unsent.',
        registers,
      }),
      disconnected: new Counter({
        name: 'telemetry_foxglove_slow_disconnects_total',
        help: 'Foxglove clients closed because control messages to them piled up past 4 times --live-buffer-bytes unsent.',
        registers,
      }),
      missed: new Counter({
        name: 'telemetry_foxglove_missed_total',
        help: 'Times the Foxglove endpoint may have missed commits (its database connection was lost); positions and robots are read again.',
        registers,
      }),
    },
    retention: {
      passes: new Counter({
        name: 'telemetry_retention_passes_total',
        help: 'Retention passes (--retain) that ended, whether they removed anything or not.',
        registers,
      }),
      failures: new Counter({
        name: 'telemetry_retention_failures_total',
        help: 'Retention passes that failed (logged); the next pass tries again.',
        registers,
      }),
      removedEvents: new Counter({
        name: 'telemetry_retention_removed_events_total',
        help: 'Events removed by retention passes.',
        registers,
      }),
      removedUnits: new Counter({
        name: 'telemetry_retention_removed_units_total',
        help: 'Storage units removed by retention passes: blocks of events, or partitions.',
        registers,
      }),
      seconds: new Histogram({
        name: 'telemetry_retention_pass_duration_seconds',
        help: 'How long a retention pass took, failed ones included.',
        buckets: [...SECONDS, 10, 30, 60, 300],
        registers,
      }),
      cutoff: new Gauge({
        name: 'telemetry_retention_cutoff_seconds',
        help: 'The cutoff of the latest retention pass that succeeded, in seconds since the Unix epoch: events with an earlier timestamp were to go; 0 before the first.',
        registers,
      }),
    },
  }
}

/** A counter with one label, each of whose values is an {@link Increment} from 0. */
function labelled<const V extends string>(
  registers: Registry[],
  row: {
    name: string
    help: string
    label: string
    values: readonly V[]
  },
): Record<V, Increment> {
  const counter = new Counter({
    name: row.name,
    help: row.help,
    labelNames: [row.label],
    registers,
  })
  const byValue = {} as Record<V, Increment>
  for (const value of row.values) {
    const one = counter.labels(value)
    one.inc(0)
    byValue[value] = one
  }
  return byValue
}
