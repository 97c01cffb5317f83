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

  it('should show the measured value in the unit of its figure', () => {
    const [result] = evaluateTargets(
      { 'latency.ack_p99_ms': 71.43 },
      'sqlite',
      [latency],
    )
    assert.equal(showMeasured(result!), '71.4 ms')
  })
})
