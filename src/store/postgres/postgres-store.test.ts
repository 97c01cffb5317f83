import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { after, describe, it } from 'node:test'
import postgres from 'postgres'
import type { TelemetryEvent } from '../../domain/event.ts'
import type { StoredEvent } from '../store.ts'
import { storeTests } from '../store-tests.ts'
import { encodeChunk } from '../block-codec.ts'
import { assertFixtureStored, FIXTURE_ROBOTS } from '../fixture-tests.ts'
import {
  blockPhase,
  decodeTail,
  packBlocks,
  packedCount,
  type TailRow,
} from './postgres-blocks.ts'
import { POSTGRES_MIGRATIONS } from './postgres-migrations.ts'
import { createPostgresStore } from './postgres-store.ts'
import {
  dropSchemas,
  freshSchema,
  postgresSkip,
  TEST_POSTGRES_URL,
} from '../../../test/support/postgres.ts'
import { waitFor } from '../../../test/support/wait.ts'
import { RobotModel } from '../../../test/support/oracle.ts'
import {
  FIXTURE_EVENTS_PER_ROBOT,
  fixtureEvents,
} from '../sqlite/layout-fixture.ts'

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
  // Blocks of 8 events and partitions 10 ms wide: the small traffic of the
  // conformance suite packs blocks, reads across them and drops partitions.
  storeTests(
    'postgres, small blocks',
    () =>
      createPostgresStore({
        url: freshUrl(),
        newLayout: { blockEvents: 8, partitionMs: 10 },
      }),
    { reopen: (store) => createPostgresStore({ url: store.url }) },
  )
}

/**
 * A robot's rows in `blocks` and events in its tail once it stored
 * `events`, 64 a block (none spanning a day).
 */
function expectedLayout(robot: string, events: number) {
  const phase = blockPhase(robot, 64)
  const packed = packedCount(events, phase, 64)
  const blocks = packed === 0 ? 0 : (phase > 0 ? 1 : 0) + (packed - phase) / 64
  return { robot, packed, blocks, tail: events - packed }
}

const DAY = 86_400_000

/**
 * Each robot's events in blocks (`packed`, in `blocks` rows) and in its
 * tail, checked against each other: the blocks hold `packed` events, the
 * tail decodes to the rest.
 */
