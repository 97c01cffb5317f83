import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { MAX_SEED, Random, parseSeed, testSeed } from './random.ts'

describe('the test seed', () => {
  test('reads an integer from 0 to 2^32−1 written in digits', () => {
    assert.equal(parseSeed('0'), 0)
    assert.equal(parseSeed('007'), 7)
    assert.equal(parseSeed(String(MAX_SEED)), MAX_SEED)
    assert.equal(testSeed({ TEST_SEED: '42' }), 42)
  })

  test('is an error, never 0, when TEST_SEED is anything else', () => {
    for (const text of [
      'abc',
      '-1',
      '1.5',
      '1e3',
      ' 7',
      '7 ',
      '0x10',
      '4294967296',
    ]) {
      assert.throws(
        () => testSeed({ TEST_SEED: text }),
        /^Error: TEST_SEED must be an integer from 0 to 4294967295/,
        JSON.stringify(text),
      )
    }
  })

  test('is drawn fresh when TEST_SEED is not set or empty', () => {
    for (const env of [{}, { TEST_SEED: '' }]) {
      const seed = testSeed(env)
      assert.ok(Number.isInteger(seed) && seed >= 0 && seed <= MAX_SEED)
    }
  })
})

describe('Random', () => {
  test('gives the same numbers for the same seed, and others for another stream', () => {
    const draw = (random: Random) =>
      Array.from({ length: 5 }, () => random.int(0, 1000))
    assert.deepEqual(draw(new Random(42)), draw(new Random(42)))
    assert.deepEqual(draw(Random.derive(42, 1)), draw(Random.derive(42, 1)))
    assert.notDeepEqual(draw(Random.derive(42, 1)), draw(Random.derive(42, 2)))
  })

  test('keeps its draws within their bounds', () => {
    const random = new Random(7)
    for (let i = 0; i < 10_000; i++) {
      const n = random.int(-3, 3)
      assert.ok(Number.isInteger(n) && n >= -3 && n <= 3)
      const below = random.below(5)
      assert.ok(Number.isInteger(below) && below >= 0 && below < 5)
      const x = random.next()
      assert.ok(x >= 0 && x < 1)
    }
  })
})
