/**
 * Several server processes on one PostgreSQL schema, end to end: three
 * processes (`--store postgres://…?schema=…`) share the traffic of many
 * robots and connections; robots move between processes mid-stream; the
 * same event races through two processes, and different events of one robot
 * race through three; one process is killed (SIGKILL) mid-stream and its
 * clients resend through the others. Every line sent and every reply is kept
 * in a ledger (multiprocess-ledger.ts), and what every surviving process,
 * and a process started afterwards, shows over HTTP is checked against it.
 *
 * Every process runs with access control on, reading one tokens file:
 * ingest goes through an ingest token, reads through a read token, and a
 * token added to the file works on every process once each has had its
 * SIGHUP.
 *
 * The traffic comes from a seeded generator; the seed is printed and
 * `TEST_SEED=<seed>` repeats the traffic (not its timing).
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import {
  IngestClient,
  MAX_TIMESTAMP,
  Random,
  RobotModel,
  assertOdometer,
  dropSchemas,
  freshSchema,
  getJson,
  holdNewRobot,
  makeTempDir,
  mapLimit,
  postgresSkip,
  readEvents,
  readOdometer,
  removeTempDir,
  request,
  robotPath,
  seedNote,
  startServer,
  testSeed,
  waitFor,
  withoutTimes,
  writeTokens,
  type ApiEvent,
  type ServerProcess,
} from '../support/index.ts'
import {
  Client,
  Ledger,
  checkLedger,
  checkRobotView,
  kind,
  step,
  tally,
  type Line,
  type Send,
} from './multiprocess-ledger.ts'

const skip = await postgresSkip()
if (skip !== false) console.log(`# skipping multi-process tests: ${skip}`)
const seed = testSeed()

/** The tokens file every process reads. */
const tokensDir = makeTempDir('telemetry-multi-tokens-')
const TOKEN_SPECS = [
  { name: 'robots', role: 'ingest' },
  { name: 'readers', role: 'read' },
  { name: 'operators', role: 'admin' },
] as const
const tokens = writeTokens(join(tokensDir, 'tokens.json'), TOKEN_SPECS)

/** Starts a server process on the PostgreSQL store `url`, with the tokens. */
function startOn(url: string): Promise<ServerProcess> {
  return startServer(
    [],
    {},
    {
      store: url,
      access: {
        file: tokens.file,
        readToken: tokens.readers!,
        ingestToken: tokens.robots!,
      },
    },
  )
}

/** `lines` cut into frames of 1 to `max` lines, in order. */
function chunk(rng: Random, lines: readonly Line[], max: number): Line[][] {
  const frames: Line[][] = []
  for (let i = 0; i < lines.length;) {
    const n = rng.int(1, max)
    frames.push(lines.slice(i, i + n))
    i += n
  }
  return frames
}

/** Interleaves the robots' own sequences, each kept in order. */
function interleave(sequences: readonly (readonly Line[])[]): Line[] {
  const out: Line[] = []
  const longest = Math.max(...sequences.map((s) => s.length))
  for (let i = 0; i < longest; i++) {
    for (const s of sequences) if (i < s.length) out.push(s[i]!)
  }
  return out
}

/** A robot's walk: `count` lines at increasing timestamps `ts(i)`. */
function walk(
  ledger: Ledger,
  rng: Random,
  robot: string,
  count: number,
  ts: (i: number) => number,
  origin = 0,
): Line[] {
  let x = step(rng, origin, 100)
  let y = step(rng, origin, 100)
  return Array.from({ length: count }, (_, i) => {
    x = step(rng, x)
    y = step(rng, y)
    return ledger.line(robot, ts(i), x, y)
  })
}

/** Checks that no client noted a problem or got a reply it did not ask for. */
function assertClientsInStep(clients: readonly Client[]) {
  for (const client of clients) {
    assert.deepEqual(client.problems, [], client.name)
    assert.deepEqual(client.extraReplies, [], `${client.name}: extra replies`)
  }
}

