/**
 * The server as a process: command-line flags and environment variables,
 * exit codes, shutdown on SIGTERM and SIGINT, and durability across a
 * SIGKILL and a restart on the same store file.
 */
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import WebSocket from 'ws'
import {
  IngestClient,
  getJson,
  getRobot,
  makeTempDir,
  removeTempDir,
  repeatLine,
  runCli,
  startServer,
  type ApiEvent,
} from './helpers.ts'

/** Resolves after `ms` milliseconds. */
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Waits until `check()` is true, polling every 20 ms, for at most `ms`. */
async function eventually(check: () => boolean, ms = 3000) {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) return false
    await sleep(20)
  }
  return true
}

describe('command line', () => {
  test('exits 2 with a message on stderr for an unknown flag or a bad value', async () => {
    const cases = [
      ['--port', 'abc'],
      ['--port', '70000'],
      ['--port'],
      ['--bogus'],
      ['--store', 'mysql://x'],
      ['--log-level', 'loud'],
    ]
    const runs = await Promise.all(
      cases.map((args) =>
        runCli(['--port', '0', '--store', 'sqlite::memory:', ...args]),
      ),
    )
    runs.forEach((run, i) => {
      const what = cases[i]!.join(' ')
      assert.deepEqual(
        { code: run.code, signal: run.signal },
        { code: 2, signal: null },
        what,
      )
      assert.notEqual(run.stderr.trim(), '', `${what}: a message on stderr`)
      assert.doesNotMatch(run.stdout, /listening/, `${what}: never listens`)
    })
  })

  test('exits 1 with a message when the store cannot be opened', async () => {
    // A folder is not a database file; runCli kills a process that has not
    // exited by itself within its timeout.
    const folder = makeTempDir()
    try {
      const run = await runCli(['--port', '0', '--store', `sqlite:${folder}`])
      assert.deepEqual(
        { code: run.code, signal: run.signal },
        { code: 1, signal: null },
      )
      assert.match(run.stderr, /cannot start: unable to open database file/)
      assert.doesNotMatch(run.stdout, /listening/)
    } finally {
      removeTempDir(folder)
    }
  })

  test('exits 2 for a bad value in an environment variable', async () => {
    const cases: Record<string, string>[] = [
      { TELEMETRY_PORT: 'abc' },
      { TELEMETRY_STORE: 'mysql://x' },
      { TELEMETRY_LOG_LEVEL: 'loud' },
    ]
    const runs = await Promise.all(
      cases.map((env) =>
        runCli([], {
          TELEMETRY_PORT: '0',
          TELEMETRY_STORE: 'sqlite::memory:',
          ...env,
        }),
      ),
    )
    runs.forEach((run, i) => {
      const what = JSON.stringify(cases[i])
      assert.deepEqual(
        { code: run.code, signal: run.signal },
        { code: 2, signal: null },
        what,
      )
      assert.notEqual(run.stderr.trim(), '', `${what}: a message on stderr`)
      assert.doesNotMatch(run.stdout, /listening/, `${what}: never listens`)
    })
  })

  test('reads host, port, store and log level from TELEMETRY_* environment variables', async (t) => {
    const dir = makeTempDir()
    t.after(() => removeTempDir(dir))
    const store = `sqlite:${join(dir, 'from-env.db')}`
    const server = await startServer(
      [],
      {
        TELEMETRY_HOST: '127.0.0.1',
        TELEMETRY_PORT: '0',
        TELEMETRY_STORE: store,
        TELEMETRY_LOG_LEVEL: 'info',
      },
      { bare: true },
    )
    t.after(() => server.dispose())
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.notEqual(server.url, 'http://127.0.0.1:0')
    assert.equal(server.store, store)
    assert.ok(existsSync(join(dir, 'from-env.db')), 'the store file exists')
    const client = await IngestClient.connect(server.wsUrl)
    assert.equal(await client.send('0,0,1,From env'), 'OK')
    await client.close()
    // Level info logs connections; warn (the flag of the other tests) does not.
    assert.ok(
      await eventually(() => server.stderr().includes('connection')),
      `info logs on stderr: ${server.stderr()}`,
    )
    assert.equal(await server.stop(), 0)
  })

  test('lets flags win over environment variables', async (t) => {
    const dir = makeTempDir()
    t.after(() => removeTempDir(dir))
    const store = `sqlite:${join(dir, 'from-flag.db')}`
    const server = await startServer(
      [
        '--host',
        '127.0.0.1',
        '--port',
        '0',
        '--store',
        store,
        '--log-level',
        'warn',
      ],
      {
        TELEMETRY_HOST: '256.0.0.1',
        TELEMETRY_PORT: 'abc',
        TELEMETRY_STORE: 'mysql://x',
        TELEMETRY_LOG_LEVEL: 'loud',
      },
      { bare: true },
    )
    t.after(() => server.dispose())
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.equal(server.store, store)
    assert.equal((await getJson(server, '/healthz')).status, 200)

    const quiet = await startServer(['--log-level', 'warn'], {
      TELEMETRY_LOG_LEVEL: 'info',
    })
    t.after(() => quiet.dispose())
    const client = await IngestClient.connect(quiet.wsUrl)
    assert.equal(await client.send('0,0,1,Quiet'), 'OK')
    await client.close()
    await sleep(200)
    assert.equal(quiet.stderr(), '', 'warn hides the info logs of connections')
    assert.equal(await server.stop(), 0)
    assert.equal(await quiet.stop(), 0)
  })

  test('closes a connection with 1009 on a frame over --max-frame-bytes and answers one of exactly that size', async (t) => {
    const server = await startServer(['--max-frame-bytes', '100'])
    t.after(() => server.dispose())
    const client = await IngestClient.connect(server.wsUrl)
    const fits = '0,0,1,' + 'm'.repeat(94)
    assert.equal(Buffer.byteLength(fits), 100)
    assert.equal(await client.send(fits), 'OK')
    await assert.rejects(client.send('0,0,2,' + 'm'.repeat(95)))
    assert.equal((await client.closed).code, 1009)
    const other = await IngestClient.connect(server.wsUrl)
    assert.equal(await other.send('0,0,3,' + 'm'.repeat(94)), 'OK')
    await other.end()
    assert.equal((await getRobot(server, 'm'.repeat(94))).event_count, 2)
  })
})

