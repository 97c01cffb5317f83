/**
 * The server's configuration: flags win over environment variables, which win
 * over defaults. Read once at startup into one frozen object.
 *
 * Every setting is one row of {@link SETTINGS}; its flag (`--max-frame-bytes`),
 * its environment variable (`TELEMETRY_MAX_FRAME_BYTES`), the {@link Config}
 * type, {@link DEFAULT_CONFIG}, the usage text and the parsing all derive
 * from that row.
 */
import { parseArgs } from 'node:util'
import {
  parseStoreAddress,
  StoreAddressError,
  SYNC_MODES,
  type SyncMode,
} from './store/store.ts'

/** Log levels of pino, from the most to the least verbose. */
export const LOG_LEVELS = [
  'trace',
  'debug',
  'info',
  'warn',
  'error',
  'fatal',
  'silent',
] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export { SYNC_MODES, type SyncMode }

/** A configuration that cannot be used; the CLI prints it and exits 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError'
}

// --- value parsers: each takes the text and the flag's name ---

type Parse<T> = (text: string, name: string) => T

/**
 * The longest `--retain`: the largest timestamp, 2^53−1 ms (285,616
 * years), so that every duration is an exact number of milliseconds.
 */
const MAX_RETAIN_MS = Number.MAX_SAFE_INTEGER

function integer(min: number, max: number): Parse<number> {
  return (text, name) => {
    const value = /^\d+$/.test(text) ? Number(text) : NaN
    if (!(value >= min && value <= max)) {
      throw new ConfigError(
        `${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(text)}`,
      )
    }
    return value
  }
}

function oneOf<const T extends string>(values: readonly T[]): Parse<T> {
  return (text, name) => {
    if (!(values as readonly string[]).includes(text)) {
      throw new ConfigError(`${name} must be one of ${values.join(', ')}`)
    }
    return text as T
  }
}

const nonEmpty: Parse<string> = (text, name) => {
  if (text === '') throw new ConfigError(`${name} must not be empty`)
  return text
}

const storeAddress: Parse<string> = (text) => {
  try {
    return parseStoreAddress(text).url
  } catch (error) {
    if (error instanceof StoreAddressError) {
      throw new ConfigError(error.message)
    }
    throw error
  }
}

/** A PostgreSQL address, or `''` for none. */
const readStoreAddress: Parse<string> = (text, name) => {
  if (text === '') return ''
  const url = storeAddress(text, name)
  if (parseStoreAddress(url).backend !== 'postgres') {
    throw new ConfigError(`${name} must be a postgres:// address`)
  }
  return url
}

/** A path, or `''` for none. */
const path: Parse<string> = (text) => text

const yesNo: Parse<boolean> = (text, name) => {
  if (text === 'true' || text === '1') return true
  if (text === 'false' || text === '0' || text === '') return false
  throw new ConfigError(
    `${name} must be true or false, not ${JSON.stringify(text)}`,
  )
}

const keepalive: Parse<number> = (text, name) => {
  const value = integer(0, 86_400_000)(text, name)
  if (value > 0 && value < 100) {
    throw new ConfigError(`${name} must be 0 (never) or at least 100`)
  }
  return value
}

/** The units of a duration, in milliseconds each. */
export const DURATION_UNITS = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
} as const

/**
 * A duration `<integer><unit>` (`30d`, `12h`, `90m`, `45s`, `500ms`, `2w`)
 * in milliseconds, from `min` to `max` milliseconds. Strict on purpose: no
 * bare number (is `5` seconds or days?), no fraction, no sign, no space, no
 * 0. Written here rather than taken from `ms`, which the project does not
 * depend on and which reads `5` as 5 ms and `1.5h` and `0` as durations.
 *
 * @example
 * duration(1, 86_400_000)('90m', 'retain-every') // 5_400_000
 */
