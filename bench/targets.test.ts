import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { unitOf } from './figures.ts'
import {
  describeTarget,
  evaluateTargets,
  showMeasured,
  TARGETS,
  type Target,
} from './targets.ts'

const rate: Target = {
  id: 'rate',
  what: 'ingest',
  figure: 'ingest.events_per_s',
  comparison: '>=',
  threshold: 100_000,
}
const latency: Target = {
  id: 'latency',
  what: 'ack p99',
  figure: 'latency.ack_p99_ms',
  comparison: '<',
  threshold: 25,
}
const postgresOnly: Target = {
  id: 'plain',
  what: 'share of plain INSERT',
  figure: 'run.ingest_of_plain_insert_pct',
  comparison: '>=',
  threshold: 40,
  backend: 'postgres',
}

describe('evaluateTargets', () => {
  it('should judge each target on its own figure, the threshold itself included as the comparison says', () => {
    const results = evaluateTargets(
      { 'ingest.events_per_s': 100_000, 'latency.ack_p99_ms': 25 },
      'sqlite',
      [rate, latency],
    )
    assert.deepStrictEqual(
      results.map((r) => [r.target.id, r.value, r.verdict]),
      [
        ['rate', 100_000, 'met'],
        ['latency', 25, 'missed'],
      ],
    )
  })

  it('should say not measured when the figure is absent or not finite', () => {
    const results = evaluateTargets({ 'latency.ack_p99_ms': NaN }, 'sqlite', [
      rate,
      latency,
    ])
    assert.deepStrictEqual(
      results.map((r) => [r.value, r.verdict]),
      [
        [undefined, 'not measured'],
        [undefined, 'not measured'],
      ],
    )
    assert.equal(showMeasured(results[0]!), 'n/a')
  })

  it('should judge a target for one backend only on that backend', () => {
    const figures = { 'run.ingest_of_plain_insert_pct': 39 }
    assert.deepStrictEqual(
      evaluateTargets(figures, 'sqlite', [rate, postgresOnly]).map(
        (r) => r.target.id,
      ),
      ['rate'],
    )
    assert.deepStrictEqual(
      evaluateTargets(figures, 'postgres', [postgresOnly]).map(
        (r) => r.verdict,
      ),
      ['missed'],
    )
  })
})

describe('TARGETS', () => {
  it('should have unique ids and name only figures with a known unit', () => {
    const ids = TARGETS.map((t) => t.id)
    assert.equal(new Set(ids).size, ids.length)
    for (const target of TARGETS) {
      assert.notEqual(unitOf(target.figure), '', target.figure)
    }
  })

  it('should print the comparison and threshold from the data', () => {
    assert.equal(describeTarget(rate), 'ingest ≥ 100,000 events/s')
    assert.equal(describeTarget(latency), 'ack p99 < 25 ms')
    assert.equal(
      describeTarget({ ...postgresOnly, figure: 'run.ingest_of_bare_ws_pct' }),
      'share of plain INSERT ≥ 40 %',
    )
    const flat = TARGETS.find((t) => t.id === 'odometer-flat')!
    assert.match(describeTarget(flat), / ≤ 1\.5×$/)
  })

  it("should judge issue 10's measurements at main as missed, and the bounds it asks for as met", () => {
    const verdicts = (figures: Parameters<typeof evaluateTargets>[0]) =>
      Object.fromEntries(
        evaluateTargets(figures, 'sqlite')
          .filter((r) => r.verdict !== 'not measured')
          .map((r) => [r.target.id, r.verdict]),
      )
    assert.deepStrictEqual(
      verdicts({
        'run.flood_large_over_small': 6000 / 350_000,
        'flood.server_peak_rss_mb': 2900,
        'flood-sigterm.exit_seconds': 60,
        'flood-sigterm.ok_not_stored': 0,
        'million.rss_end_mb': 2300,
        'million.startup_seconds': 18.5,
      }),
      {
        'flood-large-frames': 'missed',
        'flood-rss': 'missed',
        'flood-sigterm-exit': 'missed',
        'flood-sigterm-stored': 'met',
        'million-rss': 'missed',
        'million-startup': 'missed',
      },
    )
    assert.deepStrictEqual(
      verdicts({
        'run.flood_large_over_small': 1,
        'flood.server_peak_rss_mb': 299,
        'flood-sigterm.exit_seconds': 2,
        'million.rss_end_mb': 499,
        'million.startup_seconds': 1.9,
      }),
      {
        'flood-large-frames': 'met',
        'flood-rss': 'met',
        'flood-sigterm-exit': 'met',
        'million-rss': 'met',
        'million-startup': 'met',
      },
    )
  })

  it("should hold issue 11's access control to within 5 % of ingest without it", () => {
    const verdict = (pct: number) =>
      evaluateTargets({ 'run.ingest_tokens_of_plain_pct': pct }, 'sqlite')
        .filter((r) => r.target.id === 'ingest-tokens-of-plain')
        .map((r) => r.verdict)
    assert.deepStrictEqual(verdict(95), ['met'])
    assert.deepStrictEqual(verdict(94.9), ['missed'])
    assert.deepStrictEqual(verdict(103), ['met'])
  })

  it('should hold the server CPU per event with live subscribers to at most 125 % of that without them', () => {
    const verdict = (pct: number) =>
      evaluateTargets({ 'run.ingest_live_cpu_of_plain_pct': pct }, 'postgres')
        .filter((r) => r.target.id === 'ingest-live-cpu-of-plain')
        .map((r) => r.verdict)
    assert.deepStrictEqual(verdict(125), ['met'])
    assert.deepStrictEqual(verdict(125.1), ['missed'])
    assert.deepStrictEqual(verdict(90), ['met'])
  })

  it("should hold issue 12's dashboard to a frame p99 of 50 ms", () => {
    const verdict = (ms: number) =>
      evaluateTargets({ 'dashboard.frame_p99_ms': ms }, 'postgres')
        .filter((r) => r.target.id === 'dashboard-frame-p99')
        .map((r) => r.verdict)
    assert.deepStrictEqual(verdict(16.7), ['met'])
    assert.deepStrictEqual(verdict(50), ['met'])
    assert.deepStrictEqual(verdict(50.1), ['missed'])
    assert.deepStrictEqual(
      evaluateTargets({}, 'sqlite')
        .filter((r) => r.target.id === 'dashboard-frame-p99')
        .map((r) => r.verdict),
      ['not measured'],
    )
  })

  it('should show the measured value in the unit of its figure', () => {
    const [result] = evaluateTargets(
      { 'latency.ack_p99_ms': 71.43 },
      'sqlite',
      [latency],
    )
    assert.equal(showMeasured(result!), '71.4 ms')
  })
})
