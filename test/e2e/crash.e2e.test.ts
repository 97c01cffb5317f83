/**
 * Crash safety, end to end: the server is killed (SIGKILL) or stopped
 * (SIGTERM) while several connections stream events, restarted on the same
 * store, and what the HTTP API then shows is checked against what the
 * clients were told.
 *
 * - SIGKILL at random moments, round after round on one store, with
 *   duplicates, stale events, conflicts and malformed lines in the traffic
 *   (and, every other round, SIGKILL during a SIGTERM shutdown);
 * - SIGTERM with traffic in flight: what was answered is kept, what was not
 *   is not stored, exit code 0, close code 1001;
 * - a client that resends what was not acknowledged after each SIGKILL.
 *
 * Every robot's lines go over one connection, so the reply to each line is
 * known in advance (the oracle of test/support, fed by crash-traffic.ts),
 * and what the store holds of a robot must be the first of its new events
 * in the order sent: at least those answered `OK`, at most all of them.
 *
 * The traffic and the kill points (counted in replies) come from a seeded
 * generator. The seed is printed, and is in every failure message;
 * `TEST_SEED=<seed>` runs the same traffic and kill points again (how much
 * was in flight at a kill depends on timing).
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { describe, test } from 'node:test'
import {
  IngestClient,
  Random,
  makeTempDir,
  removeTempDir,
  seedNote,
  startServer,
  testSeed,
  waitFor,
  type ServerProcess,
} from '../support/index.ts'
import {
  checkReply,
  joinFrame,
  makeFrame,
  makeRobots,
  newEventLine,
  outgoing,
  robotNames,
  verifyRobots,
  type Frame,
} from './crash-traffic.ts'

const seed = testSeed()

/** Robots dealt to connections: robot i goes to connection (i + shift) % count. */
function deal<T>(items: readonly T[], count: number, shift = 0): T[][] {
  const hands = Array.from({ length: count }, () => [] as T[])
  items.forEach((item, i) => hands[(i + shift) % count]!.push(item))
  return hands
}

type Connection = IngestClient<Frame>

function inFlight(connections: readonly Connection[]): number {
  return connections.reduce((sum, c) => sum + c.unanswered, 0)
}

/** Checks that no connection got a reply frame it did not ask for. */
function assertInStep(connections: readonly Connection[], where: string) {
  connections.forEach((c, k) => {
    assert.deepEqual(c.extraReplies, [], `${where}: connection ${k}: extra`)
    assert.equal(c.binaryReplies, 0, `${where}: connection ${k}: binary`)
  })
}

