/**
 * The live feed (`GET /api/live`, server-sent events), end to end against
 * the started server on SQLite: the snapshot, every committed event of the
 * robots asked for and nothing else, `Last-Event-ID` replay without a gap
 * or a repeat while events keep coming, whole-fleet coalescing at
 * `--live-hz`, what happens to a subscriber that stops reading (a named
 * stream is cut, a fleet stream coalesced), the limit on open streams, the
 * errors, access control and shutdown. live-postgres.e2e.test.ts has the
 * same feed across several processes.
 *
 * No assertion depends on the machine's speed: floods go on until the
 * server reports what the test waits for, and the rate bound of the fleet
 * stream is measured against the client's own clock.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import {
  IngestClient,
  LiveClient,
  assertErrorBody,
  getRobot,
  makeTempDir,
  readEvents,
  readOdometer,
  removeTempDir,
  request,
  scrapeMetrics,
  startServer,
  waitFor,
  writeTokens,
  type ErrorCode,
  type LivePosition,
  type ServerProcess,
} from '../support/index.ts'

/** Lines `x,y,ts,robot` for timestamps `from`..`to`, on a known path. */
function track(robot: string, from: number, to: number): string[] {
  const lines: string[] = []
  for (let ts = from; ts <= to; ts++) {
    lines.push(`${ts % 17},${(ts * 3) % 11},${ts},${robot}`)
  }
  return lines
}

/** Sends `lines` in frames of `size`, `window` frames in flight, all stored. */
async function ingestMany(
  client: IngestClient,
  lines: readonly string[],
  size: number,
  window = 8,
) {
  let next = 0
  await client.stream(() => {
    if (next >= lines.length) return undefined
    const frame = lines.slice(next, next + size)
    next += size
    return { data: frame.join('\n'), tag: undefined }
  }, window)
  for (const frame of client.frames.slice(-Math.ceil(lines.length / size))) {
    assert.match(frame.reply ?? '', /^OK(\nOK)*$/, 'every line stored')
  }
}

/** A robot's stored events as the feed sends them, lifetime odometers from the API. */
async function storedAsFeed(
  server: ServerProcess,
  robot: string,
): Promise<LivePosition[]> {
  const positions: LivePosition[] = []
  for (const { x, y, timestamp } of await readEvents(server, robot)) {
    const { odometer } = await readOdometer(server, robot, {
      start_time: 0,
      end_time: timestamp,
    })
    positions.push({ robot, x, y, timestamp, odometer: odometer as number })
  }
  return positions
}

