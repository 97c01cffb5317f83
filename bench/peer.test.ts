/**
 * The peer scenario end to end on a few robots: the real server and a
 * real `influxd` (Debian's `influxdb`), the generators and the reads of
 * the bench, one round. Both must hold every event sent and answer every
 * read as the fleet's own track says (the odometer, the window's count).
 */
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import { describe, it } from 'node:test'
import { influxdbSkip, startServer } from '../test/support/index.ts'
import { PEER_EVENTS_PER_ROBOT, runPeer, type PeerHost } from './peer.ts'

const skip = process.env.CI === 'true' ? false : influxdbSkip()
if (skip !== false) console.log(`# skipping the peer scenario: ${skip}`)

const script = (path: string) => fileURLToPath(new URL(path, import.meta.url))

describe('the peer scenario', { skip }, () => {
  it('should send the same events to both, count them stored, and read them back right', async () => {
    const problems: string[] = []
    const host: PeerHost = {
      loadScript: script('./load.js'),
      queryScript: script('./query.js'),
      influxLoadScript: script('./influx-load.js'),
      async withServer(store, _what, body) {
        const server = await startServer([], {}, { store: store.url })
        try {
          const value = await body(server)
          const res = await fetch(`${server.url}/api/robots`)
          const robots = (await res.json()) as { event_count: number }[]
          const stored = robots.reduce((n, r) => n + r.event_count, 0)
          await server.stop()
          return { value, stored }
        } finally {
          await server.dispose()
        }
      },
      problem: (text) => problems.push(text),
      say: () => {},
    }
    const robots = 3
    const report = await runPeer(host, {
      rounds: 1,
      robots,
      connections: 2,
      window: 4,
      writers: 2,
      batch: 1000,
      reads: 5,
      warmupReads: 1,
    })
    assert.deepEqual(problems, [])
    const events = robots * PEER_EVENTS_PER_ROBOT
    assert.equal(report.events, events)
    const [round] = report.rounds
    assert.deepEqual(
      round!.server.map((r) => [r.linesPerFrame, r.events, r.stored]),
      [
        [1, events, events],
        [10, events, events],
        [100, events, events],
      ],
    )
    const influx = round!.influxdb
    assert.equal(influx.events, events)
    assert.equal(influx.stored, events)
    assert.equal(influx.failed, 0)
    assert.ok(influx.diskBytes > 0 && influx.compactedBytes > 0)
    // Reads: five of each kind, all answered as the track says.
    const reads = [round!.server[1]!.reads!, influx.reads]
    for (const r of reads) {
      assert.equal(r.wrong, 0, r.wrongSamples.join('; '))
      assert.equal(r.odometer.count, 5)
      assert.equal(r.window.count, 5)
    }
    for (const run of [...round!.server, influx]) {
      assert.ok(run.cpuSeconds > 0 && run.idleRss > 0 && run.peakRss > 0)
    }
  })
})
