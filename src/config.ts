/**
 * The server's configuration: flags win over environment variables, which win
 * over defaults. Read once at startup into one frozen object.
 */
import { parseArgs } from 'node:util'

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

/** The server's whole configuration. */
export interface Config {
  /** Address to listen on. */
  readonly host: string
  /** Port to listen on; 0 picks a free one. */
  readonly port: number
  /** Where events are kept: `sqlite:PATH` (or `sqlite::memory:`). */
  readonly store: string
  readonly logLevel: LogLevel
  /** Largest WebSocket frame in bytes; a larger one closes the connection with 1009. */
  readonly maxFrameBytes: number
}

/** The configuration when nothing is set. */
export const DEFAULT_CONFIG: Config = Object.freeze({
  host: '127.0.0.1',
  port: 8000,
  store: 'sqlite:./data/telemetry.db',
  logLevel: 'info',
  maxFrameBytes: 1024 * 1024,
})

/** Each setting: its flag, its environment variable and its help text. */
const SETTINGS = {
  host: { env: 'TELEMETRY_HOST', help: 'address to listen on' },
  port: {
    env: 'TELEMETRY_PORT',
    help: 'port to listen on; 0 picks a free one',
  },
  store: {
    env: 'TELEMETRY_STORE',
    help: 'where events are kept: sqlite:PATH',
  },
  'log-level': {
    env: 'TELEMETRY_LOG_LEVEL',
    help: LOG_LEVELS.join(' | '),
  },
  'max-frame-bytes': {
    env: 'TELEMETRY_MAX_FRAME_BYTES',
    help: 'largest WebSocket frame; larger ones close the connection (1009)',
  },
} as const

/** A configuration that cannot be used; the CLI prints it and exits 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError'
}

/** The usage text of the CLI. */
export function usage(): string {
  const defaults: Record<keyof typeof SETTINGS, string | number> = {
    host: DEFAULT_CONFIG.host,
    port: DEFAULT_CONFIG.port,
    store: DEFAULT_CONFIG.store,
    'log-level': DEFAULT_CONFIG.logLevel,
    'max-frame-bytes': DEFAULT_CONFIG.maxFrameBytes,
  }
  const lines = Object.entries(SETTINGS).map(
    ([flag, s]) =>
      `  --${flag} (${s.env}, default ${defaults[flag as keyof typeof SETTINGS]})\n      ${s.help}`,
  )
  return `usage: fleet-telemetry [options]\n\noptions:\n${lines.join('\n')}\n  --help\n`
}

function integer(text: string, name: string, min: number, max: number) {
  const value = /^\d+$/.test(text) ? Number(text) : NaN
  if (!(value >= min && value <= max)) {
    throw new ConfigError(
      `${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(text)}`,
    )
  }
  return value
}

/** Checks a store address; returns it unchanged when usable. */
export function checkStoreUrl(url: string): string {
  if (url.startsWith('sqlite:')) {
    if (url.length === 'sqlite:'.length) {
      throw new ConfigError(
        'store sqlite: needs a path, e.g. sqlite:./data/telemetry.db',
      )
    }
    return url
  }
  throw new ConfigError(`store must be sqlite:PATH, not ${JSON.stringify(url)}`)
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
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        ...Object.fromEntries(
          Object.keys(SETTINGS).map((flag) => [flag, { type: 'string' }]),
        ),
        help: { type: 'boolean', short: 'h' },
      } as Record<string, { type: 'string' | 'boolean' }>,
    }).values
  } catch (error) {
    throw new ConfigError((error as Error).message)
  }
  if (values.help === true) return 'help'

  const get = (flag: keyof typeof SETTINGS): string | undefined => {
    const value = values[flag] ?? env[SETTINGS[flag].env]
    return typeof value === 'string' ? value : undefined
  }
  const logLevel = get('log-level') ?? DEFAULT_CONFIG.logLevel
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError(`log-level must be one of ${LOG_LEVELS.join(', ')}`)
  }
  const host = get('host') ?? DEFAULT_CONFIG.host
  if (host === '') throw new ConfigError('host must not be empty')
  const port = get('port')
  const maxFrameBytes = get('max-frame-bytes')
  return Object.freeze({
    host,
    port:
      port === undefined
        ? DEFAULT_CONFIG.port
        : integer(port, 'port', 0, 65535),
    store: checkStoreUrl(get('store') ?? DEFAULT_CONFIG.store),
    logLevel: logLevel as LogLevel,
    maxFrameBytes:
      maxFrameBytes === undefined
        ? DEFAULT_CONFIG.maxFrameBytes
        : integer(maxFrameBytes, 'max-frame-bytes', 64, 64 * 1024 * 1024),
  })
}