describe('live feed', () => {
  let server: ServerProcess
  let client: IngestClient
  before(async () => {
    server = await startServer(['--live-hz', '4'])
    client = await IngestClient.connect(server.wsUrl)
  })
  after(async () => {
    await client?.close()
    await server?.dispose()
  })

  test('sends the snapshot, then every stored event of the robots asked for, and nothing else', async () => {
    await client.store(['0,0,1,alpha', '3,4,2,alpha', '9,9,5,other'])
    const live = await LiveClient.open(server, { robots: ['alpha'] })
    assert.equal(live.status, 200)
    assert.match(live.headers['content-type'] ?? '', /^text\/event-stream/)
    assert.equal(live.headers['cache-control'], 'no-store')
    await live.started()
    assert.deepEqual(
      live.events.map((e) => e.type),
      ['snapshot', 'live'],
    )
    assert.deepEqual(live.events[0], {
      ...live.events[0],
      type: 'snapshot',
      id: '2',
      data: { robot: 'alpha', x: 3, y: 4, timestamp: 2, odometer: 5 },
    })
    assert.equal(live.retry, 1000)

    assert.equal(
      await client.send(
        [
          '3,4,2,alpha', // dup
          '1,1,1,alpha', // conflict
          '0,0,0,alpha', // stale
          '3,8,3,alpha', // stored
          '7,7,6,other', // another robot
          '6,8,4,alpha', // stored
        ].join('\n'),
      ),
      "DUP\nERR conflict another event of this robot is stored at this timestamp\nERR stale the event is older than the robot's latest event\nOK\nOK\nOK",
    )
    await client.store(['6,8,10,alpha'])
    await live.until((e) => e.length >= 5, 'three positions')
    assert.deepEqual(
      live.events.slice(2).map((e) => [e.type, e.id, e.data]),
      [
        [
          'position',
          '3',
          { robot: 'alpha', x: 3, y: 8, timestamp: 3, odometer: 9 },
        ],
        [
          'position',
          '4',
          { robot: 'alpha', x: 6, y: 8, timestamp: 4, odometer: 12 },
        ],
        [
          'position',
          '10',
          { robot: 'alpha', x: 6, y: 8, timestamp: 10, odometer: 12 },
        ],
      ],
    )
    assert.equal((await getRobot(server, 'alpha')).odometer, 12)
    live.close()
  })

  test("gives a stream of several robots each one's events in order, without ids", async () => {
    const live = await LiveClient.open(server, {
      robots: ['multi a', 'multi b', 'multi none'],
    })
    await live.started()
    assert.deepEqual(
      live.events.map((e) => e.type),
      ['live'],
      'no snapshot: no events yet',
    )
    await client.store(['0,0,1,multi a', '0,0,1,multi b'])
    await client.store(['1,0,2,multi b', '1,0,2,multi a', '2,0,3,multi a'])
    await live.until((e) => e.length >= 6, 'five positions')
    assert.ok(live.events.every((e) => e.id === undefined))
    assert.deepEqual(
      live.positions('multi a').map((p) => p.timestamp),
      [1, 2, 3],
    )
    assert.deepEqual(
      live.positions('multi b').map((p) => p.timestamp),
      [1, 2],
    )
    assert.equal(live.events.length, 6)
    live.close()
  })

  test('replays exactly what a reconnecting client missed, from the store, while events keep coming', async () => {
    const robot = 'replayed'
    const lines = track(robot, 1, 6000)
    // A stream that never drops: what the others must add up to.
    const whole = await LiveClient.open(server, { robots: [robot] })
    let stream = await LiveClient.open(server, { robots: [robot] })
    const sender = await IngestClient.connect(server.wsUrl)
    const sending = ingestMany(sender, lines, 20, 4)
    const pieces: LivePosition[][] = []
    for (let round = 1; round <= 3; round++) {
      // Drop after some events, then come back with the last id read.
      await stream.until(
        (e) => e.length >= round * 500,
        `${round * 500} events`,
      )
      stream.close()
      await stream.ended
      pieces.push(stream.positions())
      stream = await LiveClient.open(server, {
        robots: [robot],
        lastEventId: stream.lastEventId,
      })
    }
    await sending
    await sender.close()
    await stream.until(
      () => stream.positions().at(-1)?.timestamp === 6000,
      'the last event',
    )
    await whole.until(
      () => whole.positions().at(-1)?.timestamp === 6000,
      'the last event',
    )
    pieces.push(stream.positions())
    assert.equal(stream.snapshots().length, 0, 'a replay sends no snapshot')

    const joined = pieces.flat()
    assert.deepEqual(
      joined.map((p) => p.timestamp),
      Array.from({ length: 6000 }, (_, i) => i + 1),
      'no gap and no repeat',
    )
    // The replayed odometers are the live ones, to the last bit.
    assert.deepEqual(joined, whole.positions())
    const stored = await readEvents(server, robot)
    assert.deepEqual(
      joined.map(({ x, y, timestamp }) => ({ robot, x, y, timestamp })),
      stored,
    )
    const last = await readOdometer(server, robot)
    assert.equal(joined.at(-1)!.odometer, last.odometer)
    whole.close()
    stream.close()
  })

  test('replays from Last-Event-ID the odometers the API gives', async () => {
    await client.store(track('odometers', 1, 40))
    const live = await LiveClient.open(server, {
      robots: ['odometers'],
      lastEventId: 30,
    })
    await live.until((e) => e.length >= 10, 'ten replayed events')
    assert.deepEqual(
      live.positions(),
      (await storedAsFeed(server, 'odometers')).slice(30),
    )
    live.close()
  })

  test('coalesces the whole fleet to the latest position per robot, at most --live-hz times a second', async () => {
    const robots = Array.from({ length: 10 }, (_, r) => `fleet ${r}`)
    await client.store(robots.map((r) => `0,0,1,${r}`))
    const opened = performance.now()
    const live = await LiveClient.open(server)
    await live.started()
    const snapshot = live.snapshots()
    for (const r of robots) {
      assert.ok(
        snapshot.some((p) => p.robot === r && p.timestamp >= 1),
        r,
      )
    }
    const lines = robots.flatMap((r) => track(r, 2, 301))
    const sender = await IngestClient.connect(server.wsUrl)
    await ingestMany(sender, lines, 100, 4)
    await sender.close()
    await live.until(
      () => robots.every((r) => live.positions(r).at(-1)?.timestamp === 301),
      "every robot's latest position",
    )
    const seconds = (performance.now() - opened) / 1000
    for (const r of robots) {
      const positions = live.positions(r)
      assert.ok(
        positions.length <= Math.ceil(seconds * 4) + 1,
        `${r}: ${positions.length} positions in ${seconds.toFixed(1)} s at 4 Hz`,
      )
      const ts = positions.map((p) => p.timestamp)
      assert.deepEqual(
        ts,
        [...ts].sort((a, b) => a - b),
        `${r} never goes back`,
      )
      assert.equal(
        positions.at(-1)!.odometer,
        (await getRobot(server, r)).odometer,
      )
    }
    assert.ok(
      live.events.every((e) => e.id === undefined),
      'fleet events have no id',
    )
    live.close()
  })

  test('refuses what is not a stream it can serve', async () => {
    const cases: [string, Record<string, string>, number, string, RegExp][] = [
      [
        '?robot=%20padded',
        {},
        400,
        'INVALID_QUERY',
        /robot " padded" is no robot name/,
      ],
      ['?robot=', {}, 400, 'INVALID_QUERY', /robot "" is no robot name/],
      [
        '?robot=a&robot=b',
        { 'last-event-id': '3' },
        400,
        'BAD_REQUEST',
        /exactly one robot/,
      ],
      ['', { 'last-event-id': '3' }, 400, 'BAD_REQUEST', /exactly one robot/],
      [
        '?robot=a',
        { 'last-event-id': 'x' },
        400,
        'BAD_REQUEST',
        /Last-Event-ID must be a non-negative integer/,
      ],
    ]
    for (const [query, headers, status, code, message] of cases) {
      const response = await request(server, `/api/live${query}`, { headers })
      assertErrorBody(response, status, code as ErrorCode, message)
    }
    const head = await request(server, '/api/live', { method: 'HEAD' })
    assert.equal(head.status, 200)
    assert.match(head.headers.get('content-type') ?? '', /^text\/event-stream/)
  })
})

