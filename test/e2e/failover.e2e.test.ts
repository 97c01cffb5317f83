/**
 * PostgreSQL failover, end to end, on a pg_auto_failover formation (a
 * monitor, a primary and a secondary with synchronous replication:
 * test/support/formation.ts), the servers given its multi-host URI with
 * `target_session_attrs=read-write`. Robots stream events through them
 * while the formation changes, each sending an event again until it is
 * answered `OK` or `DUP` (test/support/resending-robot.ts). Afterwards
 * every event so answered is stored exactly once, in order; each robot's
 * count and odometer agree with them; a resend of each is `DUP`.
 *
 * 1. Two server processes; a planned failover (`pg_autoctl perform
 *    failover`), a SIGKILL of the new primary's postmaster (its keeper
 *    restarts it, or, on a loaded machine, the monitor promotes the
 *    secondary), then a SIGKILL of the primary's keeper and PostgreSQL
 *    (the monitor promotes the secondary; the old primary, started again,
 *    rejoins as secondary).
 * 2. The standby killed (keeper and PostgreSQL) and started again: the
 *    primary stops waiting for it (pg_auto_failover's `wait_primary`:
 *    synchronous replication off) and takes commits alone until the
 *    standby has caught up. A server that reads from the standby
 *    (`--read-store …target_session_attrs=standby`) shows every event once
 *    it has caught up.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import postgres from 'postgres'
import {
  IngestClient,
  ResendingRobot,
  assertOdometer,
  formationSkip,
  getRobot,
  longestSilence,
  readEvents,
  readOdometer,
  request,
  startFormation,
  startServer,
  waitFor,
  type Formation,
  type FormationNode,
  type ServerProcess,
} from '../support/index.ts'

const skip = formationSkip()
if (skip !== false) console.log(`# skipping failover tests: ${skip}`)

/** How long a step of the formation may take on a loaded machine. */
const STEP_MS = 240_000
/**
 * How long each test may take, above npm test's 300 s default: under
 * load a test's steps took over 300 s in all, each within STEP_MS.
 */
const TEST_MS = 900_000

/** A fleet of resending robots, spread over `servers`, until stopped. */
function drive(prefix: string, count: number, servers: ServerProcess[]) {
  const robots = Array.from(
    { length: count },
    (_, r) =>
      new ResendingRobot(`${prefix}-${r}`, servers[r % servers.length]!.wsUrl),
  )
  let going = true
  const running = Promise.all(robots.map((r) => r.run(() => going)))
  const acked = () => robots.reduce((n, r) => n + r.acked.length, 0)
  return {
    robots,
    acked,
    /** Resolves once `n` more events were acknowledged. */
    async more(n: number, what: string) {
      const target = acked() + n
      await waitFor(() => acked() >= target, what, { timeoutMs: STEP_MS })
    },
    async stop() {
      going = false
      await running
    },
  }
}

/**
 * Every robot's acknowledged events are what `server` reads, once each and
 * in order, with the count and odometer they make.
 */
async function assertStored(
  server: ServerProcess,
  robots: readonly ResendingRobot[],
) {
  for (const robot of robots) {
    const stored = await readEvents(server, robot.name, {
      limit: robot.acked.length + 10,
    })
    const expected = robot.model.events.map((e) => [e.x, e.y, e.timestamp])
    if (stored.length !== expected.length) {
      // What to look at when it fails: whether the store lost events or
      // the read missed some (the robot's count, a read without a limit),
      // and where the gap is.
      const all = await readEvents(server, robot.name)
      const view = await getRobot(server, robot.name)
      const have = new Set(stored.map((e) => e.timestamp))
      const missing = robot.model.events
        .map((e) => e.timestamp)
        .filter((t) => !have.has(t))
      console.log(
        `# ${robot.name}: ${expected.length} acknowledged, ${stored.length} read with a limit, ${all.length} without, event_count ${view.event_count}; missing ${missing.length} from ${missing[0]} to ${missing.at(-1)}`,
      )
    }
    assert.deepEqual(
      stored.map((e) => [e.x, e.y, e.timestamp]),
      expected,
      `${robot.name}: every acknowledged event once, in order`,
    )
    const view = await getRobot(server, robot.name)
    assert.equal(view.event_count, robot.acked.length, robot.name)
    assertOdometer(
      (await readOdometer(server, robot.name)).odometer,
      robot.model.odometer(),
      `${robot.name}: odometer`,
    )
  }
}

