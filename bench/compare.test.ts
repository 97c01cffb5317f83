import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  addToHistory,
  compareFigures,
  comparisonCaveats,
  renderComparison,
} from './compare.ts'
import { HISTORY_MARKER, type RunReport } from './report.ts'
import {
  parseResults,
  RESULTS_FORMAT,
  toResults,
  type BenchResults,
} from './results.ts'

/** JSON results of a quick SQLite run with the given figures. */
function results(
  figures: Record<string, number>,
  overrides: Partial<BenchResults> = {},
): BenchResults {
  return {
    format: RESULTS_FORMAT,
    started: '2026-11-30T10:00:00.000Z',
    seconds: 55,
    commit: 'aaaaaaa',
    dirty: false,
    mode: 'quick',
    backend: 'sqlite',
    store: 'sqlite: fresh temporary files, one folder per store',
    node: 'v20.20.2',
    machine: { cores: 2, cpuModel: 'cpu', memoryBytes: 2 ** 34, kernel: '6' },
    scenarios: ['ingest'],
    settings: {
      connections: 64,
      robots: 1000,
      window: 64,
      linesPerFrame: 10,
      warmupMs: 1000,
      durationMs: 3000,
      maxEvents: 5_000_000,
      storageBatch: 5000,
      preloadBatch: 10_000,
      fleetEvents: 100_000,
      drivingEvents: 100_000,
      tracks: [1000, 10_000, 100_000],
      fetchEvents: 100_000,
      odometerWarmup: 600,
      odometerRequests: 300,
      floodConnections: 16,
      floodLinesPerFrame: 10_000,
      floodSmallLinesPerFrame: 10,
      floodWindow: 64,
      floodDurationMs: 5000,
      floodTailMs: 10_000,
      millionRobots: 100_000,
      millionLinesPerFrame: 5000,
      millionWindow: 32,
      dashboardHz: 10,
      retentionRobots: 100,
      retentionOldEvents: 1000,
      retentionBatch: 100,
      retentionBaselineMs: 2000,
      retentionTailMs: 1000,
      failoverRobots: 32,
      failoverHz: 10,
      failoverServers: 2,
      failoverPlanned: 2,
      peerRounds: 2,
      peerRobots: 100,
      peerWriters: 4,
      peerBatch: 5000,
      peerReads: 200,
    },
    figures,
    targets: [],
    problems: [],
    ...overrides,
  }
}

describe('compareFigures', () => {
  it("should give B/A for every figure, A's order first, then those only B has", () => {
    assert.deepStrictEqual(
      compareFigures(
        { 'ingest.events_per_s': 100_000, 'fetch-json.seconds': 2 },
        { 'latency.ack_p99_ms': 7, 'ingest.events_per_s': 120_000 },
      ),
      [
        {
          id: 'ingest.events_per_s',
          unit: 'events/s',
          a: 100_000,
          b: 120_000,
          ratio: 1.2,
        },
        {
          id: 'fetch-json.seconds',
          unit: 's',
          a: 2,
          b: undefined,
          ratio: undefined,
        },
        {
          id: 'latency.ack_p99_ms',
          unit: 'ms',
          a: undefined,
          b: 7,
          ratio: undefined,
        },
      ],
    )
  })

  it('should give no ratio over a zero, and keep ids this version does not know', () => {
    assert.deepStrictEqual(compareFigures({ 'x.new': 0 }, { 'x.new': 3 }), [
      { id: 'x.new', unit: '', a: 0, b: 3, ratio: undefined },
    ])
  })
})