export function duration(min: number, max: number): Parse<number> {
  return (text, name) => {
    const match = /^([1-9][0-9]{0,15})(ms|s|m|h|d|w)$/.exec(text)
    const value =
      match === null
        ? NaN
        : Number(match[1]) *
          DURATION_UNITS[match[2] as keyof typeof DURATION_UNITS]
    if (!(value >= min && value <= max)) {
      throw new ConfigError(
        match === null
          ? `${name} must be a duration: a positive integer and a unit (ms, s, m, h, d or w), such as 30d or 12h, not ${JSON.stringify(text)}`
          : `${name} must be from ${min} ms to ${max} ms, not ${JSON.stringify(text)}`,
      )
    }
    return value
  }
}

// --- the settings ---

interface Setting<T> {
  readonly default: T
  /** A flag without a value (`--insecure`); its variable takes true or false. */
  readonly boolean?: boolean
  /** One line for the usage text. */
  readonly help: string
  /** The default as the usage text shows it, when not `String(default)`. */
  readonly shown?: string
  readonly parse: Parse<T>
}

function setting<T>(row: Setting<T>): Setting<T> {
  return row
}

/**
 * Every setting of the server. The key is the {@link Config} field; the
 * flag is the key in kebab case, the environment variable `TELEMETRY_`
 * and the key in upper snake case.
 */
export const SETTINGS = {
  host: setting({
    default: '127.0.0.1',
    help: 'address to listen on',
    parse: nonEmpty,
  }),
  port: setting({
    default: 8000,
    help: 'port to listen on; 0 picks a free one',
    parse: integer(0, 65535),
  }),
  store: setting({
    default: 'sqlite:./data/telemetry.db',
    help: 'where events are kept: sqlite:PATH or postgres://USER@HOST:PORT/DB',
    parse: storeAddress,
  }),
  readStore: setting({
    default: '',
    help: 'PostgreSQL address the HTTP API reads from, e.g. a standby (?target_session_attrs=prefer-standby); its answers may lag the acknowledgements (docs/deploy.md)',
    parse: readStoreAddress,
  }),
  logLevel: setting<LogLevel>({
    default: 'info',
    help: LOG_LEVELS.join(' | '),
    parse: oneOf(LOG_LEVELS),
  }),
  sync: setting<SyncMode>({
    default: 'normal',
    help: 'normal: an OK survives a crash of the server | full: also a power loss (slower)',
    parse: oneOf(SYNC_MODES),
  }),
  maxFrameBytes: setting({
    default: 1024 * 1024,
    help: 'largest WebSocket frame; larger ones close the connection (1009)',
    parse: integer(64, 64 * 1024 * 1024),
  }),
  maxLinesPerFrame: setting({
    default: 10_000,
    help: 'most lines in one frame; more close the connection (1009)',
    parse: integer(1, 64 * 1024 * 1024),
  }),
  maxConnections: setting({
    default: 10_000,
    help: 'most open ingest connections; more are refused with 503',
    parse: integer(1, 1_000_000),
  }),
  maxFramesInFlight: setting({
    default: 1024,
    help: 'unanswered frames of one connection before it is no longer read',
    parse: integer(1, 1_000_000),
  }),
  maxConnectionInflightBytes: setting({
    default: 8 * 1024 * 1024,
    help: 'bytes of unanswered frames and unsent replies of one connection before it is no longer read',
    parse: integer(1024, 2 ** 40),
  }),
  maxInflightBytes: setting({
    default: 16 * 1024 * 1024,
    help: 'bytes of unanswered frames and unsent replies of all connections; past it the heaviest are no longer read',
    parse: integer(1024, 2 ** 40),
  }),
  keepaliveMs: setting({
    default: 30_000,
    help: 'ping period of ingest and Foxglove connections; one that misses a pong is closed; 0 = never',
    parse: keepalive,
  }),
  liveHz: setting({
    default: 10,
    help: 'whole-fleet live feed updates a second, at most (GET /api/live, and /fleet/scene of /foxglove)',
    parse: integer(1, 1000),
  }),
  maxLiveStreams: setting({
    default: 1000,
    help: 'most open live feed streams, and apart from them most Foxglove clients; more are refused with 503',
    parse: integer(1, 1_000_000),
  }),
  liveBufferBytes: setting({
    default: 1024 * 1024,
    help: 'unsent bytes of one live stream past which a named-robot stream is cut, a fleet stream coalesced and a Foxglove client has messages dropped',
    parse: integer(1024, 2 ** 32),
  }),
  tokens: setting({
    default: '',
    help: 'tokens file (fleet-telemetry token create); without it anyone who reaches the port may read and write',
    parse: path,
  }),
  insecure: setting({
    default: false,
    boolean: true,
    help: 'listen on an address other than loopback without a tokens file',
    parse: yesNo,
  }),
  tlsCert: setting({
    default: '',
    help: 'PEM certificate (chain) file: serve https and wss; re-read on SIGHUP',
    parse: path,
  }),
  tlsKey: setting({
    default: '',
    help: 'PEM private key file of --tls-cert',
    parse: path,
  }),
  maxTokenEventsPerSecond: setting({
    default: 0,
    help: 'events a second one token may write; lines over it get ERR rate_limited; 0 = no limit',
    parse: integer(0, 1_000_000_000),
  }),
  maxTokenConnections: setting({
    default: 0,
    help: 'open ingest connections of one token; more are refused with 429; 0 = no limit',
    parse: integer(0, 1_000_000),
  }),
  maxTokenRequestsPerSecond: setting({
    default: 0,
    help: 'HTTP requests a second of one token; more are answered 429; 0 = no limit',
    parse: integer(0, 1_000_000_000),
  }),
  retain: setting({
    // In milliseconds; 0 (the default, which no value can give) is off.
    default: 0,
    shown: 'off',
    help: 'remove events whose timestamp (ms since the Unix epoch) is older than this, e.g. 30d, 12h, 90m; the robot figures stay lifetime totals',
    parse: duration(1, MAX_RETAIN_MS),
  }),
  retainEvery: setting({
    default: 60_000,
    shown: '1m',
    help: 'time between the start of two retention passes (--retain), e.g. 1m, 30s',
    parse: duration(10, 86_400_000),
  }),
}