/** No robot lost its connection: the servers kept every one open. */
function assertConnectionsKept(robots: readonly ResendingRobot[]) {
  assert.deepEqual(
    robots.map((r) => r.reconnects),
    robots.map(() => 0),
    'every WebSocket connection stayed open',
  )
}

/** A resend of each robot's last acknowledged events is answered DUP. */
async function assertResendsAreDuplicates(robots: readonly ResendingRobot[]) {
  for (const robot of robots) {
    const client = await IngestClient.connect(robot.wsUrl)
    const lines = robot.acked.slice(-50).map((a) => a.line)
    assert.equal(
      await client.send(lines.join('\n')),
      lines.map(() => 'DUP').join('\n'),
      robot.name,
    )
    await client.close()
    await robot.close()
  }
}

/**
 * Whether a node takes writes (`pg_is_in_recovery()` false), and how many
 * `fleet-telemetry` connections it has; `down` when it does not answer.
 */
async function nodeView(node: FormationNode): Promise<string> {
  const sql = postgres(`postgres://postgres@127.0.0.1:${node.port}/postgres`, {
    max: 1,
    connect_timeout: 5,
    onnotice: () => {},
  })
  try {
    const [row] = await sql<{ recovery: boolean; servers: number }[]>`
      SELECT pg_is_in_recovery() AS recovery,
        (SELECT count(*)::int FROM pg_stat_activity
         WHERE application_name LIKE 'fleet-telemetry%') AS servers`
    return `${node.name} ${row!.recovery ? 'standby' : 'writable'}, ${row!.servers} server connections`
  } catch {
    return `${node.name} down`
  } finally {
    await sql.end({ timeout: 5 })
  }
}

/** The `fleet-telemetry` connections a node has, by application name. */
async function applications(node: FormationNode): Promise<string[]> {
  const sql = postgres(`postgres://postgres@127.0.0.1:${node.port}/postgres`, {
    max: 1,
    onnotice: () => {},
  })
  try {
    const rows = await sql<{ name: string }[]>`
      SELECT application_name AS name FROM pg_stat_activity
      WHERE application_name LIKE 'fleet-telemetry%'`
    return rows.map((r) => r.name)
  } finally {
    await sql.end()
  }
}

