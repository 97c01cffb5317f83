/**
 * BENCHMARKS.md: the figures of one run, one table per scenario, the
 * targets with a verdict computed from those figures, and a History section
 * kept across runs (everything below the `<!-- history -->` marker).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import type { LoadResult } from './load.ts'
import type { FetchResult, OdometerFigures } from './query.ts'
import type { StoreLoadResult } from './store-load.ts'

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
  /** Lines the server logged on stderr (at `--log-level warn`). */
  readonly logLines: number
}

/** One WebSocket load run, against the real server or bare-ws. */
export interface IngestRow {
  readonly label: string
  readonly target: 'server' | 'bare-ws' | 'bare-ws corked'
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
  readonly label: string
  readonly batchSize: number
  readonly robots: number
  readonly result: StoreLoadResult
}

/** A preload done before the server starts on its store. */
export interface PreloadRow {
  readonly label: string
  readonly robots: number
  readonly order: string
  readonly result: StoreLoadResult
}

/** Odometer queries on one robot. */
export interface OdometerRow {
  readonly events: number
  readonly result: OdometerFigures
  readonly server: ServerFigures
}

/** One whole-track fetch. */
export interface FetchRow {
  readonly format: 'json' | 'ndjson'
  readonly expected: number
  readonly result: FetchResult
  /** VmRSS just before the request, bytes. */
  readonly idleRss: number
  /** Peak resident set during the request (VmHWM reset before it), bytes. */
  readonly peakRss: number
  readonly serverCpuSeconds: number
  readonly server: ServerFigures
}

/** Bytes on disk of one store, after its last server closed. */
export interface DiskRow {
  /** The store's name in the run: `fleet` is the 1,000-robot store. */
  readonly name: string
  readonly label: string
  readonly events: number
  readonly bytes: number
  readonly files: string[]
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
  readonly commit: string
  readonly store: string
  readonly commands: string[]
  readonly settings: Record<string, string | number>
  readonly scenarios: string[]
  readonly ceilings: IngestRow[]
  readonly storage: StorageRow[]
  readonly ingest: IngestRow[]
  readonly latency: IngestRow[]
  readonly latencyTargetRate?: number
  readonly preloads: PreloadRow[]
  readonly odometer: OdometerRow[]
  readonly fetch: FetchRow[]
  readonly disk: DiskRow[]
  readonly problems: string[]
}

// --- formatting ---

const int = (n: number) =>
  Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a'
const fixed = (n: number, digits: number) =>
  Number.isFinite(n) ? n.toFixed(digits) : 'n/a'
const ms = (n: number) => fixed(n, n < 10 ? 2 : 1)
const mb = (bytes: number) => fixed(bytes / 1024 / 1024, 1)
const pct = (n: number) => `${fixed(n, 0)} %`