async function tailsAndBlocks(sql: postgres.Sql, schema: string) {
  const rows = await sql<
    (TailRow & {
      robot: string
      packed: number
      blocks: number
      in_blocks: number
      tail_events: number
    })[]
  >`
    SELECT r.name AS robot, r.packed::int AS packed,
      (SELECT count(*) FROM ${sql(schema)}.blocks b WHERE b.robot = r.name)::int AS blocks,
      (SELECT coalesce(sum(count), 0) FROM ${sql(schema)}.blocks b WHERE b.robot = r.name)::int AS in_blocks,
      (r.event_count - r.packed)::int AS tail_events,
      r.tail, r.tail_ts::float8 AS tail_ts, r.tail_odo, r.tail_carry
    FROM ${sql(schema)}.robots r ORDER BY r.name`
  return rows.map((row) => {
    assert.equal(row.in_blocks, row.packed, row.robot)
    assert.equal(decodeTail(row).ts.length, row.tail_events, row.robot)
    const { robot, packed, blocks, tail_events: tail } = row
    return { robot, packed, blocks, tail }
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

  it('should connect afresh once a write found its connection on a server that takes no writes, and take writes again', async (t) => {
    // A role whose sessions start read-only stands for a standby: its
    // connections pass postgres.js's check (`in_hot_standby` is off) and
    // every write on them fails with SQLSTATE 25006, as on a primary
    // demoted under a connection that stayed.
    const admin = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => {} })
    const role = `telemetry_ro_${process.pid}_${Date.now().toString(36)}`
    await admin`CREATE ROLE ${admin(role)} LOGIN SUPERUSER`
    const url = new URL(freshUrl())
    url.username = role
    const store = createPostgresStore({
      url: url.toString(),
      maxConnections: 1,
    })
    t.after(async () => {
      await store.close()
      await admin`DROP OWNED BY ${admin(role)}`
      await admin`DROP ROLE ${admin(role)}`
      await admin.end()
    })
    await store.init()
    await store.append([ev('demoted', 1)])
    await admin`ALTER ROLE ${admin(role)} SET default_transaction_read_only = on`
    await admin`
      SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE usename = ${role}`
    // The pool's connection, made again, is read-only: a write fails so
    // (after the failure of the connection that was terminated).
    let code: unknown
    for (let ts = 2; code !== '25006' && ts < 10; ts++) {
      code = await store.append([ev('demoted', ts)]).then(
        () => 'stored',
        (error: unknown) => (error as { code?: unknown }).code,
      )
    }
    assert.equal(code, '25006')
    await admin`ALTER ROLE ${admin(role)} RESET default_transaction_read_only`
    // The next write goes through a connection made afresh.
    assert.deepEqual(await store.append([ev('demoted', 20)]), ['ok'])
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

  it('should read what the primary store wrote through a read-only store that waited for its schema, and take no writes', async () => {
    const url = freshUrl()
    // Opened first: it waits until the other store has made the schema.
    const replica = createPostgresStore({ url, readOnly: true })
    const opening = replica.init()
    const store = createPostgresStore({ url, newLayout: { blockEvents: 8 } })
    await store.init()
    await opening
    try {
      const events = Array.from({ length: 20 }, (_, i) => ({
        robot: 'replica-1',
        x: i,
        y: i % 3,
        timestamp: 1000 + i,
      }))
      await store.append(events)
      assert.deepEqual(
        await replica.getRobot('replica-1'),
        await store.getRobot('replica-1'),
      )
      const pages = []
      for await (const page of replica.readEvents('replica-1')) pages.push(page)
      assert.deepEqual(
        pages.flatMap((p) => p.ts),
        events.map((e) => e.timestamp),
      )
      assert.equal(
        await replica.odometer('replica-1', { start: 1005, end: 1010 }),
        await store.odometer('replica-1', { start: 1005, end: 1010 }),
      )
      await assert.rejects(replica.append(events), /only reads/)
      await assert.rejects(replica.deleteRobot('replica-1'), /only reads/)
      await assert.rejects(
        replica.watch({ committed() {}, missed() {} }),
        /only reads/,
      )
    } finally {
      await store.close()
      await replica.close()
    }
  })

  it("should pack each robot's events into blocks of 64, keep fewer than 64 in its tail, and read them back exactly", async (t) => {
    const url = freshUrl()
    const store = createPostgresStore({ url })
    t.after(() => store.close())
    await store.init()
    const models = new Map<string, RobotModel>()
    const events: TelemetryEvent[] = []
    for (let i = 0; i < 1300; i++) {
      const robot = i % 4 === 0 ? 'q' : 'p'
      events.push(ev(robot, i * 100, Number((i * 0.137).toFixed(3)), i % 7))
    }
    for (let b = 0; b < events.length; b += 37) {
      const batch = events.slice(b, b + 37)
      await store.append(batch)
      for (const e of batch) {
        if (!models.has(e.robot)) models.set(e.robot, new RobotModel(e.robot))
        models.get(e.robot)!.apply(e.x, e.y, e.timestamp)
      }
    }
    const sql = postgres(url.replace(/\?.*/, ''), {
      max: 1,
      onnotice: () => {},
    })
    t.after(() => sql.end())
    const schema = new URL(url).searchParams.get('schema')!
    const tables = await tailsAndBlocks(sql, schema)
    // p has 975 events, q 325, each cut at its own block ends.
    assert.deepEqual(tables, [
      expectedLayout('p', 975),
      expectedLayout('q', 325),
    ])
    assert.ok(tables.every((r) => r.tail < 64))
    for (const model of models.values()) {
      const read: { timestamp: number; x: number; y: number }[] = []
      for await (const page of store.readEvents(model.name, {
        pageSize: 100,
      })) {
        page.ts.forEach((timestamp, i) =>
          read.push({ timestamp, x: page.x[i]!, y: page.y[i]! }),
        )
      }
      assert.deepEqual(
        read,
        model.events.map(({ timestamp, x, y }) => ({ timestamp, x, y })),
      )
      for (const [start, end] of [
        [0, 1e12],
        [250, 77_777],
        [25_600, 25_600],
        [30_000, 129_900],
      ] as const) {
        assert.equal(
          await store.odometer(model.name, { start, end }),
          model.odometer(start, end),
          `${model.name} [${start}, ${end}]`,
        )
      }
    }
  })

  // fixtures/schema-v3.sql: pg_dump of a schema written by the store of
  // schema version 3 (every event a row of `events`) at commit 4ffc133;
  // fixtures/schema-v4.sql: by the store of schema version 4 (blocks, and
  // the newest events a row each in `recent`) at commit d0c69fd. Both from
  // fixtureEvents(), sent 30 a batch with a resend in each; in v4 a block
  // of each robot spans the fixture's day-long gap.
  for (const { version, spanned } of [
    { version: 3, spanned: 0 },
    { version: 4, spanned: DAY + 62_208 },
  ]) {
    it(`should read back exactly every event and odometer of a database written by schema version ${version}`, async (t) => {
      const url = freshUrl()
      const schema = new URL(url).searchParams.get('schema')!
      const dump = readFileSync(
        fileURLToPath(
          new URL(
            `../../../../src/store/postgres/fixtures/schema-v${version}.sql`,
            import.meta.url,
          ),
        ),
        'utf8',
      ).replaceAll(`fixture_v${version}`, schema)
      const sql = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => {} })
      t.after(() => sql.end())
      await sql.unsafe(dump)
      const store = createPostgresStore({ url })
      t.after(() => store.close())
      await store.init()
      await assertFixtureStored(store)
      const expected = fixtureEvents()
      // Intervals across the day-long gap after each robot's event 399,
      // which a block of schema version 4 spans: ending in the gap, and
      // starting in it.
      for (const robot of FIXTURE_ROBOTS) {
        const events = expected.filter((e) => e.robot === robot)
        const model = new RobotModel(robot, events)
        const at = (k: number) => events[k]!.timestamp
        for (const [start, end] of [
          [at(0) + 10_000, at(0) + 300_000],
          [at(0) + 500_000, at(0) + 1e9],
          [at(380) - 1, at(399) + 500],
          [at(399) + 500, at(450)],
          [at(390), at(420)],
        ] as const) {
          assert.equal(
            await store.odometer(robot, { start, end }),
            model.odometer(start, end),
            `${robot} [${start}, ${end}]`,
          )
        }
      }
      // Migrated in place: 700 events each, cut at each robot's block
      // ends; `recent` is gone, and the blocks packed by the migration
      // span less than a day (the gap cuts one).
      const tables = await tailsAndBlocks(sql, schema)
      assert.deepEqual(
        tables.map(({ robot, packed, tail }) => ({ robot, packed, tail })),
        FIXTURE_ROBOTS.map((r) => {
          const { packed, tail } = expectedLayout(r, FIXTURE_EVENTS_PER_ROBOT)
          return { robot: r, packed, tail }
        }),
      )
      const [layout] = await sql<{ recent: string | null; span: number }[]>`
        SELECT to_regclass(${`${schema}.recent`}) AS recent,
               block_span::float8 AS span
        FROM ${sql(schema)}.layout`
      assert.deepEqual({ ...layout }, { recent: null, span: spanned })
      const [longest] = await sql<{ span: number }[]>`
        SELECT max(last_ts - first_ts)::float8 AS span
        FROM ${sql(schema)}.blocks`
      if (spanned === 0) assert.ok(longest!.span < DAY, `${longest!.span}`)
      else assert.equal(longest!.span, spanned)
      // And it goes on: a resend is a duplicate, also of an event in a
      // block or in the tail; another position at a packed timestamp a
      // conflict; an older event at no stored timestamp stale.
      const last = expected[FIXTURE_EVENTS_PER_ROBOT - 1]!
      const packed = expected[5]!
      const beforeGap = FIXTURE_ROBOTS.map(
        (_, r) => expected[r * FIXTURE_EVENTS_PER_ROBOT + 399]!,
      )
      const afterGap = expected[401]!
      assert.deepEqual(
        await store.append([
          last,
          packed,
          ...beforeGap,
          afterGap,
          { ...packed, x: packed.x + 1 },
          { ...afterGap, y: afterGap.y + 1 },
          { ...packed, timestamp: packed.timestamp + 1 },
        ]),
        [
          'dup',
          'dup',
          'dup',
          'dup',
          'dup',
          'dup',
          'conflict',
          'conflict',
          'stale',
        ],
      )
    })
  }

  it('should keep every event a store acknowledged after a robot was deleted while other stores wrote it', async (t) => {
    const url = freshUrl()
    const writers = Array.from({ length: 3 }, () =>
      createPostgresStore({ url, maxConnections: 2 }),
    )
    const deleter = createPostgresStore({ url, maxConnections: 1 })
    t.after(() => Promise.all([...writers, deleter].map((s) => s.close())))
    await Promise.all([...writers, deleter].map((s) => s.init()))
    // Each writer sends its own timestamps of robot R (w, w + 3, …), one
    // event a batch, while the deleter deletes R after the 40th answer.
    const answered: { ts: number; outcome: string; afterDelete: boolean }[] = []
    let deleted = false
    let deletion: Promise<boolean> | undefined
    await Promise.all(
      writers.map(async (store, w) => {
        for (let k = 0; k < 60; k++) {
          const ts = 1000 + k * 3 + w
          const [outcome] = await store.append([ev('R', ts, k, w)])
          answered.push({ ts, outcome: outcome!, afterDelete: deleted })
          if (answered.length === 40) {
            deletion = deleter.deleteRobot('R').then((d) => {
              deleted = true
              return d
            })
          }
        }
      }),
    )
    assert.equal(await deletion, true)
    const stored: number[] = []
    for await (const page of deleter.readEvents('R')) stored.push(...page.ts)
    const ok = new Set(
      answered.filter((a) => a.outcome === 'ok').map((a) => a.ts),
    )
    // Nothing stored that was not acknowledged; everything acknowledged
    // once the delete had ended is stored.
    for (const ts of stored) assert.ok(ok.has(ts), `${ts} was acknowledged`)
    for (const a of answered) {
      if (a.afterDelete && a.outcome === 'ok') {
        assert.ok(
          stored.includes(a.ts),
          `${a.ts}, acknowledged after the delete, is stored`,
        )
      }
    }
    assert.ok(stored.length < ok.size, 'the delete removed events')
    // The robot's figures are those of what is stored: it started again.
    const robot = await deleter.getRobot('R')
    assert.equal(robot?.eventCount, stored.length)
    assert.equal(robot?.firstTimestamp, stored[0])
    assert.equal(await deleter.countRobots(), 1)
  })

  it('should stop growing on disk under a steady load with retention passes', async (t) => {
    const url = freshUrl()
    const store = createPostgresStore({ url })
    t.after(() => store.close())
    await store.init()
    const sql = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => {} })
    t.after(() => sql.end())
    const schema = new URL(url).searchParams.get('schema')!
    // Every table of the store, with its indexes and TOAST.
    const bytes = async () => {
      const [row] = await sql<{ bytes: number }[]>`
        SELECT sum(pg_total_relation_size(c.oid))::float8 AS bytes
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ${schema} AND c.relkind = 'r'`
      return row!.bytes
    }
    const ROBOTS = 8
    const PER_DAY = 1280
    // Each round is a day of 8 robots; each pass keeps two days.
    const sizes: number[] = []
    let removed = 0
    for (let day = 0; day < 10; day++) {
      for (let k = 0; k < PER_DAY; k += 64) {
        const batch: TelemetryEvent[] = []
        for (let j = k; j < k + 64; j++) {
          for (let r = 0; r < ROBOTS; r++) {
            const ts = day * DAY + j * 60_000 + r
            batch.push(ev(`steady ${r}`, ts, Number((j * 0.37).toFixed(3)), r))
          }
        }
        await store.append(batch)
      }
      removed += (await store.removeBefore((day - 1) * DAY)).events
      sizes.push(await bytes())
    }
    // A day's events alone take more than the slack: without the passes the
    // size would grow past it every round.
    const dayOfEvents = ROBOTS * PER_DAY
    const slack = sizes[2]! / 10
    assert.ok(sizes[9]! - sizes[2]! <= slack, `sizes ${sizes.join(', ')}`)
    assert.ok(dayOfEvents * 4 > slack, `a day's ${dayOfEvents} events`)
    // Eight days, but for the blocks that end on the day after theirs.
    assert.ok(
      removed > 7 * dayOfEvents && removed <= 8 * dayOfEvents,
      `${removed} events removed`,
    )
  })
})

