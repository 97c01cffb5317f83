/**
 * The store conformance suite: every backend's test file calls
 * {@link storeTests}, so every backend is held to the same behaviour,
 * including a random model-based test of the rules across restarts.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { TelemetryEvent } from '../domain/event.ts'
import {
  Random,
  RobotModel,
  seedNote,
  testSeed,
  waitFor,
} from '../../test/support/index.ts'
import type { EventPage, Store, StoredEvent, Unwatch } from './store.ts'

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
  const { reopen, crash = (store: Store) => store.close() } = options
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

    it('should judge an event at the stored latest timestamp after a newer one of the same batch', async () => {
      // Before the batch judgement was written once, PostgreSQL answered
      // both of the last two `stale`.
      await store.append([ev('latest again', 1, 0, 0)])
      assert.deepStrictEqual(
        await store.append([
          ev('latest again', 2, 1, 1),
          ev('latest again', 1, 0, 0),
          ev('latest again', 1, 5, 5),
        ]),
        ['ok', 'dup', 'conflict'],
      )
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

    it('should count the robots with a stored event, and only those', async () => {
      const s = await makeStore()
      await s.init()
      try {
        assert.equal(await s.countRobots(), 0)
        await s.append([ev('one', 1, 0, 0), ev('two', 1, 0, 0)])
        assert.equal(await s.countRobots(), 2)
        // A robot's later, repeated, stale or conflicting events are no
        // new robot; a robot first seen in a batch is one, once.
        await s.append([
          ev('one', 2, 1, 1),
          ev('one', 2, 1, 1),
          ev('two', 0, 0, 0),
          ev('two', 1, 5, 5),
          ev('three', 1, 0, 0),
          ev('three', 2, 0, 0),
        ])
        assert.equal(await s.countRobots(), 3)
        assert.equal((await s.listRobots()).length, 3)
      } finally {
        await s.close()
      }
    })

    it('should report nothing for a robot without events', async () => {
      assert.equal(await store.getRobot('ghost'), undefined)
      assert.equal(await store.odometer('ghost', { start: 0, end: 10 }), 0)
      assert.equal(await store.runningTotal('ghost', 0), undefined)
    })

    it('should give the running total of the first event at or after a timestamp', async () => {
      await store.append([
        ev('running', 10, 0, 0),
        ev('running', 20, 3, 4),
        ev('running', 30, 3, 10),
      ])
      const at = (ts: number) => store.runningTotal('running', ts)
      const sum = (t?: { total: number; carry: number }) =>
        t === undefined ? undefined : t.total + t.carry
      assert.equal(sum(await at(0)), 0)
      assert.equal(sum(await at(10)), 0)
      assert.equal(sum(await at(11)), 5)
      assert.equal(sum(await at(20)), 5)
      assert.equal(sum(await at(30)), 11)
      assert.equal(await at(31), undefined)
    })

    it('should tell a watcher what each commit stored, in commit order, with lifetime odometers', async () => {
      const first = watcher(store)
      const second = watcher(store)
      await first.ready
      await second.ready
      await store.append([ev('watched', 10, 0, 0)])
      await store.append([
        ev('watched', 20, 3, 4),
        ev('watched', 20, 3, 4), // dup: not stored again
        ev('watched', 5, 0, 0), // stale
        ev('watched too', 7, 1, 1),
        ev('watched', 30, 3, 5),
      ])
      const expected = [
        { robot: 'watched', timestamp: 10, x: 0, y: 0, odometer: 0 },
        { robot: 'watched', timestamp: 20, x: 3, y: 4, odometer: 5 },
        { robot: 'watched too', timestamp: 7, x: 1, y: 1, odometer: 0 },
        { robot: 'watched', timestamp: 30, x: 3, y: 5, odometer: 6 },
      ]
      assert.deepStrictEqual(await first.until(4), expected)
      // One list per commit, and nothing for a commit that stored nothing.
      assert.deepStrictEqual(first.commits, [1, 3])

      first.unwatch()
      first.unwatch() // idempotent
      await store.append([ev('watched', 20, 3, 4)]) // dup only
      await store.append([ev('watched', 40, 3, 6)])
      // The second watcher hears the last commit: by then the first
      // would have heard it too, had it still been watching.
      assert.equal((await second.until(5))[4]!.timestamp, 40)
      assert.equal(first.heard.length, 4)
      second.unwatch()
    })

    it('should delete a robot and every event of it, answer false the second time, and start a new robot when it reports again', async () => {
      let s = await makeStore()
      await s.init()
      try {
        // Enough events that SQLite packs some into blocks and logs the
        // rest: a deletion must find them in both.
        const gone = track('gone', 3000, 10)
        const stay = track('stay', 100, 10)
        for (const batch of batches([...gone, ...stay], 500)) {
          await s.append(batch)
        }
        const stayBefore = await s.getRobot('stay')
        const goneBefore = await s.getRobot('gone')
        assert.equal(await s.countRobots(), 2)

        assert.equal(await s.deleteRobot('gone'), true)
        assert.equal(await s.deleteRobot('gone'), false, 'idempotent')
        assert.equal(await s.deleteRobot('never'), false)
        const checkGone = async (when: string) => {
          assert.equal(await s.getRobot('gone'), undefined, when)
          assert.deepStrictEqual(
            (await s.listRobots()).map((r) => r.name),
            ['stay'],
            when,
          )
          assert.equal(await s.countRobots(), 1, when)
          assert.deepStrictEqual((await readAll(s, 'gone')).length, 0, when)
          assert.equal(await s.odometer('gone'), 0, when)
          assert.equal(await s.runningTotal('gone', 0), undefined, when)
          assert.deepStrictEqual(await s.getRobot('stay'), stayBefore, when)
          assert.deepStrictEqual(await readAll(s, 'stay'), stay, when)
        }
        await checkGone('after the deletion')
        if (reopen !== undefined) {
          // The log replayed at a start must not bring it back.
          await crash(s)
          s = reopen(s)
          await s.init()
          await checkGone('after a crash')
          await s.close()
          s = reopen(s)
          await s.init()
          await checkGone('after a restart')
        }

        // A new robot: an event older than the deleted one's latest is
        // its first.
        const again = [ev('gone', 5, 0, 0), ev('gone', 7, 3, 4)]
        assert.deepStrictEqual(await s.append(again), ['ok', 'ok'])
        const robot = await s.getRobot('gone')
        assert.deepStrictEqual(
          { ...robot, createdMs: 0, updatedMs: 0 },
          {
            name: 'gone',
            odometer: 5,
            lastX: 3,
            lastY: 4,
            firstTimestamp: 5,
            lastTimestamp: 7,
            eventCount: 2,
            createdMs: 0,
            updatedMs: 0,
          },
        )
        assert.ok(robot!.createdMs >= goneBefore!.createdMs)
        assert.deepStrictEqual(await readAll(s, 'gone'), again)
        assert.equal(await s.odometer('gone', { start: 0, end: 100 }), 5)
        assert.equal(await s.countRobots(), 2)
        if (reopen !== undefined) {
          await s.close()
          s = reopen(s)
          await s.init()
          assert.deepStrictEqual(await s.getRobot('gone'), robot)
          assert.equal(await s.countRobots(), 2)
        }
      } finally {
        await s.close()
      }
    })

    it('should remove old events in whole units, keep every event at or after the cutoff, and keep lifetime figures', async () => {
      // An event an hour: SQLite's blocks of 256 events and PostgreSQL's
      // daily partitions both have whole units before the cutoff.
      const HOUR = 3_600_000
      const written = new Map([
        ['kept', track('kept', 2000, HOUR)],
        ['old', track('old', 300, HOUR)], // every event before the cutoff
      ])
      const models = new Map(
        [...written].map(([robot, events]) => [
          robot,
          new RobotModel(robot, events),
        ]),
      )
      const inOrder = [...written.values()]
        .flat()
        .sort((a, b) => a.timestamp - b.timestamp)
      const cutoff = 1500 * HOUR
      let s = await makeStore()
      await s.init()
      try {
        for (const batch of batches(inOrder, 500)) await s.append(batch)
        const figures = await s.listRobots()

        const pass = await s.removeBefore(cutoff)
        let gone = 0
        for (const model of models.values()) {
          gone += await learnRemoved(s, model, cutoff)
          await checkStored(s, model)
        }
        const before = inOrder.filter((e) => e.timestamp < cutoff).length
        assert.ok(gone >= before / 2, `${gone} of ${before} events removed`)
        assert.deepStrictEqual(pass.events, gone, 'events removed')
        assert.ok(pass.units > 0, 'units removed')
        assert.deepStrictEqual(await s.listRobots(), figures, 'lifetime')
        assert.deepStrictEqual(
          await s.removeBefore(cutoff),
          { events: 0, units: 0 },
          'a second pass with the same cutoff',
        )

        // Still refused: older events where nothing was stored, and the
        // first event of 'kept' again, stored and removed since.
        assert.deepStrictEqual(
          await s.append([
            ev('kept', 5 * HOUR + 1, 0, 0),
            ev('kept', 0, 0, 0),
            ev('old', HOUR + 1, 0, 0),
          ]),
          ['stale', 'stale', 'stale'],
        )
        // Newer events are stored, and the lifetime odometer goes on.
        const newer = [ev('kept', 2000 * HOUR, 50, 50), ev('old', cutoff, 9, 9)]
        assert.deepStrictEqual(await s.append(newer), ['ok', 'ok'])
        for (const e of newer) models.get(e.robot)!.apply(e.x, e.y, e.timestamp)
        const expected = async (when: string) => {
          for (const model of models.values()) {
            const robot = await s.getRobot(model.name)
            assert.deepStrictEqual(
              { ...robot, createdMs: 0, updatedMs: 0 },
              {
                ...lifetimeFigures(model),
                createdMs: 0,
                updatedMs: 0,
              },
              `${model.name} ${when}`,
            )
          }
        }
        await expected('after new events')
        const after = await s.listRobots()
        if (reopen !== undefined) {
          // A robot whose first events are gone keeps its first timestamp.
          await s.close()
          s = reopen(s)
          await s.init()
          assert.deepStrictEqual(await s.listRobots(), after, 'restart')
          await crash(s)
          s = reopen(s)
          await s.init()
          await expected('after a crash')
          for (const model of models.values()) await checkStored(s, model)
        }
      } finally {
        await s.close()
      }
    })
  })
}

/**
 * Reads what a store holds of a robot after a retention pass, checks that
 * it is a suffix of the model's events (the oldest removed, none brought
 * back) holding every event at or after `cutoff`, and tells the model how
 * many are gone ({@link RobotModel.removeOldest}); returns how many the
 * pass removed.
 */
