import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import postgres from 'postgres'
import type { TelemetryEvent } from '../../domain/event.ts'
import { storeTests } from '../store-tests.ts'
import { POSTGRES_MIGRATIONS } from './postgres-migrations.ts'
import { createPostgresStore } from './postgres-store.ts'
import {
  dropSchemas,
  freshSchema,
  postgresSkip,
  TEST_POSTGRES_URL,
} from '../../../test/support/postgres.ts'

const skip = await postgresSkip()
if (skip !== false) console.log(`# skipping PostgreSQL tests: ${skip}`)
const made: string[] = []
after(() => dropSchemas(made))

function freshUrl(): string {
  const { schema, url } = freshSchema()
  made.push(schema)
  return url
}

if (skip === false) {
  storeTests('postgres', () => createPostgresStore({ url: freshUrl() }), {
    // Another process on the same schema, as a restarted server is.
    reopen: (store) => createPostgresStore({ url: store.url }),
  })
}

const ev = (
  robot: string,
  timestamp: number,
  x = 0,
  y = 0,
): TelemetryEvent => ({
  robot,
  timestamp,
  x,
  y,
})

describe('postgres store', { skip }, () => {
  it('should migrate once when several stores start on a new schema at once', async () => {
    const url = freshUrl()
    const stores = Array.from({ length: 4 }, () => createPostgresStore({ url }))
    const sql = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => {} })
    try {
      await Promise.all(stores.map((s) => s.init()))
      const schema = new URL(url).searchParams.get('schema')!
      const rows = await sql`
        SELECT version FROM ${sql(schema)}.schema_migrations ORDER BY version`
      assert.deepEqual(
        rows.map((r) => r.version),
        POSTGRES_MIGRATIONS.map((_, i) => i + 1),
      )
    } finally {
      await sql.end()
      await Promise.all(stores.map((s) => s.close()))
    }
  })

  it('should store an event once and judge the rest exactly when stores race for the same robots', async (t) => {
    const url = freshUrl()
    const stores = Array.from({ length: 3 }, () =>
      createPostgresStore({ url, maxConnections: 3 }),
    )
    t.after(() => Promise.all(stores.map((s) => s.close())))
    await Promise.all(stores.map((s) => s.init()))
    // Every store sends the same 200 events of 10 robots at once, in
    // batches of 20: each event must be `ok` exactly once across stores,
    // and `dup` elsewhere.
    const events = Array.from({ length: 200 }, (_, i) =>
      ev(`race-${i % 10}`, Math.floor(i / 10), i, -i),
    )
    const results = await Promise.all(
      stores.map(async (store) => {
        const outcomes = []
        for (let b = 0; b < events.length; b += 20) {
          outcomes.push(...(await store.append(events.slice(b, b + 20))))
        }
        return outcomes
      }),
    )
    for (let i = 0; i < events.length; i++) {
      const got = results.map((r) => r[i]).sort()
      assert.deepEqual(got, ['dup', 'dup', 'ok'], `event ${i}`)
    }
    for (let r = 0; r < 10; r++) {
      const robot = await stores[2]!.getRobot(`race-${r}`)
      assert.equal(robot?.eventCount, 20)
      assert.equal(robot?.lastTimestamp, 19)
    }
  })

  it('should refuse to start on a schema newer than it knows', async () => {
    const url = freshUrl()
    const store = createPostgresStore({ url })
    await store.init()
    await store.close()
    const schema = new URL(url).searchParams.get('schema')!
    const sql = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => {} })
    try {
      await sql`INSERT INTO ${sql(schema)}.schema_migrations (version) VALUES (99)`
    } finally {
      await sql.end()
    }
    const newer = createPostgresStore({ url })
    await assert.rejects(newer.init(), /version 99, newer than this server's/)
    await newer.close()
  })
})
