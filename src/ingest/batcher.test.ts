import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { TelemetryEvent } from '../domain/event.ts'
import type { Outcome } from '../domain/rules.ts'
import { createSqliteStore } from '../store/sqlite/sqlite-store.ts'
import type { Store } from '../store/store.ts'
import { createBatcher, type BatchTarget } from './batcher.ts'

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
    batcher.add(ev('r', 1), a, 'a1')
    batcher.add(ev('s', 1), b, 'b1')
    batcher.add(ev('r', 2), a, 'a2')
    batcher.add(ev('r', 1), a, 'a3')
    batcher.add(ev('r', 0), a, 'a4')
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
    for (let t = 1; t <= 7; t++) batcher.add(ev('r', t), target, `e${t}`)
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
    batcher.add(ev('r', 1), target, 'lost')
    await batcher.drain()
    failNext(false)
    batcher.add(ev('r', 1), target, 'again')
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
    for (let t = 0; t < 4; t++) batcher.add(ev('r', t), target, `t${t}`)
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
    for (let t = 0; t < 4; t++) batcher.add(ev('r', t), target, `again${t}`)
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
        if (slot === 1) batcher.add(ev('r', 2), target, 2)
      },
      settled() {},
    }
    batcher.add(ev('r', 1), target, 1)
    await batcher.drain()
    assert.deepStrictEqual(batches, [1, 1])
    assert.equal((await store.getRobot('r'))?.eventCount, 2)
    await store.close()
  })

  it('should resolve drain at once when idle', async () => {
    const batcher = createBatcher(await memoryStore())
    await batcher.drain()
    assert.equal(batcher.pending, 0)
  })
})
