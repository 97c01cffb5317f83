import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  ConfigError,
  type Config,
  DEFAULT_CONFIG,
  envOf,
  flagOf,
  loadConfig,
  SETTINGS,
  usage,
} from './config.ts'

describe('loadConfig', () => {
  it('should use the defaults when nothing is set', () => {
    assert.deepStrictEqual(loadConfig([], {}), DEFAULT_CONFIG)
    assert.deepStrictEqual(DEFAULT_CONFIG, {
      host: '127.0.0.1',
      port: 8000,
      store: 'sqlite:./data/telemetry.db',
      readStore: '',
      logLevel: 'info',
      sync: 'normal',
      maxFrameBytes: 1048576,
      maxLinesPerFrame: 10000,
      maxConnections: 10000,
      maxFramesInFlight: 1024,
      maxConnectionInflightBytes: 8 * 1024 * 1024,
      maxInflightBytes: 16 * 1024 * 1024,
      keepaliveMs: 30000,
      liveHz: 10,
      maxLiveStreams: 1000,
      liveBufferBytes: 1024 * 1024,
      tokens: '',
      insecure: false,
      tlsCert: '',
      tlsKey: '',
      maxTokenEventsPerSecond: 0,
      maxTokenConnections: 0,
      maxTokenRequestsPerSecond: 0,
      retain: 0,
      retainEvery: 60000,
    })
  })

  it('should read the limits and the sync mode from flags and environment', () => {
    const env = {
      TELEMETRY_SYNC: 'full',
      TELEMETRY_MAX_LINES_PER_FRAME: '50',
      TELEMETRY_MAX_CONNECTIONS: '3',
      TELEMETRY_MAX_FRAMES_IN_FLIGHT: '8',
      TELEMETRY_KEEPALIVE_MS: '0',
    }
    assert.deepStrictEqual(loadConfig([], env), {
      ...DEFAULT_CONFIG,
      sync: 'full',
      maxLinesPerFrame: 50,
      maxConnections: 3,
      maxFramesInFlight: 8,
      keepaliveMs: 0,
    })
    assert.deepStrictEqual(
      loadConfig(
        [
          '--sync=normal',
          '--max-lines-per-frame=7',
          '--max-connections=1',
          '--max-frames-in-flight=1',
          '--keepalive-ms=250',
        ],
        env,
      ),
      {
        ...DEFAULT_CONFIG,
        maxLinesPerFrame: 7,
        maxConnections: 1,
        maxFramesInFlight: 1,
        keepaliveMs: 250,
      },
    )
  })

  it('should read the environment, and let flags win over it', () => {
    const env = {
      TELEMETRY_HOST: '0.0.0.0',
      TELEMETRY_INSECURE: 'true',
      TELEMETRY_PORT: '9001',
      TELEMETRY_STORE: 'sqlite:/tmp/env.db',
      TELEMETRY_LOG_LEVEL: 'warn',
    }
    assert.deepStrictEqual(loadConfig([], env), {
      ...DEFAULT_CONFIG,
      host: '0.0.0.0',
      insecure: true,
      port: 9001,
      store: 'sqlite:/tmp/env.db',
      logLevel: 'warn',
    })
    assert.deepStrictEqual(
      loadConfig(['--port', '9000', '--store=sqlite:/tmp/t.db'], env),
      {
        ...DEFAULT_CONFIG,
        host: '0.0.0.0',
        insecure: true,
        port: 9000,
        store: 'sqlite:/tmp/t.db',
        logLevel: 'warn',
      },
    )
    assert.equal((loadConfig(['--port', '0'], {}) as { port: number }).port, 0)
    assert.equal(
      (
        loadConfig(['--store', 'postgres://u@h:5432/db'], {}) as {
          store: string
        }
      ).store,
      'postgres://u@h:5432/db',
    )
  })

  it('should refuse unknown flags and bad values with a clear message', () => {
    const cases: [string[], RegExp][] = [
      [['--bogus'], /Unknown option '--bogus'/],
      [['--port', 'abc'], /port must be an integer from 0 to 65535, not "abc"/],
      [['--port', '70000'], /port must be an integer from 0 to 65535/],
      // A value that starts with a dash is still the flag's value.
      [['--port', '-1'], /port must be an integer from 0 to 65535, not "-1"/],
      [['--port=-1'], /port must be an integer from 0 to 65535, not "-1"/],
      [
        ['--port', '--host', '0.0.0.0'],
        /forget to specify the option argument for '--port'/,
      ],
      [
        ['--host', '--help'],
        /forget to specify the option argument for '--host'/,
      ],
      [
        ['--store', 'mysql://x'],
        /store must be sqlite:PATH or postgres:\/\/USER@HOST:PORT\/DATABASE, not "mysql:\/\/x"/,
      ],
      [['--store', 'sqlite:'], /store sqlite: needs a path/],
      [['--log-level', 'loud'], /log-level must be one of/],
      [['--host', ''], /host must not be empty/],
      [
        ['--max-frame-bytes', '1'],
        /max-frame-bytes must be an integer from 64/,
      ],
      [['serve'], /Unexpected argument 'serve'/],
      [['--store', 'postgres://[oops'], /is not a valid URL/],
      [['--sync', 'sometimes'], /sync must be one of normal, full/],
      [
        ['--max-lines-per-frame', '0'],
        /max-lines-per-frame must be an integer from 1/,
      ],
      [['--max-connections', 'many'], /max-connections must be an integer/],
      [['--max-frames-in-flight', '0'], /max-frames-in-flight must be/],
      [['--max-inflight-bytes', '10'], /max-inflight-bytes must be/],
      [['--live-hz', '0'], /live-hz must be an integer from 1 to 1000/],
      [['--max-live-streams', '0'], /max-live-streams must be an integer/],
      [['--live-buffer-bytes', '10'], /live-buffer-bytes must be an integer/],
      [
        ['--keepalive-ms', '50'],
        /keepalive-ms must be 0 \(never\) or at least 100/,
      ],
    ]
    for (const [args, message] of cases) {
      assert.throws(
        () => loadConfig(args, {}),
        (error: unknown) =>
          error instanceof ConfigError && message.test(error.message),
        args.join(' '),
      )
    }
    // A bad value from the environment is named by its variable.
    assert.throws(
      () => loadConfig([], { TELEMETRY_PORT: 'x' }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message ===
          'TELEMETRY_PORT must be an integer from 0 to 65535, not "x"',
    )
    assert.throws(
      () => loadConfig([], { TELEMETRY_SYNC: 'never' }),
      /^ConfigError: TELEMETRY_SYNC must be one of normal, full$/,
    )
    // A flag wins over a bad variable, which is then not read.
    assert.equal(
      (loadConfig(['--port', '1'], { TELEMETRY_PORT: 'x' }) as Config).port,
      1,
    )
  })

  it('should answer --help and -h with the usage, which lists every setting', () => {
    assert.equal(loadConfig(['--help'], {}), 'help')
    assert.equal(loadConfig(['-h'], {}), 'help')
    const text = usage()
    assert.match(
      text,
      /--store \(TELEMETRY_STORE, default sqlite:\.\/data\/telemetry\.db\)/,
    )
    assert.match(text, /^ {2}-h, --help$/m)
    for (const key of Object.keys(SETTINGS) as (keyof typeof SETTINGS)[]) {
      assert.ok(text.includes(`--${flagOf(key)} (${envOf(key)}, default `), key)
    }
  })

  it('should derive each flag and environment variable from the setting', () => {
    assert.deepStrictEqual(
      Object.keys(SETTINGS).map((key) => [
        flagOf(key as keyof typeof SETTINGS),
        envOf(key as keyof typeof SETTINGS),
      ]),
      [
        ['host', 'TELEMETRY_HOST'],
        ['port', 'TELEMETRY_PORT'],
        ['store', 'TELEMETRY_STORE'],
        ['read-store', 'TELEMETRY_READ_STORE'],
        ['log-level', 'TELEMETRY_LOG_LEVEL'],
        ['sync', 'TELEMETRY_SYNC'],
        ['max-frame-bytes', 'TELEMETRY_MAX_FRAME_BYTES'],
        ['max-lines-per-frame', 'TELEMETRY_MAX_LINES_PER_FRAME'],
        ['max-connections', 'TELEMETRY_MAX_CONNECTIONS'],
        ['max-frames-in-flight', 'TELEMETRY_MAX_FRAMES_IN_FLIGHT'],
        [
          'max-connection-inflight-bytes',
          'TELEMETRY_MAX_CONNECTION_INFLIGHT_BYTES',
        ],
        ['max-inflight-bytes', 'TELEMETRY_MAX_INFLIGHT_BYTES'],
        ['keepalive-ms', 'TELEMETRY_KEEPALIVE_MS'],
        ['live-hz', 'TELEMETRY_LIVE_HZ'],
        ['max-live-streams', 'TELEMETRY_MAX_LIVE_STREAMS'],
        ['live-buffer-bytes', 'TELEMETRY_LIVE_BUFFER_BYTES'],
        ['tokens', 'TELEMETRY_TOKENS'],
        ['insecure', 'TELEMETRY_INSECURE'],
        ['tls-cert', 'TELEMETRY_TLS_CERT'],
        ['tls-key', 'TELEMETRY_TLS_KEY'],
        [
          'max-token-events-per-second',
          'TELEMETRY_MAX_TOKEN_EVENTS_PER_SECOND',
        ],
        ['max-token-connections', 'TELEMETRY_MAX_TOKEN_CONNECTIONS'],
        [
          'max-token-requests-per-second',
          'TELEMETRY_MAX_TOKEN_REQUESTS_PER_SECOND',
        ],
        ['retain', 'TELEMETRY_RETAIN'],
        ['retain-every', 'TELEMETRY_RETAIN_EVERY'],
      ],
    )
  })

  it('should refuse an address other than loopback without tokens, unless --insecure', () => {
    for (const host of ['0.0.0.0', '::', '192.168.1.4', 'robots.example']) {
      assert.throws(
        () => loadConfig(['--host', host], {}),
        (error: unknown) =>
          error instanceof ConfigError &&
          error.message.startsWith(
            `refusing to listen on ${host} without access control`,
          ) &&
          error.message.includes('--tokens') &&
          error.message.includes('--insecure'),
        host,
      )
      const opened = loadConfig(['--host', host, '--insecure'], {}) as Config
      assert.equal(opened.insecure, true)
      const guarded = loadConfig(['--host', host, '--tokens', 't.json'], {})
      assert.equal((guarded as Config).tokens, 't.json')
      assert.equal(
        (loadConfig(['--host', host], { TELEMETRY_INSECURE: '1' }) as Config)
          .insecure,
        true,
      )
    }
    for (const host of ['127.0.0.1', '127.8.0.1', 'localhost', '::1']) {
      assert.equal((loadConfig(['--host', host], {}) as Config).host, host)
    }
    // `--insecure` takes no value: the next argument is another flag.
    assert.equal(
      (loadConfig(['--insecure', '--port', '1'], {}) as Config).port,
      1,
    )
    assert.throws(
      () => loadConfig([], { TELEMETRY_INSECURE: 'maybe' }),
      /TELEMETRY_INSECURE must be true or false/,
    )
  })

  it('should want both TLS files, and tokens for the per-token limits', () => {
    assert.throws(
      () => loadConfig(['--tls-cert', 'c.pem'], {}),
      /--tls-cert and --tls-key go together/,
    )
    assert.throws(
      () => loadConfig([], { TELEMETRY_TLS_KEY: 'k.pem' }),
      /--tls-cert and --tls-key go together/,
    )
    for (const flag of [
      '--max-token-events-per-second',
      '--max-token-connections',
      '--max-token-requests-per-second',
    ]) {
      assert.throws(
        () => loadConfig([flag, '5'], {}),
        new RegExp(`${flag} needs a tokens file`),
      )
      assert.doesNotThrow(() => loadConfig([flag, '5', '--tokens', 't'], {}))
    }
  })

  it('should take a PostgreSQL --read-store beside a PostgreSQL --store only', () => {
    const store = 'postgres://app@db1:5432,db2:5432/fleet'
    const reads = `${store}?target_session_attrs=prefer-standby`
    const config = loadConfig(['--store', store, '--read-store', reads], {})
    assert.ok(config !== 'help')
    assert.equal(config.readStore, reads)
    assert.throws(
      () => loadConfig(['--store', store, '--read-store', 'sqlite:r.db'], {}),
      /read-store must be a postgres:\/\/ address/,
    )
    assert.throws(
      () => loadConfig([], { TELEMETRY_READ_STORE: reads }),
      /--read-store needs a PostgreSQL --store/,
    )
    assert.throws(
      () =>
        loadConfig(['--store', store, '--read-store', 'postgres://a@/x'], {}),
      /not a valid URL/,
    )
  })

  it('should read --retain and --retain-every as durations with a unit', () => {
    const cases: [string, number][] = [
      ['500ms', 500],
      ['45s', 45_000],
      ['90m', 5_400_000],
      ['12h', 43_200_000],
      ['30d', 2_592_000_000],
      ['2w', 1_209_600_000],
    ]
    for (const [text, ms] of cases) {
      assert.equal((loadConfig(['--retain', text], {}) as Config).retain, ms)
      assert.equal(
        (loadConfig([], { TELEMETRY_RETAIN: text }) as Config).retain,
        ms,
        text,
      )
    }
    assert.deepStrictEqual(
      loadConfig(['--retain', '1h', '--retain-every', '1s'], {}),
      { ...DEFAULT_CONFIG, retain: 3_600_000, retainEvery: 1000 },
    )
    assert.deepStrictEqual(
      loadConfig([], { TELEMETRY_RETAIN: '7d', TELEMETRY_RETAIN_EVERY: '5m' }),
      { ...DEFAULT_CONFIG, retain: 604_800_000, retainEvery: 300_000 },
    )
  })

  it('should refuse a duration that is 0, has no unit or is not one, naming the setting', () => {
    const junk = (name: string, text: string) =>
      `${name} must be a duration: a positive integer and a unit (ms, s, m, h, d or w), such as 30d or 12h, not ${JSON.stringify(text)}`
    const cases: [string[], Record<string, string>, string][] = [
      [['--retain', '0'], {}, junk('retain', '0')],
      [['--retain', '0d'], {}, junk('retain', '0d')],
      [['--retain', 'banana'], {}, junk('retain', 'banana')],
      [['--retain', '5'], {}, junk('retain', '5')],
      [['--retain', '1.5h'], {}, junk('retain', '1.5h')],
      [['--retain', '-1d'], {}, junk('retain', '-1d')],
      [['--retain', '+1d'], {}, junk('retain', '+1d')],
      [['--retain', '1 d'], {}, junk('retain', '1 d')],
      [['--retain', '1D'], {}, junk('retain', '1D')],
      [['--retain', '1d2h'], {}, junk('retain', '1d2h')],
      [['--retain', '01d'], {}, junk('retain', '01d')],
      [['--retain', ''], {}, junk('retain', '')],
      [['--retain', 'd'], {}, junk('retain', 'd')],
      [
        ['--retain', '9999999999999999w'],
        {},
        'retain must be from 1 ms to 9007199254740991 ms, not "9999999999999999w"',
      ],
      [[], { TELEMETRY_RETAIN: '0' }, junk('TELEMETRY_RETAIN', '0')],
      [[], { TELEMETRY_RETAIN: '' }, junk('TELEMETRY_RETAIN', '')],
      [
        ['--retain', '1d', '--retain-every', '5'],
        {},
        junk('retain-every', '5'),
      ],
      [
        ['--retain', '1d', '--retain-every', '5ms'],
        {},
        'retain-every must be from 10 ms to 86400000 ms, not "5ms"',
      ],
      [
        ['--retain', '1d', '--retain-every', '2d'],
        {},
        'retain-every must be from 10 ms to 86400000 ms, not "2d"',
      ],
      [['--retain-every', '1s'], {}, '--retain-every needs --retain'],
    ]
    for (const [args, env, message] of cases) {
      assert.throws(
        () => loadConfig(args, env),
        (error: unknown) =>
          error instanceof ConfigError && error.message === message,
        `${args.join(' ')} ${JSON.stringify(env)}`,
      )
    }
  })

  it('should show retention as off in the usage, and its interval as 1m', () => {
    const text = usage()
    assert.match(text, /^ {2}--retain \(TELEMETRY_RETAIN, default off\)$/m)
    assert.match(
      text,
      /^ {2}--retain-every \(TELEMETRY_RETAIN_EVERY, default 1m\)$/m,
    )
  })
})
