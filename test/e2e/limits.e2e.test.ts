/**
 * The configurable limits of ingest (connections, lines per frame, frames in
 * flight, keepalive), backpressure under a flood, the logs and GET /metrics,
 * against a really started server. Each limit's test fails when the limit is
 * switched off in the server: it checks the mechanism (what the server
 * reads, commits and counts), never how fast the machine is.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  IngestClient,
  dropSchemas,
  freshSchema,
  holdNewRobot,
  postgresSkip,
  assertErrorBody,
  getJson,
  memory,
  refusedUpgrade,
  repeatLine,
  scrapeMetrics,
  startServer,
  waitFor,
  type Origin,
} from '../support/index.ts'

/** Waits until the server counts `n` open ingest connections. */
async function untilOpenConnections(server: Origin, n: number) {
  await waitFor(
    async () =>
      (await scrapeMetrics(server)).value('telemetry_connections_open') === n,
    `the server counts ${n} open connections`,
  )
}

describe('connection limit', () => {
  test('refuses the upgrade over --max-connections with 503, and accepts again once one closes', async (t) => {
    const server = await startServer(['--max-connections', '2'])
    t.after(() => server.dispose())
    const a = await IngestClient.connect(server.wsUrl)
    const b = await IngestClient.connect(server.wsUrl)
    const refused = await refusedUpgrade(server.wsUrl, '/upstream')
    assert.match(refused.contentType ?? '', /^application\/json/)
    assertErrorBody(
      { status: refused.status, text: refused.body },
      503,
      'TOO_MANY_CONNECTIONS',
      /2 ingest connections/,
    )
    // The open ones are still served.
    assert.equal(await a.send('1,1,1,limit-a'), 'OK')
    await b.close()
    // The server sees the close a moment after the client; from then on
    // there is room for one more.
    await untilOpenConnections(server, 1)
    const c = await IngestClient.connect(server.wsUrl)
    assert.equal(await c.send('1,1,1,limit-c'), 'OK')
    const metrics = await scrapeMetrics(server)
    assert.equal(metrics.value('telemetry_connections_open'), 2)
    assert.equal(metrics.value('telemetry_connections_refused_total'), 1)
    await a.end()
    await c.end()
  })
})

describe('lines per frame', () => {
  test('answers the frames before one over --max-lines-per-frame, stores nothing of it, and closes with 1009', async (t) => {
    const server = await startServer(['--max-lines-per-frame', '3'])
    t.after(() => server.dispose())
    const client = await IngestClient.connect(server.wsUrl)
    const first = client.send('1,1,1,lines\n2,2,2,lines\n3,3,3,lines\n')
    const over = client.send(
      '4,4,4,lines\n5,5,5,lines\n6,6,6,lines\n7,7,7,lines',
    )
    assert.equal(await first, 'OK\nOK\nOK')
    await assert.rejects(over)
    const closed = await client.closed
    assert.equal(closed.code, 1009)
    assert.match(closed.reason, /more than 3 lines/)
    const robot = await getJson(server, '/api/robots/lines')
    assert.equal((robot.body as { event_count: number }).event_count, 3)
    // Other connections are not affected.
    const other = await IngestClient.connect(server.wsUrl)
    assert.equal(await other.send('8,8,8,lines'), 'OK')
    // The frame over the limit was not read: its lines are not counted.
    assert.equal(
      (await scrapeMetrics(server)).value('telemetry_lines_received_total'),
      4,
    )
    await other.end()
  })
})

