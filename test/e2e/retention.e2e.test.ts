/**
 * Retention (`--retain`, `--retain-every`) against the started server on
 * its default store, SQLite (docs/api.md, "Retention"): bad durations stop
 * the start; a pass removes the events older than the cutoff, in whole
 * blocks, never a newer one, while the robots keep their lifetime figures;
 * and under a steady load of old events the store file stops growing,
 * where without retention it grows by every round.
 */
import assert from 'node:assert/strict'
import { statSync } from 'node:fs'
import { describe, test } from 'node:test'
import {
  IngestClient,
  Random,
  getJson,
  getRobot,
  readEvents,
  readOdometer,
  runCli,
  scrapeMetrics,
  seedNote,
  startServer,
  testSeed,
  waitFor,
  type ApiEvent,
  type ServerProcess,
} from '../support/index.ts'

const DAY = 86_400_000
const HOUR = 3_600_000
/** Events a SQLite block holds (docs/storage.md). */
const BLOCK = 256

const PASSES = 'telemetry_retention_passes_total'
const REMOVED = 'telemetry_retention_removed_events_total'

async function metric(server: ServerProcess, series: string) {
  return (await scrapeMetrics(server)).value(series)
}

/**
 * Waits until a whole retention pass has run after this call: the count of
 * passes ends twice, so the second one started after the first ended.
 */
async function nextWholePass(server: ServerProcess): Promise<void> {
  const passes = await metric(server, PASSES)
  await waitFor(
    async () => (await metric(server, PASSES)) >= passes + 2,
    `two passes after ${passes}`,
  )
}

/** The bytes of the store's SQLite database file and of its write-ahead log. */
function fileSizes(server: ServerProcess): { db: number; wal: number } {
  const path = server.store.slice('sqlite:'.length)
  const size = (file: string) =>
    statSync(file, { throwIfNoEntry: false })?.size ?? 0
  return { db: size(path), wal: size(`${path}-wal`) }
}

/** Sends `lines` in frames of `perFrame`, all at once; each must be OK. */
async function storeAll(
  client: IngestClient,
  lines: readonly string[],
  perFrame = 1000,
): Promise<void> {
  const frames: string[] = []
  for (let i = 0; i < lines.length; i += perFrame) {
    frames.push(lines.slice(i, i + perFrame).join('\n'))
  }
  const replies = await client.sendAll(frames)
  replies.forEach((reply, i) => {
    const bad = reply.split('\n').find((line) => line !== 'OK')
    assert.equal(bad, undefined, `frame ${i}: ${bad}`)
  })
}

describe('retention on the command line', () => {
  test('refuses to start with a --retain of 0, without a unit, or not a duration, naming the setting', async () => {
    const junk = (name: string, text: string) =>
      `fleet-telemetry: ${name} must be a duration: a positive integer and a unit (ms, s, m, h, d or w), such as 30d or 12h, not ${JSON.stringify(text)}\n`
    const cases: [string[], Record<string, string>, string][] = [
      [['--retain', '0'], {}, junk('retain', '0')],
      [['--retain', 'banana'], {}, junk('retain', 'banana')],
      [['--retain', '5'], {}, junk('retain', '5')],
      [[], { TELEMETRY_RETAIN: '5' }, junk('TELEMETRY_RETAIN', '5')],
      [
        ['--retain', '1d', '--retain-every', '0s'],
        {},
        junk('retain-every', '0s'),
      ],
      [
        ['--retain-every', '1s'],
        {},
        'fleet-telemetry: --retain-every needs --retain\n',
      ],
    ]
    const runs = await Promise.all(
      cases.map(([args, env]) =>
        runCli(['--port', '0', '--store', 'sqlite::memory:', ...args], env),
      ),
    )
    runs.forEach((run, i) => {
      const [args, env, message] = cases[i]!
      const what = `${args.join(' ')} ${JSON.stringify(env)}`
      assert.deepEqual(
        { code: run.code, signal: run.signal },
        { code: 2, signal: null },
        what,
      )
      assert.ok(run.stderr.startsWith(message), `${what}: ${run.stderr}`)
      assert.doesNotMatch(run.stdout, /listening/, what)
    })
  })
})