function table(head: string[], rows: string[][]): string {
  const lines = [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ]
  return `${lines.join('\n')}\n`
}

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
      'Non-OK replies',
      'Stored',
      'Generator CPU',
    ],
    rows.map((row) => {
      const l = row.load
      const cpuPct = (100 * row.serverCpuSeconds) / row.windowSeconds
      return [
        row.label,
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

// --- targets ---

type Verdict = 'met' | 'missed' | 'not measured'

interface TargetRow {
  readonly target: string
  readonly measured: string
  readonly verdict: Verdict
}

function check(
  target: string,
  value: number | undefined,
  pass: (v: number) => boolean,
  show: (v: number) => string,
): TargetRow {
  if (value === undefined || !Number.isFinite(value)) {
    return { target, measured: 'n/a', verdict: 'not measured' }
  }
  return {
    target,
    measured: show(value),
    verdict: pass(value) ? 'met' : 'missed',
  }
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

function targets(report: RunReport): TargetRow[] {
  const rows: TargetRow[] = []
  const empty = report.ingest.find(
    (r) => r.label === 'empty store' && r.load.options.linesPerFrame === 1,
  )
  const full = report.ingest.find((r) => r.label.startsWith('store holding'))
  const ceiling = bareCeiling(report)
  rows.push(
    check(
      'ingest ≥ 100,000 events/s (empty store, 1 line/frame)',
      empty?.load.eventsPerSecond,
      (v) => v >= 100_000,
      (v) => `${int(v)} events/s`,
    ),
  )
  rows.push(
    check(
      'ingest ≥ 50 % of the bare-ws ceiling',
      empty && ceiling ? empty.load.eventsPerSecond / ceiling : undefined,
      (v) => v >= 0.5,
      (v) => `${pct(100 * v)} of ${int(ceiling ?? NaN)} events/s`,
    ),
  )
  rows.push(
    check(
      `ingest into the ${full ? full.label : 'full store'} ≥ 80 % of the empty-store rate`,
      empty && full
        ? full.load.eventsPerSecond / empty.load.eventsPerSecond
        : undefined,
      (v) => v >= 0.8,
      (v) =>
        `${pct(100 * v)} (${int(full?.load.eventsPerSecond ?? NaN)} events/s)`,
    ),
  )
  const raw = report.storage.find((r) => r.label.startsWith('plain batched'))
  if (raw !== undefined) {
    rows.push(
      check(
        'PostgreSQL: ingest ≥ 40 % of the plain batched-INSERT ceiling',
        empty
          ? empty.load.eventsPerSecond / raw.result.eventsPerSecond
          : undefined,
        (v) => v >= 0.4,
        (v) => `${pct(100 * v)} of ${int(raw.result.eventsPerSecond)} events/s`,
      ),
    )
  }
  const paced = report.latency.find((r) => r.target === 'server')
  rows.push(
    check(
      'ack p99 < 25 ms at half the maximum rate',
      paced?.load.latency.p99,
      (v) => v < 25,
      (v) =>
        `${ms(v)} ms at ${int(paced?.load.eventsPerSecond ?? NaN)} events/s`,
    ),
  )
  const byEvents = [...report.odometer].sort((a, b) => a.events - b.events)
  const small = byEvents[0]
  const large = byEvents.length > 1 ? byEvents[byEvents.length - 1] : undefined
  rows.push(
    check(
      `odometer p99 < 2 ms on the ${large ? int(large.events) : 'largest'}-event robot`,
      large?.result.latency.p99,
      (v) => v < 2,
      (v) => `${ms(v)} ms`,
    ),
  )
  rows.push(
    check(
      `odometer p99 on the ${large ? int(large.events) : 'largest'}-event robot ≤ 1.5× the ${small ? int(small.events) : 'smallest'}-event robot's`,
      large && small
        ? large.result.latency.p99 / small.result.latency.p99
        : undefined,
      (v) => v <= 1.5,
      (v) =>
        `${fixed(v, 2)}× (${ms(large?.result.latency.p99 ?? NaN)} vs ${ms(small?.result.latency.p99 ?? NaN)} ms)`,
    ),
  )
  const nd = report.fetch.find((f) => f.format === 'ndjson')
  rows.push(
    check(
      `NDJSON fetch ≥ 1,000,000 events/s (${nd ? int(nd.expected) : 'n/a'} events)`,
      nd?.result.eventsPerSecond,
      (v) => v >= 1_000_000,
      (v) => `${int(v)} events/s`,
    ),
  )
  rows.push(
    check(
      'NDJSON fetch: server peak RSS growth < 100 MB',
      nd ? nd.peakRss - nd.idleRss : undefined,
      (v) => v < 100 * 1024 * 1024,
      (v) => `${mb(v)} MB`,
    ),
  )
  // The fleet store (preload plus ingest over all robots) is the one the
  // target is about; without it, the store holding the most events.
  const largest =
    report.disk.find((d) => d.name === 'fleet') ??
    [...report.disk].sort((a, b) => b.events - a.events)[0]
  rows.push(
    check(
      `≤ 48 bytes per event on disk (${largest ? largest.label : 'the fleet store'})`,
      largest && largest.events > 0
        ? largest.bytes / largest.events
        : undefined,
      (v) => v <= 48,
      (v) => `${fixed(v, 1)} bytes/event`,
    ),
  )
  const peaks = serverPeaks(report)
  const worst = peaks.sort((a, b) => b.rss - a.rss)[0]
  rows.push(
    check(
      'server RSS < 300 MB in every scenario',
      worst?.rss,
      (v) => v < 300 * 1024 * 1024,
      (v) => `${mb(v)} MB at most (${worst?.where ?? ''})`,
    ),
  )
  return rows
}

function serverPeaks(report: RunReport): { where: string; rss: number }[] {
  return [
    ...report.ingest.map((r) => ({
      where: `ingest, ${r.label}, ${r.load.options.linesPerFrame} line(s)/frame`,
      rss: r.server.peakRss,
    })),
    ...report.latency
      .filter((r) => r.target === 'server')
      .map((r) => ({ where: 'latency', rss: r.server.peakRss })),
    ...report.odometer.map((r) => ({
      where: `odometer, ${int(r.events)} events`,
      rss: r.server.peakRss,
    })),
    ...report.fetch.map((r) => ({
      where: `fetch ${r.format}`,
      rss: Math.max(r.peakRss, r.server.peakRss),
    })),
  ]
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
        ['Commit', `\`${report.commit}\``],
        [
          'Machine',
          `${report.machine.cores} cores, ${report.machine.cpuModel}, ${fixed(report.machine.memoryBytes / 1024 ** 3, 1)} GiB memory, Linux ${report.machine.kernel}`,
        ],
        ['Node.js', report.node],
        ['Store', `\`${report.store}\``],
        ['Scenarios', report.scenarios.join(', ')],
      ],
    ),
  )
  out.push('Commands:\n')
  out.push(`\`\`\`sh\n${report.commands.join('\n')}\n\`\`\`\n`)
  out.push('Settings:\n')
  out.push(
    table(
      ['Setting', 'Value'],
      Object.entries(report.settings).map(([k, v]) => [
        k,
        typeof v === 'number' ? int(v) : v,
      ]),
    ),
  )

  if (report.problems.length > 0) {
    out.push('## Problems seen\n')
    out.push(`${report.problems.map((p) => `- ${p}`).join('\n')}\n`)
  }

  out.push('## Targets\n')
  out.push(
    'Verdicts are computed from the figures of this run.' +
      (report.quick
        ? ' Quick run: the sizes are scaled down, so the verdicts say little.'
        : '') +
      '\n',
  )
  out.push(
    table(
      ['Target', 'Measured', 'Verdict'],
      targets(report).map((t) => [
        t.target,
        t.measured,
        t.verdict === 'met'
          ? '✅ met'
          : t.verdict === 'missed'
            ? '❌ missed'
            : 'not measured',
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
            s.label,
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
          r.label,
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
      'One `GET /api/robots/{robot}/events` of every event of one robot, each format on a freshly started server; RSS growth is the peak during the request over the RSS just before it.\n',
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
          'Server CPU',
          'Idle RSS MB',
          'Peak RSS MB',
          'Growth MB',
          'Complete',
        ],
        report.fetch.map((f) => [
          f.format === 'json' ? 'JSON' : 'NDJSON',
          int(f.result.events),
          mb(f.result.bytes),
          fixed(f.result.seconds, 2),
          int(f.result.eventsPerSecond),
          ms(f.result.firstByteMs),
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

  if (report.disk.length > 0) {
    out.push('## Bytes on disk\n')
    out.push(
      report.store.startsWith('postgres')
        ? "`pg_total_relation_size` of every table of the store's schema (heap, indexes, TOAST), after the server closed cleanly, over the events the store holds.\n"
        : "Every file in the store's folder (the database, `-wal`, `-shm` and any other), after the server closed cleanly, over the events the store holds.\n",
    )
    out.push(
      table(
        ['Store', 'Events', 'Bytes', 'Bytes/event', 'Files'],
        report.disk.map((d) => [
          d.label,
          int(d.events),
          int(d.bytes),
          d.events > 0 ? fixed(d.bytes / d.events, 1) : 'n/a',
          d.files.join(', '),
        ]),
      ),
    )
  }
  return out.join('\n')
}

const HISTORY_INTRO = `## History

${HISTORY_MARKER}

Before/after figures of optimisations, recorded by hand (the date, the commit,
the change and the figures that moved). \`npm run bench\` keeps everything
below the marker above.
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
