/**
 * What the commands of this folder share: the server's address (`--url`),
 * the token (`--token`), the number parsers of their flags, and running a
 * commander program with the exit codes of the command line: 2 for a usage
 * error, as `serve` and `token` do, 0 after `--help`.
 */
import {
  Command,
  CommanderError,
  InvalidArgumentError,
  Option,
} from 'commander'

/** Where the commands find the server when `--url` is not given. */
export const DEFAULT_URL = 'http://127.0.0.1:8000'

/** The two ends of one server, from one `--url`. */
export interface ServerUrls {
  /** The HTTP API's base, without a trailing slash: `http://127.0.0.1:8000`. */
  readonly http: string
  /** The ingest endpoint: `ws://127.0.0.1:8000/upstream`. */
  readonly upstream: string
}

/**
 * Reads `--url`: the server's base, `http(s)://HOST:PORT` (a path is kept
 * as a prefix, for a server behind a proxy at `/telemetry/`), or the ingest
 * endpoint itself, `ws(s)://HOST:PORT[/upstream]` (path `/upstream` when it
 * has none). The other end is derived: `http` ↔ `ws`, `https` ↔ `wss`.
 *
 * @example
 * parseServerUrl('http://127.0.0.1:9000')
 * // { http: 'http://127.0.0.1:9000', upstream: 'ws://127.0.0.1:9000/upstream' }
 */
export function parseServerUrl(text: string): ServerUrls {
  const match = /^(https?|wss?):\/\//i.exec(text)
  if (match === null || !URL.canParse(text) || new URL(text).host === '') {
    throw new InvalidArgumentError(
      'must be an http://, https://, ws:// or wss:// URL',
    )
  }
  const url = new URL(text)
  const secure = url.protocol === 'https:' || url.protocol === 'wss:'
  const path = url.pathname.replace(/\/+$/, '')
  const base = url.host
  if (url.protocol === 'http:' || url.protocol === 'https:') {
    return {
      http: `${secure ? 'https' : 'http'}://${base}${path}`,
      upstream: `${secure ? 'wss' : 'ws'}://${base}${path}/upstream`,
    }
  }
  const upstream = path === '' ? '/upstream' : path
  return {
    http: `${secure ? 'https' : 'http'}://${base}${upstream.replace(/\/upstream$/, '')}`,
    upstream: `${secure ? 'wss' : 'ws'}://${base}${upstream}${url.search}`,
  }
}

/** `--url URL`, parsed by {@link parseServerUrl}; the default is {@link DEFAULT_URL}. */
export function urlOption(): Option {
  return new Option(
    '--url <url>',
    'the server: http(s)://HOST:PORT, or its ingest endpoint ws(s)://HOST:PORT/upstream',
  )
    .default(parseServerUrl(DEFAULT_URL), DEFAULT_URL)
    .argParser(parseServerUrl)
}

/** `--token TOKEN`, or `TELEMETRY_TOKEN`: sent as `Authorization: Bearer`. */
export function tokenOption(role: string): Option {
  return new Option(
    '--token <token>',
    `${role} token, sent as Authorization: Bearer`,
  ).env('TELEMETRY_TOKEN')
}

// --- values of flags ---

/** A parser of an integer flag from `min` to `max`. */
export function integerFrom(min: number, max: number) {
  return (text: string): number => {
    const value = Number(text)
    if (!/^\d+$/.test(text) || value < min || value > max) {
      throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`)
    }
    return value
  }
}

/** A parser of a number flag above 0 and at most `max`. */
export function positiveNumber(max = Number.MAX_VALUE) {
  return (text: string): number => {
    const value = Number(text)
    if (
      !/^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/.test(text) ||
      !(value > 0) ||
      value > max
    ) {
      throw new InvalidArgumentError(
        max === Number.MAX_VALUE
          ? 'must be a number above 0'
          : `must be a number above 0 and at most ${max}`,
      )
    }
    return value
  }
}

// --- running a command ---

/** A usage error found after parsing (a flag's value that only the action can judge). */
export class UsageError extends Error {}

/**
 * A commander program for `fleet-telemetry <name>`: `-h, --help`, errors
 * followed by a pointer to the help, and no extra arguments.
 */
export function createProgram(name: string, summary: string): Command {
  const full = `fleet-telemetry ${name}`
  return new Command(full)
    .description(summary)
    .helpOption('-h, --help', 'print this text and exit')
    .allowExcessArguments(false)
    .showHelpAfterError(`(${full} --help shows the usage)`)
    .exitOverride()
    .configureOutput({
      writeOut: (text) => process.stdout.write(text),
      writeErr: (text) => process.stderr.write(text),
      // `fleet-telemetry replay: …`, as serve and token say it, not `error: …`.
      outputError: (text, write) =>
        write(`${full}: ${text.replace(/^error: /, '')}`),
    })
}

/**
 * Parses `args` (what follows the command's name) and runs the program's
 * action, which returns the exit code through `result`. Returns 0 after
 * `--help`, 2 after a usage error (commander's, or a {@link UsageError}
 * thrown by the action), else what the action left in `result.code`.
 */
export async function runProgram(
  program: Command,
  args: readonly string[],
  result: { code: number },
): Promise<number> {
  try {
    await program.parseAsync([...args], { from: 'user' })
    return result.code
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(
        `${program.name()}: ${error.message}\n(${program.name()} --help shows the usage)\n`,
      )
      return 2
    }
    if (!(error instanceof CommanderError)) throw error
    // commander has written the help, or the error and the pointer to the help.
    return error.exitCode === 0 ? 0 : 2
  }
}
