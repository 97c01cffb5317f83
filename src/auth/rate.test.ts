import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { TokenBuckets } from './rate.ts'

describe('TokenBuckets', () => {
  it('should let a token send its rate in a second and no more', () => {
    const buckets = new TokenBuckets(5)
    const taken = Array.from({ length: 8 }, () => buckets.take('a', 1000))
    assert.deepStrictEqual(taken, [
      ...Array<boolean>(5).fill(true),
      ...Array<boolean>(3).fill(false),
    ])
    // Another token has a bucket of its own.
    assert.equal(buckets.take('b', 1000), true)
  })

  it('should refill at the rate, up to one second of events', () => {
    const buckets = new TokenBuckets(10)
    for (let i = 0; i < 10; i++) buckets.take('a', 0)
    assert.equal(buckets.take('a', 0), false)
    // 100 ms later, one event.
    assert.equal(buckets.take('a', 100), true)
    assert.equal(buckets.take('a', 100), false)
    // A long pause refills no more than one second.
    let taken = 0
    while (buckets.take('a', 60_000)) taken++
    assert.equal(taken, 10)
  })
})
