/**
 * Blocks: how the SQLite store packs a run of one robot's events into one
 * row. An event costs 16 bytes for its position (two IEEE 754 doubles, exact)
 * plus its timestamp's distance from the previous one as an unsigned LEB128
 * varint (2 bytes for steps under 16 s in milliseconds).
 */

/** A run of one robot's events, oldest first, as parallel arrays. */
export interface EventColumns {
  readonly ts: number[]
  readonly x: number[]
  readonly y: number[]
}

/** Empty columns. */
export function emptyColumns(): EventColumns {
  return { ts: [], x: [], y: [] }
}

const TWO_POW_7 = 128

/**
 * Where blocks are encoded: one buffer, grown as needed, instead of a new
 * one a block, each held outside the collected heap until a full
 * collection of the store thread, which a steady ingest rarely runs.
 */
let scratch = Buffer.alloc(0)

/**
 * Encodes events `from` to `to` (exclusive) of `columns`. The first
 * timestamp is stored as its distance from `columns.ts[from]`, that is 0:
 * the block's first timestamp is kept beside the blob.
 *
 * The block is valid until the next call: bind it to a statement (which
 * copies it) or copy it before encoding another.
 */
export function encodeBlock(
  columns: EventColumns,
  from: number,
  to: number,
): Buffer {
  // 16 bytes of position and at most 8 of varint per event.
  if (scratch.length < (to - from) * 24) {
    scratch = Buffer.allocUnsafe((to - from) * 24)
  }
  const out = scratch
  let offset = 0
  let previous = columns.ts[from]!
  for (let i = from; i < to; i++) {
    const ts = columns.ts[i]!
    // Timestamps reach 2^53−1: split by arithmetic, not 32-bit operators.
    let delta = ts - previous
    previous = ts
    while (delta >= TWO_POW_7) {
      out[offset++] = (delta % TWO_POW_7) | 0x80
      delta = Math.floor(delta / TWO_POW_7)
    }
    out[offset++] = delta
    out.writeDoubleLE(columns.x[i]!, offset)
    out.writeDoubleLE(columns.y[i]!, offset + 8)
    offset += 16
  }
  return out.subarray(0, offset)
}

/**
 * Decodes a block into `into` (appending), given the block's first
 * timestamp. Returns `into`.
 */
export function decodeBlock(
  data: Uint8Array,
  firstTs: number,
  into: EventColumns = emptyColumns(),
): EventColumns {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  let offset = 0
  let ts = firstTs
  while (offset < data.length) {
    let delta = 0
    let scale = 1
    for (;;) {
      const byte = data[offset++]!
      delta += (byte & 0x7f) * scale
      if (byte < 0x80) break
      scale *= TWO_POW_7
    }
    ts += delta
    into.ts.push(ts)
    into.x.push(view.getFloat64(offset, true))
    into.y.push(view.getFloat64(offset + 8, true))
    offset += 16
  }
  return into
}
