import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { OdometerReplay } from './odometer-replay.ts'
import { openBackend } from './open.ts'
import type { EventPage } from './store.ts'

/** A store holding robot `r` at these positions, timestamps 1, 2, 3, … */
async function storeWith(points: readonly [number, number][]) {
  const store = await openBackend('sqlite::memory:')
  await store.init()
  await store.append(
    points.map(([x, y], i) => ({ robot: 'r', x, y, timestamp: i + 1 })),
  )
  return store
}

describe('OdometerReplay', () => {
  it('should give the lifetime odometer at each event, across pages and reads', async () => {
    // Steps of 5, 5, 13 and 0: lifetime odometers 0, 5, 10, 23, 23.
    const store = await storeWith([
      [0, 0],
      [3, 4],
      [6, 8],
      [1, 20],
      [1, 20],
    ])
    try {
      const replay = new OdometerReplay(store, 'r')
      const seen: number[] = []
      // Two reads, the second going on from the first's last timestamp.
      for (const range of [{ end: 2 }, { start: 3 }]) {
        for await (const page of store.readEvents('r', {
          ...range,
          pageSize: 2,
        })) {
          seen.push(...(await replay.next(page))!)
        }
      }
      assert.deepStrictEqual(seen, [0, 5, 10, 23, 23])
      assert.equal((await store.getRobot('r'))!.odometer, 23)
    } finally {
      await store.close()
    }
  })

  it("should start from the stored running total of the first page's first event", async () => {
    const store = await storeWith([
      [0, 0],
      [3, 4],
      [6, 8],
    ])
    try {
      const replay = new OdometerReplay(store, 'r')
      const pages: EventPage[] = []
      for await (const page of store.readEvents('r', { start: 2 })) {
        pages.push(page)
      }
      assert.deepStrictEqual(await replay.next(pages[0]!), [5, 10])
      assert.deepStrictEqual(await replay.next({ ts: [], x: [], y: [] }), [])
    } finally {
      await store.close()
    }
  })

  it('should say undefined when the robot is gone before its first page is replayed', async () => {
    const store = await storeWith([[0, 0]])
    try {
      const page = { ts: [1], x: [0], y: [0] }
      await store.deleteRobot('r')
      assert.equal(await new OdometerReplay(store, 'r').next(page), undefined)
    } finally {
      await store.close()
    }
  })
})
