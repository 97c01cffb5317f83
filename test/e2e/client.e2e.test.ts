/**
 * The client library (`fleet-telemetry/client`, imported by its package
 * name as a user would) against the real server: outcomes, packing,
 * buffering while the server is away, tokens and the retried `rate_limited`;
 * then the kill tests: the server killed (SIGKILL) and started again on its
 * store while three clients stream, and a client's own process killed and
 * started again from its journal. Both end with every event the clients
 * were given stored exactly once, in order, and every outcome reported
 * agreeing with the store.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import {
  connect,
  readJournal,
  type ConnectionStatus,
  type Outcome,
  type OutcomeStatus,
  type TelemetryClient,
} from 'fleet-telemetry/client'
import {
  plannedEvent,
  plannedStore,
  type PlannedOutcome,
} from '../support/client-traffic.ts'
import {
  Random,
  accessFile,
  makeTempDir,
  readEvents,
  removeTempDir,
  seedNote,
  startNode,
  startServer,
  testSeed,
  waitFor,
  type ApiEvent,
  type Origin,
} from '../support/index.ts'

const CHILD = fileURLToPath(
  new URL('./client-journal-child.js', import.meta.url),
)

/** A port nothing listens on now (the kernel's pick, then let go). */
async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Starts the server on `port` with the SQLite file `storePath`. */
function serverOn(port: number, storePath: string) {
  return startServer(['--port', String(port)], {}, { storePath })
}

/** A seeded generator whose seed the test prints. */
function seeded(t: TestContext): Random {
  const seed = testSeed()
  t.diagnostic(seedNote(seed))
  return new Random(seed)
}

/**
 * A server on a port and a store of its own, in a folder of its own (for
 * the test's files too): `restart()` kills it (SIGKILL) and starts it
 * again on both, so that clients find it where it was.
 */
async function restartable(t: TestContext) {
  const dir = makeTempDir('telemetry-client-')
  t.after(() => removeTempDir(dir))
  const storePath = join(dir, 't.db')
  const port = await freePort()
  const killable = {
    dir,
    server: await serverOn(port, storePath),
    async restart() {
      killable.server.kill('SIGKILL')
      await killable.server.dispose()
      killable.server = await serverOn(port, storePath)
    },
  }
  t.after(() => killable.server.dispose())
  return killable
}

/** The store's events of each robot of `expected`, checked against it. */
async function assertStore(
  origin: Origin,
  expected: Map<string, ApiEvent[]>,
  where: string,
) {
  for (const [robot, events] of expected) {
    const stored = await readEvents(origin, robot)
    assert.deepEqual(stored, events, `${where}: the events of ${robot}`)
  }
}

function count(outcomes: readonly Outcome[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const { status } of outcomes) counts[status] = (counts[status] ?? 0) + 1
  return counts
}

