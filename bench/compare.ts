/**
 * `npm run bench -- --compare A.json B.json`: the figures of two runs side
 * by side with the ratio B/A, computed from their JSON results, printed as
 * markdown and, with `--history FILE`, added to the History section of a
 * report (BENCHMARKS.md).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { unitOf } from './figures.ts'
import { fixed, formatNumber, formatValue, int, table } from './format.ts'
import { HISTORY_MARKER } from './report.ts'
import { parseResults, type BenchResults } from './results.ts'
import { showVerdict } from './targets.ts'

/** One figure in two runs. */
export interface FigureComparison {
  readonly id: string
  readonly unit: string
  /** Undefined when that run did not measure it. */
  readonly a: number | undefined
  readonly b: number | undefined
  /** `b / a`; undefined when either is missing or `a` is 0. */
  readonly ratio: number | undefined
}

/**
 * Every figure of either run, A's in A's order then those only B has, with
 * the ratio B/A where both have it.
 *
 * @example compareFigures({ 'ingest.events_per_s': 100 }, { 'ingest.events_per_s': 120 })
 * // [{ id: 'ingest.events_per_s', unit: 'events/s', a: 100, b: 120, ratio: 1.2 }]
 */
export function compareFigures(
  a: Readonly<Record<string, number>>,
  b: Readonly<Record<string, number>>,
): FigureComparison[] {
  const ids = [...Object.keys(a), ...Object.keys(b).filter((id) => !(id in a))]
  return ids.map((id) => {
    const va = Object.hasOwn(a, id) ? a[id] : undefined
    const vb = Object.hasOwn(b, id) ? b[id] : undefined
    return {
      id,
      unit: unitOf(id),
      a: va,
      b: vb,
      ratio:
        va === undefined || vb === undefined || va === 0 ? undefined : vb / va,
    }
  })
}

/** Why two runs' figures may not compare, one sentence each. */
export function comparisonCaveats(a: BenchResults, b: BenchResults): string[] {
  const out: string[] = []
  if (a.mode !== b.mode) {
    out.push(
      `A is a ${a.mode} run and B a ${b.mode} run: their counts differ, so their figures do not compare.`,
    )
  }
  if (a.backend !== b.backend) {
    out.push(`A ran on ${a.backend} and B on ${b.backend}.`)
  }
  if (machineText(a) !== machineText(b)) {
    out.push(
      'The machines differ: compare runs made one after the other on one machine.',
    )
  }
  if (a.node !== b.node) {
    out.push(`Node.js differs: ${a.node} and ${b.node}.`)
  }
  for (const [name, run] of [
    ['A', a],
    ['B', b],
  ] as const) {
    if (run.dirty) {
      out.push(`${name} ran on a tree with uncommitted changes.`)
    }
    if (run.problems.length > 0) {
      out.push(
        `${name} saw ${run.problems.length} problem(s), listed in its JSON and report.`,
      )
    }
  }
  return out
}

function machineText(run: BenchResults): string {
  const m = run.machine
  return `${m.cores} cores, ${m.cpuModel}, ${fixed(m.memoryBytes / 1024 ** 3, 1)} GiB`
}

/** Names for the two runs in the text (their file names, as given). */
export interface ComparisonNames {
  readonly a: string
  readonly b: string
  /** What changed between A and B, for the heading. */
  readonly title?: string
}

/**
 * The comparison as a markdown section for the History of BENCHMARKS.md:
 * a heading, the two runs, any caveats, every figure with B/A, and the
 * targets' verdicts in both.
 */
