/**
 * Shared helpers of the end-to-end tests: they start the real server as a
 * child process (`node dist/src/cli.js`) on port 0 with a fresh SQLite file,
 * and talk to it only over HTTP (`fetch`) and WebSocket (`ws`). Nothing here
 * imports from `src/`.
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { STATUS_CODES } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'

/** The compiled CLI, next to this file once `tsc` has run. */
export const CLI_PATH = fileURLToPath(
  new URL('../../src/cli.js', import.meta.url),
)

/** Largest timestamp the protocol accepts: 2^53 − 1. */
export const MAX_TIMESTAMP = 9007199254740991

const STARTUP_TIMEOUT_MS = 15_000
const STOP_TIMEOUT_MS = 10_000
const LISTENING = /^listening on (http:\/\/\S+) \(store (.+)\)$/m

// --- processes and temporary folders ---

// A safety net: whatever a failed test leaves behind dies with the test file.
// Only processes this file started are killed, by pid.
const liveChildren = new Set<ChildProcess>()
const tempDirs = new Set<string>()
process.on('exit', () => {
  for (const child of liveChildren) {
    if (child.pid !== undefined && child.exitCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
  }
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
})

/** A fresh temporary folder, removed by {@link removeTempDir} or at exit. */
export function makeTempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'telemetry-e2e-'))
  tempDirs.add(dir)
  return dir
}

/** Removes a folder made by {@link makeTempDir}. */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true })
  tempDirs.delete(dir)
}

/** How a child process ended. */
export interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** A server process that printed its listening line. */
export interface ServerProcess {
  /** `http://127.0.0.1:PORT` */
  readonly url: string
  /** `ws://127.0.0.1:PORT` */
  readonly wsUrl: string
  readonly pid: number
  /** The process's working folder, a fresh temporary one. */
  readonly cwd: string
  /** The store address printed in the listening line, e.g. `sqlite:/tmp/…/t.db`. */
  readonly store: string
  /** Everything the process wrote so far. */
  stdout(): string
  stderr(): string
  /** Resolves when the process has ended. */
  readonly exited: Promise<Exit>
  /** Sends SIGTERM, waits for the exit and returns the exit code. */
  stop(): Promise<number | null>
  /** Sends a signal to the process (by pid). */
  kill(signal: NodeJS.Signals): void
  /** Ends the process (SIGKILL if it is still running) and removes its working folder. */
  dispose(): Promise<void>
}

/** Options of {@link startServer}. */
export interface StartOptions {
  /** SQLite file to use instead of a fresh one, e.g. to restart on a store. */
  readonly storePath?: string
  /** A whole store address instead, e.g. `postgres://…?schema=…`. */
  readonly store?: string
  /** Pass only `extraArgs`, none of the default flags (`--port 0 --store … --log-level warn`). */
  readonly bare?: boolean
}

/** The environment of a child: ours without any TELEMETRY_* variable, plus `env`. */
function childEnv(env: Readonly<Record<string, string>>): NodeJS.ProcessEnv {
  const clean: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('TELEMETRY_')) clean[key] = value
  }
  return { ...clean, ...env }
}

function spawnCli(
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  cwd?: string,
) {
  const child = spawn(process.execPath, [CLI_PATH, ...args], {
    cwd,
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  liveChildren.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
  })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
  })
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      liveChildren.delete(child)
      resolve({ code, signal })
    })
  })
  return {
    child,
    exited,
    stdout: () => stdout,
    stderr: () => stderr,
  }
}

/**
 * Runs the CLI to its end (it is expected to exit by itself, else it is
 * killed after 10 s) in a fresh working folder, and returns its exit and
 * output.
 */
export async function runCli(
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
): Promise<Exit & { stdout: string; stderr: string }> {
  const cwd = makeTempDir()
  try {
    const run = spawnCli(args, env, cwd)
    const timer = setTimeout(() => run.child.kill('SIGKILL'), STOP_TIMEOUT_MS)
    const exit = await run.exited
    clearTimeout(timer)
    return { ...exit, stdout: run.stdout(), stderr: run.stderr() }
  } finally {
    removeTempDir(cwd)
  }
}

/**
 * Starts the server: `node dist/src/cli.js --port 0 --store sqlite:<fresh
 * temp dir>/t.db --log-level warn ...extraArgs` (or the store of
 * `options`), and resolves once it has
 * printed its listening line. Rejects (with its stderr) when it exits first.
 */
