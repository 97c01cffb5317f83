/**
 * The figures of a run as JSON, written beside the report by every run
 * (`BENCHMARKS.md` gives `BENCHMARKS.json`; `--json FILE` chooses), and
 * read back by `--compare` (compare.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import {
  BACKENDS,
  collectFigures,
  type Backend,
  type Figures,
} from './figures.ts'
import type { RunConfig, RunReport } from './report.ts'
import { evaluateTargets, type Verdict } from './targets.ts'

/** The `format` of the JSON results; a reader rejects any other. */
export const RESULTS_FORMAT = 'fleet-telemetry-bench/1'

/** One run's figures and where they were measured. */
export interface BenchResults {
  readonly format: typeof RESULTS_FORMAT
  /** When the run started, ISO 8601. */
  readonly started: string
  /** How long the whole run took. */
  readonly seconds: number
  /** Short hash of HEAD, and whether the tree had other changes. */
  readonly commit: string
  readonly dirty: boolean
  readonly mode: 'quick' | 'full'
  readonly backend: Backend
  /** The store as the report prints it (no password). */
  readonly store: string
  /** `process.version` */
  readonly node: string
  readonly machine: RunReport['machine']
  readonly scenarios: readonly string[]
  readonly settings: RunConfig
  /** Every figure by id (figures.ts), in report order; absent when not measured. */
  readonly figures: Readonly<Record<string, number>>
  /** Each target's verdict on these figures (`value` null: not measured). */
  readonly targets: readonly {
    readonly id: string
    readonly figure: string
    readonly value: number | null
    readonly verdict: Verdict
  }[]
  readonly problems: readonly string[]
}

/** Counts as they are; others to six significant digits, more than any figure's noise. */
const round = (n: number) =>
  Number.isInteger(n) ? n : Number(n.toPrecision(6))

/** The JSON results of a run. */
export function toResults(report: RunReport): BenchResults {
  const figures: Figures = collectFigures(report)
  return {
    format: RESULTS_FORMAT,
    started: report.started.toISOString(),
    seconds: round(report.seconds),
    commit: report.commit,
    dirty: report.dirty,
    mode: report.quick ? 'quick' : 'full',
    backend: report.backend,
    store: report.store,
    node: report.node,
    machine: report.machine,
    scenarios: report.scenarios,
    settings: report.config,
    figures: Object.fromEntries(
      Object.entries(figures).map(([id, value]) => [id, round(value)]),
    ),
    targets: evaluateTargets(figures, report.backend).map((r) => ({
      id: r.target.id,
      figure: r.target.figure,
      value: r.value === undefined ? null : round(r.value),
      verdict: r.verdict,
    })),
    problems: report.problems,
  }
}

/**
 * Writes a run's JSON results to `path`, formatted as Prettier formats JSON
 * (so `npm run lint` passes on a results file committed in the tree).
 */
export async function writeResults(
  path: string,
  report: RunReport,
): Promise<void> {
  // Loaded here only: readers of results (--compare, tests) do not need it.
  // Expanded objects stay expanded; Prettier only folds short arrays.
  const { format } = await import('prettier')
  const text = await format(JSON.stringify(toResults(report), null, 2), {
    parser: 'json',
  })
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, text)
}

/** Where the JSON results go by default: beside the report, `.md` → `.json`. */
export function jsonBeside(report: string): string {
  return report.endsWith('.md')
    ? `${report.slice(0, -'.md'.length)}.json`
    : `${report}.json`
}

/** A store URL without its password, fit to be printed and kept. */
export function redactStore(store: string): string {
  try {
    const url = new URL(store)
    if (url.password === '') return store
    url.password = '***'
    return url.toString()
  } catch {
    return store
  }
}

// --- reading ---

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * Reads JSON results written by {@link writeResults}, checking what
 * `--compare` relies on. `source` names the file in error messages.
 */
export function parseResults(text: string, source: string): BenchResults {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new Error(`${source}: not JSON: ${(error as Error).message}`, {
      cause: error,
    })
  }
  if (!isObject(value) || value.format !== RESULTS_FORMAT) {
    throw new Error(
      `${source}: not bench results: format must be "${RESULTS_FORMAT}"`,
    )
  }
  for (const key of ['started', 'commit', 'node', 'store'] as const) {
    if (typeof value[key] !== 'string') {
      throw new Error(`${source}: ${key} must be a string`)
    }
  }
  if (value.mode !== 'quick' && value.mode !== 'full') {
    throw new Error(`${source}: mode must be "quick" or "full"`)
  }
  if (!(BACKENDS as readonly unknown[]).includes(value.backend)) {
    throw new Error(`${source}: backend must be one of ${BACKENDS.join(', ')}`)
  }
  if (!isObject(value.machine)) {
    throw new Error(`${source}: machine must be an object`)
  }
  if (!isObject(value.figures)) {
    throw new Error(`${source}: figures must be an object`)
  }
  for (const [id, figure] of Object.entries(value.figures)) {
    if (typeof figure !== 'number' || !Number.isFinite(figure)) {
      throw new Error(`${source}: figure ${id} must be a number`)
    }
  }
  if (!Array.isArray(value.targets) || !Array.isArray(value.problems)) {
    throw new Error(`${source}: targets and problems must be arrays`)
  }
  return value as unknown as BenchResults
}
