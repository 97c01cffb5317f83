/**
 * The check shared by the tests that open a store written by an earlier
 * layout (SQLite's fixtures/blocks-v1.db, PostgreSQL's
 * fixtures/schema-v3.sql), each from fixtureEvents().
 */
import assert from 'node:assert/strict'
import {
  FIXTURE_EVENTS_PER_ROBOT,
  fixtureEvents,
} from './sqlite/layout-fixture.ts'
import type { Store } from './store.ts'

/** The fixture's robots. */
export const FIXTURE_ROBOTS = ['fixture-0', 'fixture-1', 'fixture-2']

/**
 * Asserts that `store` holds every event of fixtureEvents() to the bit
 * (sign of zero included), and the lifetime odometers the earlier layouts
 * computed.
 */
export async function assertFixtureStored(store: Store): Promise<void> {
  const expected = fixtureEvents()
  for (const robot of FIXTURE_ROBOTS) {
    const ts: number[] = []
    const x: number[] = []
    const y: number[] = []
    for await (const page of store.readEvents(robot)) {
      ts.push(...page.ts)
      x.push(...page.x)
      y.push(...page.y)
    }
    const wanted = expected.filter((e) => e.robot === robot)
    assert.equal(ts.length, FIXTURE_EVENTS_PER_ROBOT)
    wanted.forEach((want, i) => {
      assert.equal(ts[i], want.timestamp, `${robot} #${i}`)
      assert.ok(Object.is(x[i], want.x), `${robot} #${i} x`)
      assert.ok(Object.is(y[i], want.y), `${robot} #${i} y`)
    })
    assert.equal((await store.getRobot(robot))?.eventCount, wanted.length)
  }
  // As the earlier layouts computed them, to the last bit.
  assert.equal(await store.odometer('fixture-0'), 96.88650473592789)
  assert.equal(await store.odometer('fixture-1'), 473660.0475515942)
  assert.equal(await store.odometer('fixture-2'), 5.9890158697766474e302)
}