export async function startServer(
  extraArgs: readonly string[] = [],
  env: Readonly<Record<string, string>> = {},
  options: StartOptions = {},
): Promise<ServerProcess> {
  // The process runs in its own folder, which also holds its store unless
  // another is given.
  const ownDir = makeTempDir()
  let args: string[] = [...extraArgs]
  if (options.bare !== true) {
    const storePath = options.storePath ?? join(ownDir, 't.db')
    args = [
      '--port',
      '0',
      '--store',
      options.store ?? `sqlite:${storePath}`,
      '--log-level',
      'warn',
      ...extraArgs,
    ]
  }
  const run = spawnCli(args, env, ownDir)
  const pid = run.child.pid
  assert.ok(pid !== undefined, 'the server process has a pid')

  const listening = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => {
      run.child.kill('SIGKILL')
      reject(
        new Error(`server did not start in time; stderr:\n${run.stderr()}`),
      )
    }, STARTUP_TIMEOUT_MS)
    const onData = () => {
      const match = LISTENING.exec(run.stdout())
      if (match === null) return
      clearTimeout(timer)
      run.child.stdout.off('data', onData)
      resolve(match)
    }
    run.child.stdout.on('data', onData)
    void run.exited.then((exit) => {
      clearTimeout(timer)
      reject(
        new Error(
          `server exited (${exit.code ?? exit.signal}) before listening; stderr:\n${run.stderr()}`,
        ),
      )
    })
  })
  const url = listening[1]!
  const kill = (signal: NodeJS.Signals) => {
    if (run.child.exitCode === null && run.child.signalCode === null) {
      process.kill(pid, signal)
    }
  }
  const waitExit = async () => {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        kill('SIGKILL')
        reject(new Error(`server ${pid} did not exit in time`))
      }, STOP_TIMEOUT_MS)
    })
    try {
      return await Promise.race([run.exited, timeout])
    } finally {
      clearTimeout(timer)
    }
  }
  return {
    url,
    wsUrl: url.replace(/^http/, 'ws'),
    pid,
    cwd: ownDir,
    store: listening[2]!,
    stdout: run.stdout,
    stderr: run.stderr,
    exited: run.exited,
    kill,
    async stop() {
      kill('SIGTERM')
      return (await waitExit()).code
    },
    async dispose() {
      kill('SIGKILL')
      await run.exited
      removeTempDir(ownDir)
    },
  }
}

// --- the ingest WebSocket ---

interface Waiting {
  resolve(reply: string): void
  reject(error: Error): void
}

/** How a WebSocket connection was closed. */
export interface Closed {
  readonly code: number
  readonly reason: string
}

/**
 * A client of `ws://HOST:PORT/upstream`. The protocol answers every frame
 * with exactly one reply frame, in order, so each `send` resolves with the
 * next reply frame that arrives after the replies of earlier sends.
 */
export class IngestClient {
  readonly ws: WebSocket
  /** Resolves when the connection has closed, with the close code. */
  readonly closed: Promise<Closed>
  /** Reply frames that came when no frame was waiting for one. */
  readonly extraReplies: string[] = []
  readonly #waiting: Waiting[] = []
  #isClosed = false
  #sent = 0
  #received = 0