describe('frame size', () => {
  test('answers the frames before one over --max-frame-bytes, even sent at once, stores nothing of it, and closes with 1009 and a reason', async (t) => {
    const server = await startServer(['--max-frame-bytes', '64'])
    t.after(() => server.dispose())
    // Both frames leave in one turn of the client's event loop, so the
    // server reads the oversized header before the first frame committed.
    const first = '0,0,0,Bender\n1,0,1,Bender\n0,0,2,Bender\n0,0,2,Bender\n'
    const over = '0,0,3,Bender\n'.repeat(6)
    assert.ok(Buffer.byteLength(first) <= 64 && Buffer.byteLength(over) > 64)
    for (let round = 0; round < 5; round++) {
      const client = await IngestClient.connect(server.wsUrl)
      const replies = [client.send(first), client.send(over)]
      assert.equal(
        await replies[0],
        round === 0 ? 'OK\nOK\nOK\nDUP' : 'DUP\nDUP\nDUP\nDUP',
        `round ${round}`,
      )
      await assert.rejects(replies[1]!)
      const closed = await client.closed
      assert.deepEqual(closed, {
        code: 1009,
        reason: 'frame is larger than 64 bytes',
      })
    }
    const robot = await getJson(server, '/api/robots/Bender')
    assert.equal((robot.body as { event_count: number }).event_count, 3)
  })

  test('answers the frames before one over --max-lines-per-frame followed at once by one over --max-frame-bytes, and closes with the first reason', async (t) => {
    const server = await startServer([
      '--max-lines-per-frame',
      '3',
      '--max-frame-bytes',
      '64',
    ])
    t.after(() => server.dispose())
    for (let round = 0; round < 5; round++) {
      const client = await IngestClient.connect(server.wsUrl)
      const replies = [
        client.send(`1,1,${round},both`),
        client.send('9,9,9,x\n'.repeat(4)),
        client.send('9,9,9,x\n'.repeat(9)),
      ]
      assert.equal(await replies[0], 'OK', `round ${round}`)
      await assert.rejects(replies[1]!)
      await assert.rejects(replies[2]!)
      assert.deepEqual(await client.closed, {
        code: 1009,
        reason: 'frame has more than 3 lines',
      })
    }
    const robot = await getJson(server, '/api/robots/both')
    assert.equal((robot.body as { event_count: number }).event_count, 5)
  })

  test('answers a close frame with code 1009 from the client as any other close', async (t) => {
    const server = await startServer(['--max-frame-bytes', '64'])
    t.after(() => server.dispose())
    const client = await IngestClient.connect(server.wsUrl)
    assert.equal(await client.send('1,1,1,closer'), 'OK')
    // A client whose own limit refused a reply closes with 1009 itself: the
    // server echoes its code and reason, as for any close, and does not
    // take it for a frame over its own limit.
    client.ws.close(1009, 'reply too big for me')
    assert.deepEqual(await client.closed, {
      code: 1009,
      reason: 'reply too big for me',
    })
  })
})

/**
 * Frames of 1,000 events of about 175 bytes (names of 150 characters), so
 * over 170 KB: more than twice the 64 KiB that one socket read brings at
 * most (Node.js reads TCP data in 64 KiB buffers), so that one read never
 * completes two frames. The events go to `robots` robots in turn.
 */
function bigFrames(prefix: string, frames: number, robots = 1): string[] {
  const LINES = 1000
  const names = Array.from({ length: robots }, (_, k) => {
    const start = `${prefix} ${k} `
    return start + 'n'.repeat(150 - start.length)
  })
  return Array.from({ length: frames }, (_, f) =>
    Array.from({ length: LINES }, (_, l) => {
      const ts = 1_000_000 + f * LINES + l
      return `${ts}.5,-${l}.25,${ts},${names[l % robots]}`
    }).join('\n'),
  )
}