async function learnRemoved(
  store: Store,
  model: RobotModel,
  cutoff: number,
): Promise<number> {
  const robot = model.name
  const events = model.events
  const read = await readAll(store, robot)
  const removed = events.length - read.length
  assert.ok(removed >= model.removed, `${robot}: events came back`)
  assert.deepStrictEqual(read, events.slice(removed), `${robot}: a suffix`)
  assert.ok(
    removed === 0 || events[removed - 1]!.timestamp < cutoff,
    `${robot}: an event at or after the cutoff ${cutoff} was removed`,
  )
  const before = model.removed
  model.removeOldest(removed)
  return removed - before
}

/**
 * What a store holds of a robot is what the model says is stored: its
 * events, odometers over ranges (the difference of the same running
 * totals, so to the bit) and the running total at the first stored event.
 */
async function checkStored(store: Store, model: RobotModel) {
  const robot = model.name
  const stored = model.stored
  assert.deepStrictEqual(await readAll(store, robot), stored, robot)
  const latest = model.latest!.timestamp
  const first = stored[0]
  const random = Random.derive(RUN_SEED, 14)
  const bounds = [0, latest, latest + 1, first?.timestamp ?? 0]
  for (let k = 0; k < 40; k++) {
    const a = k < 4 ? 0 : random.below(latest + 2)
    const b = k < 4 ? bounds[k]! : random.below(latest + 2)
    const [start, end] = a <= b ? [a, b] : [b, a]
    assert.equal(
      await store.odometer(robot, { start, end }),
      model.storedOdometer(start, end),
      `${robot} odometer [${start}, ${end}], ${seedNote(RUN_SEED)}`,
    )
    if (k % 8 === 0) {
      assert.deepStrictEqual(
        await readAll(store, robot, start, end),
        stored.filter((e) => e.timestamp >= start && e.timestamp <= end),
        `${robot} events [${start}, ${end}]`,
      )
    }
  }
  const running = await store.runningTotal(robot, 0)
  assert.equal(
    running === undefined ? undefined : running.total + running.carry,
    first === undefined
      ? undefined
      : model.odometer(undefined, first.timestamp),
    `${robot} running total at its first stored event`,
  )
}