type Settings = typeof SETTINGS
type Key = keyof Settings

/** The server's whole configuration: one field per row of {@link SETTINGS}. */
export type Config = {
  readonly [K in Key]: Settings[K] extends Setting<infer T> ? T : never
}

const KEYS = Object.keys(SETTINGS) as Key[]

/** The command-line flag of a setting: `maxFrameBytes` → `max-frame-bytes`. */
export function flagOf(key: Key): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
}

/** The environment variable of a setting: `maxFrameBytes` → `TELEMETRY_MAX_FRAME_BYTES`. */
export function envOf(key: Key): string {
  return `TELEMETRY_${flagOf(key).replaceAll('-', '_').toUpperCase()}`
}

/** The configuration when nothing is set. */
export const DEFAULT_CONFIG: Config = Object.freeze(
  Object.fromEntries(KEYS.map((key) => [key, SETTINGS[key].default])),
) as Config

/** The usage text of the CLI. */
export function usage(): string {
  const lines = KEYS.map((key) => {
    const row: Setting<unknown> = SETTINGS[key]
    const shown =
      row.shown ??
      (row.boolean === true ? 'off' : String(row.default) || 'none')
    return `  --${flagOf(key)} (${envOf(key)}, default ${shown})\n      ${row.help}`
  })
  return `usage: fleet-telemetry [serve] [options]
       fleet-telemetry COMMAND … (fleet-telemetry COMMAND --help)

commands:
  serve     run the server (the default command), with the options below
  token     create and list access tokens (create|list)
  simulate  stream a simulated fleet of robots to a server
  replay    send a file of x,y,timestamp,robot_name lines to a server
  export    write a robot's events from a server as CSV or NDJSON

options of serve:
${lines.join('\n')}
  -h, --help
      print this text and exit
`
}

const FLAGS = new Map(KEYS.map((key) => [flagOf(key), key]))

/**
 * `--flag value` as `--flag=value`: every flag takes a value, so the next
 * argument is it even when it starts with one dash (`--port -1`), which
 * `parseArgs` would otherwise call ambiguous. Another flag (`--port --host`)
 * is left to `parseArgs`, which says the value is missing.
 */
