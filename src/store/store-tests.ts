/**
 * The store conformance suite: every backend's test file calls
 * {@link storeTests}, so every backend is held to the same behaviour,
 * including a random model-based test of the rules across restarts.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { TelemetryEvent } from '../domain/event.ts'
import {
  addStep,
  distance,
  odometerBetween,
  type RunningTotal,
} from '../domain/rules.ts'
import type { EventPage, Store } from './store.ts'

/** Makes a fresh, empty, not yet initialised store for one test group. */
export type StoreFactory = () => Store | Promise<Store>

/** What a backend can do beyond the contract, for the tests that need it. */
export interface StoreTestOptions {
  /**
   * A new store on the same data as `store`, as a restarted server opens
   * it; absent when the data does not outlive the store (`:memory:`).
   */
  readonly reopen?: (store: Store) => Store
  /**
   * Leaves `store` as a killed process would, without its clean close;
   * default: `close()`.
   */
  readonly crash?: (store: Store) => Promise<void>
}

const ev = (
  robot: string,
  timestamp: number,
  x: number,
  y: number,
): TelemetryEvent => ({ robot, timestamp, x, y })

/** One event as a test compares it. */
interface Stored {
  timestamp: number
  x: number
  y: number
}

async function collect(pages: AsyncIterable<EventPage>) {
  const pageSizes: number[] = []
  const events: Stored[] = []
  for await (const page of pages) {
    assert.equal(page.x.length, page.ts.length)
    assert.equal(page.y.length, page.ts.length)
    pageSizes.push(page.ts.length)
    page.ts.forEach((timestamp, i) =>
      events.push({ timestamp, x: page.x[i]!, y: page.y[i]! }),
    )
  }
  return { events, pageSizes }
}

/**
 * Registers the conformance suite for one backend.
 *
 * @example
 * storeTests('sqlite :memory:', () => createSqliteStore({ path: ':memory:' }))
 */