describe(`crash safety (${seedNote(seed)})`, () => {
  test(
    'SIGKILL at random moments, again and again on one store, keeps exactly what the rules allow',
    {
      timeout: 120_000,
    },
    async (t) => {
      t.diagnostic(seedNote(seed))
      const KILLS = 5
      const CONNECTIONS = 6
      const ROBOTS = 48
      const MAX_LINES = 10
      const rng = Random.derive(seed, 1)
      const dir = makeTempDir()
      t.after(() => removeTempDir(dir))
      const storePath = join(dir, 'crash.db')
      const robots = makeRobots(robotNames(ROBOTS, 'k'))
      // One robot of each connection gets half of its lines, so that it goes
      // past a block of the store (256 events) over the rounds.
      const hot = new Set(robots.slice(0, CONNECTIONS))

      for (let round = 0; round <= KILLS; round++) {
        const where = `seed ${seed}, round ${round}`
        const started = performance.now()
        const server = await startServer([], {}, { storePath })
        t.after(() => server.dispose())
        const listening = performance.now()
        let stored = 0
        if (round > 0) {
          // What the previous round left; the robots go on from it.
          const found = await verifyRobots(server, robots, {
            where: `${where}, after the restart`,
            random: rng,
            adopt: true,
          })
          stored = found.stored
          t.diagnostic(
            `round ${round - 1}: ${found.unacknowledged} of the events stored were in flight`,
          )
        }
        if (round === KILLS) {
          // A clean stop packs every robot's events into blocks: the same
          // events must read back after it.
          assert.equal(
            (await server.stop()).code,
            0,
            `${where}: SIGTERM exits 0`,
          )
          const again = await startServer([], {}, { storePath })
          t.after(() => again.dispose())
          assert.deepEqual(
            await verifyRobots(again, robots, {
              where: `${where}, after a clean stop`,
              random: rng,
              exact: true,
              adopt: true,
            }),
            { stored, unacknowledged: 0 },
          )
          assert.equal((await again.stop()).code, 0)
          t.diagnostic(`${stored} events stored after ${KILLS} kills`)
          break
        }

        const connections = await Promise.all(
          Array.from({ length: CONNECTIONS }, () =>
            IngestClient.connect<Frame>(server.wsUrl),
          ),
        )
        // Each round the robots move to other connections.
        const hands = deal(robots, CONNECTIONS, round)
        const target = rng.int(300, 1000)
        // Odd rounds kill the server while it shuts down: SIGTERM, then
        // SIGKILL a moment later (while it answers, packs its events into
        // blocks or checkpoints, or after it has exited).
        const termFirst = round % 2 === 1
        const delayMs = termFirst
          ? rng.int(0, 120)
          : rng.chance(0.5)
            ? 0
            : rng.int(1, 5)
        const windows = connections.map(() => rng.int(4, 48))
        const problems: string[] = []
        let replies = 0
        let inFlightAtKill = -1
        const kill = () => {
          inFlightAtKill = inFlight(connections)
          if (termFirst) {
            server.kill('SIGTERM')
            setTimeout(() => server.kill('SIGKILL'), delayMs)
          } else {
            server.kill('SIGKILL')
          }
        }
        const streams = connections.map((c, k) => {
          c.onReply = (sent) => {
            checkReply(sent.tag, sent.reply!, problems, `${where}, conn ${k}`)
            if (++replies === target) {
              if (termFirst || delayMs === 0) kill()
              else setTimeout(kill, delayMs)
            }
          }
          // Frames of one connection come from its own generator, so that they
          // do not depend on the order in which replies arrive.
          const gen = Random.derive(seed, 1000 + round * 100 + k)
          const mine = hands[k]!
          const hotOne = mine.find((robot) => hot.has(robot))
          return c.stream(
            () => outgoing(makeFrame(gen, mine, MAX_LINES, hotOne)),
            windows[k]!,
          )
        })
        // The streams never run dry: they end when the kill closes the
        // connections.
        const flowing = performance.now()
        await Promise.all(streams)
        const ms = (from: number, to = performance.now()) =>
          (to - from).toFixed(0)
        const timing = `start ${ms(started, listening)} ms, checks ${ms(listening, flowing)} ms, traffic ${ms(flowing)} ms`
        const exit = await server.exited
        if (termFirst) {
          assert.ok(
            exit.signal === 'SIGKILL' ||
              (exit.code === 0 && exit.signal === null),
            `${where}: killed, or exited 0 after SIGTERM: ${JSON.stringify(exit)}`,
          )
        } else {
          assert.deepEqual(
            exit,
            { code: null, signal: 'SIGKILL' },
            `${where}: the server was killed, it did not stop by itself`,
          )
        }
        assert.deepEqual(problems.slice(0, 10), [], `${where}: replies`)
        assertInStep(connections, where)
        assert.ok(inFlightAtKill > 0, `${where}: frames were in flight`)
        const frames = connections.reduce((n, c) => n + c.sent, 0)
        const lines = connections.reduce(
          (n, c) => n + c.frames.reduce((m, s) => m + s.tag.lines.length, 0),
          0,
        )
        t.diagnostic(
          `round ${round}: ${stored} events stored at the start; ${termFirst ? `SIGTERM after ${target} replies, SIGKILL ${delayMs} ms later (${exit.signal ?? `exit ${exit.code}`})` : `SIGKILL after ${target} replies (+${delayMs} ms)`} with ${inFlightAtKill} of ${frames} frames (${lines} lines) unanswered; ${timing}`,
        )
      }
    },
  )

  test(
    'SIGTERM with traffic in flight answers every frame it received, keeps every OK event and nothing unanswered, exits 0 and closes with 1001',
    {
      timeout: 120_000,
    },
    async (t) => {
      t.diagnostic(seedNote(seed))
      const ROUNDS = 1
      const CONNECTIONS = 4
      const ROBOTS = 20
      const rng = Random.derive(seed, 2)
      const dir = makeTempDir()
      t.after(() => removeTempDir(dir))
      const storePath = join(dir, 'sigterm.db')
      const robots = makeRobots(robotNames(ROBOTS, 't'))

      for (let round = 0; round <= ROUNDS; round++) {
        const where = `seed ${seed}, SIGTERM round ${round}`
        // At level info the server logs, for each connection it closes, how
        // many frames it received on it.
        const server = await startServer(
          ['--log-level', 'info'],
          {},
          {
            storePath,
          },
        )
        t.after(() => server.dispose())
        if (round > 0) {
          // Every event answered OK (or DUP) is stored, and no event of an
          // unanswered frame: the server dropped those unread.
          const { stored } = await verifyRobots(server, robots, {
            where: `${where}, after the restart`,
            random: rng,
            exact: true,
            adopt: true,
          })
          t.diagnostic(`round ${round - 1}: ${stored} events stored`)
        }
        if (round === ROUNDS) {
          // The robots go on from their latest stored events.
          const client = await IngestClient.connect<Frame>(server.wsUrl)
          const gen = Random.derive(seed, 2999)
          const frames = robots.map((robot) =>
            joinFrame(gen, [
              newEventLine(gen, robot),
              newEventLine(gen, robot),
            ]),
          )
          const problems: string[] = []
          let next = 0
          client.onReply = (s) => checkReply(s.tag, s.reply!, problems, where)
          await client.stream(() => {
            const frame = frames[next++]
            return frame === undefined ? undefined : outgoing(frame)
          }, 16)
          assert.deepEqual(problems.slice(0, 10), [], `${where}: going on`)
          assert.equal(client.answered, frames.length)
          await client.close()
          await verifyRobots(server, robots, {
            where: `${where}, going on`,
            random: rng,
            exact: true,
            adopt: true,
          })
          assert.equal((await server.stop()).code, 0)
          break
        }

        const hands = deal(robots, CONNECTIONS, round)
        const connections = await Promise.all(
          hands.map(() => IngestClient.connect<Frame>(server.wsUrl)),
        )
        const problems: string[] = []
        // Where each connection's burst starts, once it is sent.
        let burstFrom: number[] | undefined = undefined
        let signalAt = 0
        let inFlightAtSignal = -1
        const streams = connections.map((c, k) => {
          c.onReply = (sent) => {
            checkReply(sent.tag, sent.reply!, problems, `${where}, conn ${k}`)
            if (
              burstFrom !== undefined &&
              signalAt === 0 &&
              c.answered > burstFrom[k]!
            ) {
              signalAt = performance.now()
              inFlightAtSignal = inFlight(connections)
              server.kill('SIGTERM')
            }
          }
          const gen = Random.derive(seed, 2000 + round * 10 + k)
          return c.stream(
            () => outgoing(makeFrame(gen, hands[k]!, 6)),
            rng.int(8, 32),
          )
        })

        // Once 20 frames of every connection are answered, each one sends a
        // burst of frames, and the first reply to one of them sets off the
        // signal: the server is then busy with the rest. The streams go on
        // until the server closes the connections.
        await waitFor(
          () => connections.every((c) => c.answered >= 20),
          `${where}: every connection is answered`,
        )
        burstFrom = connections.map((c) => c.sent)
        for (const c of connections) c.widen(rng.int(100, 300))
        await Promise.all(streams)
        assert.ok(signalAt > 0, `${where}: the signal was sent`)

        assert.deepEqual(
          await server.exited,
          { code: 0, signal: null },
          `${where}: exits 0`,
        )
        for (const [k, c] of connections.entries()) {
          assert.deepEqual(
            await c.closed,
            { code: 1001, reason: 'server shutting down' },
            `${where}: connection ${k} closed by the server with 1001`,
          )
        }
        assert.deepEqual(problems.slice(0, 10), [], `${where}: replies`)
        assertInStep(connections, where)
        assert.ok(inFlightAtSignal > 0, `${where}: frames were in flight`)

        // Every frame the server received was answered: its log says how
        // many frames it received on each connection, and a client cannot
        // get more replies than the frames the server received, so equal
        // counts mean none received went unanswered.
        const received = server
          .log()
          .filter((line) => line.msg === 'connection closed')
          .map((line) => line.frames)
        const answered = connections.map((c) => c.answered)
        const order = (counts: unknown[]) =>
          [...counts].sort((a, b) => Number(a) - Number(b))
        assert.deepEqual(
          order(received),
          order(answered),
          `${where}: frames received on each connection (server log) and answered (client)`,
        )
        const answeredAfter = connections.reduce(
          (n, c) =>
            n + c.frames.filter((f) => (f.repliedAt ?? 0) > signalAt).length,
          0,
        )
        const sent = connections.reduce((n, c) => n + c.sent, 0)
        t.diagnostic(
          `round ${round}: SIGTERM with ${inFlightAtSignal} frames unanswered; ${answered.reduce((a, b) => a + b, 0)} of ${sent} frames answered, ${answeredAfter} of them after the signal`,
        )
      }
    },
  )

  test(
    'a client that resends every unacknowledged event after each SIGKILL gets OK or DUP for each, and each is stored once',
    {
      timeout: 120_000,
    },
    async (t) => {
      t.diagnostic(seedNote(seed))
      const CONNECTIONS = 2
      const ROBOTS = 8
      const EVENTS = 400 // per connection
      const CYCLES = 3 // killed in all but the last
      const rng = Random.derive(seed, 3)
      const dir = makeTempDir()
      t.after(() => removeTempDir(dir))
      const storePath = join(dir, 'resend.db')

      const robots = makeRobots(robotNames(ROBOTS, 'r'))
      const hands = deal(robots, CONNECTIONS)
      // Each connection's events, in the order it sends them: every robot's
      // timestamps increase.
      const queues = hands.map((mine) =>
        Array.from({ length: EVENTS }, () => ({
          line: newEventLine(rng, rng.pick(mine)),
          acked: false,
        })),
      )

      for (let cycle = 0; cycle < CYCLES; cycle++) {
        const where = `seed ${seed}, resend cycle ${cycle}`
        const killing = cycle < CYCLES - 1
        const server: ServerProcess = await startServer([], {}, { storePath })
        t.after(() => server.dispose())
        if (cycle > 0) {
          // Everything acknowledged is stored; of the rest, only a prefix.
          const found = await verifyRobots(server, robots, {
            where: `${where}, after the restart`,
            random: rng,
          })
          t.diagnostic(
            `cycle ${cycle - 1}: ${found.unacknowledged} of the events stored were unacknowledged`,
          )
        }

        const connections = await Promise.all(
          queues.map(() => IngestClient.connect<Frame>(server.wsUrl)),
        )
        // Every event without an OK or a DUP, oldest first, in new frames.
        const frames = queues.map((queue) => {
          const pending = queue.filter((entry) => !entry.acked)
          const out: { frame: Frame; entries: typeof pending }[] = []
          for (let i = 0; i < pending.length;) {
            const entries = pending.slice(i, i + rng.int(1, 8))
            i += entries.length
            out.push({
              frame: joinFrame(
                rng,
                entries.map((entry) => entry.line),
              ),
              entries,
            })
          }
          return out
        })
        const total = frames.reduce((n, list) => n + list.length, 0)
        const target = killing
          ? Math.max(1, Math.floor(total * (0.2 + 0.6 * rng.next())))
          : Infinity
        // From the target on, the client hears no more replies, as if they
        // were lost with the connection, and the server is killed a moment
        // later: events it commits meanwhile are stored but unacknowledged,
        // and their resends must be DUP.
        const deafMs = rng.chance(0.4) ? 0 : rng.int(1, 15)
        let deaf = false
        const answers = connections.map(() => [] as string[])
        const problems: string[] = []
        let replies = 0
        let inFlightAtKill = -1
        const streams = connections.map((c, k) => {
          let next = 0
          const entriesOf = new Map(
            frames[k]!.map((item) => [item.frame, item.entries]),
          )
          c.onReply = (sent) => {
            if (deaf) return
            const entries = entriesOf.get(sent.tag)!
            const lines = sent.reply!.split('\n')
            if (lines.length !== entries.length) {
              problems.push(`${where}, conn ${k}: reply ${sent.reply}`)
            }
            entries.forEach((entry, i) => {
              const answer = lines[i] ?? '(none)'
              answers[k]!.push(answer)
              const allowed = cycle === 0 ? ['OK'] : ['OK', 'DUP']
              if (!allowed.includes(answer)) {
                problems.push(
                  `${where}, conn ${k}: ${JSON.stringify(entry.line.text)} answered ${JSON.stringify(answer)}`,
                )
                return
              }
              entry.acked = true
              const robot = entry.line.robot!
              robot.known = Math.max(robot.known, entry.line.index! + 1)
            })
            if (++replies === target) {
              deaf = true
              setTimeout(() => {
                inFlightAtKill = inFlight(connections)
                server.kill('SIGKILL')
              }, deafMs)
            }
          }
          return c.stream(
            () => {
              const item = frames[k]![next++]
              return item === undefined ? undefined : outgoing(item.frame)
            },
            rng.int(4, 32),
          )
        })
        await Promise.all(streams)
        if (killing) {
          // Nothing to resend (never so far): no reply sets off the kill.
          if (total === 0) server.kill('SIGKILL')
          // The client may have sent everything before the kill; its
          // connections close with it.
          assert.deepEqual(
            await server.exited,
            { code: null, signal: 'SIGKILL' },
            `${where}: the server was killed, it did not stop by itself`,
          )
          await Promise.all(connections.map((c) => c.closed))
        }

        assert.deepEqual(problems.slice(0, 10), [], `${where}: replies`)
        assertInStep(connections, where)
        // On one connection, the resent events that the killed server had
        // committed come first (DUP), then those it had not (OK).
        for (const [k, list] of answers.entries()) {
          const firstOk = list.indexOf('OK')
          const dupAfterOk = firstOk >= 0 && list.indexOf('DUP', firstOk) >= 0
          assert.ok(
            !dupAfterOk,
            `${where}, connection ${k}: a DUP after an OK: ${list.join(' ')}`,
          )
        }
        const count = (word: string) =>
          answers.flat().filter((answer) => answer === word).length
        t.diagnostic(
          `cycle ${cycle}: ${total} frames to send, ${count('DUP')} DUP, ${count('OK')} OK` +
            (killing
              ? `; deaf after ${target} replies, SIGKILL ${deafMs} ms later with ${inFlightAtKill} frames unanswered, ${total - target} unacknowledged`
              : ''),
        )

        if (killing) continue
        // The last cycle ran to its end: every event is acknowledged, and
        // stored exactly once.
        for (const [k, c] of connections.entries()) {
          assert.equal(c.answered, frames[k]!.length, `${where}: all answered`)
          await c.close()
        }
        assert.ok(queues.flat().every((entry) => entry.acked))
        const { stored } = await verifyRobots(server, robots, {
          where: `${where}, at the end`,
          random: rng,
          exact: true,
        })
        assert.equal(stored, CONNECTIONS * EVENTS)
        assert.equal((await server.stop()).code, 0)
      }
    },
  )
})