describe('live feed limits', () => {
  let server: ServerProcess
  before(async () => {
    server = await startServer([
      '--live-buffer-bytes',
      '16384',
      '--max-live-streams',
      '3',
    ])
  })
  after(() => server?.dispose())

  /** Sends frames of `lines(round)` until `done()`, at most `rounds` frames. */
  async function flood(
    lines: (round: number) => string[],
    done: () => Promise<boolean>,
    rounds = 3000,
  ) {
    const sender = await IngestClient.connect(server.wsUrl)
    try {
      for (let round = 0; round < rounds; round++) {
        await sender.store(lines(round))
        if (round % 5 === 4 && (await done())) return
      }
      assert.fail(`still not so after ${rounds} frames`)
    } finally {
      await sender.close()
    }
  }

  test('cuts a named stream whose client stopped reading; it reconnects and misses nothing', async (t) => {
    const robot = 'stalled'
    const live = await LiveClient.open(server, { robots: [robot] })
    t.after(() => live.close())
    await live.started()
    live.pause()
    const cut = async () =>
      (await scrapeMetrics(server)).value(
        'telemetry_live_streams_cut_total{reason="slow"}',
      ) === 1
    let sent = 0
    await flood(() => {
      const lines = track(robot, sent + 1, sent + 1000)
      sent += 1000
      return lines
    }, cut)
    live.resume()
    assert.equal(await live.ended, 'aborted', 'the stream was cut')
    const got = live.positions().map((p) => p.timestamp)
    assert.deepEqual(
      got,
      Array.from({ length: got.length }, (_, i) => i + 1),
      'a prefix',
    )
    assert.ok(got.length < sent, 'the cut stream did not get everything')

    const again = await LiveClient.open(server, {
      robots: [robot],
      lastEventId: live.lastEventId ?? 0,
    })
    await again.until(
      () => again.positions().at(-1)?.timestamp === sent,
      'the rest',
    )
    assert.deepEqual(
      [...got, ...again.positions().map((p) => p.timestamp)],
      Array.from({ length: sent }, (_, i) => i + 1),
    )
    again.close()
    await again.ended
  })

  test('coalesces a fleet stream whose client stopped reading, and never cuts it', async (t) => {
    // Long names: each tick is 1,000 positions of about 200 bytes, so the
    // operating system's buffers fill within seconds, however fast ingest.
    const robots = Array.from(
      { length: 1000 },
      (_, r) => `stalled fleet ${r} ${'x'.repeat(80)}`,
    )
    const live = await LiveClient.open(server)
    t.after(() => live.close())
    await live.started()
    live.pause()
    const before = (await scrapeMetrics(server)).value(
      'telemetry_live_coalesced_total',
    )
    let ts = 0
    await flood(
      () => {
        ts++
        return robots.map((r) => `${ts},${-ts},${ts},${r}`)
      },
      async () =>
        (await scrapeMetrics(server)).value('telemetry_live_coalesced_total') >
        before + 5,
    )
    const metrics = await scrapeMetrics(server)
    assert.equal(
      metrics.value('telemetry_live_streams_cut_total{reason="slow"}'),
      1,
      'only the named stream of the test before',
    )
    live.resume()
    await live.until(
      () => robots.every((r) => live.positions(r).at(-1)?.timestamp === ts),
      'the latest position of every robot',
    )
    assert.equal(live.isEnded, false, 'still open')
    // Coalesced: far fewer positions than events.
    assert.ok(live.positions().length < robots.length * ts)
    live.close()
  })

  test('refuses a stream over --max-live-streams with 503', async () => {
    await waitFor(
      async () =>
        (await scrapeMetrics(server)).value('telemetry_live_streams_open') ===
        0,
      'the streams of the tests before are closed',
    )
    const open = await Promise.all(
      [['a'], ['b'], undefined].map((robots) =>
        LiveClient.open(server, { robots }),
      ),
    )
    const refused = await LiveClient.open(server, { robots: ['c'] })
    if (refused.status === 200) refused.close()
    assert.equal(refused.status, 503, 'the fourth stream is refused')
    await refused.ended
    assertErrorBody(
      { status: refused.status, text: refused.body },
      503,
      'TOO_MANY_STREAMS',
      /3 live streams are open/,
    )
    const metrics = await scrapeMetrics(server)
    assert.equal(metrics.value('telemetry_live_streams_refused_total'), 1)
    assert.equal(metrics.value('telemetry_live_streams_open'), 3)
    open[0]!.close()
    const later = await waitFor(async () => {
      const live = await LiveClient.open(server, { robots: ['c'] })
      if (live.status === 200) return live
      await live.ended
      return undefined
    }, 'a stream once one closed')
    later.close()
    for (const live of open) live.close()
  })
})

