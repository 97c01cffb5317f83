/**
 * The live feed across several server processes on one PostgreSQL schema:
 * a stream opened on one process gets what is committed through any other
 * (the store's NOTIFY, sent inside each batch's transaction), in order,
 * only after the commit, and a client that reconnects to another process
 * with `Last-Event-ID` misses nothing. live.e2e.test.ts has the feed on
 * SQLite.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import {
  FoxgloveViewer,
  IngestClient,
  LiveClient,
  dropSchemas,
  freshSchema,
  getRobot,
  holdNewRobot,
  postgresSkip,
  readEvents,
  startServer,
  type ServerProcess,
} from '../support/index.ts'

const skip = await postgresSkip()
if (skip !== false) console.log(`# skipping live PostgreSQL tests: ${skip}`)

describe('live feed on PostgreSQL, several processes', { skip }, () => {
  const { schema, url } = freshSchema()
  let servers: ServerProcess[] = []
  before(async () => {
    servers = await Promise.all(
      [0, 1, 2].map(() => startServer(['--live-hz', '5'], {}, { store: url })),
    )
  })
  after(async () => {
    await Promise.all(servers.map((s) => s.dispose()))
    await dropSchemas([schema])
  })

  test("sends a stream on one process every event committed through the others, each robot's in order", async () => {
    const [a, b, c] = servers as [ServerProcess, ServerProcess, ServerProcess]
    const robots = ['shared 0', 'shared 1', 'shared 2']
    const named = await LiveClient.open(a, { robots })
    const fleet = await LiveClient.open(a)
    await Promise.all([named.started(), fleet.started()])
    // Each robot's events go through both other processes in turns.
    const senders = await Promise.all(
      [b, c].map((s) => IngestClient.connect(s.wsUrl)),
    )
    for (let ts = 1; ts <= 200; ts++) {
      const sender = senders[ts % 2]!
      const replies = await sender.send(
        robots.map((r, i) => `${ts},${i},${ts},${r}`).join('\n'),
      )
      assert.equal(replies, 'OK\nOK\nOK')
    }
    await named.until(
      () => robots.every((r) => named.positions(r).length === 200),
      'every event of every robot',
    )
    for (const r of robots) {
      const positions = named.positions(r)
      assert.deepEqual(
        positions.map((p) => p.timestamp),
        Array.from({ length: 200 }, (_, i) => i + 1),
        `${r}: every event once, in order`,
      )
      const robot = await getRobot(a, r)
      assert.equal(positions.at(-1)!.odometer, robot.odometer)
    }
    await fleet.until(
      () => robots.every((r) => fleet.positions(r).at(-1)?.timestamp === 200),
      'the latest position of every robot on the fleet stream',
    )
    await Promise.all(senders.map((s) => s.close()))
    named.close()
    fleet.close()
  })

  test('sends a Foxglove client and a stream on one process, fed by one watch, what commits through another', async () => {
    const [a, b] = servers as [ServerProcess, ServerProcess, ServerProcess]
    const sender = await IngestClient.connect(b.wsUrl)
    await sender.store(['0,0,1,foxglove pg'])
    const viewer = await FoxgloveViewer.connect(a.wsUrl)
    await viewer.subscribe('/robots/foxglove pg/pose')
    const named = await LiveClient.open(a, { robots: ['foxglove pg'] })
    await named.started()
    for (let ts = 2; ts <= 50; ts++) {
      await sender.store([`${ts},1,${ts},foxglove pg`])
    }
    const poses = await viewer.until(
      '/robots/foxglove pg/pose',
      49,
      'every pose through the other process',
    )
    assert.deepEqual(
      poses.map((m) => m.logTime),
      Array.from({ length: 49 }, (_, i) => BigInt(i + 2) * 1_000_000n),
    )
    await named.until(
      () => named.positions('foxglove pg').length === 49,
      'every position on the stream too',
    )
    await sender.close()
    viewer.close()
    named.close()
  })

  test('sends nothing of a commit still waiting for its lock, and sends it once committed', async () => {
    const [a, b, c] = servers as [ServerProcess, ServerProcess, ServerProcess]
    const held = await holdNewRobot(schema, 'held')
    const live = await LiveClient.open(a, { robots: ['held', 'marker'] })
    await live.started()
    const blocked = await IngestClient.connect(b.wsUrl)
    const reply = blocked.send('1,1,1,held')
    await held.waited('the commit through b waits for the row lock')
    // A later commit through c reaches the stream; the held one has not.
    const other = await IngestClient.connect(c.wsUrl)
    assert.equal(await other.send('2,2,1,marker'), 'OK')
    await live.until(() => live.positions('marker').length === 1, 'marker')
    assert.deepEqual(live.positions('held'), [], 'nothing before the commit')
    await held.release()
    assert.equal(await reply, 'OK')
    await live.until(() => live.positions('held').length === 1, 'held')
    assert.deepEqual(live.positions('held'), [
      { robot: 'held', x: 1, y: 1, timestamp: 1, odometer: 0 },
    ])
    await Promise.all([blocked.close(), other.close()])
    live.close()
  })

  test('replays on another process what a client missed, without a gap or a repeat', async () => {
    const [a, b, c] = servers as [ServerProcess, ServerProcess, ServerProcess]
    const robot = 'moving'
    const first = await LiveClient.open(a, { robots: [robot] })
    await first.started()
    const sender = await IngestClient.connect(c.wsUrl)
    for (let ts = 1; ts <= 300; ts++) {
      if (ts === 100) {
        await first.until(() => first.positions().length >= 50, '50 events')
        first.close()
      }
      assert.equal(await sender.send(`${ts},${-ts},${ts},${robot}`), 'OK')
    }
    const second = await LiveClient.open(b, {
      robots: [robot],
      lastEventId: first.lastEventId,
    })
    await second.until(
      () => second.positions().at(-1)?.timestamp === 300,
      'the last event',
    )
    const joined = [...first.positions(), ...second.positions()]
    assert.deepEqual(
      joined.map((p) => p.timestamp),
      Array.from({ length: 300 }, (_, i) => i + 1),
    )
    assert.deepEqual(
      joined.map(({ x, y, timestamp }) => ({ robot, x, y, timestamp })),
      await readEvents(b, robot),
    )
    await sender.close()
    second.close()
  })
})