describe('frames in flight', () => {
  test('with --max-frames-in-flight 1 reads no frame before the one before it is answered: each commit holds exactly one frame', async (t) => {
    const server = await startServer(['--max-frames-in-flight', '1'])
    t.after(() => server.dispose())
    const FRAMES = 60
    const frames = bigFrames('in flight', FRAMES)
    assert.ok(Buffer.byteLength(frames[0]!) > 128 * 1024)
    const client = await IngestClient.connect(server.wsUrl)
    // Every frame at once: the server has them all to read.
    const replies = await client.sendAll(frames)
    assert.deepEqual(
      replies,
      frames.map(() => repeatLine('OK', 1000)),
    )
    await client.end()
    // The server commits what it has read whenever it may: had it read a
    // frame while the one before was unanswered, a commit would hold both,
    // 2,000 events, over the bucket of 1,024.
    const metrics = await scrapeMetrics(server)
    const commits = metrics.value('telemetry_commit_events_count')
    const alone = metrics.value('telemetry_commit_events_bucket{le="1024"}')
    t.diagnostic(`${commits} commits, ${alone} of at most 1,024 events`)
    assert.equal(metrics.value('telemetry_commit_events_sum'), FRAMES * 1000)
    assert.equal(alone, commits, 'no commit holds two frames')
    assert.equal(commits, FRAMES, 'one commit per frame')
    assert.equal(metrics.value('telemetry_commit_events_bucket{le="256"}'), 0)
  })
})

describe('keepalive', () => {
  test('closes a connection that stops answering pings, and keeps one that answers', async (t) => {
    // A period well above scheduling noise: the client that answers must
    // get its pong in within one period even on a loaded machine.
    const server = await startServer(['--keepalive-ms', '1000'])
    t.after(() => server.dispose())
    const alive = await IngestClient.connect(server.wsUrl)
    // A peer that has gone away without closing: it never answers a ping.
    const silent = await IngestClient.connect(server.wsUrl, {
      autoPong: false,
    })
    t.after(() => silent.terminate())
    const closed = await silent.closed
    // Pinged at one tick, found silent at the next and cut off, without a
    // close handshake (the peer is presumed gone).
    assert.equal(silent.pings, 1, 'one ping went unanswered')
    assert.equal(closed.code, 1006)
    // The client that answers is pinged on, tick after tick.
    const pings = alive.pings
    await waitFor(
      () => alive.pings >= pings + 2,
      'the client that answers is pinged twice more',
    )
    assert.equal(await alive.send('1,1,1,keepalive'), 'OK')
    await alive.end()
  })
})

describe('keepalive under backpressure', { skip: await postgresSkip() }, () => {
  test('keeps a connection that is not read while its commit waits longer than several keepalive periods', async (t) => {
    // A commit that waits for a lock the test holds: the robot's first
    // event needs the robot's row, which the test has inserted and not
    // committed. With one frame in flight the connection is then not read,
    // so the server cannot see its pongs.
    const { schema, url } = freshSchema()
    t.after(() => dropSchemas([schema]))
    const KEEPALIVE_MS = 100
    const server = await startServer(
      ['--keepalive-ms', String(KEEPALIVE_MS), '--max-frames-in-flight', '1'],
      {},
      { store: url },
    )
    t.after(() => server.dispose())
    const client = await IngestClient.connect(server.wsUrl)
    const held = await holdNewRobot(schema, 'A hold')
    t.after(() => held.release())
    let reply: Promise<string>
    try {
      reply = client.send('0,0,5,A hold')
      await held.waited('the commit waits for the lock')
      // Ten keepalive periods while the connection is not read: enough
      // for a server that expects pongs there to cut it off.
      await new Promise((resolve) => setTimeout(resolve, 10 * KEEPALIVE_MS))
    } finally {
      await held.release()
    }
    assert.equal(await reply, 'OK')
    assert.equal(client.isClosed, false, 'the connection is still open')
    // Read again, it is pinged again, and answers.
    const pings = client.pings
    await waitFor(() => client.pings >= pings + 2, 'pinged again')
    assert.equal(await client.send('1,0,6,A hold'), 'OK')
    await client.close()
  })
})

