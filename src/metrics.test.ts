import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Histogram, Registry } from 'prom-client'
import { FastHistogram } from './metrics.ts'

describe('FastHistogram', () => {
  it("should render what prom-client's Histogram renders for the same observations", async () => {
    const theirs = new Registry()
    const ours = new Registry()
    const options = {
      name: 'x_seconds',
      help: 'Some time.',
      buckets: [0.001, 0.01, 1],
    }
    const reference = new Histogram({ ...options, registers: [theirs] })
    const fast = new FastHistogram({ ...options, registers: [ours] })
    const render = async () => [await theirs.metrics(), await ours.metrics()]
    let [want, got] = await render()
    assert.equal(got, want, 'no observation')
    // On a bound, between bounds, above every bound.
    for (const value of [0.0005, 0.001, 0.002, 0.01, 0.5, 1, 3, 0]) {
      reference.observe(value)
      fast.observe(value)
    }
    ;[want, got] = await render()
    assert.equal(got, want)
    assert.match(got!, /x_seconds_bucket\{le="\+Inf"\} 8/)
    theirs.resetMetrics()
    ours.resetMetrics()
    ;[want, got] = await render()
    assert.equal(got, want, 'after a reset')
  })
})