describe('the client library', () => {
  test('should tell each event its outcome, once', async (t) => {
    const server = await startServer()
    t.after(() => server.dispose())
    const client = connect(server.upstreamUrl)
    t.after(() => client.close({ timeoutMs: 0 }))
    const events = [
      { robot: 'Bender', x: 0, y: 0, timestamp: 10 },
      { robot: 'Bender', x: 1.5, y: -2, timestamp: 20 },
      { robot: 'Bender', x: 1.5, y: -2, timestamp: 20 }, // the same again
      { robot: 'Bender', x: 9, y: 9, timestamp: 20 }, // another place at 20
      { robot: 'Bender', x: 0, y: 0, timestamp: 15 }, // older than 20
      { robot: 'Bender\n', x: 0, y: 0, timestamp: 30 }, // not a name
      { robot: 'Bender', x: Number.NaN, y: 0, timestamp: 30 },
      { robot: 'Bender', x: 0, y: 0, timestamp: 2 ** 53 },
    ]
    const outcomes = await Promise.all(events.map((e) => client.send(e)))
    assert.deepEqual(
      outcomes.map((o) => o.status),
      [
        'stored',
        'stored',
        'duplicate',
        'conflict',
        'stale',
        'malformed',
        'malformed',
        'malformed',
      ],
    )
    assert.match(outcomes[5]!.message!, /control character/)
    assert.match(outcomes[6]!.message!, /x is not a decimal number/)
    assert.match(outcomes[3]!.message!, /./, 'the server says why')
    assert.deepEqual(await readEvents(server, 'Bender'), [
      { robot: 'Bender', x: 0, y: 0, timestamp: 10 },
      { robot: 'Bender', x: 1.5, y: -2, timestamp: 20 },
    ])
    const stats = client.stats()
    assert.equal(stats.given, 8)
    assert.equal(stats.stored, 2)
    assert.equal(stats.duplicate, 1)
    assert.equal(stats.failed, 5)
    assert.equal(stats.pending, 0)
  })

  test('should take send(x, y, timestamp) when bound to a robot, and raw lines', async (t) => {
    const server = await startServer()
    t.after(() => server.dispose())
    const client = connect(server.upstreamUrl, { robot: 'Nibbler 1' })
    assert.equal((await client.send(3, 4, 1)).status, 'stored')
    assert.equal((await client.sendLine('6,8,2,Nibbler 1')).status, 'stored')
    assert.equal((await client.sendLine('6,8,3')).status, 'malformed')
    await client.close()
    assert.throws(() => client.send(0, 0, 4), /closed/)
    const unbound = connect(server.upstreamUrl)
    t.after(() => unbound.close({ timeoutMs: 0 }))
    assert.throws(() => unbound.send(0, 0, 4), /bound to a robot/)
    assert.throws(
      () => connect(server.upstreamUrl, { robot: ' spaced ' }),
      /robot/,
    )
    assert.throws(() => connect('http://127.0.0.1:1/upstream'), /ws:\/\//)
    assert.deepEqual(await readEvents(server, 'Nibbler 1'), [
      { robot: 'Nibbler 1', x: 3, y: 4, timestamp: 1 },
      { robot: 'Nibbler 1', x: 6, y: 8, timestamp: 2 },
    ])
  })

  test('should pack events given together into few frames, in order, and flush', async (t) => {
    const server = await startServer()
    t.after(() => server.dispose())
    const client = connect(server.upstreamUrl, { maxLinesPerFrame: 500 })
    t.after(() => client.close({ timeoutMs: 0 }))
    const outcomes: Promise<Outcome>[] = []
    for (let i = 0; i < 5000; i++) {
      outcomes.push(
        client.send({ robot: `p${i % 5}`, x: i, y: 0, timestamp: i }),
      )
    }
    assert.equal(client.pending, 5000)
    await client.flush()
    assert.equal(client.pending, 0)
    assert.deepEqual(count(await Promise.all(outcomes)), { stored: 5000 })
    const { frames } = client.stats()
    // 5000 lines of at most 500 a frame: 10 frames, or a few more if the
    // window let some go before the rest were given.
    assert.ok(frames >= 10 && frames <= 20, `${frames} frames`)
    const stored = await readEvents(server, 'p3')
    assert.equal(stored.length, 1000)
    assert.deepEqual(
      stored.map((e) => e.timestamp),
      Array.from({ length: 1000 }, (_, j) => 3 + 5 * j),
    )
  })

  test('should buffer while the server is away, and send once it is up', async (t) => {
    const dir = makeTempDir('telemetry-client-')
    t.after(() => removeTempDir(dir))
    const port = await freePort()
    const statuses: string[] = []
    const waits: number[] = []
    const client = connect(`ws://127.0.0.1:${port}/upstream`, {
      backoffMs: 40,
      maxBackoffMs: 200,
      onStatus: (s) => {
        statuses.push(s.state)
        if (s.retryInMs !== undefined) waits.push(s.retryInMs)
      },
    })
    t.after(() => client.close({ timeoutMs: 0 }))
    const outcomes = Array.from({ length: 100 }, (_, i) =>
      client.send({ robot: 'late', x: i, y: i, timestamp: i }),
    )
    // Refused at least four times before the server is there, each wait
    // doubled up to the maximum, of which half is random: 40 ms, then 80,
    // 160, 200, 200…, each between half of it and all of it.
    await waitFor(() => waits.length >= 4, 'four refused connections')
    waits.forEach((wait, i) => {
      const base = Math.min(200, 40 * 2 ** i)
      assert.ok(wait >= base / 2 && wait <= base, `wait ${i}: ${wait} ms`)
    })
    assert.equal(client.stats().connected, false)
    assert.equal(client.pending, 100)
    const server = await serverOn(port, join(dir, 't.db'))
    t.after(() => server.dispose())
    await client.flush()
    assert.deepEqual(count(await Promise.all(outcomes)), { stored: 100 })
    assert.equal((await readEvents(server, 'late')).length, 100)
    assert.ok(statuses.includes('open'))
  })

  test('should drop past maxBuffered as overflow says, and give up unsent events on close', async (t) => {
    const url = `ws://127.0.0.1:${await freePort()}/upstream`
    for (const overflow of ['drop-oldest', 'drop-newest'] as const) {
      const client = connect(url, { maxBuffered: 5, overflow })
      const outcomes = Array.from({ length: 8 }, (_, i) =>
        client.send({ robot: 'r', x: 0, y: 0, timestamp: i }),
      )
      assert.equal(client.pending, 5, overflow)
      await client.close({ timeoutMs: 0 })
      const statuses = (await Promise.all(outcomes)).map((o) => o.status)
      const dropped = overflow === 'drop-oldest' ? [0, 1, 2] : [5, 6, 7]
      assert.deepEqual(
        statuses,
        statuses.map((_, i) => (dropped.includes(i) ? 'dropped' : 'unsent')),
        overflow,
      )
      assert.equal(client.stats().dropped, 3)
    }
    // A close that would wait for ever, cut short by a second one.
    const client = connect(url)
    const outcome = client.send({ robot: 'r', x: 0, y: 0, timestamp: 0 })
    const first = client.close()
    const second = client.close({ timeoutMs: 0 })
    await Promise.all([first, second])
    assert.equal((await outcome).status, 'unsent')
    t.diagnostic('drop-oldest and drop-newest both dropped three of eight')
  })

  test('should send its token; a robot the token may not write is forbidden, not retried', async (t) => {
    const dir = makeTempDir('telemetry-client-')
    t.after(() => removeTempDir(dir))
    const server = await startServer(
      [],
      {},
      {
        access: accessFile(dir, ['bay-7/*']),
      },
    )
    t.after(() => server.dispose())
    const client = connect(server.upstreamUrl, { token: server.ingestToken })
    t.after(() => client.close({ timeoutMs: 0 }))
    const mine = client.send({ robot: 'bay-7/a', x: 1, y: 1, timestamp: 1 })
    const theirs = client.send({ robot: 'bay-8/a', x: 1, y: 1, timestamp: 1 })
    assert.equal((await mine).status, 'stored')
    assert.equal((await theirs).status, 'forbidden')
    assert.equal(client.stats().resent, 0)
    assert.equal((await readEvents(server, 'bay-7/a')).length, 1)

    // Without a token the upgrade is refused: the client keeps trying, and
    // says why.
    const refusals: ConnectionStatus[] = []
    const anonymous = connect(server.upstreamUrl, {
      maxBackoffMs: 100,
      onStatus: (s) => s.error !== undefined && refusals.push(s),
    })
    void anonymous.send({ robot: 'bay-7/a', x: 2, y: 2, timestamp: 2 })
    await waitFor(() => refusals.length >= 2, 'two refused upgrades')
    await anonymous.close({ timeoutMs: 0 })
    assert.equal(refusals[0]!.state, 'waiting')
    assert.equal(refusals[0]!.httpStatus, 401)
    assert.match(refusals[0]!.error!, /401/)
  })

  test('should retry rate_limited events, in order, until stored', async (t) => {
    const dir = makeTempDir('telemetry-client-')
    t.after(() => removeTempDir(dir))
    const server = await startServer(
      ['--max-token-events-per-second', '50'],
      {},
      { access: accessFile(dir) },
    )
    t.after(() => server.dispose())
    // One line a frame, one frame in flight: each event is judged after
    // every event before it has its outcome, so a retried event keeps its
    // place (docs/client.md says why a wider window may not).
    const client = connect(server.upstreamUrl, {
      token: server.ingestToken,
      maxLinesPerFrame: 1,
      maxFramesInFlight: 1,
      maxBackoffMs: 100,
    })
    t.after(() => client.close({ timeoutMs: 0 }))
    const outcomes = Array.from({ length: 150 }, (_, i) =>
      client.send({ robot: `limited${i % 2}`, x: i, y: 0, timestamp: i }),
    )
    assert.deepEqual(count(await Promise.all(outcomes)), { stored: 150 })
    assert.ok(client.stats().resent > 0, 'some were rate limited and resent')
    assert.equal((await readEvents(server, 'limited0')).length, 75)
  })
})

describe('the client library, killed and started again', () => {
  test('should store every event exactly once, in order, while the server is killed and restarted', async (t) => {
    const random = seeded(t)
    const killable = await restartable(t)

    const STREAMS = 3
    const KILLS = 4
    const reported = Array.from(
      { length: STREAMS },
      () => new Map<number, Outcome>(),
    )
    const twice: string[] = []
    const clients: TelemetryClient[] = []
    // The streams give events until the kills are over, at the pace the
    // server answers (at most 2,000 pending each): however fast or slow
    // the machine, there is traffic at every kill.
    let giving = true
    const given = Array.from({ length: STREAMS }, () => 0)
    const streaming = Array.from({ length: STREAMS }, async (_, s) => {
      const client = connect(killable.server.upstreamUrl, {
        maxBackoffMs: 300,
        maxBuffered: 2000,
        onOutcome: (event, outcome) => {
          if (reported[s]!.has(event.seq)) twice.push(`${s}#${event.seq}`)
          reported[s]!.set(event.seq, outcome)
        },
      })
      clients.push(client)
      while (giving) {
        for (let i = 0; i < 25; i++) {
          // Never past the bound: nothing is dropped.
          await client.room()
          void client.sendLine(plannedEvent(s, given[s]!++).line)
        }
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
      await client.flush()
    })

    const finished = () =>
      reported.reduce((n, outcomes) => n + outcomes.size, 0)
    let sinceRestart = 0
    for (let kill = 1; kill <= KILLS + 1; kill++) {
      // Once the clients are back and streaming: 300 to 1,200 outcomes
      // since the last restart.
      const wanted = sinceRestart + 300 + random.below(900)
      await waitFor(() => finished() >= wanted, `${wanted} outcomes`)
      if (kill > KILLS) break
      await killable.restart()
      t.diagnostic(`kill ${kill} after ${finished()} outcomes`)
      sinceRestart = finished()
    }
    giving = false
    await Promise.all(streaming)
    for (const client of clients) await client.close()

    const stats = clients.map((c) => c.stats())
    const connections = stats.reduce((n, s) => n + s.connections, 0)
    t.diagnostic(
      `given ${given.join(', ')}; connections ${connections}, ` +
        `resent ${stats.reduce((n, s) => n + s.resent, 0)}, ` +
        `duplicates ${stats.reduce((n, s) => n + s.duplicate, 0)}`,
    )
    assert.deepEqual(twice, [], 'no event told two outcomes')
    assert.ok(connections >= STREAMS + KILLS, `${connections} connections`)
    for (let s = 0; s < STREAMS; s++) {
      const total = given[s]!
      assert.equal(reported[s]!.size, total, `stream ${s}: every outcome`)
      for (const [seq, outcome] of reported[s]!) {
        assertAgrees(
          plannedEvent(s, seq).expect,
          outcome,
          `stream ${s} #${seq}`,
        )
      }
      await assertStore(killable.server, plannedStore(s, total), `stream ${s}`)
    }
  })

  test("should lose nothing when the client's own process is killed and started from its journal", async (t) => {
    const random = seeded(t)
    const killable = await restartable(t)
    const TOTAL = 3000
    const input = {
      url: killable.server.upstreamUrl,
      journal: join(killable.dir, 'robot.journal'),
      outcomes: join(killable.dir, 'outcomes.log'),
      stream: 7,
      total: TOTAL,
    }
    const KILLS = 5
    for (let run = 0; run <= KILLS; run++) {
      const child = startNode(CHILD, [JSON.stringify(input)])
      t.after(() => child.kill('SIGKILL'))
      if (run === KILLS) {
        await child.waitForOutput(/^done$/m, { timeoutMs: 120_000 })
        assert.deepEqual(await child.exited, { code: 0, signal: null })
        break
      }
      // Killed once it has given a few more events, at a random burst.
      const target = Math.floor(((run + random.next()) * TOTAL) / (KILLS + 1))
      await waitFor(
        () => givenSoFar(child.stdout()) >= target || !child.running,
        `the child gives ${target} events`,
      )
      child.kill('SIGKILL')
      await child.exited
      t.diagnostic(
        `run ${run}: killed after giving ${givenSoFar(child.stdout())}`,
      )
      if (run === 2) {
        // And the server once, while the journal holds what was unanswered.
        await killable.restart()
      }
    }
    const logged = new Map<number, string>()
    for (const line of readFileSync(input.outcomes, 'utf8').split('\n')) {
      if (line === '') continue
      const [seq, status] = line.split(' ')
      assert.ok(!logged.has(Number(seq)), `one outcome for ${seq}`)
      logged.set(Number(seq), status!)
    }
    t.diagnostic(`${logged.size} of ${TOTAL} outcomes logged`)
    for (const [seq, status] of logged) {
      assertAgrees(
        plannedEvent(7, seq).expect,
        { status: status as OutcomeStatus },
        `#${seq}`,
      )
    }
    await assertStore(killable.server, plannedStore(7, TOTAL), 'stream 7')
    assert.deepEqual(
      readJournal(input.journal).events,
      [],
      'the journal is empty',
    )
  })
})

/** The highest `given N` a child printed. */
function givenSoFar(stdout: string): number {
  let most = 0
  for (const match of stdout.matchAll(/^given (\d+)$/gm)) {
    most = Math.max(most, Number(match[1]))
  }
  return most
}

/**
 * An outcome agrees with the plan: a planted event gets its planned
 * outcome; any other is stored, or a duplicate when it was resent after
 * its reply was lost.
 */
function assertAgrees(expect: PlannedOutcome, outcome: Outcome, where: string) {
  if (expect === 'stored') {
    assert.ok(
      outcome.status === 'stored' || outcome.status === 'duplicate',
      `${where}: ${outcome.status}`,
    )
  } else {
    assert.equal(outcome.status, expect, where)
  }
}
