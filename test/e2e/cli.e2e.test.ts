/**
 * Issue 13: `fleet-telemetry simulate`, `replay` and `export`, run as a
 * user would, on the compiled command line against the real server: what
 * each prints, its exit code, and what the store holds afterwards (read
 * back through the HTTP API). No assertion depends on the machine's speed:
 * a simulated run is judged by its events, never by how long it took.
 */
import assert from 'node:assert/strict'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import {
  CLI_PATH,
  accessFile,
  IngestClient,
  Random,
  downloadMcap,
  getJson,
  openMcap,
  makeTempDir,
  readEvents,
  removeTempDir,
  robotPath,
  runCli,
  runCliWithInput,
  runProcess,
  seedNote,
  startNode,
  startServer,
  testSeed,
  waitFor,
  type ApiEvent,
  type ServerProcess,
} from '../support/index.ts'

const seed = testSeed()
const dir = makeTempDir('telemetry-cli-')
let server: ServerProcess

before(async () => {
  server = await startServer()
})

after(async () => {
  await server?.dispose()
  removeTempDir(dir)
})

/** Writes `text` (or bytes) to a fresh file of the test folder and returns its path. */
let files = 0
function file(content: string | Buffer): string {
  const path = join(dir, `input-${++files}`)
  writeFileSync(path, content)
  return path
}

/** The event a well-formed line stands for. */
function eventOf(line: string): ApiEvent {
  const [x, y, timestamp, robot] = line.split(',')
  return {
    robot: robot!,
    x: Number(x),
    y: Number(y),
    timestamp: Number(timestamp),
  }
}

/**
 * `perRobot` events of each of `robots` robots named `<prefix>-<i>`,
 * interleaved, each robot's timestamps rising: lines that are all stored
 * on a fresh store.
 */
function cleanLines(
  random: Random,
  prefix: string,
  robots: number,
  perRobot: number,
): string[] {
  const lines: string[] = []
  for (let i = 0; i < perRobot; i++) {
    for (let r = 0; r < robots; r++) {
      const x = random.int(-100_000, 100_000) / 1000
      const y = random.int(-100_000, 100_000) / 1000
      const timestamp = 1_700_000_000_000 + i * 1000 + random.int(0, 999)
      lines.push(`${x},${y},${timestamp},${prefix}-${r}`)
    }
  }
  return lines
}

/** What the store must hold after `lines`, all stored, by robot. */
function byRobot(lines: readonly string[]): Map<string, ApiEvent[]> {
  const robots = new Map<string, ApiEvent[]>()
  for (const line of lines) {
    const event = eventOf(line)
    robots.set(event.robot, [...(robots.get(event.robot) ?? []), event])
  }
  return robots
}

/**
 * stderr without the plain progress lines that a slow run writes every few
 * seconds (`replay: 120 lines, …`, `export: 12 of 50 events`): how many
 * there are depends on the machine's speed.
 */
function withoutProgress(stderr: string): string {
  return stderr
    .split('\n')
    .filter(
      (line) =>
        !/^replay: [\d,]+ lines, |^export: [\d,]+(?: of [\d,]+)? events(?: \(\d+%\))?$|^simulate: sent /.test(
          line,
        ),
    )
    .join('\n')
}

/** Events as the API writes them in CSV (names here need no quoting). */
const csv = (events: readonly ApiEvent[]) =>
  `robot,x,y,timestamp\r\n${events.map((e) => `${e.robot},${e.x},${e.y},${e.timestamp}\r\n`).join('')}`

/** Events as the API writes them in NDJSON. */
const ndjson = (events: readonly ApiEvent[]) =>
  events.map((e) => `${JSON.stringify(e)}\n`).join('')

async function assertStore(expected: Map<string, ApiEvent[]>, what: string) {
  for (const [robot, events] of expected) {
    assert.deepStrictEqual(
      await readEvents(server, robot),
      events,
      `${what}: ${robot}`,
    )
  }
}

