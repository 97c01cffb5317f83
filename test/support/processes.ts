/**
 * Child processes of a test or bench run: started with arguments, an
 * environment and a working folder, their output kept, signalled and
 * stopped by pid, and, as a safety net, killed (SIGKILL, by pid) when this
 * process exits. Only processes started here are ever signalled.
 *
 * @example
 * const child = startNode('dist/bench/load.js', ['{}'])
 * await child.waitForOutput(/^ready$/m)
 * const { code, killed } = await child.stop(10_000)
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { SAFETY_TIMEOUT_MS } from './wait.ts'

// --- types ---

/** How a child process ended. */
export interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** How a child ended after {@link StartedProcess.stop}. */
export interface Stopped extends Exit {
  /** It outlived the timeout and was killed with SIGKILL. */
  readonly killed: boolean
  /** From the SIGTERM to the end. */
  readonly seconds: number
}

/** Options of {@link startProcess}. */
export interface ProcessOptions {
  /** The whole environment of the child; default: this process's. */
  readonly env?: NodeJS.ProcessEnv
  /** Its working folder; default: this process's. */
  readonly cwd?: string
  /** Keep only the last this many characters of each output stream. */
  readonly outputLimit?: number
  /** Copy what the child writes on stderr to this process's stderr. */
  readonly echoStderr?: boolean
  /**
   * Also kill the child's descendants (found in /proc, by pid) when it is
   * killed with SIGKILL: for a master process such as nginx's, or a
   * pg_autoctl keeper and the PostgreSQL it runs.
   */
  readonly killChildren?: boolean
  /** Run as this user and group (this process runs as root). */
  readonly uid?: number
  readonly gid?: number
}

/** A started child process. */
export interface StartedProcess {
  readonly child: ChildProcess
  readonly pid: number
  /** Resolves once it has ended and its output is all read. */
  readonly exited: Promise<Exit>
  /** Whether it has not ended yet. */
  readonly running: boolean
  /** What it wrote on stdout so far (the tail, with `outputLimit`). */
  stdout(): string
  /** What it wrote on stderr so far (the tail, with `outputLimit`). */
  stderr(): string
  /** Sends a signal, by pid, if it still runs. */
  kill(signal: NodeJS.Signals): void
  /** SIGTERM, then SIGKILL if it still runs after `timeoutMs`. */
  stop(timeoutMs?: number): Promise<Stopped>
  /**
   * Resolves with the first match of `pattern` in its output (stdout by
   * default); rejects, with its stderr, if it ends first or after
   * `timeoutMs`.
   */
  waitForOutput(
    pattern: RegExp,
    options?: { stream?: 'stdout' | 'stderr'; timeoutMs?: number },
  ): Promise<RegExpExecArray>
}

// --- the safety net ---

/** Every child started here that has not ended yet. */
const live = new Map<ChildProcess, ProcessOptions>()

/** The pids of a process's children, from /proc (Linux; [] elsewhere). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter((s) => s !== '')
      .map(Number)
  } catch {
    return []
  }
}

function killPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal)
  } catch {
    // already gone
  }
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null
}

/** A process's descendants, children before their own children. */
function descendantPids(pid: number): number[] {
  const found: number[] = []
  for (let i = -1; i < found.length; i++) {
    found.push(...childPids(i < 0 ? pid : found[i]!))
  }
  return found
}

/** SIGKILL to a child (and its descendants, when asked), by pid. */
function killHard(child: ChildProcess, options: ProcessOptions): void {
  if (child.pid === undefined || !isRunning(child)) return
  // Listed before any is killed: an orphan is adopted by init.
  const family = options.killChildren === true ? descendantPids(child.pid) : []
  killPid(child.pid, 'SIGKILL')
  for (const pid of family) killPid(pid, 'SIGKILL')
}

/** Kills (SIGKILL, by pid) every child started here that still runs. */
export function killAll(): void {
  for (const [child, options] of live) killHard(child, options)
}

process.on('exit', killAll)
// Ended by a signal (the test runner's timeout, Ctrl-C), Node skips 'exit'.
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    killAll()
    process.kill(process.pid, signal)
  })
}

// --- starting ---

