/**
 * How the bench prints numbers and markdown tables: shared by the report
 * (BENCHMARKS.md) and the comparison of two runs (`--compare`).
 */

/** An integer with thousands separators, or `n/a`. */
export const int = (n: number): string =>
  Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a'

/** `digits` decimals, or `n/a`. */
export const fixed = (n: number, digits: number): string =>
  Number.isFinite(n) ? n.toFixed(digits) : 'n/a'

/** Milliseconds: two decimals under 10, one above. */
export const ms = (n: number): string => fixed(n, n < 10 ? 2 : 1)

/** Bytes as MB (MiB), one decimal. */
export const mb = (bytes: number): string => fixed(bytes / 1024 / 1024, 1)

/** A percentage, no decimals, or `n/a`. */
export const pct = (n: number): string =>
  Number.isFinite(n) ? `${fixed(n, 0)} %` : 'n/a'

/** A markdown table; cells are written as given. */
export function table(head: string[], rows: string[][]): string {
  const lines = [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ]
  return `${lines.join('\n')}\n`
}

/**
 * A figure's number at the precision its unit is printed with:
 * `139,532` for events/s, `2.45` for ms, `45` for %, `1.05` for ×. An
 * unknown unit gets three significant digits.
 */
export function formatNumber(value: number, unit: string): string {
  if (!Number.isFinite(value)) return 'n/a'
  switch (unit) {
    case 'events/s':
    case 'events':
    case 'bytes':
    case 'robots':
    case 'bytes/robot':
    case 'tasks':
    case 'units':
    case 'failovers':
    case 'replies':
    case 'reconnects':
      return int(value)
    case 'ms':
      return ms(value)
    case '%':
      return fixed(value, 0)
    case '×':
      return fixed(value, 2)
    case 'MB':
    case 'bytes/event':
    case 'µs/event':
    case 'frames/s':
    case 's':
      return fixed(value, 1)
    case 'GB':
      return value >= 100 ? int(value) : fixed(value, 1)
    default:
      return String(Number(value.toPrecision(3)))
  }
}

/**
 * A figure in its unit, as the report prints it.
 *
 * @example formatValue(2.449, 'ms') // '2.45 ms'
 * @example formatValue(1.0462, '×') // '1.05×'
 */
export function formatValue(value: number, unit: string): string {
  const n = formatNumber(value, unit)
  if (n === 'n/a' || unit === '') return n
  return unit === '×' ? `${n}×` : `${n} ${unit}`
}