describe('replay', () => {
  test('sums up each outcome, lists failures by line number, skips the header, takes CRLF, and exits 1 when a line is not stored', async () => {
    const lines = [
      'x,y,timestamp,robot_name', // 1: the header
      '0,0,1000,rp-mixed-1', // 2: stored
      '1,0,2000,rp-mixed-1', // 3: stored
      'hello', // 4: malformed
      '0.5,0,1500,rp-mixed-1', // 5: stale
      '2,0,2000,rp-mixed-1', // 6: conflict
      '1,0,2000,rp-mixed-1', // 7: duplicate
      '', // 8: malformed, empty
      '3,0,3000,rp-mixed-2', // 9: stored
    ]
    const bytes = Buffer.concat([
      Buffer.from(lines.map((line) => `${line}\r\n`).join('')),
      Buffer.from('1,1,1,bad\xff\r\n', 'latin1'), // 10: malformed, not UTF-8
    ])
    const run = await runCli(['replay', file(bytes), '--url', server.url])
    assert.equal(run.code, 1, run.stderr)
    assert.equal(
      run.stdout,
      'replayed 9 lines: 3 stored, 1 duplicate, 1 stale, 1 conflict, 3 malformed\n',
    )
    assert.equal(
      withoutProgress(run.stderr),
      [
        'replay: line 1 is a header, skipped: x,y,timestamp,robot_name',
        'replay: 5 lines failed:',
        '  line 4: malformed (expected 4 fields: x,y,timestamp,robot_name): hello',
        "  line 5: stale (the event is older than the robot's latest event): 0.5,0,1500,rp-mixed-1",
        '  line 6: conflict (another event of this robot is stored at this timestamp): 2,0,2000,rp-mixed-1',
        '  line 8: malformed (empty line): ',
        '  line 10: malformed (line is not valid UTF-8): (not UTF-8)',
        '',
      ].join('\n'),
    )
    // The three stored lines, and nothing else.
    await assertStore(
      byRobot([
        '0,0,1000,rp-mixed-1',
        '1,0,2000,rp-mixed-1',
        '3,0,3000,rp-mixed-2',
      ]),
      'after the mixed file',
    )
  })

  test('stores a clean file and exits 0; replayed again it stores nothing new, says so, and exits 0', async () => {
    const lines = cleanLines(Random.derive(seed, 1), 'rp-clean', 4, 150)
    const path = file(`${lines.join('\n')}\n`)
    const first = await runCli(['replay', path, '--url', server.url])
    assert.equal(first.code, 0, `${first.stderr} ${seedNote(seed)}`)
    assert.equal(first.stdout, 'replayed 600 lines: 600 stored\n')
    assert.equal(withoutProgress(first.stderr), '')
    const expected = byRobot(lines)
    await assertStore(expected, 'after the first run')

    const second = await runCli(['replay', path, '--url', server.url])
    assert.equal(second.code, 0, second.stderr)
    assert.equal(
      second.stdout,
      'replayed 600 lines: nothing new stored (600 duplicate)\n',
    )
    await assertStore(expected, 'after the second run')
  })

  test('reads standard input when the file is -', async () => {
    const lines = cleanLines(Random.derive(seed, 2), 'rp-stdin', 2, 40)
    // No line end after the last line: it is a line all the same.
    const run = await runCliWithInput(
      ['replay', '-', '--url', server.url],
      file(lines.join('\r\n')),
    )
    assert.equal(run.code, 0, run.stderr)
    assert.equal(run.stdout, 'replayed 80 lines: 80 stored\n')
    await assertStore(byRobot(lines), 'after stdin')
  })

  test('paces lines by their timestamps with --speed, in the order of the file', async () => {
    const lines = [
      '0,0,0,rp-paced',
      '1,0,40,rp-paced',
      '1,1,40,rp-paced-b',
      '0.5,0,20,rp-paced', // out of order: stale, sent without waiting
      '2,0,80,rp-paced',
      'not an event',
      '3,0,120,rp-paced',
    ]
    const run = await runCli([
      'replay',
      file(lines.join('\n')),
      '--speed',
      '20',
      '--url',
      server.url,
    ])
    assert.equal(run.code, 1, run.stderr)
    assert.equal(
      run.stdout,
      'replayed 7 lines: 5 stored, 1 stale, 1 malformed\n',
    )
    assert.match(run.stderr, /^ {2}line 4: stale .*: 0\.5,0,20,rp-paced$/m)
    assert.match(run.stderr, /^ {2}line 6: malformed .*: not an event$/m)
    await assertStore(
      byRobot([
        '0,0,0,rp-paced',
        '1,0,40,rp-paced',
        '1,1,40,rp-paced-b',
        '2,0,80,rp-paced',
        '3,0,120,rp-paced',
      ]),
      'after the paced run',
    )
  })
})