/** Sendings of `sends` whose reply kind is not in `allowed`, described. */
function unexpected(sends: readonly Send[], allowed: readonly string[]) {
  return sends
    .filter((s) => s.lost || !allowed.includes(kind(s.reply)))
    .slice(0, 10)
    .map(
      (s) =>
        `${s.line.text} via ${s.server}${s.resend ? ' (resent)' : ''}: ${s.lost ? 'lost' : s.reply}`,
    )
}

describe(
  `several server processes on one PostgreSQL schema (${seedNote(seed)})`,
  {
    skip,
  },
  () => {
    const ledger = new Ledger()
    const servers: ServerProcess[] = []
    const alive = new Set<number>()
    const clients: Client[] = []
    let schema = ''
    let storeUrl = ''
    /** Schemas of tests that need one of their own. */
    const otherSchemas: string[] = []

    const newClient = (name: string) => {
      const client = new Client(name, servers)
      clients.push(client)
      return client
    }

    /** Stderr of every process, for the message of a failure. */
    const logs = () =>
      servers
        .map((s, i) => `process ${i} stderr: ${s.stderr().slice(-2000)}`)
        .join('\n')

    /**
     * Checks the ledger against what process `p` stores: of the robots sent
     * in `phase`, or of all.
     */
    const checkAll = async (p: number, where: string, phase?: string) => {
      const robots =
        phase === undefined
          ? ledger.robots
          : [...new Set(ledger.sends(phase).map((s) => s.line.robot))]
      const stored = new Map<string, ApiEvent[]>()
      await mapLimit(robots, 8, async (robot) => {
        stored.set(robot, await readEvents(servers[p]!, robot))
      })
      assert.deepEqual(
        checkLedger(ledger, stored),
        [],
        `${where}: the ledger against process ${p}\n${logs()}`,
      )
      return stored
    }

    before(async () => {
      if (skip !== false) return
      ;({ schema, url: storeUrl } = freshSchema())
      // All three start at once on a schema that does not exist yet.
      servers.push(
        ...(await Promise.all([0, 1, 2].map(() => startOn(storeUrl)))),
      )
      for (let i = 0; i < 3; i++) alive.add(i)
    })

    after(async () => {
      await Promise.all(clients.map((c) => c.close()))
      await Promise.all(servers.map((s) => s.dispose()))
      await dropSchemas([schema, ...otherSchemas].filter((n) => n !== ''))
      removeTempDir(tokensDir)
    })

    test('every process reads the one tokens file, and each takes a new token on its SIGHUP', async () => {
      for (const server of servers) {
        const refused = await request(server, '/api/robots', {
          headers: { authorization: 'Bearer not-a-token' },
        })
        assert.equal(refused.status, 401)
      }
      const added = writeTokens(
        tokens.file,
        [...TOKEN_SPECS, { name: 'auditors', role: 'read' }],
        tokens,
      )
      for (const server of servers) {
        const auditor = { url: server.url, token: added.auditors }
        // Until its SIGHUP, a process knows only the tokens it read.
        assert.equal((await request(auditor, '/api/robots')).status, 401)
        server.kill('SIGHUP')
        await waitFor(
          async () => (await request(auditor, '/api/robots')).status === 200,
          `process ${servers.indexOf(server)} takes the new token`,
        )
      }
    })

    test(
      'robots spread over 6 connections on 3 processes move to another process mid-stream, twice',
      {
        timeout: 120_000,
      },
      async (t) => {
        const ROBOTS = 30
        const CLIENTS = 6
        const EVENTS = 40
        const rng = Random.derive(seed, 1)
        assert.equal(
          new Set(servers.map((s) => s.store)).size,
          1,
          'one store for all',
        )
        const names = Array.from({ length: ROBOTS }, (_, k) => {
          const special: Record<number, string> = {
            2: 'Ünit/2 ☃',
            3: '🤖 spread 3',
            4: '\uFF21 fullwidth 4',
            5: 'NULL',
            6: 'say "hi", {x} \\ 6',
            7: 'mp%20spread?#&+ 7',
            8: 'Mp spread 8',
          }
          return special[k] ?? `mp spread ${String(k).padStart(2, '0')}`
        })
        const sequences = names.map((robot, k) => {
          const base = 1_700_000_000_000 + k * 10_000_000
          let last = base
          const ts =
            k === 0
              ? (i: number) => i * 3 // from timestamp 0
              : k === 1
                ? (i: number) => MAX_TIMESTAMP - (EVENTS - 1 - i) * 5 // up to 2^53 − 1
                : (i: number) =>
                    (last = i === 0 ? base : last + rng.int(1, 2000))
          return walk(ledger, rng, robot, EVENTS, ts, k === 9 ? 1e6 : 0)
        })

        // Read-after-write during the stream: right after an OK, another
        // process shows the event.
        const reads: Promise<string | undefined>[] = []
        const readRng = Random.derive(seed, 11)
        let replyFrames = 0
        const onReply = (sends: readonly Send[]) => {
          const last = sends.at(-1)
          if (++replyFrames % 5 !== 0 || last?.reply !== 'OK') return
          const other = (last.server + readRng.int(1, 2)) % 3
          const { robot, ts, x, y } = last.line
          reads.push(
            readEvents(
              servers[other]!,
              robot,
              `?start_time=${ts}&end_time=${ts}`,
            )
              .then((events) => {
                try {
                  assert.deepEqual(events, [{ robot, x, y, timestamp: ts }])
                  return undefined
                } catch {
                  return `${last.line.text} OK via ${last.server}, process ${other} read ${JSON.stringify(events)}`
                }
              })
              .catch((error: unknown) => `${last.line.text}: ${String(error)}`),
          )
        }

        // Robot k goes to client k % CLIENTS; the frames are cut before any
        // connection opens, so that the seed repeats them.
        const plans = Array.from({ length: CLIENTS }, (_, c) => ({
          frames: chunk(
            rng,
            interleave(sequences.filter((_, k) => k % CLIENTS === c)),
            6,
          ),
          window: rng.int(4, 12),
        }))
        const runs = plans.map(async ({ frames, window }, c) => {
          const client = newClient(`spread client ${c}`)
          client.phase = 'spread'
          client.onReply = onReply
          await client.open(c % 3)
          const third = Math.floor(frames.length / 3)
          await client.run(frames, {
            window,
            hopAt: new Set([third, 2 * third]),
            // Odd clients cut the connection with frames in flight and resend them.
            abrupt: c % 2 === 1,
            nextServer: (current) => (current + 1) % 3,
          })
          await client.close()
          return client
        })
        const done = await Promise.all(runs)
        const problems = (await Promise.all(reads)).filter(
          (p) => p !== undefined,
        )

        assertClientsInStep(done)
        for (const client of done) {
          assert.equal(
            client.connections,
            3,
            `${client.name}: three connections`,
          )
        }
        const sends = ledger.sends('spread')
        assert.deepEqual(
          unexpected(
            sends.filter((s) => !s.resend && !s.lost),
            ['OK'],
          ),
          [],
          `every robot sends in order over one connection at a time: OK\n${logs()}`,
        )
        assert.deepEqual(
          unexpected(
            sends.filter((s) => s.resend),
            ['OK', 'DUP'],
          ),
          [],
          'a resend after a cut connection: OK or DUP',
        )
        for (const robot of names) {
          const via = new Set(
            sends.filter((s) => s.line.robot === robot).map((s) => s.server),
          )
          assert.equal(via.size, 3, `${robot} went through all three processes`)
        }
        assert.deepEqual(
          problems,
          [],
          'reads right after an OK, on another process',
        )
        assert.ok(reads.length > 0)
        await checkAll(1, 'after the spread', 'spread')
        t.diagnostic(
          `${ROBOTS} robots, ${CLIENTS} connections, ${EVENTS * ROBOTS} events in ${done.reduce((n, c) => n + c.connections, 0)} connections; ` +
            `${done.reduce((n, c) => n + c.resentFrames, 0)} frames resent after a cut; replies ${JSON.stringify(tally(sends))}; ${reads.length} reads after OK on another process`,
        )
      },
    )

    test(
      'the same event sent through two processes at once is OK once and DUP once',
      {
        timeout: 120_000,
      },
      async (t) => {
        const LOCKSTEP_ROBOTS = 6
        const LOCKSTEP_EVENTS = 30
        const PIPELINED_ROBOTS = 3
        const PIPELINED_EVENTS = 60
        const rng = Random.derive(seed, 2)
        const twins = await Promise.all(
          Array.from({ length: 6 }, async (_, c) => {
            const client = newClient(`twin client ${c}`)
            client.phase = 'twin'
            await client.open(c % 3)
            return client
          }),
        )
        const pairs = (k: number) =>
          [twins[k % 6]!, twins[(k + 1) % 6]!] as const

        // Lockstep: each event goes to both processes at the same moment, and
        // the next waits for both replies.
        const lockstep = Array.from(
          { length: LOCKSTEP_ROBOTS },
          async (_, k) => {
            const lines = walk(
              ledger,
              rng,
              `mp twin lockstep ${k}`,
              LOCKSTEP_EVENTS,
              (i) => 1_700_000_000_000 + i * 1000,
            )
            const [a, b] = pairs(k)
            for (const line of lines) {
              await Promise.all([a.request([line]), b.request([line])])
            }
          },
        )
        // Pipelined: both sides stream the same frames without waiting.
        const pipelined = Array.from({ length: PIPELINED_ROBOTS }, (_, k) => {
          const lines = walk(
            ledger,
            rng,
            `mp twin pipelined ${k}`,
            PIPELINED_EVENTS,
            (i) => 1_700_000_000_000 + i * 1000,
          )
          const frames = chunk(rng, lines, 3)
          return pairs(k + 2).map((client) =>
            client.run(frames, { window: 16, nextServer: () => -1 }),
          )
        })
        await Promise.all([...lockstep, ...pipelined.flat()])
        assertClientsInStep(twins)

        const lines = ledger.lines.filter((l) => l.sends[0]?.phase === 'twin')
        assert.equal(
          lines.length,
          LOCKSTEP_ROBOTS * LOCKSTEP_EVENTS +
            PIPELINED_ROBOTS * PIPELINED_EVENTS,
        )
        const wrong = lines
          .filter((l) => {
            const replies = l.sends.map((s) => s.reply).sort()
            const via = new Set(l.sends.map((s) => s.server))
            return (
              replies.length !== 2 ||
              replies[0] !== 'DUP' ||
              replies[1] !== 'OK' ||
              via.size !== 2
            )
          })
          .slice(0, 10)
          .map(
            (l) =>
              `${l.text}: ${l.sends.map((s) => `${s.reply} via ${s.server}`).join(', ')}`,
          )
        assert.deepEqual(wrong, [], `exactly one OK and one DUP\n${logs()}`)
        // Who won: the race is real when both processes of a pair win some.
        const wins: Record<string, number> = {}
        for (const l of lines) {
          const ok = l.sends.find((s) => s.reply === 'OK')!
          const other = l.sends.find((s) => s !== ok)!
          const key = `${ok.server} over ${other.server}`
          wins[key] = (wins[key] ?? 0) + 1
        }
        await checkAll(2, 'after the twins', 'twin')
        t.diagnostic(
          `${lines.length} events each sent through two processes at once: OK won by ${JSON.stringify(wins)}`,
        )
      },
    )

    test(
      'events of one robot racing through three processes are judged in one order',
      {
        timeout: 120_000,
      },
      async (t) => {
        const ROBOTS = 6
        const EVENTS = 40
        const rng = Random.derive(seed, 3)
        const racers = await Promise.all(
          [0, 1, 2].map(async (p) => {
            const client = newClient(`racer ${p}`)
            client.phase = 'race'
            await client.open(p)
            return client
          }),
        )
        // Racer r sends robot k's event i at base + 10 i + r + 1, except every
        // fourth i, where all three send at base + 10 i, each at its own place.
        const frames = racers.map((_, r) => {
          const walks = Array.from({ length: ROBOTS }, (_, k) =>
            walk(
              ledger,
              rng,
              `mp race ${k}`,
              EVENTS,
              (i) => 1_700_000_000_000 + i * 10 + (i % 4 === 0 ? 0 : r + 1),
              r * 1000,
            ),
          )
          return Array.from({ length: EVENTS }, (_, i) =>
            walks.map((w) => w[i]!),
          )
        })
        await Promise.all(
          racers.map((client, r) =>
            client.run(frames[r]!, { window: 4, nextServer: () => -1 }),
          ),
        )
        assertClientsInStep(racers)
        const sends = ledger.sends('race')
        assert.deepEqual(
          unexpected(sends, ['OK', 'stale', 'conflict']),
          [],
          'a racing event is OK, stale or conflict',
        )
        // Of the events all three send at one timestamp, at most one is stored.
        const stored = await checkAll(0, 'after the race', 'race')
        for (let k = 0; k < ROBOTS; k++) {
          const robot = `mp race ${k}`
          const events = stored.get(robot)!
          const summary = withoutTimes(
            (await getJson(servers[k % 3]!, robotPath(robot))).body,
          )
          assert.equal(
            summary.event_count,
            events.length,
            `${robot}: event_count`,
          )
          assert.equal(
            summary.event_count,
            sends.filter((s) => s.line.robot === robot && s.reply === 'OK')
              .length,
            `${robot}: event_count is the number of OK`,
          )
        }
        t.diagnostic(
          `${ROBOTS} robots × ${EVENTS} events × 3 racers, one per process: ${JSON.stringify(tally(sends))}`,
        )
      },
    )

    test(
      'right after an OK from one process, the other processes show the event',
      {
        timeout: 120_000,
      },
      async (t) => {
        const EVENTS = 30
        const rng = Random.derive(seed, 4)
        const robot = 'mp read your writes'
        const writers = await Promise.all(
          [0, 1, 2].map(async (p) => {
            const client = newClient(`writer ${p}`)
            client.phase = 'read'
            await client.open(p)
            return client
          }),
        )
        const lines = walk(ledger, rng, robot, EVENTS, (i) => 5000 + i * 7)
        const path = robotPath(robot)
        const model = new RobotModel(robot)
        for (let i = 0; i < EVENTS; i++) {
          const line = lines[i]!
          const p = i % 3
          const [sent] = await writers[p]!.request([line])
          assert.equal(sent!.reply, 'OK', `${line.text} via ${p}`)
          assert.equal(model.apply(line.x, line.y, line.ts), 'OK')
          const { odometer, ...expected } = model.summary()!
          for (const q of [(p + 1) % 3, (p + 2) % 3]) {
            const [summary, events, odo] = await Promise.all([
              getJson(servers[q]!, path),
              readEvents(servers[q]!, robot, {
                start_time: line.ts,
                end_time: line.ts,
              }),
              readOdometer(servers[q]!, robot),
            ])
            const where = `event ${i} OK via ${p}, read on ${q}`
            const { odometer: summaryOdometer, ...rest } = withoutTimes(
              summary.body,
            )
            assertOdometer(
              summaryOdometer,
              odometer as number,
              `${where}: summary`,
            )
            assert.deepEqual(rest, expected, where)
            assert.deepEqual(events, [model.latest], where)
            assertOdometer(odo.odometer, odometer as number, where)
          }
        }
        t.diagnostic(`${EVENTS} events, each read on the two other processes`)
      },
    )

    test(
      'SIGKILL of one process mid-stream: its clients resend through the others and get OK or DUP',
      {
        timeout: 120_000,
      },
      async (t) => {
        const ROBOTS = 24
        const CLIENTS = 6
        const EVENTS = 50
        const VICTIM = 2
        const rng = Random.derive(seed, 5)
        const sequences = Array.from({ length: ROBOTS }, (_, k) => {
          let ts = 1_800_000_000_000 + k
          return walk(
            ledger,
            rng,
            `mp kill ${String(k).padStart(2, '0')}`,
            EVENTS,
            () => (ts += rng.int(1, 500)),
          )
        })
        const clientsHere = await Promise.all(
          Array.from({ length: CLIENTS }, async (_, c) => {
            const client = newClient(`kill client ${c}`)
            client.phase = 'kill'
            await client.open(c % 3)
            return client
          }),
        )
        const plans = clientsHere.map((_, c) =>
          chunk(
            rng,
            interleave(sequences.filter((_, k) => k % CLIENTS === c)),
            6,
          ),
        )
        const victims = clientsHere.filter((c) => c.server === VICTIM)
        const victimFrames = plans
          .filter((_, c) => c % 3 === VICTIM)
          .reduce((n, f) => n + f.length, 0)
        const killAfter = Math.floor(victimFrames * (0.3 + rng.next() * 0.2))
        // Killed at the first reply from the victim, from the killAfter-th
        // on, after which frames are still in flight (replies come in bursts
        // that may answer every frame in flight): their lines are lost, and
        // those whose batch the victim had committed are resent as DUP.
        let victimReplies = 0
        let killedAt = -1
        let inFlightAtKill = -1
        for (const client of victims) {
          client.onReply = (sends) => {
            if (sends[0]!.server !== VICTIM || killedAt >= 0) return
            const inFlight = victims.reduce((n, v) => n + v.inFlight, 0)
            if (++victimReplies < killAfter || inFlight === 0) return
            killedAt = victimReplies
            inFlightAtKill = inFlight
            alive.delete(VICTIM)
            servers[VICTIM]!.kill('SIGKILL')
          }
        }
        await Promise.all(
          clientsHere.map((client, c) =>
            client.run(plans[c]!, {
              window: 8,
              // Only the victim's clients may lose their connection.
              allowLoss: client.server === VICTIM,
              nextServer: () => [...alive][c % alive.size]!,
            }),
          ),
        )
        assert.deepEqual(
          await servers[VICTIM]!.exited,
          { code: null, signal: 'SIGKILL' },
          'the victim was killed',
        )
        assertClientsInStep(clientsHere)
        const sends = ledger.sends('kill')
        assert.deepEqual(
          unexpected(
            sends.filter((s) => !s.resend && !s.lost),
            ['OK'],
          ),
          [],
          `every answered first sending is OK\n${logs()}`,
        )
        const resent = sends.filter((s) => s.resend)
        assert.deepEqual(
          unexpected(resent, ['OK', 'DUP']),
          [],
          `a resend after the kill is OK or DUP, never stale or conflict\n${logs()}`,
        )
        assert.ok(inFlightAtKill > 0, 'frames were in flight at the kill')
        assert.ok(resent.length > 0, 'lines were resent')
        for (const client of victims) {
          assert.notEqual(client.server, VICTIM, `${client.name} moved`)
          assert.ok(client.connections >= 2)
        }
        await checkAll(0, 'after the kill', 'kill')
        t.diagnostic(
          `${ROBOTS} robots, ${CLIENTS} connections, ${ROBOTS * EVENTS} events; SIGKILL of process ${VICTIM} after ${killedAt} of its ${victimFrames} frames were answered, ${inFlightAtKill} in flight; ` +
            `${victims.reduce((n, c) => n + c.resentFrames, 0)} frames (${resent.length} lines) resent: ${JSON.stringify(tally(resent))}`,
        )
      },
    )

    test(
      'every surviving process, and one started afterwards, shows exactly what was acknowledged',
      {
        timeout: 120_000,
      },
      async (t) => {
        servers.push(await startOn(storeUrl))
        alive.add(servers.length - 1)
        const readers = [...alive]
        assert.equal(readers.length, 3)

        const stored = await checkAll(readers.at(-1)!, 'at the end')
        const robots = ledger.robots
        const lists = await Promise.all(
          readers.map(async (p) => {
            const response = await getJson(servers[p]!, '/api/robots')
            assert.equal(response.status, 200)
            return response.body as Record<string, unknown>[]
          }),
        )
        // Same robots, same objects (times included: they are stored) everywhere.
        for (let i = 1; i < lists.length; i++) {
          assert.deepEqual(
            lists[i],
            lists[0],
            `GET /api/robots on ${readers[i]} and ${readers[0]}`,
          )
        }
        assert.deepEqual(
          lists[0]!.map((r) => r.name),
          robots,
          'every robot, in code point order',
        )
        for (const item of lists[0]!) {
          const name = item.name as string
          const model = new RobotModel(name, stored.get(name)!)
          const { odometer, ...rest } = withoutTimes(item)
          const { odometer: expected, ...summary } = model.summary()!
          assert.deepEqual(rest, summary, `${name} in the list`)
          assertOdometer(odometer, expected as number, `${name} in the list`)
        }

        const problems: string[] = []
        // The processes answer at once, each on its own intervals.
        const views = await Promise.all(
          readers.map((p) => {
            const where = `process ${p}`
            const rng = Random.derive(seed, 60 + p)
            return mapLimit(robots, 6, async (robot) => {
              const events = await readEvents(servers[p]!, robot)
              const expected = stored.get(robot)!
              try {
                assert.deepEqual(events, expected)
              } catch {
                return [`${where}: events of ${robot} differ`]
              }
              return checkRobotView(servers[p]!, robot, expected, rng, where)
            })
          }),
        )
        problems.push(...views.flat(2))
        assert.deepEqual(problems.slice(0, 20), [], 'what each process shows')

        const events = [...stored.values()].reduce((n, e) => n + e.length, 0)
        const sends = ledger.sends()
        for (const p of readers) {
          assert.equal(
            (await servers[p]!.stop()).code,
            0,
            `process ${p} stops cleanly`,
          )
        }
        t.diagnostic(
          `${robots.length} robots, ${events} events stored; ${ledger.lines.length} distinct lines, ${sends.length} sendings: ${JSON.stringify(tally(sends))}; checked on processes ${readers.join(', ')}`,
        )
      },
    )

    test(
      'a robot created by one process while another one waits for a lock: created_time ≤ updated_time, and updated_time is when its latest event was committed',
      {
        timeout: 120_000,
      },
      async (t) => {
        // Deterministic: the test holds, in its own transaction, the row
        // that a slow batch of a third process would hold (the new row of
        // robot "A hold", not yet committed).
        const { schema: own, url } = freshSchema()
        otherSchemas.push(own)
        const pair = await Promise.all([startOn(url), startOn(url)])
        t.after(() => Promise.all(pair.map((s) => s.dispose())))
        const local = new Ledger()
        const [a, b] = await Promise.all(
          pair.map(async (_, p) => {
            const client = new Client(`created client ${p}`, pair)
            clients.push(client)
            client.phase = 'created'
            await client.open(p)
            return client
          }),
        )
        const held = await holdNewRobot(own, 'A hold')
        t.after(() => held.release())
        let okAt: number
        let waiting: Promise<readonly Send[]>
        try {
          // Process 1: the first event of "A hold" and one of "Robot R"; its
          // batch waits for the row of "A hold".
          waiting = b!.request([
            local.line('A hold', 5, 0, 0),
            local.line('Robot R', 2, 2, 2),
          ])
          await held.waited('process 1 waits for the lock')
          // Meanwhile process 0 creates "Robot R" with an older event.
          const [first] = await a!.request([local.line('Robot R', 1, 1, 1)])
          assert.equal(first!.reply, 'OK')
          okAt = Date.now()
        } finally {
          await held.release()
        }
        // Process 1's batch goes on: "Robot R" now exists; its event is newer.
        assert.deepEqual(
          (await waiting).map((s) => s.reply),
          ['OK', 'OK'],
        )
        for (const [p, server] of pair.entries()) {
          const body = (await getJson(server, '/api/robots/Robot%20R'))
            .body as Record<string, unknown>
          const where = `process ${p}: ${JSON.stringify(body)}; the latest event was committed after ${new Date(okAt).toISOString()}`
          assert.deepEqual(
            {
              first_timestamp: body.first_timestamp,
              last_timestamp: body.last_timestamp,
              event_count: body.event_count,
            },
            { first_timestamp: 1, last_timestamp: 2, event_count: 2 },
            where,
          )
          const created = Date.parse(body.created_time as string)
          const updated = Date.parse(body.updated_time as string)
          assert.ok(created <= updated, `created_time ≤ updated_time: ${where}`)
          assert.ok(
            updated >= okAt,
            `updated_time is when the latest event was committed: ${where}`,
          )
        }
      },
    )

    test(
      'a robot deleted through one process while two processes store its events keeps only events answered OK, every one sent after the delete was answered',
      { timeout: 120_000 },
      async (t) => {
        const { schema: own, url } = freshSchema()
        otherSchemas.push(own)
        const pair = await Promise.all([startOn(url), startOn(url)])
        t.after(() => Promise.all(pair.map((s) => s.dispose())))
        const robot = 'mp deleted ☃'
        /** Events answered before the DELETE is sent: surely deleted. */
        const FIRST = 150
        /** Events each process gets after the DELETE's answer: surely kept. */
        const LAST = 100
        let end = Infinity
        // Process p sends timestamps 2i + p: the two interleave, and one
        // that falls behind the other gets `ERR stale`, never a loss.
        const streams = await Promise.all(
          pair.map(async (server, p) => {
            const client = await IngestClient.connect<number>(server.wsUrl, {
              token: server.ingestToken,
            })
            let sent = 0
            const done = client.stream(() => {
              if (sent >= end) return undefined
              const ts = 2 * sent++ + p + 1
              return { data: `${ts % 50},${p},${ts},${robot}`, tag: ts }
            }, 4)
            return { client, done, sentNow: () => sent }
          }),
        )
        await waitFor(
          () => streams.reduce((n, s) => n + s.client.answered, 0) >= FIRST,
          `${FIRST} events answered`,
        )
        const answeredBefore = streams.map((s) =>
          s.client.frames.slice(0, s.client.answered),
        )
        const response = await request(
          { url: pair[0]!.url, token: tokens.operators },
          robotPath(robot),
          { method: 'DELETE' },
        )
        assert.equal(response.status, 204, response.text)
        const sentWhenAnswered = streams.map((s) => s.sentNow())
        end = Math.max(...sentWhenAnswered) + LAST
        await Promise.all(streams.map((s) => s.done))
        for (const s of streams) {
          assert.equal(s.client.unanswered, 0, 'every event got an answer')
          await s.client.end()
        }

        const stored = await readEvents(pair[1]!, robot)
        assert.deepEqual(await readEvents(pair[0]!, robot), stored)
        const ok = new Set(
          streams.flatMap((s) =>
            s.client.frames.filter((f) => f.reply === 'OK').map((f) => f.tag),
          ),
        )
        const storedTs = new Set(stored.map((e) => e.timestamp))
        for (const ts of storedTs) {
          assert.ok(ok.has(ts), `stored ${ts} was answered OK`)
        }
        streams.forEach((s, p) => {
          for (const frame of answeredBefore[p]!) {
            assert.ok(
              !storedTs.has(frame.tag),
              `${frame.tag}, answered before the DELETE was sent, is gone`,
            )
          }
          for (const frame of s.client.frames.slice(sentWhenAnswered[p]!)) {
            if (frame.reply === 'OK') {
              assert.ok(
                storedTs.has(frame.tag),
                `${frame.tag}, answered OK after the DELETE, is stored`,
              )
            }
          }
          // A process's replies are OK or, behind the other, stale (the
          // last frame is end()'s probe).
          const odd = s.client.frames
            .slice(0, -1)
            .map((f) => f.reply ?? 'no reply')
            .filter((r) => r !== 'OK' && !r.startsWith('ERR stale '))
          assert.deepEqual(odd, [], `process ${p}'s replies`)
        })
        assert.ok(stored.length > 0, 'the robot came back')
        const robotView = await getJson(pair[1]!, robotPath(robot))
        const body = robotView.body as Record<string, unknown>
        assert.equal(body.event_count, stored.length)
        assert.equal(body.first_timestamp, stored[0]!.timestamp)
        const again = await request(
          { url: pair[1]!.url, token: tokens.operators },
          robotPath(robot),
          { method: 'DELETE' },
        )
        assert.equal(again.status, 204, 'the robot that came back is deleted')
        const gone = await request(
          { url: pair[0]!.url, token: tokens.operators },
          robotPath(robot),
          { method: 'DELETE' },
        )
        assert.equal(gone.status, 404)
      },
    )
  },
)
