/**
 * The real server as a child process: `node dist/src/cli.js`, on port 0, in
 * a fresh folder of its own, ready once it prints its line
 * `listening on http://HOST:PORT (store …)`. {@link startListening} starts
 * any script that prints such a line (bench/bare-ws.ts does too).
 *
 * This and the wire protocols are the tests' only link to the server:
 * nothing here imports from `src/`.
 *
 * @example
 * const server = await startServer(['--max-connections', '2'])
 * t.after(() => server.dispose())
 * await fetch(`${server.url}/healthz`)
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  runProcess,
  startNode,
  type Finished,
  type ProcessOptions,
  type StartedProcess,
} from './processes.ts'
import { makeTempDir, removeTempDir } from './temp-dirs.ts'
import { SAFETY_TIMEOUT_MS } from './wait.ts'

/** The compiled CLI: `dist/src/cli.js`, from `dist/test/support/`. */
export const CLI_PATH = fileURLToPath(
  new URL('../../src/cli.js', import.meta.url),
)

/** The compiled sender of `npm run send`: `dist/src/send.js`. */
export const SEND_PATH = fileURLToPath(
  new URL('../../src/send.js', import.meta.url),
)

/**
 * `listening on http://127.0.0.1:PORT (store …) (no access control)`, the
 * parentheses optional; `https://` with TLS.
 */
const LISTENING =
  /^listening on (https?:\/\/\S+)(?: \(([^)]*)\))?(?: \(([^)]*)\))?$/m

// --- any server script ---

/** A process that printed its listening line. */
export interface ListeningProcess extends StartedProcess {
  /** `http://127.0.0.1:PORT` */
  readonly url: string
  /** `ws://127.0.0.1:PORT` */
  readonly wsUrl: string
  /** `ws://127.0.0.1:PORT/upstream`, the ingest endpoint. */
  readonly upstreamUrl: string
  /** What the listening line says in parentheses, e.g. `store sqlite:t.db`. */
  readonly banner: string
  /** What its second parenthesis says, e.g. `no access control`; or `''`. */
  readonly access: string
}

/** Options of {@link startListening}. */
export interface ListenOptions extends ProcessOptions {
  /** How long it may take to listen; it is killed after that. */
  readonly timeoutMs?: number
}

/**
 * Starts `node script args…` and resolves once it has printed its
 * listening line. Rejects, with its stderr, when it ends first or does not
 * listen within `timeoutMs` (it is then killed).
 */
export async function startListening(
  script: string,
  args: readonly string[],
  options: ListenOptions = {},
): Promise<ListeningProcess> {
  const started = startNode(script, args, options)
  let match: RegExpExecArray
  try {
    match = await started.waitForOutput(LISTENING, {
      timeoutMs: options.timeoutMs ?? SAFETY_TIMEOUT_MS,
    })
  } catch (error) {
    started.kill('SIGKILL')
    await started.exited
    throw error
  }
  const url = match[1]!
  const wsUrl = url.replace(/^http/, 'ws')
  // Assigned onto the started process, whose `running` is a getter.
  return Object.assign(started, {
    url,
    wsUrl,
    upstreamUrl: `${wsUrl}/upstream`,
    banner: match[2] ?? '',
    access: match[3] ?? '',
  })
}

// --- the telemetry server ---

/** The telemetry server, started by {@link startServer}. */
export interface ServerProcess extends ListeningProcess {
  /** Its working folder, a fresh temporary one. */
  readonly cwd: string
  /** The store address of its listening line, e.g. `sqlite:/tmp/…/t.db`. */
  readonly store: string
  /** Its log so far: the JSON lines it wrote on stderr, parsed. */
  log(): Record<string, unknown>[]
  /** Kills it (SIGKILL) if it still runs and removes its working folder. */
  dispose(): Promise<void>
  /** With {@link StartServerOptions.access}: the token its reads send. */
  readonly token?: string
  /** With {@link StartServerOptions.access}: the token of ingest connections. */
  readonly ingestToken?: string
}