  private constructor(ws: WebSocket) {
    this.ws = ws
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.#isClosed = true
        const error = new Error(
          `connection closed (${code}) before the reply arrived`,
        )
        for (const waiting of this.#waiting.splice(0)) waiting.reject(error)
        resolve({ code, reason: reason.toString() })
      })
    })
    ws.on('message', (data, isBinary) => {
      this.#received++
      const text = Buffer.isBuffer(data)
        ? data.toString('utf8')
        : Buffer.concat(data as Buffer[]).toString('utf8')
      const waiting = this.#waiting.shift()
      if (waiting === undefined) {
        this.extraReplies.push(text)
      } else if (isBinary) {
        waiting.reject(new Error(`binary reply frame: ${text}`))
      } else {
        waiting.resolve(text)
      }
    })
    // Errors end in 'close', which rejects whoever waits.
    ws.on('error', () => {})
  }

  /** Opens a connection to `path` (default `/upstream`). */
  static connect(wsUrl: string, path = '/upstream'): Promise<IngestClient> {
    const ws = new WebSocket(wsUrl + path, { perMessageDeflate: false })
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new IngestClient(ws)))
      ws.once('error', reject)
    })
  }

  /** Frames sent so far. */
  get sent(): number {
    return this.#sent
  }

  /** Reply frames received so far. */
  get received(): number {
    return this.#received
  }

  /**
   * Sends one frame (text unless `binary`; a Buffer is sent as is, so a text
   * frame may carry invalid UTF-8) and resolves with its reply frame.
   */
  send(frame: string | Buffer, binary = false): Promise<string> {
    const reply = new Promise<string>((resolve, reject) => {
      if (this.#isClosed) reject(new Error('the connection is closed'))
      else this.#waiting.push({ resolve, reject })
    })
    // A caller that expects no reply (the connection is to close) need not
    // await: never an unhandled rejection.
    reply.catch(() => {})
    this.#sent++
    // A failed send ends in 'close', which rejects whoever waits.
    this.ws.send(frame, { binary }, () => {})
    return reply
  }

  /** Sends every frame at once, without waiting, and resolves with the replies in order. */
  sendAll(frames: readonly (string | Buffer)[]): Promise<string[]> {
    return Promise.all(frames.map((frame) => this.send(frame)))
  }

  /** Sends one frame and returns its reply split into lines. */
  async lines(frame: string | Buffer): Promise<string[]> {
    return (await this.send(frame)).split('\n')
  }

  /**
   * Checks that the connection is still open and in step (one probe frame,
   * one reply, no extra reply frames so far), then closes it.
   */
  async end(): Promise<void> {
    assert.equal(await this.send(''), 'ERR malformed empty line')
    assert.deepEqual(this.extraReplies, [], 'no reply frame without a frame')
    await this.close()
  }

  /** Closes the connection (normal closure) and waits until it is closed. */
  async close(): Promise<Closed> {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000)
    else if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate()
    return this.closed
  }
}

/** A refused WebSocket upgrade: the HTTP response the server sent. */
export interface RefusedUpgrade {
  readonly status: number
  readonly contentType: string | undefined
  readonly body: string
}

/** Tries a WebSocket upgrade at `path` and returns the HTTP response that refused it. */
export function refusedUpgrade(
  wsUrl: string,
  path: string,
): Promise<RefusedUpgrade> {
  const ws = new WebSocket(wsUrl + path)
  return new Promise((resolve, reject) => {
    ws.on('error', reject)
    ws.on('open', () => {
      ws.terminate()
      reject(new Error(`the upgrade to ${path} was accepted`))
    })
    ws.on('unexpected-response', (request, response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => {
        body += chunk
      })
      response.on('end', () => {
        request.destroy()
        resolve({
          status: response.statusCode ?? 0,
          contentType: response.headers['content-type'],
          body,
        })
      })
    })
  })
}

// --- HTTP ---

/** A response with its body read as text. */
export interface TextResponse {
  readonly status: number
  readonly headers: Headers
  readonly text: string
}

/** `fetch` of a path on the server, with the body read as text. */
export async function request(
  server: { readonly url: string },
  path: string,
  init?: RequestInit,
): Promise<TextResponse> {
  const response = await fetch(server.url + path, init)
  return {
    status: response.status,
    headers: response.headers,
    text: await response.text(),
  }
}

/**
 * Writes `text` as is on a new TCP connection to the server and resolves
 * with everything the server sent until it closed the connection.
 */
export function rawHttp(
  server: { readonly url: string },
  text: string,
): Promise<TextResponse> {
  const { hostname, port } = new URL(server.url)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(text))
    let received = ''
    socket.setEncoding('utf8')
    socket.setTimeout(5000, () => socket.destroy(new Error('no answer in 5 s')))
    socket.on('data', (chunk: string) => {
      received += chunk
    })
    socket.on('error', reject)
    socket.on('close', () => {
      const split = received.indexOf('\r\n\r\n')
      const head = split < 0 ? received : received.slice(0, split)
      const [statusLine = '', ...fields] = head.split('\r\n')
      const headers = new Headers()
      for (const field of fields) {
        const colon = field.indexOf(':')
        if (colon > 0) {
          headers.append(field.slice(0, colon), field.slice(colon + 1).trim())
        }
      }
      resolve({
        status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine)?.[1] ?? 0),
        headers,
        text: split < 0 ? '' : received.slice(split + 4),
      })
    })
  })
}

