/**
 * Meters of a bench run: a process's CPU time and resident memory over a
 * phase (read from /proc by test/support/proc.ts), and a file's size over
 * time. Starting and stopping processes is
 * the test kit's (test/support/processes.ts), shared with the tests.
 */
import { statSync } from 'node:fs'
import { cpuSeconds, memory, resetPeakRss } from '../test/support/proc.ts'

// The /proc readers are the test kit's, shared with the tests that bound
// the server's memory.
export { cpuSeconds, memory, resetPeakRss }

/**
 * Watches one process's CPU and memory over a phase: VmRSS is polled every
 * `intervalMs` and VmHWM is read at the end; the peak is the larger of the
 * two. With `resetPeak` VmHWM is reset at the start, so the peak is that of
 * the phase; without it, of the process's life so far.
 */
export class ProcessMeter {
  readonly #pid: number
  readonly #timer: NodeJS.Timeout
  readonly #cpuStart: number
  readonly #startedAt: number
  /** VmRSS when the meter started. */
  readonly startRss: number
  #peak = 0

  /**
   * Whether VmHWM counts: always without `resetPeak`; with it, only when the
   * reset worked (else the peak is the polled one alone).
   */
  readonly #useHwm: boolean

  constructor(pid: number, options: { resetPeak?: boolean } = {}) {
    this.#pid = pid
    this.#useHwm = options.resetPeak ? resetPeakRss(pid) : true
    this.startRss = memory(pid).rss
    this.#peak = this.startRss
    this.#cpuStart = cpuSeconds(pid)
    this.#startedAt = performance.now()
    this.#timer = setInterval(() => this.#sample(), 50)
  }

  #sample() {
    try {
      const { rss } = memory(this.#pid)
      if (rss > this.#peak) this.#peak = rss
    } catch {
      // the process is gone; stop() reports what was seen
    }
  }

  /** Stops polling; returns CPU since the start and the peak resident set. */
  stop(): { cpuSeconds: number; seconds: number; peakRss: number } {
    clearInterval(this.#timer)
    this.#sample()
    let peak = this.#peak
    let cpu = NaN
    try {
      const { hwm } = memory(this.#pid)
      if (this.#useHwm && hwm > peak) peak = hwm
      cpu = cpuSeconds(this.#pid) - this.#cpuStart
    } catch {
      // gone
    }
    return {
      cpuSeconds: cpu,
      seconds: (performance.now() - this.#startedAt) / 1000,
      peakRss: peak,
    }
  }
}

/** Polls the size of a file every 50 ms and keeps the largest seen. */
export class FileSizeMeter {
  readonly #path: string
  readonly #timer: NodeJS.Timeout
  #peak = 0

  constructor(path: string) {
    this.#path = path
    this.#sample()
    this.#timer = setInterval(() => this.#sample(), 50)
  }

  #sample() {
    const size = statSync(this.#path, { throwIfNoEntry: false })?.size ?? 0
    if (size > this.#peak) this.#peak = size
  }

  /** Stops polling; returns the largest size seen, in bytes. */
  stop(): number {
    clearInterval(this.#timer)
    this.#sample()
    return this.#peak
  }
}