describe('retention passes', () => {
  test('removes the events older than the cutoff in whole blocks, keeps every newer one, and the robots keep their lifetime figures', async (t) => {
    const server = await startServer(
      ['--retain-every', '1s', '--log-level', 'info'],
      { TELEMETRY_RETAIN: '1h' },
    )
    t.after(() => server.dispose())
    const now = Date.now()
    /** Old events a robot gets, and recent ones: six blocks in all. */
    const OLD = 6 * BLOCK - 10
    const RECENT = 10
    const robots = ['Bender', 'Flexo', 'Nibbler 1']
    const sent = new Map<string, ApiEvent[]>()
    const client = await IngestClient.connect(server.wsUrl)
    for (const robot of robots) {
      const events: ApiEvent[] = []
      // Ten days old, a second apart; then within the last minute.
      for (let i = 0; i < OLD; i++) {
        events.push({ robot, x: i, y: 0, timestamp: now - 10 * DAY + i * 1000 })
      }
      for (let i = 0; i < RECENT; i++) {
        events.push({ robot, x: OLD + i, y: 0, timestamp: now - 60_000 + i })
      }
      sent.set(robot, events)
      await storeAll(
        client,
        events.map((e) => `${e.x},${e.y},${e.timestamp},${robot}`),
      )
    }
    // A robot's latest events wait in its tail until maintenance packs
    // them into blocks, every 2,048 events committed (docs/storage.md);
    // only blocks are removed. Another robot's recent events get the
    // tails above packed.
    const FILLER = 4 * 2048
    await storeAll(
      client,
      Array.from(
        { length: FILLER },
        (_, i) => `0,${i},${now - 30_000 + i},filler`,
      ),
    )
    await nextWholePass(server)

    let removed = 0
    for (const robot of robots) {
      const all = sent.get(robot)!
      const kept = await readEvents(server, robot)
      removed += all.length - kept.length
      // What is kept is a suffix of what was sent: the newest events.
      assert.deepEqual(kept, all.slice(all.length - kept.length), robot)
      const recent = kept.filter((e) => e.timestamp >= now - HOUR)
      assert.equal(recent.length, RECENT, `${robot}: every recent event`)
      const old = kept.length - recent.length
      assert.ok(
        old <= 2 * BLOCK,
        `${robot}: the old events are mostly gone (${old} of ${OLD} left)`,
      )
      // The figures are lifetime totals; /odometer counts what is kept.
      assert.deepEqual(await getRobot(server, robot), {
        name: robot,
        odometer: all.length - 1,
        last_x: all.at(-1)!.x,
        last_y: 0,
        first_timestamp: all[0]!.timestamp,
        last_timestamp: all.at(-1)!.timestamp,
        event_count: all.length,
      })
      assert.equal(
        (await readOdometer(server, robot)).odometer,
        kept.at(-1)!.x - kept[0]!.x,
        `${robot}: the odometer of what is kept`,
      )
    }
    assert.equal((await readEvents(server, 'filler')).length, FILLER)
    assert.equal(await metric(server, REMOVED), removed)
    const listed = await getJson(server, '/api/robots')
    assert.deepEqual(
      (listed.body as { name: string }[]).map((r) => r.name),
      [...robots, 'filler'],
    )
    assert.equal(listed.headers.get('x-total-count'), '4')
    // A robot still refuses an event older than its latest; one that was
    // removed, sent again, has nothing stored to be a duplicate of.
    assert.match(
      await client.send(`0,0,${now - 5 * DAY},Bender`),
      /^ERR stale /,
    )
    const first = sent.get('Bender')![0]!
    assert.match(
      await client.send(`${first.x},${first.y},${first.timestamp},Bender`),
      /^ERR stale /,
    )
    await client.end()
    const logged = server
      .log()
      .filter((line) => line.msg === 'retention removed events')
    assert.ok(logged.length >= 1, 'a pass that removed events is logged')
    assert.equal(logged[0]!.level, 30, 'at info')
    assert.ok((logged[0]!.events as number) > 0)
  })

  test('keeps the database file from growing under a steady load of old events, which without retention makes it grow', async (t) => {
    const seed = testSeed()
    t.diagnostic(seedNote(seed))
    /** Robots, and events a robot gets in one round: sixteen blocks. */
    const ROBOTS = 8
    const PER_ROBOT = 16 * BLOCK
    const ROUNDS = 10
    const WARM_UP = 3
    /**
     * The least one round's events take on disk: their x and y, random
     * doubles that no codec shortens, 16 bytes an event.
     */
    const roundBytes = ROBOTS * PER_ROBOT * 16
    const slack = roundBytes / 10
    // A month old: every event is older than the cutoff from the start.
    const start = Date.now() - 30 * DAY

    /**
     * Sends `rounds` rounds of the same load on one connection, calling
     * `afterRound` once each is answered, and returns the sizes after it.
     */
    async function load(
      server: ServerProcess,
      rounds: number,
      afterRound: () => Promise<void>,
    ) {
      const random = Random.derive(seed, 1)
      const client = await IngestClient.connect(server.wsUrl)
      const sizes: { db: number; wal: number }[] = []
      for (let round = 0; round < rounds; round++) {
        const lines: string[] = []
        for (let r = 0; r < ROBOTS; r++) {
          for (let i = 0; i < PER_ROBOT; i++) {
            const timestamp = start + (round * PER_ROBOT + i) * 100
            lines.push(
              `${random.next() * 1000},${random.next() * 1000},${timestamp},load-${r}`,
            )
          }
        }
        await storeAll(client, lines)
        await afterRound()
        sizes.push(fileSizes(server))
      }
      await client.end()
      return sizes
    }

    // Each round starts as a pass ends, and is answered long before the
    // next pass starts (the ingest of a round takes a few hundred ms at
    // most): a pass removes whole rounds, so every round reaches the same
    // peak.
    const retained = await startServer([
      '--retain',
      '1h',
      '--retain-every',
      '500ms',
    ])
    t.after(() => retained.dispose())
    const kept = await load(retained, ROUNDS, () => nextWholePass(retained))
    const show = (sizes: { db: number; wal: number }[]) =>
      sizes.map((s) => `${s.db}+${s.wal}`).join(' ')
    t.diagnostic(`with retention, database+log: ${show(kept)}`)

    const unbounded = await startServer()
    t.after(() => unbounded.dispose())
    const grown = await load(unbounded, WARM_UP + 2, async () => {})
    t.diagnostic(`without retention: ${show(grown)}`)

    // Without retention the data piles up: by more than the slack a round
    // (the database file, or the log until a checkpoint copies it there).
    const total = (s: { db: number; wal: number }) => s.db + s.wal
    const perRound =
      (total(grown[WARM_UP + 1]!) - total(grown[WARM_UP - 1]!)) / 2
    assert.ok(
      perRound > slack,
      `without retention a round adds ${perRound} bytes, more than the slack of ${slack}`,
    )
    // With it, the database file reuses the pages each pass frees. (The
    // write-ahead log, measured beside it, is not held to the slack: its
    // size is the most written between two checkpoints, which their
    // timing sets, up to a megabyte apart from run to run.)
    const growth =
      Math.max(...kept.slice(WARM_UP).map((s) => s.db)) - kept[WARM_UP - 1]!.db
    assert.ok(
      growth <= slack,
      `with retention the database file grew by ${growth} bytes after round ${WARM_UP}, more than the slack of ${slack}: ${show(kept)}`,
    )
    assert.ok((await metric(retained, REMOVED)) > 0, 'passes removed events')
  })
})
