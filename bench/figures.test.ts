import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { deriveFigures, unitOf } from './figures.ts'

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
