import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import Database from 'better-sqlite3'
import { storeTests } from '../store-tests.ts'
import { createSqliteStore } from './sqlite-store.ts'
import { SQLITE_MIGRATIONS } from './sqlite-migrations.ts'

const dir = mkdtempSync(join(tmpdir(), 'sqlite-store-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const freshFile = () => join(dir, `nested-${++files}`, 'telemetry.db')

storeTests('sqlite :memory:', () => createSqliteStore({ path: ':memory:' }))
storeTests('sqlite file', () => createSqliteStore({ path: freshFile() }))

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
    await first.close()

    const second = createSqliteStore({ path })
    await second.init()
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
    // The state in memory did not move: the same events are new again.
    assert.deepStrictEqual(
      await store.append([
        { robot: 'r', timestamp: 2, x: 1, y: 0 },
        { robot: 'other', timestamp: 1, x: 0, y: 0 },
      ]),
      ['ok', 'ok'],
    )
    assert.equal(await store.odometer('r'), 1)
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