/** Starts `command args…` with its output kept, tracked until it ends. */
export function startProcess(
  command: string,
  args: readonly string[],
  options: ProcessOptions = {},
): StartedProcess {
  const child = spawn(command, [...args], {
    cwd: options.cwd,
    env: options.env,
    uid: options.uid,
    gid: options.gid,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  // A spawn that fails reports it here too; the missing pid says it first.
  child.on('error', () => {})
  const pid = child.pid
  if (pid === undefined) throw new Error(`cannot start ${command}`)
  live.set(child, options)
  const limit = options.outputLimit ?? Infinity
  const output = { stdout: '', stderr: '' }
  const keep = (stream: 'stdout' | 'stderr', text: string) => {
    const all = output[stream] + text
    output[stream] = all.length > limit ? all.slice(-limit) : all
  }
  child.stdout!.setEncoding('utf8').on('data', (text: string) => {
    keep('stdout', text)
  })
  child.stderr!.setEncoding('utf8').on('data', (text: string) => {
    keep('stderr', text)
    if (options.echoStderr === true) process.stderr.write(text)
  })
  // 'close' comes after 'exit' once the output streams are read to their
  // end, so that stdout() and stderr() are complete when `exited` resolves.
  const exited = new Promise<Exit>((resolve) => {
    child.once('close', (code, signal) => {
      live.delete(child)
      resolve({ code, signal })
    })
  })

  const started: StartedProcess = {
    child,
    pid,
    exited,
    get running() {
      return isRunning(child)
    },
    stdout: () => output.stdout,
    stderr: () => output.stderr,
    kill(signal) {
      if (signal === 'SIGKILL') killHard(child, options)
      else if (isRunning(child)) killPid(pid, signal)
    },
    async stop(timeoutMs = SAFETY_TIMEOUT_MS) {
      const t0 = performance.now()
      started.kill('SIGTERM')
      let killed = false
      const timer = setTimeout(() => {
        killed = isRunning(child)
        started.kill('SIGKILL')
      }, timeoutMs)
      const exit = await exited
      clearTimeout(timer)
      return { ...exit, killed, seconds: (performance.now() - t0) / 1000 }
    },
    waitForOutput(pattern, { stream = 'stdout', timeoutMs } = {}) {
      const source = stream === 'stdout' ? child.stdout! : child.stderr!
      return new Promise((resolve, reject) => {
        const cleanup = () => {
          clearTimeout(timer)
          source.off('data', look)
        }
        const look = () => {
          const match = new RegExp(pattern.source, pattern.flags).exec(
            output[stream],
          )
          if (match === null) return
          cleanup()
          resolve(match)
        }
        const timer = setTimeout(() => {
          cleanup()
          reject(
            new Error(
              `${command}: no ${pattern} on ${stream} in ${timeoutMs} ms; stderr:\n${output.stderr}`,
            ),
          )
        }, timeoutMs ?? SAFETY_TIMEOUT_MS)
        source.on('data', look)
        void exited.then((exit) => {
          cleanup()
          reject(
            new Error(
              `${command} ended (${exit.code ?? exit.signal}) before ${pattern} on ${stream}; stderr:\n${output.stderr}`,
            ),
          )
        })
        look()
      })
    },
  }
  return started
}

/** Starts `node script args…` with the Node.js that runs this process. */
export function startNode(
  script: string,
  args: readonly string[],
  options: ProcessOptions = {},
): StartedProcess {
  return startProcess(process.execPath, [script, ...args], options)
}

// --- running to the end ---

/** How a process run by {@link runProcess} ended, and what it wrote. */
export interface Finished extends Exit {
  readonly stdout: string
  readonly stderr: string
  /** It outlived `timeoutMs` and was killed. */
  readonly timedOut: boolean
}

/**
 * Runs `command args…` to its end; one still running after `timeoutMs`
 * is killed (SIGKILL, by pid) and reported as `timedOut`.
 */
export async function runProcess(
  command: string,
  args: readonly string[],
  options: ProcessOptions & { readonly timeoutMs?: number } = {},
): Promise<Finished> {
  const started = startProcess(command, args, options)
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = started.running
    started.kill('SIGKILL')
  }, options.timeoutMs ?? SAFETY_TIMEOUT_MS)
  const exit = await started.exited
  clearTimeout(timer)
  return {
    ...exit,
    stdout: started.stdout(),
    stderr: started.stderr(),
    timedOut,
  }
}

/** Options of {@link runJsonProcess}. */
export interface JsonProcessOptions {
  /** Killed (SIGKILL) after this long, which is an error. */
  readonly timeoutMs: number
  /** Told of each `{"type":"phase","phase":…}` line, as it comes. */
  readonly onPhase?: (phase: string) => void
  readonly echoStderr?: boolean
  readonly env?: NodeJS.ProcessEnv
  readonly cwd?: string
}

/**
 * Runs `node script <input as JSON>`, a process that prints JSON lines:
 * `{"type":"phase",…}` lines go to `onPhase` as they come, and the
 * `{"type":"result",…}` line is returned. Throws, with the tail of its
 * stderr, when it exits other than 0, prints no result or times out.
 */
export async function runJsonProcess<T>(
  script: string,
  input: unknown,
  options: JsonProcessOptions,
): Promise<T> {
  const child = startNode(script, [JSON.stringify(input)], {
    env: options.env,
    cwd: options.cwd,
    echoStderr: options.echoStderr,
    outputLimit: 20_000,
  })
  let result: T | undefined
  let partial = ''
  const onLine = (line: string) => {
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
        // What measures the phase failed; the run's own error says why.
      }
    } else if (message.type === 'result') {
      result = message as T
    }
  }
  child.child.stdout!.on('data', (text: string) => {
    const lines = (partial + text).split('\n')
    partial = lines.pop()!
    for (const line of lines) onLine(line)
  })
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = child.running
    child.kill('SIGKILL')
  }, options.timeoutMs)
  const exit = await child.exited
  clearTimeout(timer)
  if (partial !== '') onLine(partial)
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