describe('GET /metrics', () => {
  test('counts lines, replies of every kind, commits and acks in Prometheus text', async (t) => {
    const server = await startServer()
    t.after(() => server.dispose())
    const client = await IngestClient.connect(server.wsUrl)
    // 2 ok, 1 dup, 1 stale, 1 conflict, 2 malformed (one of them binary).
    assert.equal(await client.send('0,0,10,m\n3,4,20,m'), 'OK\nOK')
    assert.equal(await client.send('3,4,20,m'), 'DUP')
    assert.match(await client.send('0,0,15,m'), /^ERR stale/)
    assert.match(await client.send('9,9,20,m'), /^ERR conflict/)
    assert.match(await client.send('nonsense'), /^ERR malformed/)
    assert.match(
      await client.send(Buffer.from('1,1,1,m'), true),
      /^ERR malformed/,
    )
    await client.close()
    // The server sees the close a moment after the client.
    await untilOpenConnections(server, 0)

    const metrics = await scrapeMetrics(server)
    assert.equal(metrics.status, 200)
    assert.match(
      metrics.headers.get('content-type') ?? '',
      /^text\/plain; version=0\.0\.4/,
    )
    assert.equal(metrics.value('telemetry_lines_received_total'), 7)
    const replies = (kind: string) =>
      metrics.value(`telemetry_replies_total{reply="${kind}"}`)
    assert.equal(replies('ok'), 2)
    assert.equal(replies('dup'), 1)
    assert.equal(replies('stale'), 1)
    assert.equal(replies('conflict'), 1)
    assert.equal(replies('malformed'), 2)
    assert.equal(replies('unavailable'), 0)
    assert.equal(metrics.value('telemetry_commits_failed_total'), 0)
    // Four frames with events, each committed (at least one commit each,
    // since each was sent after the previous reply).
    assert.equal(metrics.value('telemetry_commit_events_sum'), 5)
    assert.equal(metrics.value('telemetry_commit_events_count'), 4)
    assert.equal(metrics.value('telemetry_commit_duration_seconds_count'), 4)
    // One ack per frame, events or not.
    assert.equal(metrics.value('telemetry_ack_latency_seconds_count'), 6)
    assert.equal(
      metrics.value('telemetry_ack_latency_seconds_bucket{le="+Inf"}'),
      6,
    )
    assert.ok(metrics.value('telemetry_ack_latency_seconds_sum') > 0)
    assert.equal(metrics.value('telemetry_connections_open'), 0)
    // Node's own metrics come along.
    assert.ok(metrics.value('process_resident_memory_bytes') > 0)
    assert.match(metrics.text, /^nodejs_eventloop_lag_seconds /m)
  })
})