export function renderComparison(
  a: BenchResults,
  b: BenchResults,
  names: ComparisonNames,
): string {
  const out: string[] = []
  const commit = (r: BenchResults) =>
    `\`${r.commit}\`${r.dirty ? ' (dirty)' : ''}`
  out.push(
    `### ${b.started.slice(0, 10)}: ${commit(a)} → ${commit(b)}${names.title === undefined ? '' : `: ${names.title}`}\n`,
  )
  out.push(
    `Computed by \`npm run bench -- --compare ${names.a} ${names.b}\`: A is \`${names.a}\`, B is \`${names.b}\`.\n`,
  )
  out.push(
    table(
      ['', 'A', 'B'],
      [
        ['Started', a.started, b.started],
        ['Commit', commit(a), commit(b)],
        ['Mode', a.mode, b.mode],
        ['Store', `${a.backend}`, `${b.backend}`],
        ['Machine', machineText(a), machineText(b)],
        ['Node.js', a.node, b.node],
        ['Duration', `${fixed(a.seconds, 0)} s`, `${fixed(b.seconds, 0)} s`],
        ['Problems', int(a.problems.length), int(b.problems.length)],
      ],
    ),
  )
  const caveats = comparisonCaveats(a, b)
  if (caveats.length > 0) {
    out.push(`${caveats.map((c) => `- ${c}`).join('\n')}\n`)
  }
  const rows = compareFigures(a.figures, b.figures)
  out.push(
    table(
      ['Figure', 'Unit', 'A', 'B', 'B/A'],
      rows.map((r) => [
        `\`${r.id}\``,
        r.unit,
        r.a === undefined ? '—' : formatNumber(r.a, r.unit),
        r.b === undefined ? '—' : formatNumber(r.b, r.unit),
        r.a === undefined
          ? 'only in B'
          : r.b === undefined
            ? 'only in A'
            : r.ratio === undefined
              ? 'n/a'
              : fixed(r.ratio, 2),
      ]),
    ),
  )
  const targetIds = [
    ...a.targets.map((t) => t.id),
    ...b.targets
      .map((t) => t.id)
      .filter((id) => !a.targets.some((t) => t.id === id)),
  ]
  const verdict = (run: BenchResults, id: string) => {
    const t = run.targets.find((x) => x.id === id)
    if (t === undefined) return '—'
    const value =
      t.value === null ? '' : ` (${formatValue(t.value, unitOf(t.figure))})`
    return `${showVerdict(t.verdict)}${value}`
  }
  if (targetIds.length > 0) {
    out.push(
      table(
        ['Target', 'A', 'B'],
        targetIds.map((id) => [`\`${id}\``, verdict(a, id), verdict(b, id)]),
      ),
    )
  }
  return out.join('\n')
}

/**
 * `document` with `entry` added at the end of its History section (before
 * the next `## ` heading after {@link HISTORY_MARKER}, such as BENCHMARKS.md's
 * PostgreSQL section); a document without the marker gets a History section
 * at its end.
 */
export function addToHistory(document: string, entry: string): string {
  const body = `${entry.replace(/\n*$/, '')}\n`
  const at = document.indexOf(HISTORY_MARKER)
  if (at < 0) {
    const head = document === '' ? '' : `${document.replace(/\n*$/, '')}\n\n`
    return `${head}## History\n\n${HISTORY_MARKER}\n\n${body}`
  }
  const next = document.slice(at).search(/^## /m)
  const end = next < 0 ? document.length : at + next
  const before = `${document.slice(0, end).replace(/\n*$/, '')}\n\n`
  const after = document.slice(end)
  return after === '' ? `${before}${body}` : `${before}${body}\n${after}`
}

/**
 * Runs `--compare A.json B.json [--history FILE] [--title TEXT]`: returns
 * the markdown to print, and adds it to FILE's History section when given.
 */
export function compareCommand(options: {
  readonly compare: readonly [string, string]
  readonly history: string | undefined
  readonly title: string | undefined
}): string {
  const [pathA, pathB] = options.compare
  const read = (path: string) => {
    if (!existsSync(path)) throw new Error(`${path}: no such file`)
    return parseResults(readFileSync(path, 'utf8'), path)
  }
  const text = renderComparison(read(pathA), read(pathB), {
    a: pathA,
    b: pathB,
    title: options.title,
  })
  if (options.history !== undefined) {
    const old = existsSync(options.history)
      ? readFileSync(options.history, 'utf8')
      : ''
    writeFileSync(options.history, addToHistory(old, text))
  }
  return text
}