function joinFlagValues(args: readonly string[]): string[] {
  const joined: string[] = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    const next = args[i + 1]
    if (
      next !== undefined &&
      !next.startsWith('--') &&
      arg.startsWith('--') &&
      FLAGS.has(arg.slice(2)) &&
      SETTINGS[FLAGS.get(arg.slice(2))!].boolean !== true
    ) {
      joined.push(`${arg}=${next}`)
      i++
    } else {
      joined.push(arg)
    }
  }
  return joined
}

/**
 * Reads the configuration from command-line arguments and the environment.
 * Returns `'help'` when `--help` was asked for; throws {@link ConfigError}
 * for unknown flags and bad values.
 *
 * @example
 * loadConfig(['--port', '9000'], {}) // { port: 9000, host: '127.0.0.1', … }
 */
export function loadConfig(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): Config | 'help' {
  let values: Record<string, string | boolean | undefined>
  try {
    values = parseArgs({
      args: joinFlagValues(args),
      strict: true,
      allowPositionals: false,
      options: {
        ...Object.fromEntries(
          [...FLAGS].map(([flag, key]) => [
            flag,
            {
              type:
                (SETTINGS[key] as Setting<unknown>).boolean === true
                  ? 'boolean'
                  : 'string',
            },
          ]),
        ),
        help: { type: 'boolean', short: 'h' },
      } as Record<string, { type: 'string' | 'boolean'; short?: string }>,
    }).values
  } catch (error) {
    throw new ConfigError((error as Error).message)
  }
  if (values.help === true) return 'help'

  const config: Record<string, unknown> = {}
  for (const key of KEYS) {
    const row: Setting<unknown> = SETTINGS[key]
    const flag = flagOf(key)
    const fromFlag = values[flag]
    const fromEnv = env[envOf(key)]
    // A bad value is named as it was given: the flag, or the variable.
    config[key] =
      typeof fromFlag === 'string'
        ? row.parse(fromFlag, flag)
        : fromFlag === true
          ? true
          : fromEnv !== undefined
            ? row.parse(fromEnv, envOf(key))
            : row.default
  }
  checkAccess(config as Config)
  checkRetention(config as Config)
  checkReadStore(config as Config)
  return Object.freeze(config) as Config
}

/** Addresses that only this machine can reach. */
export function isLoopback(host: string): boolean {
  return (
    host === 'localhost' ||
    host === '::1' ||
    host === '[::1]' ||
    /^127(?:\.\d{1,3}){3}$/.test(host)
  )
}

/**
 * The settings of access control that only make sense together
 * (docs/security.md): a server reachable from other machines needs a
 * tokens file, or `--insecure` to say that being open is meant.
 */
function checkAccess(config: Config) {
  if ((config.tlsCert === '') !== (config.tlsKey === '')) {
    throw new ConfigError('--tls-cert and --tls-key go together: give both')
  }
  if (config.tokens !== '') return
  for (const key of [
    'maxTokenEventsPerSecond',
    'maxTokenConnections',
    'maxTokenRequestsPerSecond',
  ] as const) {
    if (config[key] !== 0) {
      throw new ConfigError(`--${flagOf(key)} needs a tokens file (--tokens)`)
    }
  }
  if (!isLoopback(config.host) && !config.insecure) {
    throw new ConfigError(
      `refusing to listen on ${config.host} without access control: anyone who reaches it could read and write every robot's events. ` +
        'Give a tokens file (fleet-telemetry token create --tokens tokens.json --name NAME --role admin, then --tokens tokens.json), ' +
        'or --insecure if the network itself is trusted (docs/security.md).',
    )
  }
}

/** Reads from a standby of the store: only a PostgreSQL store has one. */
function checkReadStore(config: Config) {
  if (
    config.readStore !== '' &&
    parseStoreAddress(config.store).backend !== 'postgres'
  ) {
    throw new ConfigError(
      '--read-store needs a PostgreSQL --store: it names a replica of that database',
    )
  }
}

/** `--retain-every` only means something with `--retain`. */
function checkRetention(config: Config) {
  if (
    config.retain === 0 &&
    config.retainEvery !== SETTINGS.retainEvery.default
  ) {
    throw new ConfigError('--retain-every needs --retain')
  }
}