describe('backpressure under a flood', () => {
  /** The kernel's peak of the process's resident memory, in MiB. */
  const peakRssMiB = (pid: number) => memory(pid).hwm / 2 ** 20

  const REPLY_KINDS = ['ok', 'dup', 'stale', 'conflict', 'malformed']

  test('with --sync full, never holds more than --max-frames-in-flight unanswered frames of a connection while many connections send faster than it commits, and stores every OK', async (t) => {
    const IN_FLIGHT = 4
    const server = await startServer([
      '--sync',
      'full',
      '--max-frames-in-flight',
      String(IN_FLIGHT),
    ])
    t.after(() => server.dispose())
    const CONNECTIONS = 16
    const FRAMES = 25
    const LINES = 1000
    const clients = await Promise.all(
      Array.from({ length: CONNECTIONS }, () =>
        IngestClient.connect(server.wsUrl),
      ),
    )

    // Lines received and not answered yet, over all connections. A scrape
    // is taken at one moment, so both counts are of the same moment.
    let flooding = true
    let most = 0
    let scrapes = 0
    const watch = (async () => {
      while (flooding) {
        const metrics = await scrapeMetrics(server)
        const answered = REPLY_KINDS.reduce(
          (n, kind) =>
            n + metrics.value(`telemetry_replies_total{reply="${kind}"}`),
          0,
        )
        const pending =
          metrics.value('telemetry_lines_received_total') - answered
        most = Math.max(most, pending)
        scrapes++
      }
    })()

    // Everything at once: the server gets it far faster than a synced
    // commit per batch can take it.
    const replies = await Promise.all(
      clients.map((client, c) =>
        client.sendAll(bigFrames(`flood ${c}`, FRAMES, 5)),
      ),
    )
    flooding = false
    await watch
    for (const client of clients) await client.end()

    // A connection is read only while fewer than IN_FLIGHT of its frames are
    // unanswered, and a read never completes two of these frames: each
    // connection has at most IN_FLIGHT frames received and unanswered.
    const bound = CONNECTIONS * IN_FLIGHT * LINES
    t.diagnostic(
      `at most ${most} lines received and unanswered in ${scrapes} scrapes (bound ${bound}); server peak RSS ${peakRssMiB(server.pid).toFixed(0)} MiB`,
    )
    assert.ok(scrapes > 0, 'the flood was watched')
    assert.ok(
      most <= bound,
      `${most} lines were received and unanswered at once, more than ${CONNECTIONS} connections × ${IN_FLIGHT} frames × ${LINES} lines`,
    )
    for (const frames of replies) {
      assert.deepEqual(
        frames,
        Array.from({ length: FRAMES }, () => repeatLine('OK', LINES)),
      )
    }
    const robots = (await getJson(server, '/api/robots')).body as {
      event_count: number
    }[]
    assert.equal(
      robots.reduce((sum, r) => sum + r.event_count, 0),
      CONNECTIONS * FRAMES * LINES,
    )
  })
})

describe('logs', () => {
  test('writes one JSON line per connection opened and closed and per error, none per event', async (t) => {
    const server = await startServer(['--log-level', 'info'])
    t.after(() => server.dispose())
    const client = await IngestClient.connect(server.wsUrl)
    const frames = Array.from(
      { length: 300 },
      (_, i) => `${i},0,${2 * i},logged`,
    )
    await client.sendAll(frames)
    assert.match(await client.send('1,1,1,logged'), /^ERR stale/)
    await client.close()
    // Over the lines limit: logged as a warning, once.
    const over = await IngestClient.connect(server.wsUrl)
    void over.send('\n'.repeat(20_000))
    assert.equal((await over.closed).code, 1009)
    // Over the size limit: the same, without a stack.
    const big = await IngestClient.connect(server.wsUrl)
    void big.send('x'.repeat(1024 * 1024 + 1)).catch(() => {})
    assert.equal((await big.closed).code, 1009)
    await waitFor(
      () => server.stderr().split('\n').filter(Boolean).length >= 9,
      'nine log lines',
    )
    const lines = server
      .stderr()
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>)
    const messages = lines.map((l) => l.msg)
    assert.deepEqual(messages, [
      `Server listening at ${server.url}`,
      'connection opened',
      'connection closed',
      'connection opened',
      'frame over the lines-per-frame limit',
      'connection closed',
      'connection opened',
      'frame over the size limit',
      'connection closed',
    ])
    for (const line of lines.slice(1)) {
      assert.equal(typeof line.time, 'number')
      assert.equal(typeof line.level, 'number')
      assert.equal(typeof line.connection, 'number')
    }
    assert.equal(lines[2]!.frames, 301)
    assert.equal(lines[4]!.lines, 20_000)
    assert.equal(lines[7]!.maxFrameBytes, 1024 * 1024)
    // Each closed with the code the server sent, though ws never reads the
    // peer's answer after an oversized frame.
    assert.deepEqual([lines[5]!.code, lines[8]!.code], [1009, 1009])
    // A client's fault is one line, never a stack trace of the server's.
    assert.deepEqual(
      lines.filter(
        (line) => 'err' in line || /\n\s+at /.test(JSON.stringify(line)),
      ),
      [],
    )
  })
})