describe('PostgreSQL failover', { skip }, () => {
  let formation: Formation | undefined
  const servers: ServerProcess[] = []

  before(async () => {
    formation = await startFormation()
  })
  after(async () => {
    await Promise.all(servers.map((s) => s.dispose()))
    await formation?.stop()
  })

  it(
    'should keep every acknowledged event through a planned failover, a kill of the primary, and a promotion of the secondary',
    { timeout: TEST_MS },
    async () => {
      const f = formation!
      const pair: ServerProcess[] = []
      for (let k = 0; k < 2; k++) {
        pair.push(await startServer([], {}, { store: f.url }))
      }
      servers.push(...pair)
      const fleet = drive('failover', 8, pair)
      // Where the servers write, beside the formation's states: what to
      // look at if an acknowledged event goes missing.
      const where = async (step: string) =>
        console.log(
          `# ${new Date().toISOString()} ${step}: monitor ${(await f.state()).map((n) => `${n.name} ${n.current}/${n.assigned}`).join(', ')}; ${(await Promise.all(f.nodes.map(nodeView))).join('; ')}`,
        )
      let silences: number[] = []
      try {
        await fleet.more(200, 'acknowledgements before the failover')
        const first = await f.primary()
        let t0 = performance.now()
        await f.performFailover()
        await f.waitFor(['primary', 'secondary'], STEP_MS)
        assert.notEqual((await f.primary()).name, first.name)
        await fleet.more(200, 'acknowledgements after the planned failover')
        await where('after the planned failover')
        silences.push(longestSilence(fleet.robots, t0, performance.now()))

        const second = await f.primary()
        t0 = performance.now()
        process.kill(f.postmasterPid(second), 'SIGKILL')
        await fleet.more(200, 'acknowledgements after the kill of the primary')
        await where('after the kill of the postmaster')
        await f.waitFor(['primary', 'secondary'], STEP_MS)
        await fleet.more(50, 'acknowledgements once the formation is whole')
        silences.push(longestSilence(fleet.robots, t0, performance.now()))

        // The primary's machine gone: the monitor promotes the secondary,
        // which has every acknowledged commit (synchronous replication).
        const third = await f.primary()
        await where('before the promotion')
        t0 = performance.now()
        await f.killNode(third)
        await fleet.more(200, 'acknowledgements from the promoted secondary')
        await where('after the kill of the primary')
        assert.notEqual((await f.primary()).name, third.name)
        silences.push(longestSilence(fleet.robots, t0, performance.now()))
        f.startNode(third)
        await f.waitFor(['primary', 'secondary'], STEP_MS)
        await fleet.more(50, 'acknowledgements once the old primary is back')
      } finally {
        await fleet.stop()
      }

      assertConnectionsKept(fleet.robots)
      // Through either process: both read the same primary.
      for (const server of pair) await assertStored(server, fleet.robots)
      await assertResendsAreDuplicates(fleet.robots)
      // Each process saw the primary change at least once, and says its
      // store takes writes again.
      for (const server of pair) {
        const metrics = (await request(server, '/metrics')).text
        const failovers = Number(
          /^telemetry_store_failovers_total (\d+)/m.exec(metrics)?.[1],
        )
        assert.ok(failovers >= 1, `failovers ${failovers}`)
        const health = await request(server, '/healthz')
        assert.deepEqual(JSON.parse(health.text), {
          status: 'ok',
          store: { writable: true },
        })
      }
      silences = silences.map(Math.round)
      console.log(
        `# failover: ${fleet.acked()} events acknowledged; longest silences ${silences.join(', ')} ms; ERR unavailable per robot ${fleet.robots.map((r) => r.unavailable).join(' ')}; DUP per robot ${fleet.robots.map((r) => r.acked.filter((a) => a.reply === 'DUP').length).join(' ')}`,
      )
    },
  )

  it(
    'should keep every acknowledged event while the standby is gone and back, and read them from the standby',
    { timeout: TEST_MS },
    async () => {
      const f = formation!
      await f.waitFor(['primary', 'secondary'], STEP_MS)
      // The hosts of the formation, reads from whichever is the standby.
      const standbyUrl = f.url.replace(
        'target_session_attrs=read-write',
        'target_session_attrs=standby',
      )
      const server = await startServer(
        ['--read-store', standbyUrl],
        {},
        {
          store: f.url,
        },
      )
      servers.push(server)
      assert.match(
        server.banner,
        /; reads postgres:\/\/.*target_session_attrs=standby/,
      )
      const fleet = drive('standby', 8, [server])
      let silence: number
      try {
        await fleet.more(200, 'acknowledgements before the standby goes')
        const primary = await f.primary()
        const secondary = f.nodes.find((n) => n !== primary)!
        const t0 = performance.now()
        await f.killNode(secondary)
        // The primary waits for its synchronous standby until the monitor
        // says it is gone (wait_primary); then it commits alone.
        await fleet.more(200, 'acknowledgements without the standby')
        silence = longestSilence(fleet.robots, t0, performance.now())
        f.startNode(secondary)
        await f.waitFor(['primary', 'secondary'], STEP_MS)
        await fleet.more(100, 'acknowledgements once the standby is back')
      } finally {
        await fleet.stop()
      }
      // The reads come from the standby: it catches up with every event
      // acknowledged, the ones it missed while it was gone included.
      await waitFor(
        async () => {
          for (const robot of fleet.robots) {
            const view = await getRobot(server, robot.name).catch(
              () => undefined,
            )
            if (view?.event_count !== robot.acked.length) return false
          }
          return true
        },
        'the standby to catch up',
        { timeoutMs: STEP_MS },
      )
      assertConnectionsKept(fleet.robots)
      await assertStored(server, fleet.robots)
      const primary = await f.primary()
      const secondary = f.nodes.find((n) => n !== primary)!
      assert.ok(
        (await applications(secondary)).includes('fleet-telemetry reads'),
        'the standby serves the reads',
      )
      assert.ok(
        !(await applications(primary)).includes('fleet-telemetry reads'),
        'the primary serves no reads',
      )
      await assertResendsAreDuplicates(fleet.robots)
      console.log(
        `# standby gone and back: ${fleet.acked()} events acknowledged; longest silence ${Math.round(silence)} ms`,
      )
    },
  )
})