describe('live feed with access control', () => {
  const dir = makeTempDir('telemetry-live-tokens-')
  const tokens = writeTokens(join(dir, 'tokens.json'), [
    { name: 'robots', role: 'ingest' },
    { name: 'readers', role: 'read' },
  ])
  let server: ServerProcess
  before(async () => {
    server = await startServer(
      [],
      {},
      {
        access: {
          file: tokens.file,
          readToken: tokens.readers!,
          ingestToken: tokens.robots!,
        },
      },
    )
  })
  after(async () => {
    await server?.dispose()
    removeTempDir(dir)
  })

  test('needs a read token, in the header or as access_token', async () => {
    const robot = 'guarded'
    const sender = await IngestClient.connect(server.wsUrl, {
      token: tokens.robots,
    })
    await sender.store(['1,1,1,guarded'])
    for (const tokenInQuery of [false, true]) {
      const live = await LiveClient.open(server, {
        robots: [robot],
        tokenInQuery,
      })
      assert.equal(live.status, 200)
      await live.started()
      assert.equal(live.snapshots()[0]?.robot, robot)
      live.close()
    }
    const none = await LiveClient.open({ url: server.url })
    assert.equal(none.status, 401)
    const ingestOnly = await LiveClient.open({
      url: server.url,
      token: tokens.robots,
    })
    assert.equal(ingestOnly.status, 403)
    await sender.close()
  })
})

test('ends every live stream when the server stops', async () => {
  const server = await startServer()
  try {
    const streams = await Promise.all([
      LiveClient.open(server),
      LiveClient.open(server, { robots: ['anyone'] }),
    ])
    server.kill('SIGTERM')
    for (const live of streams) assert.equal(await live.ended, 'end')
    assert.equal((await server.exited).code, 0)
  } finally {
    await server.dispose()
  }
})
