import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import postgres from 'postgres'
import type { TelemetryEvent } from '../../domain/event.ts'
import type { StoredEvent } from '../store.ts'
import { storeTests } from '../store-tests.ts'
import { POSTGRES_MIGRATIONS } from './postgres-migrations.ts'
import { createPostgresStore } from './postgres-store.ts'
import {
  dropSchemas,
  freshSchema,
  postgresSkip,
  TEST_POSTGRES_URL,
} from '../../../test/support/postgres.ts'
import { waitFor } from '../../../test/support/wait.ts'

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

  it("should tell a watcher of every process's commits once, each robot in timestamp order", async (t) => {
    const url = freshUrl()
    const stores = Array.from({ length: 3 }, () =>
      createPostgresStore({ url, maxConnections: 3 }),
    )
    const watching = createPostgresStore({ url, maxConnections: 1 })
    t.after(() => Promise.all([...stores, watching].map((s) => s.close())))
    await Promise.all([...stores, watching].map((s) => s.init()))
    const heard: StoredEvent[] = []
    await watching.watch({
      committed: (events) => void heard.push(...events),
      missed: () => assert.fail('missed commits'),
    })
    // Long names and big batches: a batch's events span many payloads.
    const name = (r: number) => `watched ${r} ${'é'.repeat(140)}`
    const events = Array.from({ length: 3000 }, (_, i) =>
      ev(name(i % 7), Math.floor(i / 7), i % 13, -(i % 5)),
    )
    await Promise.all(
      stores.map(async (store) => {
        for (let b = 0; b < events.length; b += 1000) {
          await store.append(events.slice(b, b + 1000))
        }
      }),
    )
    await waitFor(() => heard.length >= events.length, 'every event heard')
    assert.equal(heard.length, events.length, 'each event heard once')
    for (let r = 0; r < 7; r++) {
      const mine = heard.filter((e) => e.robot === name(r))
      assert.deepEqual(
        mine.map((e) => e.timestamp),
        mine.map((_, i) => i),
        `robot ${r} in timestamp order, without a gap`,
      )
      const robot = await watching.getRobot(name(r))
      assert.equal(mine.at(-1)!.odometer, robot!.odometer)
    }
  })

  it('should tell a watcher when its connection was lost, and hear commits again after', async (t) => {
    const url = freshUrl()
    const store = createPostgresStore({ url })
    t.after(() => store.close())
    await store.init()
    const heard: StoredEvent[] = []
    let missed = 0
    await store.watch({
      committed: (events) => void heard.push(...events),
      missed: () => void missed++,
    })
    const sql = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => {} })
    t.after(() => sql.end())
    const schema = new URL(url).searchParams.get('schema')!
    await sql`
      SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE application_name = 'fleet-telemetry live'
        AND query LIKE ${`%telemetry_live_${schema}%`}`
    await waitFor(() => missed > 0, 'the lost connection is told')
    // Listening again takes a moment: commits until one is heard.
    for (let ts = 1; heard.length === 0; ts++) {
      await store.append([ev('after the loss', ts)])
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    assert.equal(heard[0]!.robot, 'after the loss')
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
