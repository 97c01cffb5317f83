import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  decodeBlock,
  emptyColumns,
  encodeBlock,
  type EventColumns,
} from './block-codec.ts'
// A seeded generator (mulberry32): the same columns every run.
import { generator } from './sqlite/layout-fixture.ts'

function columnsOf(
  n: number,
  at: (i: number) => [ts: number, x: number, y: number],
): EventColumns {
  const columns = emptyColumns()
  for (let i = 0; i < n; i++) {
    const [ts, x, y] = at(i)
    columns.ts.push(ts)
    columns.x.push(x)
    columns.y.push(y)
  }
  return columns
}

/** Encodes `from..to`, decodes, and checks every value bit for bit; returns the size. */
function roundTrip(columns: EventColumns, from = 0, to = columns.ts.length) {
  const block = Buffer.from(encodeBlock(columns, from, to))
  const back = decodeBlock(block, columns.ts[from]!)
  assert.equal(back.ts.length, to - from)
  for (let i = 0; i < to - from; i++) {
    assert.equal(back.ts[i], columns.ts[from + i], `ts ${i}`)
    assert.ok(Object.is(back.x[i], columns.x[from + i]), `x ${i}`)
    assert.ok(Object.is(back.y[i], columns.y[from + i]), `y ${i}`)
  }
  return block.length
}

/** A robot driving smoothly at 10 Hz, positions to the millimetre. */
function driving(seed: number, n = 256): EventColumns {
  const random = generator(seed)
  let x = 40
  let y = 20
  let heading = random() * 2 * Math.PI
  let speed = 1.2
  return columnsOf(n, (i) => {
    heading += (random() - 0.5) * 0.1
    speed = i % 100 < 20 ? 0 : Math.min(2, speed + (random() - 0.5) * 0.05)
    x += Math.cos(heading) * speed * 0.1
    y += Math.sin(heading) * speed * 0.1
    return [
      1_700_000_000_000 + i * 100,
      Number(x.toFixed(3)),
      Number(y.toFixed(3)),
    ]
  })
}

describe('block codec', () => {
  it('should pack a robot driving at 10 Hz, to the millimetre, in a few bytes an event', () => {
    let bytes = 0
    for (let seed = 1; seed <= 20; seed++) bytes += roundTrip(driving(seed))
    const perEvent = bytes / (20 * 256)
    assert.ok(perEvent < 4, `${perEvent.toFixed(2)} bytes an event`)
  })

  it('should pack a random walk written with two decimals', () => {
    const random = generator(7)
    let x = -123.45
    let y = 678.9
    const columns = columnsOf(256, (i) => {
      x += random() * 2 - 1
      y += random() * 2 - 1
      return [
        1_700_000_000_000 + i * 10,
        Number(x.toFixed(2)),
        Number(y.toFixed(2)),
      ]
    })
    const perEvent = roundTrip(columns) / 256
    assert.ok(perEvent < 6, `${perEvent.toFixed(2)} bytes an event`)
  })

  it('should keep full-precision doubles and extremes exact, raw', () => {
    const random = generator(9)
    const extremes = [
      0,
      -0,
      1e300,
      -1e300,
      5e-324,
      -2.5e-308,
      2 ** 53,
      -(2 ** 60),
      0.1,
      Number.MAX_VALUE,
    ]
    const columns = columnsOf(256, (i) => [
      i * 1000 + Math.floor(random() * 999),
      (random() - 0.5) * 2000,
      extremes[i % extremes.length]!,
    ])
    const perEvent = roundTrip(columns) / 256
    // Timestamps a byte or two, then 16 bytes of raw doubles.
    assert.ok(perEvent <= 19, `${perEvent.toFixed(2)} bytes an event`)
  })

  it('should keep timestamps exact up to 2^53−1, with steps of any size', () => {
    const max = Number.MAX_SAFE_INTEGER
    roundTrip(columnsOf(5, (i) => [[0, 1, 2 ** 51, max - 1, max][i]!, i, -i]))
    roundTrip(columnsOf(4, (i) => [[5, 6, 2 ** 49, 2 ** 50][i]!, 0.5, 0.25]))
    roundTrip(columnsOf(1, () => [max, 1.5, -1.5]))
    // Scaled integers near the limit fall back to raw.
    roundTrip(columnsOf(3, (i) => [i, 2 ** 49 + i + 0.5, 1e15 + i]))
  })

  it('should encode a part of the columns, and decode after what `into` holds', () => {
    const columns = driving(3, 300)
    roundTrip(columns, 17, 273)
    const into = decodeBlock(
      Buffer.from(encodeBlock(columns, 0, 2)),
      columns.ts[0]!,
    )
    decodeBlock(Buffer.from(encodeBlock(columns, 2, 5)), columns.ts[2]!, into)
    assert.deepEqual(into.ts, columns.ts.slice(0, 5))
    assert.deepEqual(into.x, columns.x.slice(0, 5))
  })

  it('should still read codec 1: a varint step, then two raw doubles, per event', () => {
    // At the first timestamp, 300 ms after it and 500 ms after it.
    const legacy = Buffer.alloc(64)
    let at = 0
    for (const [step, x, y] of [
      [0, 1.5, -2],
      [300, 0.1, 1e300],
      [200, -7, 5e-324],
    ] as const) {
      if (step < 128) legacy[at++] = step
      else {
        legacy[at++] = (step % 128) | 0x80
        legacy[at++] = Math.floor(step / 128)
      }
      legacy.writeDoubleLE(x, at)
      legacy.writeDoubleLE(y, at + 8)
      at += 16
    }
    const back = decodeBlock(legacy.subarray(0, at), 1000)
    assert.deepEqual(back, {
      ts: [1000, 1300, 1500],
      x: [1.5, 0.1, -7],
      y: [-2, 1e300, 5e-324],
    })
  })
})
