import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import Database from 'better-sqlite3'
import type { TelemetryEvent } from '../../domain/event.ts'
import { addStep, distance, odometerBetween } from '../../domain/rules.ts'
import type { Store } from '../store.ts'
import { storeTests } from '../store-tests.ts'
import { createSqliteStore } from './sqlite-store.ts'
import { SQLITE_MIGRATIONS } from './sqlite-migrations.ts'

const dir = mkdtempSync(join(tmpdir(), 'sqlite-store-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const freshFile = () => join(dir, `nested-${++files}`, 'telemetry.db')

storeTests('sqlite :memory:', () => createSqliteStore({ path: ':memory:' }))
storeTests('sqlite file', () => createSqliteStore({ path: freshFile() }))
// Tiny blocks and a short log window: every read and every rule crosses
// blocks, tails and packed partial tails.
const TINY = { blockEvents: 3, maintenanceEvents: 2, logWindow: 7 }
storeTests('sqlite file, tiny blocks', () =>
  createSqliteStore({ path: freshFile(), ...TINY }),
)

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

  it('should keep the write-ahead log bounded while writes never pause', async () => {
    const path = freshFile()
    const store = createSqliteStore({
      path,
      checkpointIntervalMs: 5,
      walRestartBytes: 256 * 1024,
    })
    await store.init()
    let largest = 0
    const started = Date.now()
    for (let k = 0; Date.now() - started < 1500;) {
      const batch = []
      for (let i = 0; i < 200; i++, k++) {
        batch.push({ robot: `r${k % 50}`, timestamp: k, x: k, y: 0 })
      }
      await store.append(batch)
      largest = Math.max(largest, statSync(`${path}-wal`).size)
      // Let the checkpointer's thread run between commits, as it does
      // between the batches of a server.
      await new Promise((resolve) => setTimeout(resolve, 1))
    }
    await store.close()
    // Without the restarts the log grows by about 10 MB a second here.
    assert.ok(largest < 4 * 1024 * 1024, `the log reached ${largest} bytes`)
    assert.equal(existsSync(`${path}-wal`), false, 'close folds the log in')
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

// --- a model-based test ---

/** A tiny deterministic random generator (mulberry32). */
function random(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = seed
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** What the store should hold, computed the plainest way. */
class Model {
  readonly events = new Map<string, TelemetryEvent[]>()
  apply(event: TelemetryEvent): string {
    const list = this.events.get(event.robot) ?? []
    this.events.set(event.robot, list)
    const last = list[list.length - 1]
    if (last === undefined || event.timestamp > last.timestamp) {
      list.push(event)
      return 'ok'
    }
    const same = list.find((e) => e.timestamp === event.timestamp)
    if (same === undefined) return 'stale'
    return same.x === event.x && same.y === event.y ? 'dup' : 'conflict'
  }
  /**
   * The odometer as defined: the difference of the whole-life running
   * totals at the interval's first and last events (bit for bit what the
   * store must answer), checked against a plain sum of the interval's steps.
   */
  odometer(robot: string, start: number, end: number): number {
    const events = this.events.get(robot) ?? []
    const totals = [{ total: 0, carry: 0 }]
    for (let i = 1; i < events.length; i++) {
      const a = events[i - 1]!
      const b = events[i]!
      const t = totals[i - 1]!
      totals.push(addStep(t.total, t.carry, distance(a.x, a.y, b.x, b.y)))
    }
    const inRange = events
      .map((e, i) => [e, i] as const)
      .filter(([e]) => e.timestamp >= start && e.timestamp <= end)
    if (inRange.length < 2) return 0
    const first = inRange[0]![1]
    const last = inRange[inRange.length - 1]![1]
    const result = odometerBetween(totals[first]!, totals[last]!)
    let plain = 0
    for (let i = first + 1; i <= last; i++) {
      const a = events[i - 1]!
      const b = events[i]!
      plain += distance(a.x, a.y, b.x, b.y)
    }
    assert.ok(
      Math.abs(result - plain) <= plain * 1e-12,
      `${result} vs ${plain}`,
    )
    return result
  }
}

async function readAll(
  store: Store,
  robot: string,
  start?: number,
  end?: number,
) {
  const out: TelemetryEvent[] = []
  for await (const page of store.readEvents(robot, {
    start,
    end,
    pageSize: 5,
  })) {
    page.ts.forEach((timestamp, i) =>
      out.push({ robot, timestamp, x: page.x[i]!, y: page.y[i]! }),
    )
  }
  return out
}

describe('sqlite store against a model', () => {
  for (const seed of [1, 2, 3]) {
    it(`should agree with the model on random traffic and reopens (seed ${seed})`, async () => {
      const next = random(seed)
      const path = freshFile()
      const model = new Model()
      const robots = ['a', 'b', 'c', 'd', 'e']
      const clock = new Map(robots.map((r) => [r, 0]))
      let store = createSqliteStore({ path, ...TINY })
      await store.init()
      const abandoned: Store[] = []
      for (let round = 0; round < 40; round++) {
        const batch: TelemetryEvent[] = []
        for (let i = 0, n = 1 + Math.floor(next() * 12); i < n; i++) {
          const robot = robots[Math.floor(next() * robots.length)]!
          const roll = next()
          const latest = clock.get(robot)!
          // Mostly newer events, some repeats and some older ones.
          const timestamp =
            roll < 0.7
              ? latest + 1 + Math.floor(next() * 3)
              : Math.max(0, latest - Math.floor(next() * 6))
          if (timestamp > latest) clock.set(robot, timestamp)
          const x = Math.floor(next() * 4)
          const y = roll < 0.85 ? timestamp % 3 : Math.floor(next() * 4)
          batch.push({ robot, timestamp, x, y })
        }
        const expected = batch.map((e) => model.apply(e))
        assert.deepStrictEqual(
          await store.append(batch),
          expected,
          `round ${round}`,
        )
        if (round % 9 === 8) {
          // Alternately a clean close (which packs every tail) and a crash:
          // the old instance is abandoned unclosed, as a killed process
          // would leave it, and the new one replays the log.
          if (round % 2 === 0) await store.close()
          else abandoned.push(store)
          store = createSqliteStore({ path, ...TINY })
          await store.init()
        }
      }
      for (const robot of robots) {
        const events = model.events.get(robot) ?? []
        assert.deepStrictEqual(await readAll(store, robot), events, robot)
        const summary = await store.getRobot(robot)
        if (events.length === 0) continue
        assert.deepStrictEqual(
          {
            count: summary?.eventCount,
            first: summary?.firstTimestamp,
            last: summary?.lastTimestamp,
            x: summary?.lastX,
            y: summary?.lastY,
            odometer: summary?.odometer,
          },
          {
            count: events.length,
            first: events[0]!.timestamp,
            last: events[events.length - 1]!.timestamp,
            x: events[events.length - 1]!.x,
            y: events[events.length - 1]!.y,
            odometer: model.odometer(robot, 0, Number.MAX_SAFE_INTEGER),
          },
        )
        const lastTs = events[events.length - 1]!.timestamp
        for (let k = 0; k < 30; k++) {
          const a = Math.floor(next() * (lastTs + 3))
          const b = Math.floor(next() * (lastTs + 3))
          const [start, end] = a <= b ? [a, b] : [b, a]
          assert.equal(
            await store.odometer(robot, { start, end }),
            model.odometer(robot, start, end),
            `${robot} odometer [${start}, ${end}]`,
          )
          assert.deepStrictEqual(
            await readAll(store, robot, start, end),
            events.filter((e) => e.timestamp >= start && e.timestamp <= end),
            `${robot} events [${start}, ${end}]`,
          )
        }
      }
      await store.close()
    })
  }
})