/** What {@link Store.getRobot} shows of a robot, from its model, times aside. */
function lifetimeFigures(model: RobotModel) {
  const events = model.events
  const latest = model.latest!
  return {
    name: model.name,
    odometer: model.odometer(),
    lastX: latest.x,
    lastY: latest.y,
    firstTimestamp: events[0]!.timestamp,
    lastTimestamp: latest.timestamp,
    eventCount: events.length,
  }
}

/** `n` events of one robot, `step` ms apart from 0, moving on a small grid. */
function track(robot: string, n: number, step: number): TelemetryEvent[] {
  return Array.from({ length: n }, (_, i) =>
    ev(robot, i * step, (i * 7) % 13, (i * 3) % 11),
  )
}

/** `events` cut into batches of `size`. */
function batches<T>(events: readonly T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < events.length; i += size) {
    out.push(events.slice(i, i + size))
  }
  return out
}

/** A watcher of a store that keeps what it heard. */
function watcher(store: Store) {
  const heard: StoredEvent[] = []
  const commits: number[] = []
  let unwatch: Unwatch = () => {}
  const ready = store
    .watch({
      committed(events) {
        commits.push(events.length)
        heard.push(...events)
      },
      missed() {
        throw new Error('a watcher of a healthy store missed commits')
      },
    })
    .then((stop) => void (unwatch = stop))
  return {
    heard,
    commits,
    ready,
    unwatch: () => unwatch(),
    /** What it heard, once it heard `n` events (PostgreSQL tells later). */
    until: (n: number) =>
      waitFor(() => heard.length >= n && heard, `${n} events heard`),
  }
}