export function storeTests(
  name: string,
  makeStore: StoreFactory,
  options: StoreTestOptions = {},
) {
  modelTests(name, makeStore, options)
  describe(`store conformance: ${name}`, () => {
    let store: Store
    before(async () => {
      store = await makeStore()
      await store.init()
    })
    after(() => store.close())

    it('should store the first event of a robot and then newer ones', async () => {
      assert.deepStrictEqual(
        await store.append([ev('first', 10, 0, 0), ev('first', 20, 3, 4)]),
        ['ok', 'ok'],
      )
      const robot = await store.getRobot('first')
      assert.ok(robot)
      assert.deepStrictEqual(
        {
          ...robot,
          createdMs: typeof robot.createdMs,
          updatedMs: typeof robot.updatedMs,
        },
        {
          name: 'first',
          odometer: 5,
          lastX: 3,
          lastY: 4,
          firstTimestamp: 10,
          lastTimestamp: 20,
          eventCount: 2,
          createdMs: 'number',
          updatedMs: 'number',
        },
      )
      assert.ok(robot.createdMs <= robot.updatedMs)
    })

    it('should answer dup, conflict and stale as the rules say', async () => {
      await store.append([
        ev('rules', 1, 0, 0),
        ev('rules', 3, 1, 1),
        ev('rules', 5, 2, 2),
      ])
      assert.deepStrictEqual(
        await store.append([
          ev('rules', 5, 2, 2), // the latest again
          ev('rules', 5, 9, 9), // the latest's timestamp, another position
          ev('rules', 3, 1, 1), // an older stored event again
          ev('rules', 3, 7, 7), // an older stored timestamp, another position
          ev('rules', 4, 0, 0), // older, nothing stored there
          ev('rules', 0, 0, 0), // before the first
          ev('rules', 6, 2, 2), // newer: stored
        ]),
        ['dup', 'conflict', 'dup', 'conflict', 'stale', 'stale', 'ok'],
      )
      const robot = await store.getRobot('rules')
      assert.equal(robot?.eventCount, 4)
      assert.equal(robot?.lastTimestamp, 6)
    })

    it('should judge each event of a batch against the ones before it', async () => {
      assert.deepStrictEqual(
        await store.append([
          ev('batch', 1, 0, 0),
          ev('batch', 1, 0, 0),
          ev('batch', 2, 1, 0),
          ev('batch', 1, 5, 5),
          ev('batch', 0, 0, 0),
        ]),
        ['ok', 'dup', 'ok', 'conflict', 'stale'],
      )
    })

    it('should keep robot names exact and case-sensitive', async () => {
      const names = ['McDonalds', 'mcdonalds', 'MCDONALDS', 'Straße', 'strasse']
      assert.deepStrictEqual(
        await store.append(names.map((n) => ev(n, 1, 1, 1))),
        names.map(() => 'ok'),
      )
      for (const n of names) {
        assert.equal((await store.getRobot(n))?.eventCount, 1, n)
      }
      assert.equal(await store.getRobot('Mcdonalds'), undefined)
    })

    it('should compute the odometer of the original Bender case', async () => {
      await store.append([
        ev('Bender', 0, 0, 0),
        ev('Bender', 1, 1, 0),
        ev('Bender', 2, 0, 0),
      ])
      assert.equal(await store.odometer('Bender'), 2)
      assert.equal(await store.odometer('Bender', { start: 0, end: 1 }), 1)
      assert.equal(await store.odometer('Bender', { start: 1, end: 2 }), 1)
      assert.equal(await store.odometer('Bender', { start: 1, end: 1 }), 0)
      assert.equal(await store.odometer('Bender', { start: 1 }), 1)
      assert.equal(await store.odometer('Bender', { end: 1 }), 1)
      assert.equal(await store.odometer('Bender', { start: 3, end: 9 }), 0)
      assert.equal(await store.odometer('bender'), 0)
      assert.equal((await store.getRobot('Bender'))?.odometer, 2)
    })

    it('should sum only consecutive events that both lie in the interval', async () => {
      // 0 -(3)- 10 -(4)- 20 -(12)- 30, as a 3-4-5 walk and back.
      await store.append([
        ev('walk', 0, 0, 0),
        ev('walk', 10, 3, 0),
        ev('walk', 20, 3, 4),
        ev('walk', 30, 3, 16),
      ])
      assert.equal(await store.odometer('walk'), 19)
      assert.equal(await store.odometer('walk', { start: 5, end: 25 }), 4)
      assert.equal(await store.odometer('walk', { start: 10, end: 30 }), 16)
      assert.equal(await store.odometer('walk', { start: 0, end: 29 }), 7)
      assert.equal(await store.odometer('walk', { start: 11, end: 19 }), 0)
    })

    it('should give an interval its exact odometer after a long earlier trip', async () => {
      await store.append([
        ev('long trip', 1, 0, 0),
        ev('long trip', 2, 1e16, 0),
        ev('long trip', 3, 0, 0),
        ev('long trip', 4, 1, 0),
      ])
      assert.equal(await store.odometer('long trip', { start: 3, end: 4 }), 1)
      assert.equal(
        await store.odometer('long trip', { start: 2, end: 4 }),
        1e16 + 1,
      )
      assert.equal((await store.getRobot('long trip'))?.odometer, 2e16 + 1)
    })

    it('should read events in a range in ascending order, page by page', async () => {
      const events = Array.from({ length: 25 }, (_, i) =>
        ev('pages', i * 2, i, 0.5 - i),
      )
      await store.append(events)
      const all = await collect(store.readEvents('pages', { pageSize: 10 }))
      assert.deepStrictEqual(all.pageSizes, [10, 10, 5])
      assert.deepStrictEqual(
        all.events,
        events.map(({ timestamp, x, y }) => ({ timestamp, x, y })),
      )
      const range = await collect(
        store.readEvents('pages', { start: 3, end: 9, pageSize: 2 }),
      )
      assert.deepStrictEqual(
        range.events.map((e) => e.timestamp),
        [4, 6, 8],
      )
      const limited = await collect(
        store.readEvents('pages', { start: 10, limit: 3, pageSize: 2 }),
      )
      assert.deepStrictEqual(
        limited.events.map((e) => e.timestamp),
        [10, 12, 14],
      )
      assert.deepStrictEqual(
        (await collect(store.readEvents('nobody'))).events,
        [],
      )
    })

    it('should keep coordinates and timestamps exactly', async () => {
      const odd = [
        ev('exact', 0, -0.1, 1e-300),
        ev('exact', Number.MAX_SAFE_INTEGER, 1.7976931348623157e308, -5e-324),
      ]
      await store.append(odd)
      assert.deepStrictEqual(
        (await collect(store.readEvents('exact'))).events,
        odd.map(({ timestamp, x, y }) => ({ timestamp, x, y })),
      )
    })

    it('should list robots by name in code point order, with paging', async () => {
      const s = await makeStore()
      await s.init()
      try {
        await s.append(
          ['b', 'a', 'B', 'é', '😀', 'A'].map((n) => ev(n, 1, 0, 0)),
        )
        const names = (await s.listRobots()).map((r) => r.name)
        assert.deepStrictEqual(names, ['A', 'B', 'a', 'b', 'é', '😀'])
        assert.deepStrictEqual(
          (await s.listRobots({ limit: 2 })).map((r) => r.name),
          ['A', 'B'],
        )
        assert.deepStrictEqual(
          (await s.listRobots({ after: 'B', limit: 3 })).map((r) => r.name),
          ['a', 'b', 'é'],
        )
        assert.deepStrictEqual(await s.listRobots({ after: '😀' }), [])
      } finally {
        await s.close()
      }
    })

    it('should report nothing for a robot without events', async () => {
      assert.equal(await store.getRobot('ghost'), undefined)
      assert.equal(await store.odometer('ghost', { start: 0, end: 10 }), 0)
    })
  })
}

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
    const totals: RunningTotal[] = [{ total: 0, carry: 0 }]
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

