/**
 * The live output of the commands, on stderr: on a terminal a line
 * rewritten in place (cli-progress), as a bar when the total is known;
 * anywhere else (a file, a pipe, a CI log) a plain line every few seconds,
 * without control characters. "A terminal" is `process.stderr.isTTY`.
 */
import cliProgress from 'cli-progress'

/** Where the output goes: stderr, or a stand-in in tests. */
export interface StatusStream {
  write(text: string): unknown
  readonly isTTY?: boolean
  readonly columns?: number
}

export interface ReporterOptions {
  /** Default `process.stderr`. */
  readonly stream?: StatusStream
  /** Whether to draw in place; default: whether `stream` is a terminal. */
  readonly tty?: boolean
  /** Starts each plain line, e.g. `replay: `. */
  readonly label?: string
  /** How often a terminal line is redrawn (default 500 ms: twice a second). */
  readonly refreshMs?: number
  /** How often a plain line is written (default 5 s). */
  readonly plainEveryMs?: number
}

/** What a progress bar shows: `value` of `total` (none: a counter), and a text after it. */
export interface ProgressState {
  readonly value: number
  readonly total?: number
  readonly text: string
}

/** Live output that runs until it is stopped. */
export interface Reporter {
  /** Draws the last state once more (on a terminal) and ends the line. */
  stop(): void
}

const REFRESH_MS = 500
const PLAIN_EVERY_MS = 5000

/**
 * A status line without a bar: `render()` is shown on a terminal about
 * twice a second, and written as a plain line every few seconds otherwise.
 *
 * @example
 * const status = startStatusLine(() => `sent ${sent}`, { label: 'simulate: ' })
 * // …
 * status.stop()
 */
export function startStatusLine(
  render: () => string,
  options: ReporterOptions = {},
): Reporter {
  return startReporter(() => ({ value: 0, text: render() }), false, options)
}

/**
 * A progress bar: `read()` gives the value, the total (when known) and a
 * text; on a terminal a bar with its percentage and an ETA (a counter and
 * the text when there is no total), else a plain line every few seconds.
 */
export function startProgressBar(
  read: () => ProgressState,
  options: ReporterOptions = {},
): Reporter {
  return startReporter(read, true, options)
}

function startReporter(
  read: () => ProgressState,
  bar: boolean,
  options: ReporterOptions,
): Reporter {
  const stream = options.stream ?? process.stderr
  const tty = options.tty ?? stream.isTTY === true
  const label = options.label ?? ''
  if (!tty) {
    const timer = setInterval(() => {
      const state = read()
      const share =
        bar && state.total !== undefined && state.total > 0
          ? ` (${percent(state.value, state.total)}%)`
          : ''
      stream.write(`${label}${state.text}${share}\n`)
    }, options.plainEveryMs ?? PLAIN_EVERY_MS)
    // Never what keeps the process alive.
    timer.unref()
    return { stop: () => clearInterval(timer) }
  }

  const first = read()
  const withTotal = bar && first.total !== undefined
  const line = new cliProgress.SingleBar({
    stream: stream as NodeJS.WritableStream,
    format: withTotal
      ? `${label}[{bar}] {percentage}% | {text} | ETA {eta_formatted}`
      : `${label}{text}`,
    barsize: 30,
    fps: 1000 / (options.refreshMs ?? REFRESH_MS),
    etaBuffer: 50,
    // cli-progress's own timer redraws; this one feeds it the state.
    synchronousUpdate: false,
  })
  line.start(withTotal ? Math.max(first.total!, first.value) : 0, first.value, {
    text: first.text,
  })
  const update = () => {
    const state = read()
    if (withTotal) line.setTotal(Math.max(state.total ?? 0, state.value))
    line.update(withTotal ? state.value : 0, { text: state.text })
  }
  const timer = setInterval(update, options.refreshMs ?? REFRESH_MS)
  timer.unref()
  return {
    stop() {
      clearInterval(timer)
      update()
      line.stop()
    },
  }
}

function percent(value: number, total: number): number {
  return Math.min(100, Math.floor((value / total) * 100))
}

/** A count with thousands separators, for live lines: `12,345`. */
export function count(n: number): string {
  return n.toLocaleString('en-US')
}

/**
 * Events a second over a sliding window: feed it a running total now and
 * then, read the rate of the last few seconds.
 */
export class RateMeter {
  readonly #windowMs: number
  readonly #samples: { at: number; total: number }[]

  /** Starts at a total of 0, now. */
  constructor(windowMs = 3000, now = performance.now()) {
    this.#windowMs = windowMs
    this.#samples = [{ at: now, total: 0 }]
  }

  /** Adds a sample of the running total and returns the rate, per second. */
  sample(total: number, now = performance.now()): number {
    this.#samples.push({ at: now, total })
    while (
      this.#samples.length > 2 &&
      now - this.#samples[1]!.at >= this.#windowMs
    ) {
      this.#samples.shift()
    }
    const oldest = this.#samples[0]!
    const seconds = (now - oldest.at) / 1000
    return seconds <= 0 ? 0 : (total - oldest.total) / seconds
  }
}