// --- a model-based test ---

/** This run's seed for the model-based test. */
const RUN_SEED = testSeed()

/** The store's outcome for each outcome of the test kit's oracle. */
const OUTCOME_OF = {
  OK: 'ok',
  DUP: 'dup',
  stale: 'stale',
  conflict: 'conflict',
} as const

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
 * by the store and by {@link RobotModel}; now and then a robot is deleted
 * (its model starts over) or a retention pass runs with a random cutoff;
 * every ninth round the store restarts (alternately a clean close and a
 * crash, where the backend can). Then every robot's events, summary and
 * odometers over random intervals.
 */
function modelTests(
  name: string,
  makeStore: StoreFactory,
  options: StoreTestOptions,
) {
  const { reopen, crash = (store: Store) => store.close() } = options
  describe(`store against a model: ${name}`, () => {
    // Three fixed seeds, and this run's own (TEST_SEED replays it).
    for (const seed of [1, 2, 3, RUN_SEED]) {
      it(`should agree with the model on random traffic, deletions and retention passes${reopen ? ' and restarts' : ''} (${seedNote(seed)})`, async () => {
        const random = new Random(seed)
        const robots = ['a', 'b', 'c', 'd', 'e']
        const models = new Map(robots.map((r) => [r, new RobotModel(r)]))
        const clock = new Map(robots.map((r) => [r, 0]))
        // The largest cutoff of the passes since each robot's model began.
        const cutoffs = new Map(robots.map((r) => [r, -Infinity]))
        let store = await makeStore()
        await store.init()
        try {
          for (let round = 0; round < 40; round++) {
            const batch: TelemetryEvent[] = []
            for (let i = 0, n = random.int(1, 12); i < n; i++) {
              const robot = robots[random.below(robots.length)]!
              const roll = random.next()
              const latest = clock.get(robot)!
              // Mostly newer events, some repeats and some older ones:
              // most just before the latest, some anywhere before it
              // (where a retention pass may have removed what was stored).
              const timestamp =
                roll < 0.7
                  ? latest + random.int(1, 3)
                  : roll < 0.9
                    ? Math.max(0, latest - random.below(6))
                    : random.below(latest + 1)
              if (timestamp > latest) clock.set(robot, timestamp)
              const x = random.below(4)
              const y = roll < 0.85 ? timestamp % 3 : random.below(4)
              batch.push({ robot, timestamp, x, y })
            }
            const expected = batch.map(
              (e) =>
                OUTCOME_OF[models.get(e.robot)!.apply(e.x, e.y, e.timestamp)],
            )
            assert.deepStrictEqual(
              await store.append(batch),
              expected,
              `round ${round}`,
            )
            const action = random.next()
            if (action < 0.1) {
              const robot = random.pick(robots)
              assert.equal(
                await store.deleteRobot(robot),
                models.get(robot)!.latest !== undefined,
                `round ${round}: delete ${robot}`,
              )
              models.set(robot, new RobotModel(robot))
              cutoffs.set(robot, -Infinity)
              // The new robot's events may be older than the deleted one's.
              clock.set(robot, random.below(clock.get(robot)! + 1))
            } else if (action < 0.2) {
              const cutoff = random.below(Math.max(...clock.values()) + 2)
              const pass = await store.removeBefore(cutoff)
              let removed = 0
              for (const model of models.values()) {
                const most = Math.max(cutoffs.get(model.name)!, cutoff)
                cutoffs.set(model.name, most)
                removed += await learnRemoved(store, model, most)
              }
              assert.equal(pass.events, removed, `round ${round}: removed`)
            }
            if (reopen !== undefined && round % 9 === 8) {
              const old = store
              if (round % 2 === 0) await old.close()
              else await crash(old)
              store = reopen(old)
              await store.init()
            }
          }
          for (const model of models.values()) {
            await checkRobot(store, model, random)
          }
          assert.equal(
            await store.countRobots(),
            [...models.values()].filter((m) => m.latest !== undefined).length,
            'countRobots',
          )
        } finally {
          await store.close()
        }
      })
    }
  })
}

/**
 * A robot's events, summary and odometers over random intervals: after
 * retention passes, the events still stored (the model learnt which after
 * each pass), and a summary that still covers the robot's whole life.
 */
async function checkRobot(store: Store, model: RobotModel, random: Random) {
  const robot = model.name
  const events = model.events
  const stored = model.stored
  assert.deepStrictEqual(await readAll(store, robot), stored, robot)
  const summary = await store.getRobot(robot)
  const latest = model.latest
  if (latest === undefined) {
    assert.equal(summary, undefined)
    return
  }
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
      odometer: model.odometer(),
    },
  )
  for (let k = 0; k < 30; k++) {
    const a = random.below(latest.timestamp + 3)
    const b = random.below(latest.timestamp + 3)
    const [start, end] = a <= b ? [a, b] : [b, a]
    // Bit for bit: both are the difference of the same running totals.
    assert.equal(
      await store.odometer(robot, { start, end }),
      model.storedOdometer(start, end),
      `${robot} odometer [${start}, ${end}]`,
    )
    assert.deepStrictEqual(
      await readAll(store, robot, start, end),
      stored.filter((e) => e.timestamp >= start && e.timestamp <= end),
      `${robot} events [${start}, ${end}]`,
    )
  }
}