describe('postgres block ends', () => {
  it("should spread a fleet's block ends over the phases, each robot's the same every time", () => {
    const phases = Array.from({ length: 1000 }, (_, i) =>
      blockPhase(`robot-${i}`, 64),
    )
    assert.ok(phases.every((p) => Number.isInteger(p) && p >= 0 && p < 64))
    // 1,000 robots over 64 phases: every phase taken, none by more than 40.
    const perPhase = new Map<number, number>()
    for (const p of phases) perPhase.set(p, (perPhase.get(p) ?? 0) + 1)
    assert.equal(perPhase.size, 64)
    assert.ok(Math.max(...perPhase.values()) <= 40, `${[...perPhase.values()]}`)
    assert.equal(blockPhase('robot-7', 64), phases[7])
    assert.notEqual(blockPhase('Robot', 64), blockPhase('robot', 64))
  })

  it('should cut blocks at the phase, then every 64 events', () => {
    const phase = 10
    assert.deepEqual(
      [0, 9, 10, 73, 74, 200].map((n) => packedCount(n, phase, 64)),
      [0, 0, 10, 10, 74, 138],
    )
    assert.deepEqual(
      [0, 63, 64, 130].map((n) => packedCount(n, 0, 64)),
      [0, 0, 64, 128],
    )
    // A robot's events 0 to 199, packed from 0 to its third block end.
    const robot = 'robot-7'
    const p = blockPhase(robot, 64)
    const n = 200
    const events = {
      ts: Array.from({ length: n }, (_, i) => 1000 + i),
      x: Array.from({ length: n }, (_, i) => i),
      y: Array.from({ length: n }, () => 0),
      total: Array.from({ length: n }, (_, i) => i),
      carry: Array.from({ length: n }, () => 0),
    }
    const upTo = packedCount(n, p, 64)
    const layout = { blockEvents: 64, partitionMs: DAY }
    const blocks = packBlocks(robot, events, 0, upTo, layout)
    const sizes = blocks.map((b) => b.count)
    const full = Array<number>((upTo - p) / 64).fill(64)
    assert.deepEqual(sizes, p > 0 ? [p, ...full] : full)
    assert.equal(
      sizes.reduce((a, b) => a + b, 0),
      upTo,
    )
    assert.deepEqual(
      blocks.map((b) => [b.first_ts, b.odo]),
      sizes.map((_, k) => {
        const first = sizes.slice(0, k).reduce((a, b) => a + b, 0)
        return [1000 + first, first]
      }),
    )
    // Going on from a block end cuts at the next ones.
    const rest = packBlocks(
      robot,
      {
        ts: events.ts.slice(upTo - 64),
        x: events.x.slice(upTo - 64),
        y: events.y.slice(upTo - 64),
        total: events.total.slice(upTo - 64),
        carry: events.carry.slice(upTo - 64),
      },
      upTo - 64,
      upTo,
      layout,
    )
    assert.deepEqual(
      rest.map((b) => b.count),
      [64],
    )
  })

  it('should cut a block wherever it would span a partition or more, with the running odometer at each cut', () => {
    // Robot 'gap' (its phase read below) sends an event a second, with a
    // day's pause after its 20th: the block around the pause is cut in
    // two, both of which span less than a day.
    const robot = 'gap'
    const p = blockPhase(robot, 64)
    const n = p + 64
    const ts = Array.from(
      { length: n },
      (_, i) => 1000 * i + (i >= p + 20 ? DAY : 0),
    )
    const x = ts.map((_, i) => i)
    const events = {
      ts,
      x,
      y: x.map(() => 0),
      total: x.map((_, i) => i * 10),
      carry: x.map(() => 0),
    }
    const blocks = packBlocks(robot, events, 0, n, {
      blockEvents: 64,
      partitionMs: DAY,
    })
    assert.deepEqual(
      blocks.map((b) => [b.count, b.first_ts, b.odo]),
      [
        ...(p > 0 ? [[p, 0, 0]] : []),
        [20, 1000 * p, 10 * p],
        [44, 1000 * (p + 20) + DAY, 10 * (p + 20)],
      ],
    )
    assert.ok(blocks.every((b) => b.last_ts - b.first_ts < DAY))
  })

  it('should read back a tail of chunks appended one by one, to the bit', () => {
    // Chunks of 1 to 5 events, some positions to the millimetre, some
    // full doubles, first offsets from 0 to well past a byte's varint.
    const events = {
      ts: Array.from({ length: 40 }, (_, i) => 5_000 + i * i * 977),
      x: Array.from({ length: 40 }, (_, i) =>
        i % 3 === 0 ? Math.PI * i : Number((i * 0.137).toFixed(3)),
      ),
      y: Array.from({ length: 40 }, (_, i) => (i % 5 === 0 ? -0 : -i / 7)),
    }
    const parts: Buffer[] = []
    for (
      let from = 0, size = 1;
      from < 40;
      from += size, size = (size % 5) + 1
    ) {
      parts.push(encodeChunk(events, from, Math.min(40, from + size), 5_000))
    }
    const read = decodeTail({
      tail: Buffer.concat(parts),
      tail_ts: 5_000,
      tail_odo: 0,
      tail_carry: 0,
    })
    assert.deepEqual(read.ts, events.ts)
    read.x.forEach((x, i) => assert.ok(Object.is(x, events.x[i]), `x ${i}`))
    read.y.forEach((y, i) => assert.ok(Object.is(y, events.y[i]), `y ${i}`))
    assert.deepEqual(
      decodeTail({ tail: null, tail_ts: null, tail_odo: 0, tail_carry: 0 }),
      { ts: [], x: [], y: [] },
    )
  })
})
