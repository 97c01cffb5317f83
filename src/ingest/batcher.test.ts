import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { TelemetryEvent } from '../domain/event.ts'
import type { Outcome } from '../domain/rules.ts'
import { createSqliteStore } from '../store/sqlite/sqlite-store.ts'
import type { Store } from '../store/store.ts'
import { createBatcher, type BatchTarget, type EventSource } from './batcher.ts'

/** Records what the batcher tells it. */
class Recorder implements BatchTarget<string> {
  settledWith: [string, Outcome | undefined][] = []
  settledCalls = 0
  settle(slot: string, outcome: Outcome | undefined) {
    this.settledWith.push([slot, outcome])
  }
  settled() {
    this.settledCalls++
  }
}

const ev = (robot: string, timestamp: number): TelemetryEvent => ({
  robot,
  timestamp,
  x: timestamp,
  y: 0,
})

/**
 * A source of events as a frame is: items are events, or `null` for a
 * line that is not one; each event's slot is its index among the items.
 */
class Lines implements EventSource<number> {
  readonly target: BatchTarget<number>
  readonly items: (TelemetryEvent | null)[]
  next = 0
  constructor(target: BatchTarget<number>, items: (TelemetryEvent | null)[]) {
    this.target = target
    this.items = items
  }
  get remaining() {
    return this.items.length - this.next
  }
  read(max: number, push: (event: TelemetryEvent, slot: number) => void) {
    let pushed = 0
    for (; this.next < this.items.length && pushed < max; this.next++) {
      const item = this.items[this.next]
      if (item === null || item === undefined) continue
      push(item, this.next)
      pushed++
    }
    return this.next === this.items.length
  }
}

/** A source of one event. */
function one<Slot>(
  event: TelemetryEvent,
  target: BatchTarget<Slot>,
  slot: Slot,
): EventSource<Slot> {
  let read = false
  return {
    target,
    get remaining() {
      return read ? 0 : 1
    },
    read(_max, push) {
      read = true
      push(event, slot)
      return true
    },
  }
}

async function memoryStore() {
  const store = createSqliteStore({ path: ':memory:' })
  await store.init()
  return store
}

/** A store that counts its commits and can be told to fail them. */
function observed(store: Store) {
  const batches: number[] = []
  let fail = false
  const wrapped: Store = {
    url: store.url,
    init: () => store.init(),
    append: async (events) => {
      batches.push(events.length)
      if (fail) throw new Error('disk full')
      return store.append(events)
    },
    listRobots: (options) => store.listRobots(options),
    countRobots: () => store.countRobots(),
    getRobot: (name) => store.getRobot(name),
    readEvents: (name, options) => store.readEvents(name, options),
    odometer: (name, range) => store.odometer(name, range),
    runningTotal: (name, timestamp) => store.runningTotal(name, timestamp),
    watch: (listener) => store.watch(listener),
    deleteRobot: (name) => store.deleteRobot(name),
    removeBefore: (cutoff) => store.removeBefore(cutoff),
    close: () => store.close(),
  }
  return {
    store: wrapped,
    batches,
    failNext: (value: boolean) => (fail = value),
  }
}