/**
 * Random batches of new, repeated and older events of a few robots, judged
 * by the store and by {@link Model}; every ninth round the store restarts
 * (alternately a clean close and a crash, where the backend can). Then
 * every robot's events, summary and odometers over random intervals.
 */
function modelTests(
  name: string,
  makeStore: StoreFactory,
  options: StoreTestOptions,
) {
  const { reopen, crash = (store: Store) => store.close() } = options
  describe(`store against a model: ${name}`, () => {
    for (const seed of [1, 2, 3]) {
      it(`should agree with the model on random traffic${reopen ? ' and restarts' : ''} (seed ${seed})`, async () => {
        const next = random(seed)
        const model = new Model()
        const robots = ['a', 'b', 'c', 'd', 'e']
        const clock = new Map(robots.map((r) => [r, 0]))
        let store = await makeStore()
        await store.init()
        try {
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
            if (reopen !== undefined && round % 9 === 8) {
              const old = store
              if (round % 2 === 0) await old.close()
              else await crash(old)
              store = reopen(old)
              await store.init()
            }
          }
          for (const robot of robots) {
            await checkRobot(store, model, robot, next)
          }
        } finally {
          await store.close()
        }
      })
    }
  })
}

async function checkRobot(
  store: Store,
  model: Model,
  robot: string,
  next: () => number,
) {
  const events = model.events.get(robot) ?? []
  assert.deepStrictEqual(await readAll(store, robot), events, robot)
  const summary = await store.getRobot(robot)
  if (events.length === 0) {
    assert.equal(summary, undefined)
    return
  }
  const latest = events[events.length - 1]!
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
      last: latest.timestamp,
      x: latest.x,
      y: latest.y,
      odometer: model.odometer(robot, 0, Number.MAX_SAFE_INTEGER),
    },
  )
  for (let k = 0; k < 30; k++) {
    const a = Math.floor(next() * (latest.timestamp + 3))
    const b = Math.floor(next() * (latest.timestamp + 3))
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