describe('defaults', () => {
  test('stores in ./data/telemetry.db, creating the folder, when no store is given', async (t) => {
    const server = await startServer(
      ['--port', '0', '--log-level', 'warn'],
      {},
      { bare: true },
    )
    t.after(() => server.dispose())
    assert.equal(server.store, 'sqlite:./data/telemetry.db')
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.ok(existsSync(join(server.cwd, 'data', 'telemetry.db')))
    const client = await IngestClient.connect(server.wsUrl)
    assert.equal(await client.send('1,2,3,Default'), 'OK')
    await client.close()
    assert.equal(await server.stop(), 0)
  })
})

describe('shutdown', () => {
  test('exits 0 on SIGTERM and on SIGINT, closing open connections', async (t) => {
    const servers = await Promise.all([startServer(), startServer()])
    for (const server of servers) t.after(() => server.dispose())
    const clients = await Promise.all(
      servers.map((server) => IngestClient.connect(server.wsUrl)),
    )
    for (const client of clients)
      assert.equal(await client.send('0,0,1,Idle'), 'OK')
    servers[0]!.kill('SIGTERM')
    servers[1]!.kill('SIGINT')
    const exits = await Promise.all(servers.map((server) => server.exited))
    assert.deepEqual(exits, [
      { code: 0, signal: null },
      { code: 0, signal: null },
    ])
    for (const client of clients) await client.closed
  })

  test('on SIGTERM answers every frame it received, keeps every OK event and exits 0', async (t) => {
    const dir = makeTempDir()
    t.after(() => removeTempDir(dir))
    const storePath = join(dir, 'sigterm.db')
    const first = await startServer([], {}, { storePath })
    t.after(() => first.dispose())

    const robot = 'Streamer'
    const perFrame = 5
    const frame = (i: number) =>
      Array.from({ length: perFrame }, (_, k) => {
        const ts = i * perFrame + k
        return `${ts},0,${ts},${robot}`
      }).join('\n')
    const allOk = repeatLine('OK', perFrame)

    const client = await IngestClient.connect(first.wsUrl)
    let open = true
    void client.closed.then(() => {
      open = false
    })
    const replies: Promise<string>[] = []
    let answered = 0
    let signalled = false
    let sentAtSignal = 0
    // Stream bursts of frames without waiting for replies; signal once some
    // replies came back, and go on streaming until the server closes.
    const maxFrames = 20_000
    while (open && replies.length < maxFrames) {
      for (let k = 0; k < 20 && open; k++) {
        const reply = client.send(frame(replies.length))
        reply.then(
          () => answered++,
          () => {},
        )
        replies.push(reply)
      }
      if (!signalled && answered >= 50) {
        first.kill('SIGTERM')
        signalled = true
        sentAtSignal = replies.length
      }
      await sleep(1)
    }
    assert.ok(signalled, 'the server was signalled while the client streamed')
    assert.deepEqual(await first.exited, { code: 0, signal: null })
    await client.closed

    // The answered frames are the first ones, each all OK; the others got no reply.
    const outcomes = await Promise.allSettled(replies)
    const firstUnanswered = outcomes.findIndex((o) => o.status === 'rejected')
    const okFrames = firstUnanswered < 0 ? outcomes.length : firstUnanswered
    assert.ok(okFrames > 0, 'some frames were answered')
    t.diagnostic(
      `${okFrames} of ${replies.length} frames answered, ${sentAtSignal} sent before the signal`,
    )
    outcomes.forEach((outcome, i) => {
      if (i < okFrames) {
        assert.deepEqual(
          outcome,
          { status: 'fulfilled', value: allOk },
          `frame ${i}`,
        )
      } else {
        assert.equal(
          outcome.status,
          'rejected',
          `frame ${i} after the first unanswered one`,
        )
      }
    })

    // After a restart the store holds exactly the events answered OK.
    const second = await startServer([], {}, { storePath })
    t.after(() => second.dispose())
    const okEvents = okFrames * perFrame
    assert.deepEqual(await getRobot(second, robot), {
      name: robot,
      odometer: okEvents - 1,
      last_x: okEvents - 1,
      last_y: 0,
      first_timestamp: 0,
      last_timestamp: okEvents - 1,
      event_count: okEvents,
    })
    const stored = (await getJson(second, `/api/robots/${robot}/events`))
      .body as ApiEvent[]
    assert.equal(stored.length, okEvents)
    stored.forEach((event, i) =>
      assert.deepEqual(event, { robot, x: i, y: 0, timestamp: i }),
    )
    assert.equal(await second.stop(), 0)
  })
})

