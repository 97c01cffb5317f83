import assert from 'node:assert/strict'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import type { Store } from '../store.ts'
import { storeTests } from '../store-tests.ts'
import { assertFixtureStored } from '../fixture-tests.ts'
import { createSqliteStore } from './sqlite-store.ts'
import { readLogRow } from './sqlite-log-codec.ts'
import { SQLITE_MIGRATIONS } from './sqlite-migrations.ts'
import { checkpointRound } from './sqlite-checkpoint.ts'
import { FIXTURE_EVENTS_PER_ROBOT, fixtureEvents } from './layout-fixture.ts'
import { RobotModel } from '../../../test/support/index.ts'

const dir = mkdtempSync(join(tmpdir(), 'sqlite-store-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const freshFile = () => join(dir, `nested-${++files}`, 'telemetry.db')

/** `fixtures/NAME`, a store written by an earlier layout. */
function fixturePath(name: string): string {
  return fileURLToPath(
    new URL(`../../../../src/store/sqlite/fixtures/${name}`, import.meta.url),
  )
}

/** A fresh copy of `fixtures/NAME`; its path. */
function copyFixture(name: string): string {
  const path = freshFile()
  mkdirSync(dirname(path), { recursive: true })
  copyFileSync(fixturePath(name), path)
  return path
}

/** The file of a store made here. */
const pathOf = (store: Store) => store.url.slice('sqlite:'.length)
// A crash leaves the store unclosed, as a killed process would: the next
// start replays its log.
const crash = async () => {}

storeTests('sqlite :memory:', () => createSqliteStore({ path: ':memory:' }))
storeTests('sqlite file', () => createSqliteStore({ path: freshFile() }), {
  reopen: (store) => createSqliteStore({ path: pathOf(store) }),
  crash,
})
// Tiny blocks and a short log window: every read and every rule crosses
// blocks, tails and packed partial tails; and a retention pass, chunks.
const TINY = {
  blockEvents: 3,
  maintenanceEvents: 2,
  logWindow: 7,
  blocksPerRetention: 2,
}
storeTests(
  'sqlite file, tiny blocks',
  () => createSqliteStore({ path: freshFile(), ...TINY }),
  {
    reopen: (store) => createSqliteStore({ path: pathOf(store), ...TINY }),
    crash,
  },
)

/** The rows of a query, read on a connection of its own. */
function rows(path: string, query: string): unknown[] {
  const db = new Database(path, { readonly: true })
  try {
    return db.prepare(query).all()
  } finally {
    db.close()
  }
}

/** How many events of robot `id` the log holds, read on a connection of its own. */
function logEventsOf(path: string, id: number): number {
  let count = 0
  for (const row of rows(path, 'SELECT data FROM log') as {
    data: Uint8Array
  }[]) {
    readLogRow(row.data, (robotId) => {
      if (robotId === id) count++
    })
  }
  return count
}

/** This process's open files that are the database `path` or its log. */
function openFiles(path: string): string[] {
  return readdirSync('/proc/self/fd')
    .map((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`)
      } catch {
        return '' // closed meanwhile
      }
    })
    .filter((target) => target.startsWith(path))
}

describe('sqlite store', () => {
  it('should create the database file and its folder when missing', async () => {
    const path = freshFile()
    assert.equal(existsSync(path), false)
    const store = createSqliteStore({ path })
    await store.init()
    await store.close()
    assert.equal(existsSync(path), true)
  })

  it('should keep every committed event and the rules across a reopen', async () => {
    const path = freshFile()
    const first = createSqliteStore({ path })
    await first.init()
    await first.append([
      { robot: 'r', timestamp: 1, x: 0, y: 0 },
      { robot: 'r', timestamp: 2, x: 3, y: 4 },
    ])
    const robotBefore = await first.getRobot('r')
    await new Promise((resolve) => setTimeout(resolve, 20))
    await first.close()

    const second = createSqliteStore({ path })
    await second.init()
    const robotAfterReopen = await second.getRobot('r')
    assert.deepStrictEqual(
      await second.append([
        { robot: 'r', timestamp: 2, x: 3, y: 4 },
        { robot: 'r', timestamp: 1, x: 9, y: 9 },
        { robot: 'r', timestamp: 0, x: 0, y: 0 },
        { robot: 'r', timestamp: 3, x: 3, y: 5 },
        { robot: 'new', timestamp: 1, x: 0, y: 0 },
      ]),
      ['dup', 'conflict', 'stale', 'ok', 'ok'],
    )
    assert.equal(await second.odometer('r'), 6)
    // Times are those of the first and the latest commits, not of the close
    // that packed the events.
    assert.deepStrictEqual(
      { created: robotBefore?.createdMs, updated: robotBefore?.updatedMs },
      {
        created: (await second.getRobot('r'))?.createdMs,
        updated: robotAfterReopen?.updatedMs,
      },
    )
    assert.deepStrictEqual(
      (await second.listRobots()).map((r) => [r.name, r.eventCount]),
      [
        ['new', 1],
        ['r', 3],
      ],
    )
    await second.close()
  })

  it('should apply the migrations once and record the schema version', async () => {
    const path = freshFile()
    for (let i = 0; i < 2; i++) {
      const store = createSqliteStore({ path })
      await store.init()
      await store.close()
    }
    const db = new Database(path, { readonly: true })
    assert.equal(
      db.pragma('user_version', { simple: true }),
      SQLITE_MIGRATIONS.length,
    )
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal')
    db.close()
  })

  it('should store nothing and keep its state when a commit fails', async () => {
    const path = freshFile()
    const store = createSqliteStore({ path, busyTimeoutMs: 50 })
    await store.init()
    await store.append([{ robot: 'r', timestamp: 1, x: 0, y: 0 }])

    // Another connection holds the write lock: our commit cannot happen.
    const other = new Database(path)
    other.exec('BEGIN IMMEDIATE')
    await assert.rejects(
      store.append([
        { robot: 'r', timestamp: 2, x: 1, y: 0 },
        { robot: 'other', timestamp: 1, x: 0, y: 0 },
      ]),
      /locked|busy/i,
    )
    other.exec('ROLLBACK')
    other.close()

    assert.equal((await store.getRobot('r'))?.eventCount, 1)
    assert.equal(await store.getRobot('other'), undefined)
    assert.equal(await store.countRobots(), 1, 'the failed commit took no id')
    // The state in memory did not move: the same events are new again.
    assert.deepStrictEqual(
      await store.append([
        { robot: 'r', timestamp: 2, x: 1, y: 0 },
        { robot: 'other', timestamp: 1, x: 0, y: 0 },
      ]),
      ['ok', 'ok'],
    )
    assert.equal(await store.odometer('r'), 1)
    assert.equal(await store.countRobots(), 2)
    await store.close()
  })

  it('should checkpoint past the size limit so that the write-ahead log starts over, and fold it in at close', async () => {
    const path = freshFile()
    const wal = `${path}-wal`
    const restartBytes = 256 * 1024
    // The store's own checkpointer waits an hour: the test runs the rounds.
    const store = createSqliteStore({
      path,
      checkpointIntervalMs: 3_600_000,
      walRestartBytes: restartBytes,
    })
    await store.init()
    const checkpointer = new Database(path, { timeout: 1000 })
    // Bytes 12-15 of the log's header count the times it started over
    // (https://www.sqlite.org/fileformat2.html#walformat).
    const restarts = () => readFileSync(wal).readUInt32BE(12)
    let k = 0
    const commit = () => {
      const batch = []
      for (let i = 0; i < 200; i++, k++) {
        batch.push({ robot: `r${k % 50}`, timestamp: k, x: k, y: 0 })
      }
      return store.append(batch)
    }
    try {
      await commit()
      assert.ok(statSync(wal).size <= restartBytes)
      assert.equal(checkpointRound(checkpointer, wal, restartBytes), 'passive')
      while (statSync(wal).size <= restartBytes) await commit()
      const size = statSync(wal).size
      const before = restarts()
      assert.equal(checkpointRound(checkpointer, wal, restartBytes), 'restart')
      await commit()
      assert.equal(restarts(), before + 1, 'the log started over')
      assert.equal(statSync(wal).size, size, 'and is reused from its start')
    } finally {
      checkpointer.close()
      await store.close()
    }
    assert.equal(existsSync(wal), false, 'close folds the log in')
  })

  it('should let go of its file when it cannot open', async () => {
    const path = freshFile()
    mkdirSync(dirname(path), { recursive: true })
    // A file whose tables are not the store's: the first migration fails.
    const foreign = new Database(path)
    foreign.exec('CREATE TABLE robots (anything)')
    foreign.close()
    const store = createSqliteStore({ path })
    await assert.rejects(store.init(), /already exists/)
    // Neither its connection nor its checkpointer's keeps the file open.
    assert.deepEqual(openFiles(path), [])
    await store.close()
  })

  it('should refuse to work once closed', async () => {
    const store = createSqliteStore({ path: ':memory:' })
    await store.init()
    await store.close()
    await store.close()
    await assert.rejects(
      store.append([{ robot: 'r', timestamp: 1, x: 0, y: 0 }]),
      /not open/,
    )
  })
})

describe('sqlite store memory (issue 10)', () => {
  /** Events in the log, read on a connection of its own. */
  const logEvents = (path: string) => {
    const db = new Database(path, { readonly: true })
    try {
      return db
        .prepare('SELECT coalesce(sum(end_seq - seq), 0) FROM log')
        .pluck()
        .get() as number
    } finally {
      db.close()
    }
  }

  it('should keep the log within its window when every event is a new robot', async () => {
    const path = freshFile()
    const options = {
      path,
      logWindow: 100,
      maintenanceEvents: 10,
      blocksPerMaintenance: 1,
    }
    const store = createSqliteStore(options)
    await store.init()
    try {
      for (let b = 0; b < 100; b++) {
        const batch = Array.from({ length: 50 }, (_, i) => ({
          robot: `r${b * 50 + i}`,
          timestamp: 1,
          x: i,
          y: 0,
        }))
        await store.append(batch)
      }
      // One block a maintenance would leave 5,000 - 100 events in the log.
      // The window, the events of the batch since the last maintenance, and
      // the row (a batch) that straddles the window's start.
      assert.ok(
        logEvents(path) <= 100 + 50 + 50,
        `events in the log ${logEvents(path)}`,
      )
      assert.ok((await store.robotsInMemory!()) <= 100 + 50)
      assert.equal(await store.countRobots(), 5000)
      assert.equal((await store.getRobot('r0'))?.lastX, 0)
      assert.equal((await store.getRobot('r4999'))?.lastX, 49)
    } finally {
      await store.close()
    }
  })

  it('should hold no robot after a clean start, and only the robots of the log after that', async () => {
    const path = freshFile()
    const first = createSqliteStore({ path })
    await first.init()
    await first.append([
      { robot: 'a', timestamp: 1, x: 0, y: 0 },
      { robot: 'b', timestamp: 1, x: 0, y: 0 },
    ])
    assert.equal(await first.robotsInMemory!(), 2)
    await first.close()

    const second = createSqliteStore({ path })
    await second.init()
    try {
      assert.equal(await second.robotsInMemory!(), 0)
      // Reads and a batch of duplicates load a robot only for their time.
      assert.equal((await second.getRobot('a'))?.eventCount, 1)
      assert.equal((await second.listRobots()).length, 2)
      assert.equal(await second.odometer('a'), 0)
      assert.deepStrictEqual(
        await second.append([{ robot: 'a', timestamp: 1, x: 0, y: 0 }]),
        ['dup'],
      )
      assert.equal(await second.robotsInMemory!(), 0)
      // A stored event gives the robot a tail: it stays until packed.
      assert.deepStrictEqual(
        await second.append([{ robot: 'a', timestamp: 2, x: 3, y: 4 }]),
        ['ok'],
      )
      assert.equal(await second.robotsInMemory!(), 1)
      assert.equal(await second.odometer('a'), 5)
    } finally {
      await second.close()
    }
  })
})

describe('sqlite store written by an earlier layout', () => {
  it('should read back exactly every event and odometer of a store whose blocks hold raw doubles', async () => {
    // fixtures/blocks-v1.db was written by the store before codec 2, from
    // fixtureEvents(), and closed cleanly: every event is in a block.
    const path = copyFixture('blocks-v1.db')
    const store = createSqliteStore({ path })
    await store.init()
    await assertFixtureStored(store)
    await store.close()
    // Migrated in place: every block in codec 2, free pages given back.
    const db = new Database(path, { readonly: true })
    const legacy = db
      .prepare(`SELECT count(*) FROM blocks WHERE substr(data, 1, 1) = x'00'`)
      .pluck()
      .get()
    const autoVacuum = db.pragma('auto_vacuum', { simple: true })
    const version = db.pragma('user_version', { simple: true })
    db.close()
    assert.equal(legacy, 0, 'no block of codec 1 is left')
    assert.equal(version, SQLITE_MIGRATIONS.length, 'the schema version')
    assert.equal(autoVacuum, 2, 'incremental auto-vacuum')
    const [before, after] = [
      statSync(fixturePath('blocks-v1.db')).size,
      statSync(path).size,
    ]
    assert.ok(after < before, `${before} bytes before, ${after} after`)
  })
})

describe('sqlite store on disk', () => {
  it('should hold a few bytes an event after a clean close, whatever the log grew to', async () => {
    // 100 robots driving at 10 Hz, positions to the millimetre, in batches
    // of 1,000: the log holds up to its window before it is packed.
    const path = freshFile()
    const store = createSqliteStore({ path })
    await store.init()
    const ROBOTS = 100
    const STEPS = 1000
    const heading = Array.from({ length: ROBOTS }, (_, r) => r * 0.7)
    const at = Array.from({ length: ROBOTS }, (_, r) => [r, 2 * r])
    let batch = []
    for (let k = 0; k < STEPS; k++) {
      for (let r = 0; r < ROBOTS; r++) {
        heading[r]! += Math.sin(k / 30 + r) * 0.05
        const speed = k % 200 < 40 ? 0 : 1.5
        const p = at[r]!
        p[0]! += Math.cos(heading[r]!) * speed * 0.1
        p[1]! += Math.sin(heading[r]!) * speed * 0.1
        batch.push({
          robot: `disk-${r}`,
          timestamp: 1_700_000_000_000 + k * 100,
          x: Number(p[0]!.toFixed(3)),
          y: Number(p[1]!.toFixed(3)),
        })
      }
      if (batch.length >= 1000) {
        await store.append(batch)
        batch = []
      }
    }
    await store.close()
    const db = new Database(path, { readonly: true })
    const free = db.pragma('freelist_count', { simple: true })
    // The index a retention pass finds old blocks by: one entry a block.
    const index = db
      .prepare(`SELECT sum(pgsize) FROM dbstat WHERE name = ?`)
      .pluck()
      .get('blocks_by_last_ts') as number
    db.close()
    assert.equal(free, 0, 'no free page is left in the file')
    const perEvent = statSync(path).size / (ROBOTS * STEPS)
    assert.ok(perEvent < 8, `${perEvent.toFixed(2)} bytes an event`)
    const indexPerEvent = index / (ROBOTS * STEPS)
    assert.ok(
      indexPerEvent < 0.2,
      `the index on last_ts: ${indexPerEvent.toFixed(3)} bytes an event`,
    )
  })
})

describe('sqlite store retention and deletion (issue 14)', () => {
  /** Blocks of 4 events, packed as soon as they are full. */
  const SMALL = { blockEvents: 4, maintenanceEvents: 4 }

  /** A robot's stored timestamps, read through the store. */
  async function timestamps(store: Store, robot: string): Promise<number[]> {
    const out: number[] = []
    for await (const page of store.readEvents(robot)) out.push(...page.ts)
    return out
  }

  /** One robot's events at `from`, `from + 1`, … `to`, moving along x. */
  const run = (robot: string, from: number, to: number) =>
    Array.from({ length: to - from + 1 }, (_, i) => ({
      robot,
      timestamp: from + i,
      x: from + i,
      y: 0,
    }))

  it("should keep each robot's latest block, and load a robot from it with its lifetime figures", async () => {
    const path = freshFile()
    let store = createSqliteStore({ path, ...SMALL })
    await store.init()
    await store.append([...run('a', 1, 12), ...run('b', 1, 4)])
    // A clean close packs every tail: the next start loads robots from
    // their blocks alone.
    await store.close()
    store = createSqliteStore({ path, ...SMALL })
    await store.init()
    try {
      const figures = await store.listRobots()
      assert.deepStrictEqual(await store.removeBefore(1000), {
        events: 8,
        units: 2,
      })
      assert.deepStrictEqual(
        rows(path, 'SELECT robot_id, first_ts FROM blocks ORDER BY robot_id'),
        [
          { robot_id: 1, first_ts: 9 },
          { robot_id: 2, first_ts: 1 },
        ],
        "every robot's latest block, whatever its age",
      )
      assert.deepStrictEqual(
        rows(path, 'SELECT name, first_ts FROM robots ORDER BY id'),
        [
          { name: 'a', first_ts: 1 },
          { name: 'b', first_ts: null },
        ],
        'the first timestamp of a robot whose first block went',
      )
      assert.equal(await store.robotsInMemory!(), 0)
      assert.deepStrictEqual(await store.listRobots(), figures)
      assert.deepStrictEqual(await timestamps(store, 'a'), [9, 10, 11, 12])
      assert.equal(await store.odometer('a'), 3)
      assert.equal((await store.getRobot('a'))?.odometer, 11)
      // The rules still know where each robot is.
      assert.deepStrictEqual(
        await store.append([
          { robot: 'a', timestamp: 12, x: 12, y: 0 },
          { robot: 'a', timestamp: 2, x: 2, y: 0 },
          { robot: 'b', timestamp: 5, x: 5, y: 0 },
        ]),
        ['dup', 'stale', 'ok'],
      )
    } finally {
      await store.close()
    }
  })

  it('should leave no hole: a block whose robot still has an older block stays', async () => {
    const store = createSqliteStore({
      path: freshFile(),
      ...SMALL,
      blocksPerRetention: 1,
    })
    await store.init()
    try {
      await store.append(run('r', 1, 4))
      // The first chunk finds the robot's one block, its latest: kept.
      const pass = store.removeBefore(1000)
      let ended = false
      void pass.then(() => (ended = true))
      // Between two chunks, two blocks are packed after it: the older of
      // them is no longer the latest, but the block before it stays.
      await store.append(run('r', 5, 12))
      assert.equal(ended, false, 'the batch came between two chunks')
      assert.deepStrictEqual(await pass, { events: 0, units: 0 })
      assert.deepStrictEqual(
        await timestamps(store, 'r'),
        run('r', 1, 12).map((e) => e.timestamp),
      )
      assert.equal(await store.odometer('r', { start: 1, end: 12 }), 11)
      // The next pass removes the older two, in order.
      assert.deepStrictEqual(await store.removeBefore(1000), {
        events: 8,
        units: 2,
      })
      assert.deepStrictEqual(await timestamps(store, 'r'), [9, 10, 11, 12])
    } finally {
      await store.close()
    }
  })

  it('should let the event loop turn between two chunks of a pass', async () => {
    const store = createSqliteStore({
      path: freshFile(),
      ...SMALL,
      blocksPerRetention: 1,
    })
    await store.init()
    try {
      await store.append(run('r', 1, 16))
      let ended = false
      const pass = store.removeBefore(1000).then((removed) => {
        ended = true
        return removed
      })
      // On the caller's thread, sockets and timers are served between
      // chunks, not only the calls made meanwhile.
      await new Promise((resolve) => setImmediate(resolve))
      assert.equal(ended, false)
      assert.deepStrictEqual(await pass, { events: 12, units: 3 })
    } finally {
      await store.close()
    }
  })

  it('should reuse the pages a retention pass frees, so that the file does not grow', async () => {
    const path = freshFile()
    // The test runs the checkpoints, so that the sizes it reads are the
    // database's alone.
    const store = createSqliteStore({ path, checkpointIntervalMs: 3_600_000 })
    await store.init()
    const other = new Database(path)
    const bytes = () => {
      other.pragma('wal_checkpoint(TRUNCATE)')
      const wal = statSync(`${path}-wal`, { throwIfNoEntry: false })
      return statSync(path).size + (wal?.size ?? 0)
    }
    const pages = (table: string) =>
      other
        .prepare('SELECT count(*) FROM dbstat WHERE name = ?')
        .pluck()
        .get(table) as number
    // 4 robots, 64 blocks each, positions to the millimetre.
    let k = 0
    const write = async () => {
      for (let n = 0; n < 64 * 256; n += 64) {
        const batch = []
        for (let j = 0; j < 64; j++, k++) {
          for (let r = 0; r < 4; r++) {
            batch.push({
              robot: `r${r}`,
              timestamp: k * 100,
              x: Number((Math.sin(k / 50) * 100 + r).toFixed(3)),
              y: Number((k * 0.01).toFixed(3)),
            })
          }
        }
        await store.append(batch)
      }
    }
    try {
      await write()
      const blockPages = pages('blocks')
      const pass = await store.removeBefore(k * 100)
      assert.equal(pass.units, 4 * 63, 'all but the latest block of each')
      const before = bytes()
      await write()
      const grown = bytes() - before
      // Written anew without the freed pages, the blocks alone would take
      // as many pages again.
      assert.ok(blockPages >= 60, `${blockPages} pages of blocks`)
      assert.ok(
        grown <= 8 * 4096,
        `the file grew by ${grown} bytes for ${blockPages} pages of blocks`,
      )
    } finally {
      other.close()
      await store.close()
    }
  })

  it("should delete a robot's rows, never replay its events from the log, and never give its id again", async () => {
    const path = freshFile()
    const open = async () => {
      const store = createSqliteStore({ path, ...SMALL })
      await store.init()
      return store
    }
    let store = await open()
    // Blocks, a tail, and log rows of packed events for both.
    await store.append([...run('a', 1, 10), ...run('b', 1, 10)])
    await store.append([...run('a', 11, 11), ...run('b', 11, 11)])
    const idOf = (name: string) =>
      rows(path, `SELECT id FROM robots WHERE name = '${name}'`)
    assert.deepStrictEqual(idOf('b'), [{ id: 2 }])
    assert.equal(await store.deleteRobot('b'), true)
    assert.deepStrictEqual(
      rows(path, `SELECT count(*) AS n FROM blocks WHERE robot_id = 2`),
      [{ n: 0 }],
      'blocks',
    )
    // Its events stay in the log's rows, shared with a's, until maintenance
    // deletes them: the replay after the crash below must skip them.
    assert.ok(logEventsOf(path, 2) > 0, "b's events in the log")
    assert.deepStrictEqual(idOf('b'), [], 'the robot row')
    assert.deepStrictEqual(rows(path, 'SELECT * FROM robot_ids'), [
      { deleted: 1, given: 2 },
    ])
    assert.equal(await store.robotsInMemory!(), 1)
    // A crash: the start replays the log; b had the largest id.
    store = await open()
    assert.equal(await store.countRobots(), 1)
    assert.deepStrictEqual(await store.append(run('b', 1, 1)), ['ok'])
    assert.deepStrictEqual(idOf('b'), [{ id: 3 }], 'a new id')
    assert.equal(await store.countRobots(), 2)
    assert.equal(await store.deleteRobot('a'), true)
    assert.equal(await store.countRobots(), 1)
    await store.close()
    store = await open()
    try {
      assert.equal(await store.countRobots(), 1)
      assert.deepStrictEqual(
        (await store.listRobots()).map((r) => [r.name, r.eventCount]),
        [['b', 1]],
      )
      assert.deepStrictEqual(await store.append(run('c', 1, 1)), ['ok'])
      assert.deepStrictEqual(idOf('c'), [{ id: 4 }])
    } finally {
      await store.close()
    }
  })
})

describe('sqlite store written at schema version 2', () => {
  it("should migrate to today's version with every event and figure, and keep the figures once a pass removed first blocks", async () => {
    // fixtures/store-v2.db was written by the store at schema version 2
    // from fixtureEvents(), and left without a clean close (layout-fixture.ts).
    const path = copyFixture('store-v2.db')
    const expected = fixtureEvents()
    const robots = ['fixture-0', 'fixture-1', 'fixture-2']
    const models = robots.map(
      (robot) =>
        new RobotModel(
          robot,
          expected.filter((e) => e.robot === robot),
        ),
    )
    const checkFigures = async (store: Store, when: string) => {
      for (const model of models) {
        const events = model.events
        const robot = await store.getRobot(model.name)
        assert.deepStrictEqual(
          {
            count: robot?.eventCount,
            first: robot?.firstTimestamp,
            last: robot?.lastTimestamp,
            x: robot?.lastX,
            y: robot?.lastY,
            odometer: robot?.odometer,
          },
          {
            count: FIXTURE_EVENTS_PER_ROBOT,
            first: events[0]!.timestamp,
            last: model.latest!.timestamp,
            x: model.latest!.x,
            y: model.latest!.y,
            odometer: model.odometer(),
          },
          `${model.name} ${when}`,
        )
      }
    }
    /** Every event of each robot from the `from`-th on, to the bit. */
    const checkEvents = async (store: Store, from: number) => {
      for (const model of models) {
        const ts: number[] = []
        const x: number[] = []
        const y: number[] = []
        for await (const page of store.readEvents(model.name)) {
          ts.push(...page.ts)
          x.push(...page.x)
          y.push(...page.y)
        }
        const wanted = model.events.slice(from)
        assert.equal(ts.length, wanted.length, model.name)
        wanted.forEach((want, i) => {
          assert.equal(ts[i], want.timestamp, `${model.name} #${from + i}`)
          assert.ok(Object.is(x[i], want.x), `${model.name} #${from + i} x`)
          assert.ok(Object.is(y[i], want.y), `${model.name} #${from + i} y`)
        })
      }
    }

    let store = createSqliteStore({ path })
    await store.init()
    try {
      assert.deepStrictEqual(rows(path, 'SELECT * FROM robot_ids'), [
        { deleted: 0, given: 0 },
      ])
      await checkEvents(store, 0)
      await checkFigures(store, 'after the migration')
      // Each robot has blocks of events 0-255 and 256-511, then a tail.
      const cutoff = Math.min(...models.map((m) => m.events[400]!.timestamp))
      assert.deepStrictEqual(await store.removeBefore(cutoff), {
        events: 3 * 256,
        units: 3,
      })
      await checkEvents(store, 256)
      // A crash, then a clean restart: robots are loaded from what is left.
      store = createSqliteStore({ path })
      await store.init()
      await checkFigures(store, 'after a crash')
      await store.close()
      store = createSqliteStore({ path })
      await store.init()
      await checkFigures(store, 'after a restart')
      await checkEvents(store, 256)
      assert.equal(
        await store.odometer('fixture-1'),
        models[1]!.odometer(models[1]!.events[256]!.timestamp),
      )
    } finally {
      await store.close()
    }
    const db = new Database(path, { readonly: true })
    assert.equal(
      db.pragma('user_version', { simple: true }),
      SQLITE_MIGRATIONS.length,
    )
    db.close()
  })
})