/** A JSON response: checks the content type and parses the body. */
export async function getJson(
  server: { readonly url: string },
  path: string,
  init?: RequestInit,
): Promise<{ status: number; headers: Headers; body: unknown }> {
  const response = await request(server, path, init)
  assert.match(
    response.headers.get('content-type') ?? '',
    /^application\/json\b/,
    `content type of ${path}`,
  )
  return {
    status: response.status,
    headers: response.headers,
    body: JSON.parse(response.text),
  }
}

/** Error codes the API may answer with. */
export const ERROR_CODES = [
  'MALFORMED',
  'STALE',
  'CONFLICT',
  'UNAVAILABLE',
  'INVALID_QUERY',
  'INVALID_URL',
  'HEADERS_TOO_LARGE',
  'BAD_REQUEST',
  'ROBOT_NOT_FOUND',
  'ROUTE_NOT_FOUND',
  'TOO_MANY_CONNECTIONS',
  'INTERNAL',
] as const

/**
 * Checks a whole error body: exactly `{statusCode, code, error, message}`,
 * `error` the reason phrase of the status, a non-empty message without a
 * stack trace, matching `message` when given.
 */
export function assertErrorBody(
  response: { readonly status: number; readonly text: string },
  status: number,
  code: (typeof ERROR_CODES)[number],
  message?: RegExp,
): void {
  assert.equal(response.status, status, `status; body: ${response.text}`)
  const body = JSON.parse(response.text) as Record<string, unknown>
  const text = body.message
  assert.equal(typeof text, 'string', 'message is a string')
  assert.deepEqual(body, {
    statusCode: status,
    code,
    error: STATUS_CODES[status],
    message: text,
  })
  assert.notEqual(text, '')
  assert.doesNotMatch(text as string, /\n\s+at /, 'no stack trace')
  if (message !== undefined) assert.match(text as string, message)
}

/** `fetch` of a path, then {@link assertErrorBody}, also checking the JSON content type. */
export async function assertErrorResponse(
  server: { readonly url: string },
  path: string,
  status: number,
  code: (typeof ERROR_CODES)[number],
  message?: RegExp,
  init?: RequestInit,
): Promise<void> {
  const response = await request(server, path, init)
  assert.match(
    response.headers.get('content-type') ?? '',
    /^application\/json\b/,
    `content type of ${path}`,
  )
  assertErrorBody(response, status, code, message)
}

const ISO_8601 =
  /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/

/** Checks that a value is an ISO 8601 date-time string. */
export function assertIsoTime(value: unknown, what = 'time'): void {
  assert.equal(typeof value, 'string', `${what} is a string`)
  assert.match(value as string, ISO_8601, `${what} is ISO 8601`)
  assert.ok(!Number.isNaN(Date.parse(value as string)), `${what} is a date`)
}

/** A robot object of the API without its wall-clock times. */
export interface RobotFields {
  readonly name: string
  readonly odometer: number
  readonly last_x: number
  readonly last_y: number
  readonly first_timestamp: number
  readonly last_timestamp: number
  readonly event_count: number
}

/**
 * Checks `created_time` and `updated_time` of a robot object (ISO 8601,
 * created not after updated) and returns the object without them, for a
 * whole-object comparison.
 */
export function withoutTimes(robot: unknown): Record<string, unknown> {
  assert.equal(typeof robot, 'object')
  assert.ok(robot !== null)
  const { created_time, updated_time, ...rest } = robot as Record<
    string,
    unknown
  >
  assertIsoTime(created_time, 'created_time')
  assertIsoTime(updated_time, 'updated_time')
  assert.ok(
    Date.parse(created_time as string) <= Date.parse(updated_time as string),
    'created_time is not after updated_time',
  )
  return rest
}

/** Fetches `/api/robots/{name}` and returns it without its times. */
export async function getRobot(
  server: { readonly url: string },
  name: string,
): Promise<Record<string, unknown>> {
  const response = await getJson(
    server,
    `/api/robots/${encodeURIComponent(name)}`,
  )
  assert.equal(response.status, 200, `robot ${JSON.stringify(name)} exists`)
  return withoutTimes(response.body)
}

/** An event of the API. */
export interface ApiEvent {
  readonly robot: string
  readonly x: number
  readonly y: number
  readonly timestamp: number
}

/** `n` copies of a reply line joined as a reply frame. */
export function repeatLine(line: string, n: number): string {
  return Array.from({ length: n }, () => line).join('\n')
}
