/**
 * A robot's stored timestamps only ever grow, so every list of them is
 * sorted: one search serves the rules (domain/batch.ts) and the stores.
 */

/** Index of the first element of sorted `values` that is ≥ `value`. */
export function lowerBound(values: readonly number[], value: number): number {
  let lo = 0
  let hi = values.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (values[mid]! < value) lo = mid + 1
    else hi = mid
  }
  return lo
}