describe('durability', () => {
  test('keeps acknowledged events after a SIGKILL and goes on from them after a restart on the same store', async (t) => {
    const dir = makeTempDir()
    t.after(() => removeTempDir(dir))
    const storePath = join(dir, 'sigkill.db')
    const first = await startServer([], {}, { storePath })
    t.after(() => first.dispose())

    const client = await IngestClient.connect(first.wsUrl)
    const frames = Array.from({ length: 100 }, (_, i) =>
      Array.from(
        { length: 10 },
        (_, k) => `${i * 10 + k},0,${i * 10 + k},Durable`,
      ).join('\n'),
    )
    assert.deepEqual(
      await client.sendAll(frames),
      frames.map(() => repeatLine('OK', 10)),
    )
    assert.equal(
      await client.send('0,0,0,Bender\n1,0,1,Bender\n0,0,2,Bender'),
      'OK\nOK\nOK',
    )
    first.kill('SIGKILL')
    assert.deepEqual(await first.exited, { code: null, signal: 'SIGKILL' })
    await client.closed

    const second = await startServer([], {}, { storePath })
    t.after(() => second.dispose())
    assert.deepEqual(await getRobot(second, 'Durable'), {
      name: 'Durable',
      odometer: 999,
      last_x: 999,
      last_y: 0,
      first_timestamp: 0,
      last_timestamp: 999,
      event_count: 1000,
    })
    const stored = (await getJson(second, '/api/robots/Durable/events'))
      .body as ApiEvent[]
    assert.equal(stored.length, 1000)
    assert.deepEqual(
      (
        await getJson(
          second,
          '/api/robots/Durable/odometer?start_time=100&end_time=199',
        )
      ).body,
      { robot: 'Durable', odometer: 99, start_time: 100, end_time: 199 },
    )
    assert.deepEqual(
      (await getJson(second, '/api/robots/Bender/odometer')).body,
      {
        robot: 'Bender',
        odometer: 2,
        start_time: null,
        end_time: null,
      },
    )
    assert.deepEqual(
      (
        await getJson(
          second,
          '/api/robots/Bender/odometer?start_time=0&end_time=1',
        )
      ).body,
      { robot: 'Bender', odometer: 1, start_time: 0, end_time: 1 },
    )

    // The rules go on from the stored state.
    const again = await IngestClient.connect(second.wsUrl)
    const lines = await again.lines(
      [
        '999,0,999,Durable',
        '500,0,500,Durable',
        '1,1,500,Durable',
        '0,0,1000,Durable',
        '0,0,3,Bender',
      ].join('\n'),
    )
    assert.equal(lines.length, 5)
    assert.deepEqual(
      [lines[0], lines[1], lines[3], lines[4]],
      ['DUP', 'DUP', 'OK', 'OK'],
    )
    assert.match(lines[2]!, /^ERR conflict \S/)
    assert.equal(await again.send('0,0,2000,Durable'), 'OK')
    assert.match(await again.send('0,0,1500,Durable'), /^ERR stale \S/)
    await again.end()
    assert.equal((await getRobot(second, 'Durable')).odometer, 1998)
    assert.equal(await second.stop(), 0)
  })
})

