import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { collectFigures, deriveFigures, unitOf } from './figures.ts'
import type { FrameFigures } from './frames.ts'
import type { LoadResult } from './load.ts'
import type { PeerInfluxRun, PeerReport, PeerServerRun } from './peer.ts'
import type { IntervalsResult } from './query.ts'
import type { IngestWindow, RetentionResult } from './store-load.ts'
import type {
  DashboardRow,
  LiveRow,
  RunConfig,
  RunReport,
  ServerFigures,
} from './report.ts'

const MB = 1024 * 1024

/** A run that measured only the rows given. */
function report(rows: Partial<RunReport>): RunReport {
  return {
    quick: true,
    started: new Date('2026-12-01T10:00:00.000Z'),
    seconds: 10,
    machine: { cores: 2, cpuModel: 'cpu', memoryBytes: 1, kernel: '6' },
    node: 'v20.20.2',
    commit: 'aaaaaaa',
    dirty: false,
    backend: 'sqlite',
    store: 'sqlite',
    json: 'q.json',
    commands: [],
    config: {} as RunConfig,
    scenarios: [],
    ceilings: [],
    storage: [],
    ingest: [],
    latency: [],
    preloads: [],
    odometer: [],
    fetch: [],
    flood: [],
    shutdown: [],
    million: [],
    dashboard: [],
    retention: [],
    disk: [],
    problems: [],
    ...rows,
  }
}

const server: ServerFigures = {
  idleRss: 90 * MB,
  peakRss: 700 * MB,
  cleanExit: true,
  exit: 'exit 0 1.5 s after SIGTERM',
  stopSeconds: 1.5,
  killed: false,
  logLines: 0,
}

describe('deriveFigures', () => {
  it('should compute the ratios the targets judge from the rows', () => {
    assert.deepStrictEqual(
      deriveFigures(
        {
          'bare-ws.events_per_s': 80_000,
          'bare-ws-corked.events_per_s': 200_000,
          'ingest.events_per_s': 100_000,
          'ingest-10m.events_per_s': 90_000,
          'store-plain-insert.events_per_s': 250_000,
          'odometer-small.p99_ms': 2,
          'odometer-large.p99_ms': 3,
        },
        55,
      ),
      {
        'run.seconds': 55,
        'run.bare_ws_ceiling_events_per_s': 200_000,
        'run.ingest_of_bare_ws_pct': 50,
        'run.ingest_10m_of_empty_pct': 90,
        'run.ingest_of_plain_insert_pct': 40,
        'run.odometer_large_over_small': 1.5,
      },
    )
  })

  it("should take the server's largest peak RSS and leave bare-ws out of it", () => {
    const derived = deriveFigures(
      {
        'bare-ws-corked-batch.server_peak_rss_mb': 500,
        'latency-floor.server_peak_rss_mb': 400,
        'ingest.server_peak_rss_mb': 240,
        'fetch-ndjson.server_peak_rss_mb': 260,
      },
      1,
    )
    assert.equal(derived['run.server_peak_rss_mb'], 260)
  })

  it('should give the flood in large frames over small frames, and count the flood rows but not the million robots in the peak RSS', () => {
    const derived = deriveFigures(
      {
        'flood-small.events_per_s': 300_000,
        'flood.events_per_s': 6000,
        'flood.server_peak_rss_mb': 2900,
        'million.peak_rss_mb': 3000,
        'ingest.server_peak_rss_mb': 240,
      },
      1,
    )
    assert.equal(derived['run.flood_large_over_small'], 0.02)
    assert.equal(derived['run.server_peak_rss_mb'], 2900)
  })

  it('should give ingest with access control on as a share of the same load without, and nothing without the plain row', () => {
    const derived = deriveFigures(
      {
        'ingest.events_per_s': 200_000,
        'ingest-tokens.events_per_s': 191_000,
      },
      1,
    )
    assert.equal(derived['run.ingest_tokens_of_plain_pct'], 95.5)
    assert.equal(
      deriveFigures({ 'ingest-tokens.events_per_s': 191_000 }, 1)[
        'run.ingest_tokens_of_plain_pct'
      ],
      undefined,
    )
    // Measured twice, in mirrored order: the sums of both pairs.
    const twice = deriveFigures(
      {
        'ingest.events_per_s': 200_000,
        'ingest-tokens.events_per_s': 150_000,
      },
      1,
      { plain: 100_000, tokens: 135_000 },
    )
    assert.equal(twice['run.ingest_tokens_of_plain_pct'], 95)
  })

  it('should give ingest with live subscribers as a share of the same load without, over both mirrored pairs when measured twice', () => {
    const once = deriveFigures(
      {
        'ingest.events_per_s': 200_000,
        'ingest-live.events_per_s': 184_000,
      },
      1,
    )
    assert.equal(once['run.ingest_live_of_plain_pct'], 92)
    assert.equal(
      deriveFigures({ 'ingest-live.events_per_s': 184_000 }, 1)[
        'run.ingest_live_of_plain_pct'
      ],
      undefined,
    )
    const twice = deriveFigures(
      {
        'ingest.events_per_s': 200_000,
        'ingest-live.events_per_s': 150_000,
      },
      1,
      undefined,
      { plain: 100_000, live: 120_000 },
    )
    assert.equal(twice['run.ingest_live_of_plain_pct'], 90)
    assert.equal(
      deriveFigures(
        {
          'ingest.server_cpu_us_per_event': 10,
          'ingest-live.server_cpu_us_per_event': 12.5,
        },
        1,
      )['run.ingest_live_cpu_of_plain_pct'],
      125,
    )
    assert.equal(twice['run.ingest_tokens_of_plain_pct'], undefined)
  })

  it('should leave out what the rows do not give', () => {
    assert.deepStrictEqual(deriveFigures({ 'ingest.events_per_s': 1 }, 2), {
      'run.seconds': 2,
    })
  })
})

