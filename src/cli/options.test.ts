import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { InvalidArgumentError } from 'commander'
import { integerFrom, parseServerUrl, positiveNumber } from './options.ts'

describe('parseServerUrl', () => {
  it('should derive the ingest endpoint from the http base', () => {
    assert.deepStrictEqual(parseServerUrl('http://127.0.0.1:8000'), {
      http: 'http://127.0.0.1:8000',
      upstream: 'ws://127.0.0.1:8000/upstream',
    })
    assert.deepStrictEqual(parseServerUrl('https://example.com/'), {
      http: 'https://example.com',
      upstream: 'wss://example.com/upstream',
    })
    // A prefix, for a server behind a proxy.
    assert.deepStrictEqual(parseServerUrl('http://h:81/telemetry/'), {
      http: 'http://h:81/telemetry',
      upstream: 'ws://h:81/telemetry/upstream',
    })
  })

  it('should take the ingest endpoint as it is, with /upstream when it has no path', () => {
    assert.deepStrictEqual(parseServerUrl('ws://127.0.0.1:9000'), {
      http: 'http://127.0.0.1:9000',
      upstream: 'ws://127.0.0.1:9000/upstream',
    })
    assert.deepStrictEqual(parseServerUrl('wss://h/telemetry/upstream'), {
      http: 'https://h/telemetry',
      upstream: 'wss://h/telemetry/upstream',
    })
  })

  it('should refuse anything else', () => {
    for (const text of [
      '127.0.0.1:8000',
      'ftp://h',
      'http://',
      'http//h',
      '',
    ]) {
      assert.throws(() => parseServerUrl(text), InvalidArgumentError, text)
    }
  })
})

describe('the number flags', () => {
  it('should take integers in their range only', () => {
    const robots = integerFrom(1, 10)
    assert.equal(robots('10'), 10)
    for (const text of ['0', '11', '1.5', '-1', '1e1', ' 1', '']) {
      assert.throws(() => robots(text), InvalidArgumentError, text)
    }
  })

  it('should take numbers above 0 up to their maximum', () => {
    const rate = positiveNumber(1000)
    assert.equal(rate('0.5'), 0.5)
    assert.equal(rate('1000'), 1000)
    for (const text of ['0', '1001', '-1', 'fast', 'Infinity', '']) {
      assert.throws(() => rate(text), InvalidArgumentError, text)
    }
  })
})
