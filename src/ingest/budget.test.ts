import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { InflightBudget, type BudgetMember } from './budget.ts'

/** A member that records, at each reconsider, what the budget said. */
function recorder(budget: InflightBudget) {
  const seen: { over: boolean; full: boolean }[] = []
  const member: BudgetMember = {
    reconsider: () => seen.push({ over: budget.over, full: budget.full }),
  }
  budget.join(member)
  return { member, seen }
}

describe('InflightBudget', () => {
  it('should tell every member when the server goes over its budget and when it is back under three quarters', () => {
    const budget = new InflightBudget(1000)
    const a = recorder(budget)
    const b = recorder(budget)
    assert.equal(budget.share, 500)
    budget.hold(600)
    assert.deepEqual(a.seen, [])
    budget.hold(400)
    assert.equal(budget.over, true)
    assert.deepEqual(a.seen, [{ over: true, full: false }])
    assert.deepEqual(b.seen, a.seen)
    // Under the budget but not under three quarters: still over, no news.
    budget.release(200)
    assert.equal(budget.over, true)
    assert.equal(a.seen.length, 1)
    budget.release(100)
    assert.equal(budget.bytes, 700)
    assert.equal(budget.over, false)
    assert.deepEqual(a.seen.at(-1), { over: false, full: false })
    assert.equal(a.seen.length, 2)
  })

  it('should tell the members when the server is full, and again when it no longer is', () => {
    const budget = new InflightBudget(1000)
    const a = recorder(budget)
    budget.hold(1200)
    budget.hold(300)
    assert.equal(budget.full, true)
    assert.deepEqual(a.seen, [
      { over: true, full: false },
      { over: true, full: true },
    ])
    // Members stopped only because it was full may go on below 1.5.
    budget.release(100)
    assert.deepEqual(a.seen.at(-1), { over: true, full: false })
    assert.equal(a.seen.length, 3)
  })

  it('should share the budget among the members that are in it', () => {
    const budget = new InflightBudget(900)
    const a = recorder(budget)
    recorder(budget)
    recorder(budget)
    assert.equal(budget.share, 300)
    budget.leave(a.member)
    assert.equal(budget.share, 450)
    budget.hold(900)
    assert.deepEqual(a.seen, [])
  })
})
