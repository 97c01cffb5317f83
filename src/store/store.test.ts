import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  parseStoreAddress,
  redactStoreUrl,
  robotView,
  StoreAddressError,
} from './store.ts'

describe('parseStoreAddress', () => {
  it('should name the backend of an address', () => {
    assert.deepStrictEqual(parseStoreAddress('sqlite:./data/t.db'), {
      backend: 'sqlite',
      url: 'sqlite:./data/t.db',
      path: './data/t.db',
    })
    assert.deepStrictEqual(parseStoreAddress('sqlite::memory:'), {
      backend: 'sqlite',
      url: 'sqlite::memory:',
      path: ':memory:',
    })
    for (const url of [
      'postgres://u@h:5432/db',
      'postgresql://u:p@h/db?schema=s',
      // A formation: libpq's and postgres.js's hosts in turn.
      'postgres://postgres@127.0.0.1:6001,127.0.0.1:6002/postgres?target_session_attrs=read-write',
    ]) {
      assert.deepStrictEqual(parseStoreAddress(url), {
        backend: 'postgres',
        url,
      })
    }
  })

  it('should refuse what names no store, saying why', () => {
    const cases: [string, RegExp][] = [
      ['sqlite:', /store sqlite: needs a path/],
      ['postgres://[oops', /is not a valid URL/],
      ['postgres://u@h1:5432,/db', /is not a valid URL/],
      ['postgres://u@h1:5432,[oops/db', /is not a valid URL/],
      ['mysql://x', /store must be sqlite:PATH or postgres:/],
      ['', /store must be sqlite:PATH/],
    ]
    for (const [url, message] of cases) {
      assert.throws(
        () => parseStoreAddress(url),
        (error: unknown) =>
          error instanceof StoreAddressError && message.test(error.message),
        url,
      )
    }
  })
})

describe('redactStoreUrl', () => {
  it('should hide a password and leave everything else', () => {
    assert.equal(
      redactStoreUrl('postgres://app:s3cret@db:5432/fleet?schema=x'),
      'postgres://app:***@db:5432/fleet?schema=x',
    )
    assert.equal(
      redactStoreUrl('postgres://app@db/fleet'),
      'postgres://app@db/fleet',
    )
    assert.equal(redactStoreUrl('sqlite:./a:b@c.db'), 'sqlite:./a:b@c.db')
    assert.equal(
      redactStoreUrl(
        'postgres://app:s3cret@db1:5432,db2:5433/fleet?target_session_attrs=read-write',
      ),
      'postgres://app:***@db1:5432,db2:5433/fleet?target_session_attrs=read-write',
    )
  })
})

describe('robotView', () => {
  it('should show the lifetime odometer as the running total plus its carry', () => {
    assert.deepStrictEqual(
      robotView(
        'r',
        {
          firstTimestamp: 1,
          lastTimestamp: 9,
          lastX: 2,
          lastY: 3,
          odometer: 10,
          odometerCarry: 0.5,
          eventCount: 4,
        },
        10,
        20,
      ),
      {
        name: 'r',
        odometer: 10.5,
        lastX: 2,
        lastY: 3,
        firstTimestamp: 1,
        lastTimestamp: 9,
        eventCount: 4,
        createdMs: 10,
        updatedMs: 20,
      },
    )
  })
})
