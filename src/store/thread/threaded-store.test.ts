import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import Database from 'better-sqlite3'
import { TelemetryError } from '../../errors.ts'
import { storeTests } from '../store-tests.ts'
import { createThreadedStore, READ_AHEAD_PAGES } from './threaded-store.ts'

const dir = mkdtempSync(join(tmpdir(), 'threaded-store-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const fresh = () => ({ path: join(dir, `store-${++files}`, 'telemetry.db') })

storeTests('sqlite on a store thread', () => createThreadedStore(fresh()), {
  reopen: (store) =>
    createThreadedStore({ path: store.url.slice('sqlite:'.length) }),
})

describe('threaded store', () => {
  it('should wait out another connection that holds the write lock and commits, instead of failing the batch', async (t) => {
    const options = { ...fresh(), busyTimeoutMs: 5000 }
    const store = createThreadedStore(options)
    t.after(() => store.close())
    await store.init()
    await store.append([{ robot: 'r', timestamp: 1, x: 0, y: 0 }])
    // Another writer (as a RESTART checkpoint or a backup would) holds the
    // lock and commits while the batch waits: a batch that had read
    // before asking for the lock would find its snapshot stale and fail
    // with SQLITE_BUSY at once.
    const other = new Database(options.path)
    other.exec('CREATE TABLE IF NOT EXISTS other_writer (n INTEGER)')
    other.exec('BEGIN IMMEDIATE')
    // A robot the store has not seen: the batch looks it up first.
    const appended = store.append([{ robot: 's', timestamp: 2, x: 1, y: 0 }])
    await new Promise((resolve) => setTimeout(resolve, 300))
    other.exec('INSERT INTO other_writer VALUES (1)')
    other.exec('COMMIT')
    other.close()
    assert.deepEqual(await appended, ['ok'])
    assert.equal((await store.getRobot('s'))?.eventCount, 1)
  })

  it('should tell a watch of every commit that ends after it resolves, one sent while nobody watched too', async (t) => {
    // Nobody watches: an append does not ask for odometers. One in flight
    // when a watch starts must end before the watch resolves, or it ends
    // after it untold.
    const options = { ...fresh(), busyTimeoutMs: 5000 }
    const store = createThreadedStore(options)
    t.after(() => store.close())
    await store.init()
    const other = new Database(options.path)
    other.exec('BEGIN IMMEDIATE')
    const order: string[] = []
    const told: string[] = []
    const a = store
      .append([{ robot: 'a', timestamp: 1, x: 0, y: 0 }])
      .then(() => order.push('a committed'))
    await new Promise((resolve) => setTimeout(resolve, 100))
    const watched = store
      .watch({
        committed: (events) => told.push(...events.map((e) => e.robot)),
        missed: () => told.push('missed'),
      })
      .then(() => order.push('watching'))
    await new Promise((resolve) => setTimeout(resolve, 300))
    other.exec('COMMIT')
    other.close()
    await Promise.all([a, watched])
    await store.append([{ robot: 'b', timestamp: 1, x: 0, y: 0 }])
    assert.deepStrictEqual(order, ['a committed', 'watching'])
    assert.deepStrictEqual(told, ['b'])
  })

  it('should let a reader stop early and keep serving afterwards', async () => {
    const store = createThreadedStore(fresh())
    await store.init()
    const events = Array.from({ length: 5000 }, (_, i) => ({
      robot: 'r',
      timestamp: i,
      x: i,
      y: 0,
    }))
    await store.append(events)
    let seen = 0
    for await (const page of store.readEvents('r', { pageSize: 10 })) {
      seen += page.ts.length
      if (seen >= 30) break
    }
    assert.equal(seen, 30)
    // A read that stopped early left the thread able to answer, and a
    // full read streams past the read-ahead window.
    let total = 0
    let pages = 0
    for await (const page of store.readEvents('r', { pageSize: 100 })) {
      total += page.ts.length
      pages++
    }
    assert.equal(total, 5000)
    assert.ok(pages > READ_AHEAD_PAGES)
    assert.equal(await store.odometer('r'), 4999)
    await store.close()
  })

  it('should store the batches queued before a deletion as the old robot, and those after it as a new one', async () => {
    const store = createThreadedStore(fresh())
    await store.init()
    try {
      const e = (timestamp: number, x: number) => ({
        robot: 'r',
        timestamp,
        x,
        y: 0,
      })
      await store.append([e(10, 0), e(20, 10)])
      // Sent one after the other without waiting: the thread takes them
      // in this order.
      const before = store.append([e(30, 20), e(40, 30)])
      const deleted = store.deleteRobot('r')
      const after = store.append([e(5, 0), e(30, 20), e(30, 99), e(35, 25)])
      assert.deepStrictEqual(await before, ['ok', 'ok'])
      assert.equal(await deleted, true)
      // Older than the deleted robot's latest, and at its timestamps with
      // other positions: a new robot takes them all.
      assert.deepStrictEqual(await after, ['ok', 'ok', 'conflict', 'ok'])
      const robot = await store.getRobot('r')
      assert.deepStrictEqual(
        [robot?.eventCount, robot?.firstTimestamp, robot?.odometer],
        [3, 5, 25],
      )
      const ts: number[] = []
      for await (const page of store.readEvents('r')) ts.push(...page.ts)
      assert.deepStrictEqual(ts, [5, 30, 35])
      assert.equal(await store.countRobots(), 1)
    } finally {
      await store.close()
    }
  })

  it('should store a batch sent during a retention pass before the pass ends', async () => {
    const store = createThreadedStore({
      ...fresh(),
      blockEvents: 4,
      maintenanceEvents: 4,
      blocksPerRetention: 1,
    })
    await store.init()
    try {
      const old = Array.from({ length: 40 }, (_, i) => ({
        robot: 'old',
        timestamp: i,
        x: i,
        y: 0,
      }))
      await store.append(old)
      const order: string[] = []
      // A chunk a request, each sent once the last is answered: the
      // batch is queued behind the first chunk, and before the second.
      const pass = store.removeBefore(1000).then((removed) => {
        order.push('pass')
        return removed
      })
      const batch = store
        .append([{ robot: 'new', timestamp: 1, x: 0, y: 0 }])
        .then((outcomes) => {
          order.push('batch')
          return outcomes
        })
      assert.deepStrictEqual(await batch, ['ok'])
      assert.deepStrictEqual(await pass, { events: 36, units: 9 })
      assert.deepStrictEqual(order, ['batch', 'pass'])
      assert.equal((await store.getRobot('old'))?.eventCount, 40)
    } finally {
      await store.close()
    }
  })

  it('should carry a failed init across the thread, with its code', async () => {
    // A folder cannot be opened as a database file.
    const store = createThreadedStore({ path: dir })
    await assert.rejects(store.init(), (error: Error & { code?: string }) => {
      assert.match(error.code ?? '', /^SQLITE_/)
      return true
    })
    await store.close()
  })

  it('should answer UNAVAILABLE once closed', async () => {
    const store = createThreadedStore(fresh())
    await store.init()
    await store.close()
    await store.close()
    await assert.rejects(
      store.append([{ robot: 'r', timestamp: 1, x: 0, y: 0 }]),
      (error) =>
        error instanceof TelemetryError && error.code === 'UNAVAILABLE',
    )
  })
})