describe('batcher', () => {
  it('should commit the events of one tick together and settle them in order', async () => {
    const { store, batches } = observed(await memoryStore())
    const batcher = createBatcher(store)
    const a = new Recorder()
    const b = new Recorder()
    batcher.add(one(ev('r', 1), a, 'a1'))
    batcher.add(one(ev('s', 1), b, 'b1'))
    batcher.add(one(ev('r', 2), a, 'a2'))
    batcher.add(one(ev('r', 1), a, 'a3'))
    batcher.add(one(ev('r', 0), a, 'a4'))
    assert.equal(batcher.pending, 5)
    await batcher.drain()
    assert.deepStrictEqual(batches, [5])
    assert.deepStrictEqual(a.settledWith, [
      ['a1', 'ok'],
      ['a2', 'ok'],
      ['a3', 'dup'],
      ['a4', 'stale'],
    ])
    assert.deepStrictEqual(b.settledWith, [['b1', 'ok']])
    assert.equal(a.settledCalls, 1)
    assert.equal(b.settledCalls, 1)
    assert.equal(batcher.pending, 0)
    await store.close()
  })

  it('should split a batch larger than maxBatch, in order', async () => {
    const { store, batches } = observed(await memoryStore())
    const batcher = createBatcher(store, { maxBatch: 3 })
    const target = new Recorder()
    for (let t = 1; t <= 7; t++) batcher.add(one(ev('r', t), target, `e${t}`))
    await batcher.drain()
    assert.deepStrictEqual(batches, [3, 3, 1])
    assert.deepStrictEqual(
      target.settledWith.map(([slot]) => slot),
      ['e1', 'e2', 'e3', 'e4', 'e5', 'e6', 'e7'],
    )
    assert.equal(target.settledCalls, 3)
    await store.close()
  })

  it('should settle a failed batch with no outcome and go on with the next', async () => {
    const { store, failNext } = observed(await memoryStore())
    const errors: [string, number][] = []
    const batcher = createBatcher(store, {
      onCommitError: (error, events) =>
        errors.push([(error as Error).message, events]),
    })
    const target = new Recorder()
    failNext(true)
    batcher.add(one(ev('r', 1), target, 'lost'))
    await batcher.drain()
    failNext(false)
    batcher.add(one(ev('r', 1), target, 'again'))
    await batcher.drain()
    assert.deepStrictEqual(errors, [['disk full', 1]])
    assert.deepStrictEqual(target.settledWith, [
      ['lost', undefined],
      ['again', 'ok'],
    ])
    await store.close()
  })

  it('should fail the events queued behind a failed commit with it', async () => {
    const { store, batches, failNext } = observed(await memoryStore())
    const batcher = createBatcher(store, { maxBatch: 2 })
    const target = new Recorder()
    failNext(true)
    for (let t = 0; t < 4; t++) batcher.add(one(ev('r', t), target, `t${t}`))
    await batcher.drain()
    failNext(false)
    // Only the first batch reached the store, and nothing of robot r moved
    // forward: the resends are stored, not stale.
    assert.deepStrictEqual(batches, [2])
    assert.deepStrictEqual(target.settledWith, [
      ['t0', undefined],
      ['t1', undefined],
      ['t2', undefined],
      ['t3', undefined],
    ])
    for (let t = 0; t < 4; t++)
      batcher.add(one(ev('r', t), target, `again${t}`))
    await batcher.drain()
    assert.deepStrictEqual(
      target.settledWith.slice(4).map(([, outcome]) => outcome),
      ['ok', 'ok', 'ok', 'ok'],
    )
    await store.close()
  })

  it('should let events added during a commit wait for the next batch', async () => {
    const { store, batches } = observed(await memoryStore())
    const batcher = createBatcher(store)
    const target: BatchTarget<number> = {
      settle(slot) {
        // Added while the first batch settles: it must not be lost.
        if (slot === 1) batcher.add(one(ev('r', 2), target, 2))
      },
      settled() {},
    }
    batcher.add(one(ev('r', 1), target, 1))
    await batcher.drain()
    assert.deepStrictEqual(batches, [1, 1])
    assert.equal((await store.getRobot('r'))?.eventCount, 2)
    await store.close()
  })

  it('should read a source only one batch ahead of the commit', async () => {
    const { store, batches } = observed(await memoryStore())
    const batcher = createBatcher(store, { maxBatch: 3 })
    const target = new Recorder()
    const frame = new Lines(
      target as unknown as BatchTarget<number>,
      Array.from({ length: 10 }, (_, t) => ev('r', t + 1)),
    )
    batcher.add(frame)
    // The first batch is read at once; the rest waits as lines.
    assert.equal(frame.remaining, 7)
    assert.equal(batcher.pending, 10)
    await batcher.drain()
    assert.deepStrictEqual(batches, [3, 3, 3, 1])
    assert.deepStrictEqual(
      target.settledWith.map(([slot, outcome]) => [slot, outcome]),
      Array.from({ length: 10 }, (_, i) => [i, 'ok']),
    )
    assert.equal(batcher.pending, 0)
    await store.close()
  })

  it('should skip the lines that are not events and tell a target whose source had none', async () => {
    const { store, batches } = observed(await memoryStore())
    const batcher = createBatcher(store, { maxBatch: 2 })
    const target = new Recorder()
    const empty = new Recorder()
    const frame = new Lines(target as unknown as BatchTarget<number>, [
      null,
      ev('r', 1),
      null,
      ev('r', 2),
      ev('r', 3),
      null,
    ])
    batcher.add(frame)
    batcher.add(new Lines(empty as unknown as BatchTarget<number>, [null]))
    await batcher.drain()
    assert.deepStrictEqual(batches, [2, 1])
    assert.deepStrictEqual(
      target.settledWith.map(([slot]) => slot),
      [1, 3, 4],
    )
    // Read to its end with no event: told once, with nothing to settle.
    assert.deepStrictEqual(empty.settledWith, [])
    assert.equal(empty.settledCalls, 1)
    await store.close()
  })

  it('should fail the lines not yet read behind a failed commit', async () => {
    const { store, batches, failNext } = observed(await memoryStore())
    const batcher = createBatcher(store, { maxBatch: 2 })
    const target = new Recorder()
    failNext(true)
    batcher.add(
      new Lines(
        target as unknown as BatchTarget<number>,
        Array.from({ length: 7 }, (_, t) => ev('r', t + 1)),
      ),
    )
    await batcher.drain()
    failNext(false)
    assert.deepStrictEqual(batches, [2])
    assert.equal(target.settledWith.length, 7)
    assert.ok(target.settledWith.every(([, outcome]) => outcome === undefined))
    assert.equal(batcher.pending, 0)
    await store.close()
  })

  it('should resolve drain at once when idle', async () => {
    const batcher = createBatcher(await memoryStore())
    await batcher.drain()
    assert.equal(batcher.pending, 0)
  })
})