describe('simulate', () => {
  /** `simulate` for `seconds` with a seed and a prefix of its own. */
  const simulate = (prefix: string, args: string[] = []) =>
    runCli([
      'simulate',
      '--robots',
      '3',
      '--rate',
      '10',
      '--duration',
      '2',
      '--seed',
      String(seed),
      '--prefix',
      prefix,
      '--url',
      server.url,
      ...args,
    ])

  test('streams 3 robots for 2 s at 10 Hz: 20 events each, timestamps 100 ms apart, no step faster than 2 m/s, all on the floor; the same seed moves them the same way', async () => {
    const [run, again] = await Promise.all([
      simulate('sim-a'),
      simulate('sim-b'),
    ])
    for (const [prefix, r] of [
      ['sim-a', run],
      ['sim-b', again],
    ] as const) {
      assert.equal(r.code, 0, `${prefix}: ${r.stderr}`)
      const [start, summary] = r.stdout.split('\n')
      assert.equal(
        start,
        `simulating 3 robots (${prefix}-001 to ${prefix}-003) at 10 Hz for 2 s, seed ${seed}, to ${server.wsUrl}/upstream`,
      )
      assert.equal(
        summary,
        `simulated 3 robots for 2.0 s (seed ${seed}): 60 events sent, 60 stored`,
      )
    }
    const tracks = (prefix: string) =>
      Promise.all(
        ['001', '002', '003'].map((n) => readEvents(server, `${prefix}-${n}`)),
      )
    const a = await tracks('sim-a')
    const b = await tracks('sim-b')
    for (const events of a) {
      const robot = events[0]?.robot
      assert.equal(events.length, 20, `${robot}: ${seedNote(seed)}`)
      for (let i = 0; i < events.length; i++) {
        const { x, y, timestamp } = events[i]!
        assert.ok(
          x >= 0 && x <= 100 && y >= 0 && y <= 60,
          `${robot} at ${x},${y}`,
        )
        assert.equal(Math.round(x * 1000) / 1000, x, 'to the millimetre')
        if (i === 0) continue
        const before = events[i - 1]!
        assert.equal(timestamp - before.timestamp, 100, `${robot}: timestamps`)
        const step = Math.hypot(x - before.x, y - before.y)
        // 2 m/s for 0.1 s, and the millimetre of rounding of each end.
        assert.ok(
          step <= 0.2 + 0.0015,
          `${robot}: ${step} m in 100 ms, ${seedNote(seed)}`,
        )
      }
    }
    // The same seed: the same positions (each run has its own start time).
    const positions = (tracks: ApiEvent[][]) =>
      tracks.map((events) => events.map(({ x, y }) => [x, y]))
    assert.deepStrictEqual(positions(b), positions(a), seedNote(seed))
  })

  test('runs until SIGINT, then waits for the last acknowledgements and sums up with exit 0', async () => {
    const child = startNode(
      CLI_PATH,
      [
        'simulate',
        '--robots',
        '2',
        '--rate',
        '20',
        '--prefix',
        'sim-int',
        '--url',
        server.url,
      ],
      { cwd: dir },
    )
    try {
      await child.waitForOutput(
        /^simulating 2 robots .* until interrupted, seed \d+,/m,
      )
      // A few events of each robot stored: it streams.
      await waitFor(async () => {
        for (const robot of ['sim-int-001', 'sim-int-002']) {
          const { status, body } = await getJson(server, robotPath(robot))
          if (
            status !== 200 ||
            (body as { event_count: number }).event_count < 5
          )
            return false
        }
        return true
      }, 'the simulated robots stream')
      child.kill('SIGINT')
      const exit = await child.exited
      assert.deepEqual(exit, { code: 0, signal: null }, child.stderr())
    } finally {
      child.kill('SIGKILL')
    }
    const summary =
      /^simulated 2 robots for [\d.]+ s until SIGINT \(seed \d+\): (\d+) events sent, (\d+) stored$/m.exec(
        child.stdout(),
      )
    assert.ok(summary !== null, child.stdout())
    assert.equal(summary[1], summary[2])
    const stored =
      (await readEvents(server, 'sim-int-001')).length +
      (await readEvents(server, 'sim-int-002')).length
    assert.equal(
      stored,
      Number(summary[1]),
      'the summary counts what the store holds',
    )
  })
})

