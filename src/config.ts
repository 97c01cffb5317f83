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

/**
 * When a commit counts as durable: `normal` once it is in the operating
 * system (survives a crash or kill of the server), `full` once it is on the
 * disk (also survives a power loss).
 */
export const SYNC_MODES = ['normal', 'full'] as const
export type SyncMode = (typeof SYNC_MODES)[number]

/** The server's whole configuration. */
export interface Config {
  /** Address to listen on. */
  readonly host: string
  /** Port to listen on; 0 picks a free one. */
  readonly port: number
  /** Where events are kept: `sqlite:PATH` (or `sqlite::memory:`), or `postgres://…`. */
  readonly store: string
  readonly logLevel: LogLevel
  /** When a commit counts as durable, see {@link SyncMode}. */
  readonly sync: SyncMode
  /** Largest WebSocket frame in bytes; a larger one closes the connection with 1009. */
  readonly maxFrameBytes: number
  /** Most lines in one frame; a frame with more closes the connection with 1009. */
  readonly maxLinesPerFrame: number
  /** Most open ingest connections; an upgrade over it is answered 503. */
  readonly maxConnections: number
  /** Frames of one connection received and not yet answered before the server stops reading it. */
  readonly maxFramesInFlight: number
  /** Ping period of ingest connections; one that has not answered the previous ping is closed. 0: never. */
  readonly keepaliveMs: number
}

/** The configuration when nothing is set. */
export const DEFAULT_CONFIG: Config = Object.freeze({
  host: '127.0.0.1',
  port: 8000,
  store: 'sqlite:./data/telemetry.db',
  logLevel: 'info',
  sync: 'normal',
  maxFrameBytes: 1024 * 1024,
  maxLinesPerFrame: 10_000,
  maxConnections: 10_000,
  maxFramesInFlight: 1024,
  keepaliveMs: 30_000,
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
    help: 'where events are kept: sqlite:PATH or postgres://USER@HOST:PORT/DB',
  },
  'log-level': {
    env: 'TELEMETRY_LOG_LEVEL',
    help: LOG_LEVELS.join(' | '),
  },
  sync: {
    env: 'TELEMETRY_SYNC',
    help: 'normal: an OK survives a crash of the server | full: also a power loss (slower)',
  },
  'max-frame-bytes': {
    env: 'TELEMETRY_MAX_FRAME_BYTES',
    help: 'largest WebSocket frame; larger ones close the connection (1009)',
  },
  'max-lines-per-frame': {
    env: 'TELEMETRY_MAX_LINES_PER_FRAME',
    help: 'most lines in one frame; more close the connection (1009)',
  },
  'max-connections': {
    env: 'TELEMETRY_MAX_CONNECTIONS',
    help: 'most open ingest connections; more are refused with 503',
  },
  'max-frames-in-flight': {
    env: 'TELEMETRY_MAX_FRAMES_IN_FLIGHT',
    help: 'unanswered frames of one connection before it is no longer read',
  },
  'keepalive-ms': {
    env: 'TELEMETRY_KEEPALIVE_MS',
    help: 'ping period; a connection that misses a pong is closed; 0 = never',
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
    sync: DEFAULT_CONFIG.sync,
    'max-frame-bytes': DEFAULT_CONFIG.maxFrameBytes,
    'max-lines-per-frame': DEFAULT_CONFIG.maxLinesPerFrame,
    'max-connections': DEFAULT_CONFIG.maxConnections,
    'max-frames-in-flight': DEFAULT_CONFIG.maxFramesInFlight,
    'keepalive-ms': DEFAULT_CONFIG.keepaliveMs,
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
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    try {
      new URL(url)
    } catch {
      throw new ConfigError(`store ${JSON.stringify(url)} is not a valid URL`)
    }
    return url
  }
  throw new ConfigError(
    `store must be sqlite:PATH or postgres://USER@HOST:PORT/DATABASE, not ${JSON.stringify(url)}`,
  )
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
  const sync = get('sync') ?? DEFAULT_CONFIG.sync
  if (!(SYNC_MODES as readonly string[]).includes(sync)) {
    throw new ConfigError(`sync must be one of ${SYNC_MODES.join(', ')}`)
  }
  const number = (
    flag: keyof typeof SETTINGS,
    fallback: number,
    min: number,
    max: number,
  ) => {
    const text = get(flag)
    return text === undefined ? fallback : integer(text, flag, min, max)
  }
  const keepaliveMs = number(
    'keepalive-ms',
    DEFAULT_CONFIG.keepaliveMs,
    0,
    86_400_000,
  )
  if (keepaliveMs > 0 && keepaliveMs < 100) {
    throw new ConfigError('keepalive-ms must be 0 (never) or at least 100')
  }
  return Object.freeze({
    host,
    port: number('port', DEFAULT_CONFIG.port, 0, 65535),
    store: checkStoreUrl(get('store') ?? DEFAULT_CONFIG.store),
    logLevel: logLevel as LogLevel,
    sync: sync as SyncMode,
    maxFrameBytes: number(
      'max-frame-bytes',
      DEFAULT_CONFIG.maxFrameBytes,
      64,
      64 * 1024 * 1024,
    ),
    maxLinesPerFrame: number(
      'max-lines-per-frame',
      DEFAULT_CONFIG.maxLinesPerFrame,
      1,
      64 * 1024 * 1024,
    ),
    maxConnections: number(
      'max-connections',
      DEFAULT_CONFIG.maxConnections,
      1,
      1_000_000,
    ),
    maxFramesInFlight: number(
      'max-frames-in-flight',
      DEFAULT_CONFIG.maxFramesInFlight,
      1,
      1_000_000,
    ),
    keepaliveMs,
  })
}

/** A store address fit for logs: a password in it is replaced by `***`. */
export function redactStoreUrl(url: string): string {
  if (url.startsWith('sqlite:')) return url
  try {
    const parsed = new URL(url)
    if (parsed.password === '') return url
    parsed.password = '***'
    return parsed.toString()
  } catch {
    return url
  }
}
