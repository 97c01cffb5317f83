/**
 * The processes of a bench run: starting and stopping them (only the ones
 * run.ts started, always by pid), and reading a process's CPU time and
 * resident memory from /proc.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { createInterface } from 'node:readline'

// --- /proc ---

let clockTicks: number | undefined

/** Clock ticks per second of /proc/PID/stat times (`getconf CLK_TCK`). */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks =
        Number(execFileSync('getconf', ['CLK_TCK']).toString()) || 100
    } catch {
      clockTicks = 100
    }
  }
  return clockTicks
}

/** User plus system CPU time of a process so far, in seconds (utime + stime). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name, which is in parentheses and may hold
  // spaces: state is field 3, utime field 14 and stime field 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond()
}

/** Resident memory now (VmRSS) and at its peak (VmHWM), in bytes. */
export function memory(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = (key: string) =>
    Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN)
  return { rss: kib('VmRSS') * 1024, hwm: kib('VmHWM') * 1024 }
}

/**
 * Resets a process's peak resident set (VmHWM) to its current one, by
 * writing 5 to /proc/PID/clear_refs (Linux 4.0+); false when not allowed.
 */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5')
    return true
  } catch {
    return false
  }
}

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

// --- child processes ---

/** Every process this run started and that has not exited yet. */
const live = new Set<ChildProcess>()

/** Kills, by pid, every process this run started that is still alive. */
export function killAll(): void {
  for (const child of live) {
    if (child.pid !== undefined && child.exitCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
  }
}

/** How a child ended. */
export interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** A started child process, its output kept. */
export interface Child {
  readonly process: ChildProcess
  readonly pid: number
  readonly exited: Promise<Exit>
  stderr(): string
}

/** Starts `node script args…`, tracked until it exits. */
export function startNode(
  script: string,
  args: readonly string[],
  options: { echoStderr?: boolean } = {},
): Child {
  const child = spawn(process.execPath, [script, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  if (child.pid === undefined) throw new Error(`cannot start ${script}`)
  live.add(child)
  let stderr = ''
  child.stderr!.setEncoding('utf8')
  child.stderr!.on('data', (text: string) => {
    // Keep the tail only: enough for a report, bounded in memory.
    stderr = (stderr + text).slice(-20_000)
    if (options.echoStderr) process.stderr.write(text)
  })
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child)
      resolve({ code, signal })
    })
  })
  return { process: child, pid: child.pid, exited, stderr: () => stderr }
}

/** Sends a signal to a child by its pid, if it still runs. */
export function signal(child: Child, name: NodeJS.Signals): void {
  if (child.process.exitCode === null && child.process.signalCode === null) {
    try {
      process.kill(child.pid, name)
    } catch {
      // already gone
    }
  }
}

/**
 * Runs a bench process that prints JSON lines: `phase` lines go to
 * `onPhase`, the `result` line is returned. Killed after `timeoutMs`.
 */
export async function runJsonProcess<T>(
  script: string,
  input: unknown,
  options: {
    timeoutMs: number
    onPhase?: (phase: string) => void
    echoStderr?: boolean
  },
): Promise<T> {
  const child = startNode(script, [JSON.stringify(input)], {
    echoStderr: options.echoStderr,
  })
  let result: T | undefined
  const lines = createInterface({ input: child.process.stdout! })
  lines.on('line', (line) => {
    let message: { type?: string; phase?: string }
    try {
      message = JSON.parse(line) as typeof message
    } catch {
      return
    }
    if (message.type === 'phase') {
      try {
        options.onPhase?.(message.phase ?? '')
      } catch {
        // The measured process is gone; the run's own error says why.
      }
    } else if (message.type === 'result') result = message as T
  })
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    signal(child, 'SIGKILL')
  }, options.timeoutMs)
  const exit = await child.exited
  clearTimeout(timer)
  // The last line may still be in the pipe when 'exit' fires.
  await new Promise<void>((resolve) => {
    if (child.process.stdout!.readableEnded) resolve()
    else child.process.stdout!.once('end', () => resolve())
  })
  if (timedOut) {
    throw new Error(`${script} killed after ${options.timeoutMs} ms`)
  }
  if (exit.code !== 0 || result === undefined) {
    throw new Error(
      `${script} exited with ${exit.code ?? exit.signal}: ${child.stderr().slice(-2000)}`,
    )
  }
  return result
}

/** A server process (the real one or bare-ws) that printed its listening line. */
export interface ServerChild extends Child {
  /** `http://127.0.0.1:PORT` */
  readonly url: string
  /** `ws://127.0.0.1:PORT/upstream` */
  readonly wsUrl: string
}

const LISTENING = /^listening on (http:\/\/127\.0\.0\.1:\d+)/m

/** Starts a server script and waits for its `listening on …` line. */
export async function startServerProcess(
  script: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<ServerChild> {
  const child = startNode(script, args)
  let stdout = ''
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      signal(child, 'SIGKILL')
      reject(new Error(`${script} did not listen within ${timeoutMs} ms`))
    }, timeoutMs)
    child.process.stdout!.setEncoding('utf8')
    child.process.stdout!.on('data', (text: string) => {
      stdout += text
      const match = LISTENING.exec(stdout)
      if (match) {
        clearTimeout(timer)
        resolve(match[1]!)
      }
    })
    void child.exited.then((exit) => {
      clearTimeout(timer)
      reject(
        new Error(
          `${script} exited with ${exit.code ?? exit.signal} before listening: ${child.stderr().slice(-2000)}`,
        ),
      )
    })
  })
  return { ...child, url, wsUrl: `${url.replace(/^http/, 'ws')}/upstream` }
}

/**
 * Stops a server with SIGTERM and waits for it; a server that has not exited
 * after `timeoutMs` is killed (SIGKILL, by pid) and that is reported.
 */
export async function stopServerProcess(
  child: Child,
  timeoutMs: number,
): Promise<Exit & { killed: boolean; seconds: number }> {
  const started = performance.now()
  signal(child, 'SIGTERM')
  let killed = false
  const timer = setTimeout(() => {
    killed = true
    signal(child, 'SIGKILL')
  }, timeoutMs)
  const exit = await child.exited
  clearTimeout(timer)
  return { ...exit, killed, seconds: (performance.now() - started) / 1000 }
}