describe('export', () => {
  const robot = 'Unit 7/b'
  const other = 'exp-other'
  let lines: string[]

  before(async () => {
    lines = cleanLines(Random.derive(seed, 3), 'exp', 1, 50).map((line) =>
      line.replace(/exp-0$/, robot),
    )
    const writer = await IngestClient.connect(server.wsUrl)
    await writer.store(lines)
    await writer.store(['1,1,1,exp-other'])
    await writer.close()
  })

  test('writes CSV to stdout, one header line over every page', async () => {
    const run = await runCli([
      'export',
      '--robot',
      robot,
      '--page-size',
      '7',
      '--url',
      server.url,
    ])
    assert.equal(run.code, 0, run.stderr)
    assert.equal(run.stdout, csv(await readEvents(server, robot)))
    assert.equal(
      withoutProgress(run.stderr),
      `export: 50 events of "${robot}" as csv to stdout\n`,
    )
  })

  test('writes NDJSON to stdout and to a file, the same as the API', async () => {
    const events = await readEvents(server, robot)
    const run = await runCli([
      'export',
      '--robot',
      robot,
      '--format',
      'ndjson',
      '--url',
      server.url,
    ])
    assert.equal(run.code, 0, run.stderr)
    assert.equal(run.stdout, ndjson(events))

    const out = join(dir, 'events.ndjson')
    const toFile = await runCli([
      'export',
      '--robot',
      robot,
      '--format',
      'ndjson',
      '--out',
      out,
      '--page-size',
      '9',
      '--url',
      server.url,
    ])
    assert.equal(toFile.code, 0, toFile.stderr)
    assert.equal(toFile.stdout, '')
    assert.equal(
      withoutProgress(toFile.stderr),
      `export: 50 events of "${robot}" as ndjson to ${out}\n`,
    )
    assert.equal(readFileSync(out, 'utf8'), ndjson(events))
  })

  test('takes --from and --to as timestamps or ISO 8601 date-times, both bounds included', async () => {
    const all = await readEvents(server, robot)
    const from = all[10]!.timestamp
    const to = all[30]!.timestamp
    const out = join(dir, 'interval.csv')
    const run = await runCli([
      'export',
      '--robot',
      robot,
      '--from',
      String(from),
      '--to',
      new Date(to).toISOString(),
      '--out',
      out,
      '--url',
      server.url,
    ])
    assert.equal(run.code, 0, run.stderr)
    const expected = await readEvents(server, robot, {
      start_time: from,
      end_time: to,
    })
    assert.equal(expected.length, 21)
    assert.equal(readFileSync(out, 'utf8'), csv(expected))
  })

  test('says a robot has no event, exits 1 and writes no file', async () => {
    const out = join(dir, 'nobody.csv')
    const run = await runCli([
      'export',
      '--robot',
      'nobody',
      '--out',
      out,
      '--url',
      server.url,
    ])
    assert.deepEqual(
      { code: run.code, stdout: run.stdout, stderr: run.stderr },
      {
        code: 1,
        stdout: '',
        stderr: 'export: robot "nobody" has no stored event\n',
      },
    )
    assert.equal(existsSync(out), false)
    // The other robot is there, and only its own event is exported.
    const theOther = await runCli([
      'export',
      '--robot',
      other,
      '--url',
      server.url,
    ])
    assert.equal(theOther.stdout, 'robot,x,y,timestamp\r\nexp-other,1,1,1\r\n')
  })

  test("writes MCAP, the API's file byte for byte, to a file or to stdout, in the json or ros2 profile", async () => {
    const all = await readEvents(server, robot)
    const from = all[10]!.timestamp
    const to = all[30]!.timestamp
    for (const [args, query, summary] of [
      [[], '?profile=json', '50 events of "Unit 7/b" as mcap (profile json)'],
      [
        ['--profile', 'ros2', '--from', String(from), '--to', String(to)],
        `?start_time=${from}&end_time=${to}&profile=ros2`,
        '21 events of "Unit 7/b" as mcap (profile ros2)',
      ],
    ] as const) {
      const expected = await downloadMcap(
        server,
        robotPath(robot, `/events.mcap${query}`),
      )
      assert.equal(expected.status, 200)
      const out = join(dir, `unit.${args.length}.mcap`)
      const toFile = await runCli([
        'export',
        '--robot',
        robot,
        '--format',
        'mcap',
        ...args,
        '--out',
        out,
        '--url',
        server.url,
      ])
      assert.equal(toFile.code, 0, toFile.stderr)
      assert.equal(toFile.stdout, '')
      assert.equal(
        withoutProgress(toFile.stderr),
        `export: ${summary} to ${out}\n`,
      )
      assert.deepEqual(new Uint8Array(readFileSync(out)), expected.bytes)
      const mcap = await openMcap(readFileSync(out))
      assert.equal(mcap.header.profile, args.length === 0 ? '' : 'ros2')

      // stdout, bytes as they are: the shell redirects it to a file.
      const piped = join(dir, `piped.${args.length}.mcap`)
      const toStdout = await runProcess(
        '/bin/sh',
        [
          '-c',
          'exec "$0" "$@" > "$OUT"',
          process.execPath,
          CLI_PATH,
          'export',
          '--robot',
          robot,
          '--format',
          'mcap',
          ...args,
          '--url',
          server.url,
        ],
        { env: { ...process.env, OUT: piped } },
      )
      assert.equal(toStdout.code, 0, toStdout.stderr)
      assert.equal(toStdout.stderr, `export: ${summary} to stdout\n`)
      assert.deepEqual(new Uint8Array(readFileSync(piped)), expected.bytes)
    }
  })
})

