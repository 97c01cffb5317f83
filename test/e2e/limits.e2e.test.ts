/**
 * The configurable limits of ingest (connections, lines per frame, frames in
 * flight, keepalive), and GET /metrics, against a really started server.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { WebSocket } from 'ws'
import {
  assertErrorBody,
  getJson,
  IngestClient,
  refusedUpgrade,
  request,
  startServer,
} from './helpers.ts'

/** The value of one series of a Prometheus text exposition. */
function sample(text: string, series: string): number {
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`${series} `) && !l.startsWith('#'))
  assert.ok(line !== undefined, `series ${series} is in /metrics`)
  return Number(line.slice(series.length + 1))
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

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
    // The close is seen by the server a moment after the client's.
    let c: IngestClient | undefined
    for (let i = 0; i < 50 && c === undefined; i++) {
      c = await IngestClient.connect(server.wsUrl).catch(() => undefined)
      if (c === undefined) await sleep(20)
    }
    assert.ok(c !== undefined, 'a connection is accepted again')
    assert.equal(await c.send('1,1,1,limit-c'), 'OK')
    const metrics = (await request(server, '/metrics')).text
    assert.equal(sample(metrics, 'telemetry_connections_open'), 2)
    assert.ok(sample(metrics, 'telemetry_connections_refused_total') >= 1)
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
    await other.end()
  })
})

describe('frames in flight', () => {
  test('answers every frame in order with a limit of one frame in flight', async (t) => {
    const server = await startServer(['--max-frames-in-flight', '1'])
    t.after(() => server.dispose())
    const client = await IngestClient.connect(server.wsUrl)
    const frames = Array.from({ length: 200 }, (_, i) => `${i},0,${i},inflight`)
    const replies = await client.sendAll(frames)
    assert.deepEqual(
      replies,
      frames.map(() => 'OK'),
    )
    await client.end()
  })
})

describe('keepalive', () => {
  test('closes a connection that stops answering pings, and keeps one that answers', async (t) => {
    const server = await startServer(['--keepalive-ms', '200'])
    t.after(() => server.dispose())
    const alive = await IngestClient.connect(server.wsUrl)
    // A peer that has gone away without closing: it never answers a ping.
    const silent = new WebSocket(`${server.wsUrl}/upstream`, {
      autoPong: false,
    })
    t.after(() => silent.terminate())
    const silentClosed = new Promise<number>((resolve) =>
      silent.once('close', (code) => resolve(code)),
    )
    let pings = 0
    silent.on('ping', () => pings++)
    await new Promise((resolve, reject) => {
      silent.once('open', resolve)
      silent.once('error', reject)
    })
    const started = Date.now()
    const code = await silentClosed
    // Closed after a ping went unanswered for a whole period, without a
    // close handshake (the peer is presumed gone).
    assert.ok(pings >= 1, 'the server pinged')
    assert.equal(code, 1006)
    assert.ok(Date.now() - started >= 200)
    // The client that answers pings is still served.
    await sleep(500)
    assert.equal(await alive.send('1,1,1,keepalive'), 'OK')
    await alive.end()
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
    for (let i = 0; i < 100; i++) {
      const open = (await request(server, '/metrics')).text
      if (sample(open, 'telemetry_connections_open') === 0) break
      await sleep(20)
    }

    const response = await request(server, '/metrics')
    assert.equal(response.status, 200)
    assert.match(
      response.headers.get('content-type') ?? '',
      /^text\/plain; version=0\.0\.4/,
    )
    const text = response.text
    assert.equal(sample(text, 'telemetry_lines_received_total'), 7)
    const replies = (kind: string) =>
      sample(text, `telemetry_replies_total{reply="${kind}"}`)
    assert.equal(replies('ok'), 2)
    assert.equal(replies('dup'), 1)
    assert.equal(replies('stale'), 1)
    assert.equal(replies('conflict'), 1)
    assert.equal(replies('malformed'), 2)
    assert.equal(replies('unavailable'), 0)
    assert.equal(sample(text, 'telemetry_commits_failed_total'), 0)
    // Four frames with events, each committed (at least one commit each,
    // since each was sent after the previous reply).
    assert.equal(sample(text, 'telemetry_commit_events_sum'), 5)
    assert.equal(sample(text, 'telemetry_commit_events_count'), 4)
    assert.equal(sample(text, 'telemetry_commit_duration_seconds_count'), 4)
    // One ack per frame, events or not.
    assert.equal(sample(text, 'telemetry_ack_latency_seconds_count'), 6)
    assert.equal(
      sample(text, 'telemetry_ack_latency_seconds_bucket{le="+Inf"}'),
      6,
    )
    assert.ok(sample(text, 'telemetry_ack_latency_seconds_sum') > 0)
    assert.equal(sample(text, 'telemetry_connections_open'), 0)
    // Node's own metrics come along.
    assert.ok(sample(text, 'process_resident_memory_bytes') > 0)
    assert.match(text, /^nodejs_eventloop_lag_seconds /m)
  })
})

describe('backpressure under a flood', () => {
  /** The kernel's peak of the process's resident memory, in MiB. */
  function peakRssMiB(pid: number): number {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    return Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1]) / 1024
  }

  test('with --sync full, stays bounded in memory while many connections send faster than it commits, and stores every OK', async (t) => {
    const server = await startServer([
      '--sync',
      'full',
      '--max-frames-in-flight',
      '32',
    ])
    t.after(() => server.dispose())
    const CONNECTIONS = 16
    const FRAMES = 500
    const LINES = 50
    let ok = 0
    let other = 0
    await Promise.all(
      Array.from({ length: CONNECTIONS }, async (_, c) => {
        const ws = new WebSocket(`${server.wsUrl}/upstream`, {
          perMessageDeflate: false,
        })
        await new Promise((resolve, reject) => {
          ws.once('open', resolve)
          ws.once('error', reject)
        })
        let replies = 0
        const done = new Promise<void>((resolve, reject) => {
          ws.on('message', (data) => {
            for (const line of String(data).split('\n')) {
              if (line === 'OK') ok++
              else other++
            }
            if (++replies === FRAMES) resolve()
          })
          ws.once('close', () => reject(new Error('closed early')))
        })
        // Everything at once: the server gets it far faster than a synced
        // commit per batch can take it.
        for (let f = 0; f < FRAMES; f++) {
          const lines = []
          for (let l = 0; l < LINES; l++) {
            const ts = f * LINES + l
            lines.push(`${ts},${c},${ts},flood-${c}-${l % 5}`)
          }
          ws.send(lines.join('\n'))
        }
        await done
        ws.close()
      }),
    )
    assert.equal(other, 0)
    assert.equal(ok, CONNECTIONS * FRAMES * LINES)
    const robots = (await getJson(server, '/api/robots')).body as {
      event_count: number
    }[]
    assert.equal(
      robots.reduce((sum, r) => sum + r.event_count, 0),
      ok,
    )
    const peak = peakRssMiB(server.pid)
    t.diagnostic(`server peak RSS ${peak.toFixed(0)} MiB`)
    assert.ok(peak < 300, `server peak RSS ${peak.toFixed(0)} MiB`)
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
    for (let i = 0; i < 100; i++) {
      if (server.stderr().split('\n').filter(Boolean).length >= 6) break
      await sleep(20)
    }
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
    ])
    for (const line of lines.slice(1)) {
      assert.equal(typeof line.time, 'number')
      assert.equal(typeof line.level, 'number')
      assert.equal(typeof line.connection, 'number')
    }
    assert.equal(lines[2]!.frames, 301)
    assert.equal(lines[4]!.lines, 20_000)
  })
})
