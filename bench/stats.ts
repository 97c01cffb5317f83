/**
 * Small statistics helpers shared by the bench processes.
 */

/** Latency figures in milliseconds. */
export interface LatencySummary {
  readonly count: number
  readonly p50: number
  readonly p99: number
  readonly max: number
  readonly mean: number
}

/**
 * Summarises latency samples (milliseconds). Percentiles are nearest-rank on
 * the sorted samples; an empty list gives NaN everywhere.
 */
export function summarize(samples: ArrayLike<number>): LatencySummary {
  const sorted = Float64Array.from(samples).sort()
  const n = sorted.length
  if (n === 0) return { count: 0, p50: NaN, p99: NaN, max: NaN, mean: NaN }
  let sum = 0
  for (let i = 0; i < n; i++) sum += sorted[i]!
  return {
    count: n,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    max: sorted[n - 1]!,
    mean: sum / n,
  }
}

/** Nearest-rank percentile of sorted samples, `q` in (0, 1]. */
export function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN
  const rank = Math.ceil(q * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!
}
