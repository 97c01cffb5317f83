/**
 * WORK IN PROGRESS (issue 15), not run by `npm test` (its name does not end
 * in `.test.ts`): its first run here did not end within 15 minutes, and
 * why is not known yet. `node --test dist/test/e2e/failover.e2e.wip.js`
 * runs it.
 *
 * PostgreSQL failover, end to end: two server processes on a
 * pg_auto_failover formation (a monitor, a primary and a secondary with
 * synchronous replication: test/support/formation.ts), given the
 * formation's multi-host URI with `target_session_attrs=read-write`.
 * Robots stream events through both while the primary changes: a planned
 * failover (`pg_autoctl perform failover`), then a SIGKILL of the new
 * primary's postmaster. Each robot sends its events one at a time and
 * sends an event again until it is answered `OK` or `DUP`
 * (`ERR unavailable` while no primary takes the commit, or a lost
 * connection). Afterwards every event so answered is stored exactly once,
 * in order, each robot's count and odometer agree with them, and a resend
 * of each is `DUP`.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import {
  IngestClient,
  RobotModel,
  assertOdometer,
  getRobot,
  readEvents,
  readOdometer,
  request,
  startServer,
  waitFor,
  type ServerProcess,
} from '../support/index.ts'
import {
  formationSkip,
  startFormation,
  type Formation,
} from '../support/formation.ts'

const skip = formationSkip()
if (skip !== false) console.log(`# skipping failover tests: ${skip}`)

const ROBOTS = 8
const T0 = 1_700_000_000_000

/** One robot's client: its events in order, each until OK or DUP. */
class Robot {
  readonly model: RobotModel
  /** Events answered OK or DUP, in order, with the time of the answer. */
  readonly acked: { line: string; at: number; reply: string }[] = []
  unavailable = 0
  reconnects = 0
  #client: IngestClient | undefined

  readonly name: string
  readonly server: ServerProcess

  constructor(name: string, server: ServerProcess) {
    this.name = name
    this.server = server
    this.model = new RobotModel(name)
  }

  line(i: number): string {
    const x = Number((i * 0.25).toFixed(3))
    const y = Number(((i % 10) * 0.5).toFixed(3))
    return `${x},${y},${T0 + i * 100},${this.name}`
  }

  /** Sends `line` until it is answered OK or DUP; returns that answer. */
  async deliver(line: string): Promise<string> {
    for (;;) {
      let reply: string
      try {
        this.#client ??= await IngestClient.connect(this.server.wsUrl)
        reply = await this.#client.send(line)
      } catch {
        // A lost connection: the event may or may not be stored.
        this.reconnects++
        this.#client = undefined
        await new Promise((resolve) => setTimeout(resolve, 100))
        continue
      }
      if (reply === 'OK' || reply === 'DUP') return reply
      assert.match(reply, /^ERR unavailable/, `${line}: ${reply}`)
      this.unavailable++
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }

  async run(keepGoing: () => boolean): Promise<void> {
    for (let i = 0; keepGoing(); i++) {
      const line = this.line(i)
      const reply = await this.deliver(line)
      this.acked.push({ line, at: performance.now(), reply })
      const [x, y, ts] = line.split(',').map(Number)
      this.model.apply(x!, y!, ts!)
    }
  }

  async close(): Promise<void> {
    await this.#client?.close()
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

  it('should keep every acknowledged event through a planned failover and a kill of the primary', async () => {
    const f = formation!
    for (let k = 0; k < 2; k++) {
      servers.push(await startServer([], {}, { store: f.url }))
    }
    const robots = Array.from(
      { length: ROBOTS },
      (_, r) => new Robot(`failover-${r}`, servers[r % 2]!),
    )
    const acked = () => robots.reduce((n, r) => n + r.acked.length, 0)
    let going = true
    const driving = Promise.all(robots.map((r) => r.run(() => going)))
    const moreAcks = async (n: number, what: string) => {
      const target = acked() + n
      await waitFor(() => acked() >= target, what, { timeoutMs: 240_000 })
    }
    try {
      await moreAcks(200, 'acknowledgements before the failover')
      const first = await f.primary()
      await f.performFailover()
      await f.waitFor(['primary', 'secondary'])
      assert.notEqual((await f.primary()).name, first.name)
      await moreAcks(200, 'acknowledgements after the planned failover')

      const second = await f.primary()
      process.kill(f.postmasterPid(second), 'SIGKILL')
      await moreAcks(200, 'acknowledgements after the kill of the primary')
      await f.waitFor(['primary', 'secondary'])
      await moreAcks(50, 'acknowledgements once the formation is whole')
    } finally {
      going = false
      await driving
    }

    for (const robot of robots) {
      // Through either process: both read the same primary.
      for (const server of servers) {
        const stored = await readEvents(server, robot.name, {
          limit: robot.acked.length + 10,
        })
        assert.deepEqual(
          stored.map((e) => [e.x, e.y, e.timestamp]),
          robot.model.events.map((e) => [e.x, e.y, e.timestamp]),
          `${robot.name}: every acknowledged event once, in order`,
        )
      }
      const view = await getRobot(servers[0]!, robot.name)
      assert.equal(view.event_count, robot.acked.length)
      assertOdometer(
        (await readOdometer(servers[1]!, robot.name)).odometer,
        robot.model.odometer(),
        `${robot.name}: odometer`,
      )
    }
    // Resends of acknowledged events are duplicates.
    for (const robot of robots) {
      const client = await IngestClient.connect(robot.server.wsUrl)
      const lines = robot.acked.slice(-50).map((a) => a.line)
      assert.equal(
        await client.send(lines.join('\n')),
        lines.map(() => 'DUP').join('\n'),
      )
      await client.close()
      await robot.close()
    }
    // Each process saw at least the planned failover, and says its store
    // takes writes again.
    for (const server of servers) {
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
    const gaps = robots.map((r) => r.unavailable)
    console.log(
      `# failover: ${acked()} events acknowledged, ERR unavailable per robot ${gaps.join(' ')}`,
    )
  })
})