describe('usage', () => {
  test('answers --help on every command with its usage and exit 0; the top level lists every command', async () => {
    for (const args of [
      ['--help'],
      ['serve', '--help'],
      ['token', '--help'],
      ['simulate', '--help'],
      ['replay', '--help'],
      ['export', '-h'],
    ]) {
      const run = await runCli(args)
      assert.deepEqual(
        { code: run.code, stderr: run.stderr },
        { code: 0, stderr: '' },
        args.join(' '),
      )
      assert.match(run.stdout, /^usage: fleet-telemetry/i, args.join(' '))
    }
    const top = await runCli(['--help'])
    for (const command of ['serve', 'token', 'simulate', 'replay', 'export']) {
      assert.match(top.stdout, new RegExp(`^ {2}${command} `, 'm'), command)
    }
    const replay = await runCli(['replay', '--help'])
    for (const flag of [
      '--url',
      '--token',
      '--speed',
      '--fast',
      '-h, --help',
    ]) {
      assert.ok(replay.stdout.includes(flag), flag)
    }
  })

  test('exits 2 with a message and a pointer to --help on an unknown flag or a bad value', async () => {
    const cases: [string[], RegExp][] = [
      [
        ['simulate', '--bogus'],
        /^fleet-telemetry simulate: unknown option '--bogus'/,
      ],
      [
        ['replay', 'x', '--bogus'],
        /^fleet-telemetry replay: unknown option '--bogus'/,
      ],
      [
        ['export', '--robot', 'a', '--bogus'],
        /^fleet-telemetry export: unknown option '--bogus'/,
      ],
      [['simulate', '--rate', '0'], /--rate <hz>' argument '0' is invalid/],
      [
        ['simulate', '--robots', '2.5'],
        /--robots <n>' argument '2\.5' is invalid/,
      ],
      [['replay'], /missing required argument 'file'/],
      [['replay', 'x', '--speed', '2', '--fast'], /cannot be used with/],
      [
        ['replay', join(dir, 'missing.csv')],
        /cannot read .*missing\.csv: ENOENT/,
      ],
      [
        ['replay', 'x', '--url', 'ftp://h'],
        /--url <url>' argument 'ftp:\/\/h' is invalid/,
      ],
      [['export'], /required option '--robot <name>' not specified/],
      [
        ['export', '--robot', 'a', '--format', 'xml'],
        /Allowed choices are csv, ndjson, mcap/,
      ],
      [
        ['export', '--robot', 'a', '--format', 'mcap', '--profile', 'ros1'],
        /Allowed choices are json, ros2/,
      ],
      [
        ['export', '--robot', 'a', '--profile', 'ros2'],
        /^fleet-telemetry export: --profile needs --format mcap\n/,
      ],
      [
        ['export', '--robot', 'a', '--from', 'yesterday'],
        /--from <t>' argument 'yesterday' is invalid/,
      ],
    ]
    for (const [args, message] of cases) {
      const run = await runCli(args)
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`)
      assert.equal(run.stdout, '', args.join(' '))
      assert.match(run.stderr, message, args.join(' '))
      assert.match(run.stderr, /--help shows the usage\)\n$/, args.join(' '))
    }
  })
})

describe('with access control', () => {
  let guarded: ServerProcess

  before(async () => {
    guarded = await startServer([], {}, { access: accessFile(dir) })
  })

  after(() => guarded?.dispose())

  test('replay and simulate send the ingest token of --token or TELEMETRY_TOKEN, and give up at once without one', async () => {
    const path = file('1,2,1000,acl-1\n2,2,2000,acl-1\n')
    const refused = await runCli(['replay', path, '--url', guarded.url])
    assert.equal(refused.code, 1)
    // Refused before or after it read the lines: none is stored.
    assert.match(
      refused.stdout,
      /^replayed (?:2 lines: nothing new stored \(2 unsent\)|0 lines: nothing sent)\n$/,
    )
    assert.match(
      refused.stderr,
      /^replay: the server refused the connection: 401: /m,
    )

    const run = await runCli([
      'replay',
      path,
      '--url',
      guarded.url,
      '--token',
      guarded.ingestToken!,
    ])
    assert.equal(run.code, 0, run.stderr)
    assert.equal(run.stdout, 'replayed 2 lines: 2 stored\n')

    const simulated = await runCli(
      [
        'simulate',
        '--robots',
        '1',
        '--rate',
        '10',
        '--duration',
        '0.5',
        '--prefix',
        'acl-sim',
        '--url',
        guarded.url,
      ],
      { TELEMETRY_TOKEN: guarded.ingestToken! },
    )
    assert.equal(simulated.code, 0, simulated.stderr)
    assert.match(simulated.stdout, /: 5 events sent, 5 stored$/m)
    assert.equal((await readEvents(guarded, 'acl-sim-001')).length, 5)
  })

  test("export sends the read token, and exits 1 with the server's word without one", async () => {
    const refused = await runCli([
      'export',
      '--robot',
      'acl-1',
      '--url',
      guarded.url,
    ])
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /^export: the server answered 401 /)

    const run = await runCli(
      [
        'export',
        '--robot',
        'acl-1',
        '--format',
        'ndjson',
        '--url',
        guarded.url,
      ],
      {
        TELEMETRY_TOKEN: guarded.token!,
      },
    )
    assert.equal(run.code, 0, run.stderr)
    assert.equal(run.stdout, ndjson(await readEvents(guarded, 'acl-1')))
  })
})