describe('backpressure', () => {
  /** The server's resident memory, from /proc (Linux). */
  function rssMiB(pid: number): number {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kib = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1])
    return kib / 1024
  }

  test('stops reading from a client that never reads its replies, and keeps serving others', async (t) => {
    // Frames of 349,000 lines are over the default lines-per-frame limit,
    // which would close the connection instead of testing backpressure.
    const server = await startServer(['--max-lines-per-frame', '400000'])
    t.after(() => server.dispose())
    // 40 frames of 1 MiB, each of 350,000 malformed lines: about 20 MB of
    // replies a frame, which this client never reads.
    const flood = new WebSocket(`${server.wsUrl}/upstream`)
    t.after(() => flood.terminate())
    await new Promise((resolve, reject) => {
      flood.once('open', resolve)
      flood.once('error', reject)
    })
    flood.pause()
    const frame = 'xx\n'.repeat(349_000)
    for (let i = 0; i < 40; i++) flood.send(frame)

    // Meanwhile another client is served.
    await new Promise((resolve) => setTimeout(resolve, 3000))
    const other = await IngestClient.connect(server.wsUrl)
    assert.equal(await other.send('1,2,3,Neighbour'), 'OK')
    await other.close()
    const rss = rssMiB(server.pid)
    // Without backpressure the server took every frame and held its
    // replies: about 20 MB a frame.
    assert.ok(rss < 300, `server RSS ${rss.toFixed(0)} MiB`)
  })
})
