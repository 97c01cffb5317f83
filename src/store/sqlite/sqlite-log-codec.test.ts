import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { encodeLogRow, readLogRow, type LogRun } from './sqlite-log-codec.ts'
import { generator } from './layout-fixture.ts'

/** Every event of a row, as [robot id, ts, x, y]. */
function eventsOf(data: Uint8Array): [number, number, number, number][] {
  const out: [number, number, number, number][] = []
  const count = readLogRow(data, (id, ts, x, y) => out.push([id, ts, x, y]))
  assert.equal(count, out.length)
  return out
}

describe('sqlite log rows', () => {
  it('should give back every event, robot by robot, bit for bit', () => {
    const random = generator(17)
    const extremes = [0, -0, 1e300, -1e300, 5e-324, -2.5e-308, 0.1, -7]
    const runs: LogRun[] = []
    for (let r = 0; r < 50; r++) {
      const n = 1 + Math.floor(random() * 20)
      const ts: number[] = []
      const x: number[] = []
      const y: number[] = []
      for (let i = 0; i < n; i++) {
        ts.push(r === 0 ? Number.MAX_SAFE_INTEGER - n + i : 1e12 + i * 7)
        x.push(r % 2 ? extremes[i % extremes.length]! : (random() - 0.5) * 1e4)
        y.push(random() * 1e-3)
      }
      runs.push({ id: r === 1 ? 2 ** 40 : r + 1, ts, x, y })
    }
    const want = runs.flatMap((run) =>
      run.ts.map((ts, i) => [run.id, ts, run.x[i]!, run.y[i]!]),
    )
    // A copy: the encoder's buffer is reused by its next call.
    const row = Buffer.from(encodeLogRow(runs))
    assert.equal(row.length, 50 * 16 + want.length * 24)
    const got = eventsOf(row)
    assert.equal(got.length, want.length)
    got.forEach((event, i) =>
      event.forEach((value, j) =>
        assert.ok(Object.is(value, want[i]![j]), `event ${i}, field ${j}`),
      ),
    )
  })

  it('should grow its buffer for a row larger than any before', () => {
    const n = 10_000
    const ts = Array.from({ length: n }, (_, i) => i)
    const row = Buffer.from(encodeLogRow([{ id: 9, ts, x: ts, y: ts }]))
    const got = eventsOf(row)
    assert.equal(got.length, n)
    assert.deepStrictEqual(got.at(-1), [9, n - 1, n - 1, n - 1])
    assert.deepStrictEqual(eventsOf(encodeLogRow([])), [])
  })

  it('should refuse a row whose length does not match what it holds', () => {
    const row = Buffer.from(
      encodeLogRow([{ id: 1, ts: [1, 2], x: [0, 0], y: [0, 0] }]),
    )
    for (const cut of [row.subarray(0, row.length - 8), row.subarray(0, 10)]) {
      assert.throws(() => readLogRow(cut, () => {}), /not a sequence/)
    }
  })
})