describe('renderComparison', () => {
  it('should print each figure with its ratio, and say which run lacks one', () => {
    const text = renderComparison(
      results({ 'ingest.events_per_s': 100_000, 'fetch-json.seconds': 2 }),
      results(
        { 'ingest.events_per_s': 125_000, 'latency.ack_p99_ms': 6.25 },
        { commit: 'bbbbbbb' },
      ),
      { a: 'a.json', b: 'b.json', title: 'a faster batcher' },
    )
    const lines = text.split('\n')
    assert.equal(
      lines[0],
      '### 2026-11-30: `aaaaaaa` → `bbbbbbb`: a faster batcher',
    )
    for (const row of [
      '| `ingest.events_per_s` | events/s | 100,000 | 125,000 | 1.25 |',
      '| `fetch-json.seconds` | s | 2.0 | — | only in A |',
      '| `latency.ack_p99_ms` | ms | — | 6.25 | only in B |',
    ]) {
      assert.ok(lines.includes(row), row)
    }
  })

  it('should say when two runs do not compare', () => {
    const a = results({}, { mode: 'quick' })
    const b = results({}, { mode: 'full', dirty: true, problems: ['x'] })
    assert.deepStrictEqual(comparisonCaveats(a, b), [
      'A is a quick run and B a full run: their counts differ, so their figures do not compare.',
      'B ran on a tree with uncommitted changes.',
      'B saw 1 problem(s), listed in its JSON and report.',
    ])
    assert.deepStrictEqual(comparisonCaveats(a, a), [])
  })
})

describe('addToHistory', () => {
  it('should add the entry at the end of the History section, before the next section', () => {
    const document = `# Benchmarks\n\n## History\n\n${HISTORY_MARKER}\n\n- old entry\n\n## PostgreSQL\n\ncopied run\n`
    assert.equal(
      addToHistory(document, '### new\n\n| table |\n'),
      `# Benchmarks\n\n## History\n\n${HISTORY_MARKER}\n\n- old entry\n\n### new\n\n| table |\n\n## PostgreSQL\n\ncopied run\n`,
    )
  })

  it('should add at the end when the History section is last, and start one when there is none', () => {
    assert.equal(
      addToHistory(`## History\n\n${HISTORY_MARKER}\n`, '### new\n'),
      `## History\n\n${HISTORY_MARKER}\n\n### new\n`,
    )
    assert.equal(
      addToHistory('# Other\n', '### new\n'),
      `# Other\n\n## History\n\n${HISTORY_MARKER}\n\n### new\n`,
    )
  })
})

describe('parseResults', () => {
  it('should read back what toResults gives for a run that measured nothing', () => {
    const report: RunReport = {
      quick: true,
      started: new Date('2026-11-30T10:00:00.000Z'),
      seconds: 1.5,
      machine: { cores: 2, cpuModel: 'cpu', memoryBytes: 1, kernel: '6' },
      node: 'v20.20.2',
      commit: 'aaaaaaa',
      dirty: false,
      backend: 'sqlite',
      store: 'sqlite: fresh temporary files, one folder per store',
      json: 'q.json',
      commands: [],
      config: results({}).settings,
      scenarios: [],
      ceilings: [],
      storage: [],
      ingest: [],
      latency: [],
      preloads: [],
      odometer: [],
      flood: [],
      shutdown: [],
      million: [],
      dashboard: [],
      retention: [],
      fetch: [],
      disk: [],
      problems: [],
    }
    const parsed = parseResults(JSON.stringify(toResults(report)), 'q.json')
    assert.deepStrictEqual(parsed.figures, { 'run.seconds': 1.5 })
    assert.ok(parsed.targets.every((t) => t.verdict === 'not measured'))
    assert.equal(parsed.mode, 'quick')
  })

  it('should reject a file that is not bench results, naming the file and the field', () => {
    assert.throws(
      () => parseResults('{"format":"other"}', 'a.json'),
      /^Error: a\.json: not bench results: format must be "fleet-telemetry-bench\/1"$/,
    )
    assert.throws(
      () =>
        parseResults(
          JSON.stringify(results({ 'ingest.events_per_s': 'fast' } as never)),
          'b.json',
        ),
      /^Error: b\.json: figure ingest\.events_per_s must be a number$/,
    )
    assert.throws(
      () => parseResults('# Benchmarks', 'c.md'),
      /^Error: c\.md: not JSON/,
    )
  })
})