/** A tokens file a server is started with, and the tokens to use with it. */
export interface ServerAccess {
  readonly file: string
  /** Sent with every read through the server object (it is an `Origin`). */
  readonly readToken: string
  /** For ingest connections: `IngestClient.connect(url, { token })`. */
  readonly ingestToken: string
}

/** Options of {@link startServer}. */
export interface StartServerOptions {
  /** SQLite file to use instead of a fresh one, e.g. to restart on a store. */
  readonly storePath?: string
  /** A whole store address instead, e.g. `postgres://…?schema=…`. */
  readonly store?: string
  /** Pass only `extraArgs`, none of the defaults (`--port 0 --store … --log-level warn`). */
  readonly bare?: boolean
  /** Start with `--tokens`, and use these tokens. */
  readonly access?: ServerAccess
}

/** Our environment without any TELEMETRY_* variable, plus `env`. */
function serverEnv(env: Readonly<Record<string, string>>): NodeJS.ProcessEnv {
  const clean: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('TELEMETRY_')) clean[key] = value
  }
  return { ...clean, ...env }
}

/**
 * Starts the server: `node dist/src/cli.js --port 0 --store sqlite:<its
 * folder>/t.db --log-level warn ...extraArgs` (or the store of `options`),
 * with `env` added to an environment without TELEMETRY_* variables.
 * Resolves once it listens; rejects with its stderr when it exits first.
 */
export async function startServer(
  extraArgs: readonly string[] = [],
  env: Readonly<Record<string, string>> = {},
  options: StartServerOptions = {},
): Promise<ServerProcess> {
  const cwd = makeTempDir('telemetry-e2e-')
  const args =
    options.bare === true
      ? [...extraArgs]
      : [
          '--port',
          '0',
          '--store',
          options.store ?? `sqlite:${options.storePath ?? join(cwd, 't.db')}`,
          '--log-level',
          'warn',
          ...(options.access === undefined
            ? []
            : ['--tokens', options.access.file]),
          ...extraArgs,
        ]
  let server: ListeningProcess
  try {
    server = await startListening(CLI_PATH, args, {
      cwd,
      env: serverEnv(env),
    })
  } catch (error) {
    removeTempDir(cwd)
    throw error
  }
  if (!server.banner.startsWith('store ')) {
    server.kill('SIGKILL')
    await server.exited
    removeTempDir(cwd)
    assert.fail(`the listening line names no store: (${server.banner})`)
  }
  return Object.assign(server, {
    token: options.access?.readToken,
    ingestToken: options.access?.ingestToken,
    cwd,
    store: server.banner.slice('store '.length),
    log: () =>
      server
        .stderr()
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    async dispose() {
      server.kill('SIGKILL')
      await server.exited
      removeTempDir(cwd)
    },
  })
}

/**
 * Runs the CLI to its end in a fresh folder (one that does not end by
 * itself is killed after the safety timeout) and returns its exit and
 * output.
 */
export async function runCli(
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
): Promise<Finished> {
  const cwd = makeTempDir('telemetry-e2e-')
  try {
    return await runProcess(process.execPath, [CLI_PATH, ...args], {
      cwd,
      env: serverEnv(env),
    })
  } finally {
    removeTempDir(cwd)
  }
}

/**
 * {@link runCli} with `inputFile` on its standard input, as a user runs
 * `fleet-telemetry replay - < FILE`: the shell does the redirection.
 *
 * @example
 * const run = await runCliWithInput(['replay', '-', '--url', server.url], file)
 */
export function runCliWithInput(
  args: readonly string[],
  inputFile: string,
  env: Readonly<Record<string, string>> = {},
): Promise<Finished> {
  return runProcess(
    '/bin/sh',
    // $0 is node, "$@" the script and its arguments.
    [
      '-c',
      'exec "$0" "$@" < "$CLI_INPUT"',
      process.execPath,
      CLI_PATH,
      ...args,
    ],
    { env: { ...serverEnv(env), CLI_INPUT: inputFile } },
  )
}