describe('unitOf', () => {
  it('should give the unit of a figure by its metric, and none for an unknown one', () => {
    assert.equal(unitOf('odometer-large.p99_ms'), 'ms')
    assert.equal(unitOf('run.odometer_large_over_small'), '×')
    assert.equal(unitOf('someday.new_metric'), '')
  })
})

describe('collectFigures', () => {
  it('should count the events answered OK and not stored after a SIGTERM, never below zero', () => {
    const row = {
      id: 'flood-sigterm' as const,
      exit: { seconds: 60, killed: true },
      exitText: 'did not exit within 60 s; killed',
      okBeforeSignal: 450_000,
      unansweredEvents: 9_000_000,
      sent: 10_240_000,
    }
    const lost = collectFigures(
      report({ shutdown: [{ ...row, ok: 970_000, stored: 960_000 }] }),
    )
    assert.equal(lost['flood-sigterm.exit_seconds'], 60)
    assert.equal(lost['flood-sigterm.ok_not_stored'], 10_000)
    // Frames committed but never answered are stored too.
    const kept = collectFigures(
      report({ shutdown: [{ ...row, ok: 970_000, stored: 2_840_000 }] }),
    )
    assert.equal(kept['flood-sigterm.ok_not_stored'], 0)
    assert.equal(kept['flood-sigterm.stored_events'], 2_840_000)
    const uncounted = collectFigures(
      report({ shutdown: [{ ...row, ok: 970_000, stored: undefined }] }),
    )
    assert.equal(uncounted['flood-sigterm.ok_not_stored'], undefined)
  })

  it("should give the million robots' RSS growth per robot, and no X-Total-Count figure when the header is absent", () => {
    const restart = {
      startupSeconds: 18.5,
      rssUp: 887 * MB,
      listFirstMs: 9.5,
      listP50Ms: 5.7,
      listRequests: 20,
      totalCount: undefined,
      listed: 100,
    }
    const row = {
      id: 'million' as const,
      robots: 1_000_000,
      load: {} as LoadResult,
      eventsPerSecond: 18_000,
      rssBefore: 100 * MB,
      rssEnd: 100 * MB + 2_000_000_000,
      stored: 1_000_000,
      server,
      restart,
      restartServer: server,
    }
    const figures = collectFigures(report({ million: [row] }))
    assert.equal(figures['million.bytes_per_robot'], 2000)
    assert.equal(figures['million.rss_end_mb'], 100 + 2_000_000_000 / MB)
    assert.equal(figures['million.stop_seconds'], 1.5)
    assert.equal(figures['million.startup_seconds'], 18.5)
    assert.equal(figures['million.rss_up_mb'], 887)
    assert.equal(figures['million.total_count'], undefined)
    const counted = collectFigures(
      report({
        million: [{ ...row, restart: { ...restart, totalCount: 1_000_000 } }],
      }),
    )
    assert.equal(counted['million.total_count'], 1_000_000)
  })

  it("should give the live feed's delivery delays of ingest-live, negative ones included", () => {
    const summary = (p50: number, p99: number) => ({
      count: 200,
      p50,
      p99,
      max: p99 + 1,
      mean: p50,
    })
    const row: LiveRow = {
      id: 'ingest-live',
      fleetStreams: 10,
      robotStreams: 100,
      probes: 200,
      missedSingle: 0,
      missedFleet: 0,
      deliveryAfterOk: summary(-0.2, 3),
      fleetDeliveryAfterOk: summary(50, 101),
      sendToDelivery: summary(2, 9),
      readerCpuPct: 40,
    }
    const figures = collectFigures(report({ live: [row] }))
    assert.deepStrictEqual(
      Object.fromEntries(
        Object.entries(figures).filter(([id]) => id.startsWith('ingest-live.')),
      ),
      {
        'ingest-live.delivery_after_ok_p50_ms': -0.2,
        'ingest-live.delivery_after_ok_p99_ms': 3,
        'ingest-live.fleet_delivery_after_ok_p50_ms': 50,
        'ingest-live.fleet_delivery_after_ok_p99_ms': 101,
        'ingest-live.send_to_delivery_p50_ms': 2,
        'ingest-live.send_to_delivery_p99_ms': 9,
      },
    )
    assert.equal(unitOf('ingest-live.fleet_delivery_after_ok_p99_ms'), 'ms')
  })

  it('should give the retention pass, its worst pause the longest append during it', () => {
    const window = (p50: number, p99: number, max: number): IngestWindow => ({
      appends: 50,
      events: 5000,
      seconds: 0.5,
      eventsPerSecond: 10_000,
      latency: { count: 50, p50, p99, max, mean: p50 },
    })
    const result: RetentionResult = {
      type: 'result',
      mode: 'retention',
      oldEvents: 2_000_000,
      preloadSeconds: 9,
      oldFrom: 0,
      oldTo: 1,
      cutoff: 2,
      removed: { events: 1_984_000, units: 29 },
      passSeconds: 0.55,
      baseline: window(9, 77, 96),
      pass: { ...window(8.9, 46, 310), eventsPerSecond: 8800 },
      after: window(7, 115, 150),
      nonOk: 0,
      ingestEndedFirst: false,
      peakRssBytes: 200 * MB,
    }
    const figures = collectFigures(
      report({
        retention: [
          {
            id: 'retention',
            robots: 1000,
            oldEvents: 2000,
            batchSize: 100,
            warmupMs: 1000,
            baselineMs: 3000,
            tailMs: 2000,
            result,
          },
        ],
      }),
    )
    assert.deepStrictEqual(
      Object.fromEntries(
        Object.entries(figures).filter(([id]) => id.startsWith('retention.')),
      ),
      {
        'retention.old_events': 2_000_000,
        'retention.events_removed': 1_984_000,
        'retention.units_removed': 29,
        'retention.pass_seconds': 0.55,
        'retention.worst_pause_ms': 310,
        'retention.pass_p50_ms': 8.9,
        'retention.pass_p99_ms': 46,
        'retention.pass_events_per_s': 8800,
        'retention.baseline_p50_ms': 9,
        'retention.baseline_p99_ms': 77,
        'retention.baseline_max_ms': 96,
        'retention.baseline_events_per_s': 10_000,
      },
    )
    assert.equal(unitOf('retention.units_removed'), 'units')
  })

  it('should project a year of the 10 Hz fleet from the bytes an event of the fleet and driving stores only', () => {
    const GiB = 1024 * MB
    const figures = collectFigures(
      report({
        disk: [
          { name: 'driving', events: 2_000_000, bytes: 8_000_000, files: [] },
          { name: 'ingest', events: 1_000_000, bytes: 60_000_000, files: [] },
          { name: 'fleet', events: 0, bytes: 4096, files: [] },
        ],
      }),
    )
    // 4 bytes an event, 864 million events a day.
    assert.equal(figures['disk-driving.year_gb'], (4 * 864_000_000 * 365) / GiB)
    assert.equal(
      figures['disk-driving.retain_30d_gb'],
      (4 * 864_000_000 * 30) / GiB,
    )
    assert.equal(figures['disk-ingest.bytes_per_event'], 60)
    assert.equal(figures['disk-ingest.year_gb'], undefined)
    assert.equal(figures['disk-fleet.year_gb'], undefined)
    assert.equal(unitOf('disk-driving.year_gb'), 'GB')
  })

  it("should give the dashboard's frames, long tasks and robots shown, and no frame figures from a recording that missed part of the window", () => {
    const frames: FrameFigures = {
      intervals: { count: 590, p50: 16.7, p99: 240, max: 410, mean: 20 },
      framesPerSecond: 41.5,
      longTasks: 10,
      longTaskMs: 2300,
      longestTaskMs: 400,
      covered: true,
    }
    const row: DashboardRow = {
      id: 'dashboard',
      load: { eventsPerSecond: 10_020 } as LoadResult,
      hz: 10,
      serverCpuSeconds: 5,
      windowSeconds: 10,
      server,
      frames,
      shown: { rows: 1000, text: '1000 of 1000 robots' },
      fullSeconds: 1.8,
      browser: '156.0',
      viewport: { width: 1280, height: 900 },
    }
    const figures = collectFigures(report({ dashboard: [row] }))
    assert.deepStrictEqual(
      Object.fromEntries(
        Object.entries(figures).filter(([id]) => id.startsWith('dashboard.')),
      ),
      {
        'dashboard.robots_shown': 1000,
        'dashboard.events_per_s': 10_020,
        'dashboard.frames_per_s': 41.5,
        'dashboard.frame_p50_ms': 16.7,
        'dashboard.frame_p99_ms': 240,
        'dashboard.frame_max_ms': 410,
        'dashboard.long_tasks': 10,
        'dashboard.long_task_ms': 2300,
        'dashboard.server_cpu_pct': 50,
        'dashboard.server_peak_rss_mb': 700,
      },
    )
    assert.equal(figures['run.server_peak_rss_mb'], 700)
    const partial = collectFigures(
      report({
        dashboard: [{ ...row, frames: { ...frames, covered: false } }],
      }),
    )
    assert.equal(partial['dashboard.frame_p99_ms'], undefined)
    assert.equal(partial['dashboard.long_tasks'], undefined)
    assert.equal(partial['dashboard.robots_shown'], 1000)
  })
})

