import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { CommitListener, StoredEvent } from '../store/store.ts'
import { CommitFanout } from './fanout.ts'

/** A commit source that counts its watches and tells what a test commits. */
class Source {
  readonly listeners = new Set<CommitListener>()
  watches = 0
  fail = false

  async watch(listener: CommitListener) {
    this.watches++
    await Promise.resolve()
    if (this.fail) throw new Error('cannot listen')
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  commit(events: StoredEvent[]) {
    for (const listener of this.listeners) listener.committed(events)
  }
}

const event = (timestamp: number): StoredEvent => ({
  robot: 'r',
  x: 0,
  y: 0,
  timestamp,
  odometer: 0,
})

function recorder() {
  const seen: number[] = []
  let missed = 0
  return {
    seen,
    missed: () => missed,
    listener: {
      committed: (events: readonly StoredEvent[]) =>
        seen.push(...events.map((e) => e.timestamp)),
      missed: () => missed++,
    },
  }
}

test('watches the store once for every listener, and stops when the last leaves', async () => {
  const source = new Source()
  const fanout = new CommitFanout(source)
  const a = recorder()
  const b = recorder()
  const unwatchA = await fanout.watch(a.listener)
  const unwatchB = await fanout.watch(b.listener)
  assert.equal(source.watches, 1)
  assert.equal(source.listeners.size, 1)
  source.commit([event(1), event(2)])
  unwatchA()
  unwatchA() // idempotent
  source.commit([event(3)])
  assert.deepEqual(a.seen, [1, 2])
  assert.deepEqual(b.seen, [1, 2, 3])
  for (const listener of source.listeners) listener.missed()
  assert.equal(b.missed(), 1)
  assert.equal(a.missed(), 0)
  unwatchB()
  await Promise.resolve()
  assert.equal(source.listeners.size, 0, 'the store is no longer watched')
  assert.equal(fanout.size, 0)

  const c = recorder()
  await fanout.watch(c.listener)
  assert.equal(source.watches, 2, 'watched again for a new listener')
  source.commit([event(4)])
  assert.deepEqual(c.seen, [4])
})

test('a watch that fails rejects its listeners, and the next one tries again', async () => {
  const source = new Source()
  source.fail = true
  const fanout = new CommitFanout(source)
  await assert.rejects(fanout.watch(recorder().listener), /cannot listen/)
  assert.equal(fanout.size, 0)
  source.fail = false
  const d = recorder()
  await fanout.watch(d.listener)
  source.commit([event(5)])
  assert.deepEqual(d.seen, [5])
})

test('a watch still starting when its last listener leaves tells nothing after', async () => {
  const source = new Source()
  const fanout = new CommitFanout(source)
  const e = recorder()
  const starting = fanout.watch(e.listener)
  const unwatch = await starting
  unwatch()
  const f = recorder()
  const watching = fanout.watch(f.listener)
  await watching
  source.commit([event(6)])
  assert.deepEqual(e.seen, [])
  assert.deepEqual(f.seen, [6], 'told once, by the current watch only')
})