describe('collectFigures: the peer scenario', () => {
  const latency = { count: 1000, p50: 1, p99: 2, max: 3, mean: 1 }
  const reads = (odometer: number, window: number): IntervalsResult => ({
    type: 'result',
    mode: 'intervals',
    odometer: { ...latency, p50: odometer, p99: 2 * odometer },
    window: { ...latency, p50: window, p99: 3 * window },
    wrong: 0,
    wrongSamples: [],
  })
  const serverRun = (
    linesPerFrame: 1 | 10 | 100,
    eventsPerSecond: number,
  ): PeerServerRun => ({
    linesPerFrame,
    events: 2_000_000,
    seconds: 2_000_000 / eventsPerSecond,
    eventsPerSecond,
    cpuSeconds: 8,
    idleRss: 100 * MB,
    peakRss: (150 + linesPerFrame) * MB,
    diskBytes: 2_000_000 * (linesPerFrame === 1 ? 5 : 6),
    stored: 2_000_000,
    nonOk: 0,
    ...(linesPerFrame === 10 ? { reads: reads(1, 2) } : {}),
  })
  const influx = (eventsPerSecond: number): PeerInfluxRun => ({
    events: 2_000_000,
    seconds: 2_000_000 / eventsPerSecond,
    eventsPerSecond,
    cpuSeconds: 6,
    idleRss: 20 * MB,
    peakRss: 100 * MB,
    diskBytes: 2_000_000 * 18,
    compactedBytes: 2_000_000 * 15,
    stored: 2_000_000,
    failed: 0,
    requests: 400,
    reads: reads(2, 2),
  })
  const peer = (rounds: PeerReport['rounds']): PeerReport => ({
    peer: 'influxdb',
    version: 'InfluxDB v1.6.7',
    settings: {
      rounds: rounds.length,
      robots: 1000,
      connections: 64,
      window: 64,
      writers: 4,
      batch: 5000,
      reads: 1000,
      warmupReads: 1000,
    },
    events: 2_000_000,
    rounds,
  })

  it('should take the median of each figure over the rounds, and each ratio of the medians', () => {
    const rounds = [100_000, 300_000, 200_000].map((speed, r) => ({
      first: r % 2 === 0 ? ('server' as const) : ('influxdb' as const),
      server: [
        serverRun(1, speed),
        serverRun(10, 2 * speed),
        serverRun(100, 3 * speed),
      ],
      influxdb: influx(2 * speed),
    }))
    const figures = collectFigures(report({ peer: peer(rounds) }))
    assert.equal(figures['peer-server-1.events_per_s'], 200_000)
    assert.equal(figures['peer-server-100.events_per_s'], 600_000)
    assert.equal(figures['peer-influxdb.events_per_s'], 400_000)
    assert.equal(figures['run.peer_ingest_1_of_influxdb_pct'], 50)
    assert.equal(figures['run.peer_ingest_100_of_influxdb_pct'], 150)
    assert.equal(figures['run.peer_ingest_100_over_10'], 1.5)
    assert.equal(figures['peer-server-10.cpu_s_per_million'], 4)
    assert.equal(figures['peer-influxdb.cpu_s_per_million'], 3)
    assert.ok(
      Math.abs(figures['run.peer_cpu_10_of_influxdb_pct']! - 400 / 3) < 1e-9,
    )
    // The largest of the server's stores against InfluxDB compacted.
    assert.equal(figures['peer-influxdb.compacted_bytes_per_event'], 15)
    assert.equal(figures['run.peer_disk_of_influxdb_compacted_pct'], 40)
    assert.equal(figures['run.peer_idle_rss_over_influxdb'], 5)
    assert.equal(figures['run.peer_peak_rss_of_influxdb_pct'], 250)
    // Reads on the 10-line store only.
    assert.equal(figures['peer-server-1.window_p99_ms'], undefined)
    assert.equal(figures['run.peer_odometer_p50_over_influxdb'], 0.5)
    assert.equal(figures['run.peer_window_p50_over_influxdb'], 1)
    assert.equal(figures['run.peer_window_p99_over_influxdb'], 1)
  })

  it('should give no peer figure when the scenario did not run', () => {
    const figures = collectFigures(
      report({ peerSkipped: 'no /usr/bin/influxd' }),
    )
    assert.deepEqual(
      Object.keys(figures).filter((id) => id.includes('peer')),
      [],
    )
  })
})
