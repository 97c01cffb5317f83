/**
 * The server as a process: command-line flags and environment variables,
 * exit codes, shutdown on SIGTERM and SIGINT, and durability across a
 * SIGKILL and a restart on the same store file.
 */
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import {
  IngestClient,
  getJson,
  getRobot,
  makeTempDir,
  readEvents,
  readOdometer,
  removeTempDir,
  repeatLine,
  runCli,
  runProcess,
  SEND_PATH,
  scrapeMetrics,
  startServer,
  waitFor,
  type Finished,
} from '../support/index.ts'

/** A run refused for a bad flag or variable: exit 2, a message, never listening. */
function assertUsageError(run: Finished, what: string) {
  assert.deepEqual(
    { code: run.code, signal: run.signal },
    { code: 2, signal: null },
    what,
  )
  assert.notEqual(run.stderr.trim(), '', `${what}: a message on stderr`)
  assert.doesNotMatch(run.stdout, /listening/, `${what}: never listens`)
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
      ['--port', '-1'],
    ]
    const runs = await Promise.all(
      cases.map((args) =>
        runCli(['--port', '0', '--store', 'sqlite::memory:', ...args]),
      ),
    )
    runs.forEach((run, i) => assertUsageError(run, cases[i]!.join(' ')))
    // A value that starts with a dash is the flag's value, judged as such.
    assert.match(
      runs[cases.length - 1]!.stderr,
      /^fleet-telemetry: port must be an integer from 0 to 65535, not "-1"\n/,
    )
  })

  test('prints the usage, with every flag and -h, on --help and -h, and exits 0', async () => {
    for (const flag of ['--help', '-h']) {
      const run = await runCli([flag])
      assert.deepEqual(
        { code: run.code, stderr: run.stderr },
        { code: 0, stderr: '' },
        flag,
      )
      assert.match(run.stdout, /^usage: fleet-telemetry /, flag)
      assert.match(run.stdout, /^ {2}-h, --help$/m, flag)
      assert.match(
        run.stdout,
        /^ {2}--max-frames-in-flight \(TELEMETRY_MAX_FRAMES_IN_FLIGHT, default 1024\)$/m,
        flag,
      )
    }
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

  test('exits 1 with a message when the folder of the store can never be made', async () => {
    // Node's own recursive mkdir never returns under /proc.
    const run = await runCli([
      '--port',
      '0',
      '--store',
      'sqlite:/proc/nope/t.db',
    ])
    assert.deepEqual(
      { code: run.code, signal: run.signal },
      { code: 1, signal: null },
    )
    assert.match(run.stderr, /cannot start: ENOENT: .*mkdir '\/proc\/nope'/)
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
    runs.forEach((run, i) => assertUsageError(run, JSON.stringify(cases[i])))
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
    await waitFor(
      () => server.stderr().includes('connection'),
      `info logs of the connection on stderr: ${server.stderr()}`,
    )
    assert.equal((await server.stop()).code, 0)
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
    assert.equal((await server.stop()).code, 0)
    // Once it has exited, all it ever wrote is read: nothing, not even the
    // close of the connection or the shutdown, which are logged at info.
    assert.equal((await quiet.stop()).code, 0)
    assert.equal(quiet.stderr(), '', 'warn hides the info logs of connections')
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

describe('npm run send', () => {
  /** `node dist/src/send.js args…`, run to its end. */
  const send = (args: readonly string[]) =>
    runProcess(process.execPath, [SEND_PATH, ...args])

  test('prints its usage on --help and -h, and exits 2 for a bad argument', async () => {
    for (const flag of ['--help', '-h']) {
      const run = await send([flag])
      assert.equal(run.code, 0, flag)
      assert.match(run.stdout, /^usage: npm run send -- \[--url URL\]/, flag)
    }
    for (const args of [['--url', 'foo', '0,0,0,r'], ['--bogus']]) {
      const run = await send(args)
      assert.equal(run.code, 2, args.join(' '))
      assert.match(run.stderr, /^send: .*\n\nusage: /, args.join(' '))
      assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace')
    }
  })

  test('prints each reply and exits 0 when every line is OK or DUP, 1 otherwise', async (t) => {
    const server = await startServer()
    t.after(() => server.dispose())
    const url = ['--url', server.upstreamUrl]
    const ok = await send([...url, '0,0,1,sent', '1,0,2,sent\n1,0,2,sent'])
    assert.deepEqual(
      { code: ok.code, stdout: ok.stdout },
      { code: 0, stdout: 'OK\nOK\nDUP\n' },
    )
    const stale = await send([...url, '--', '-1,0,3,sent', '5,5,0,sent'])
    assert.equal(stale.code, 1)
    assert.match(stale.stdout, /^OK\nERR stale /)
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
    assert.equal((await server.stop()).code, 0)
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
    // At level info it logs how many frames it received on the connection.
    const first = await startServer(['--log-level', 'info'], {}, { storePath })
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
    // Stream frames without waiting for replies, up to 200 unanswered, for
    // as long as the connection is open; signal once some were answered.
    let sent = 0
    const streaming = client.stream(
      () => ({ data: frame(sent++), tag: undefined }),
      200,
    )
    await waitFor(
      () => client.frames.filter((f) => f.reply !== undefined).length >= 50,
      '50 answered frames',
    )
    const sentAtSignal = client.frames.length
    first.kill('SIGTERM')
    await streaming
    assert.deepEqual(await first.exited, { code: 0, signal: null })
    await client.closed
    const replies = client.frames.map((f) => f.replied)

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
    // Every frame it received was answered.
    assert.deepEqual(
      first
        .log()
        .filter((line) => line.msg === 'connection closed')
        .map((line) => line.frames),
      [okFrames],
      'frames received (server log) are the frames answered',
    )

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
    const stored = await readEvents(second, robot)
    assert.equal(stored.length, okEvents)
    stored.forEach((event, i) =>
      assert.deepEqual(event, { robot, x: i, y: 0, timestamp: i }),
    )
    assert.equal((await second.stop()).code, 0)
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
    const stored = await readEvents(second, 'Durable')
    assert.equal(stored.length, 1000)
    assert.deepEqual(
      await readOdometer(second, 'Durable', { start_time: 100, end_time: 199 }),
      { robot: 'Durable', odometer: 99, start_time: 100, end_time: 199 },
    )
    assert.deepEqual(await readOdometer(second, 'Bender'), {
      robot: 'Bender',
      odometer: 2,
      start_time: null,
      end_time: null,
    })
    assert.deepEqual(
      await readOdometer(second, 'Bender', { start_time: 0, end_time: 1 }),
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
    assert.equal((await second.stop()).code, 0)
  })
})

describe('backpressure', () => {
  /**
   * The most bytes the kernel can hold for one loopback TCP connection in
   * one direction: the sender's send buffer and the receiver's receive
   * buffer at their largest (Linux autotunes them up to these).
   */
  function kernelBufferBytes(): number {
    const largest = (name: string) =>
      Number(readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').split(/\s+/)[2])
    const bytes = largest('tcp_wmem') + largest('tcp_rmem')
    assert.ok(bytes > 0, 'the TCP buffer sizes are readable')
    return bytes
  }

  /** docs/protocol.md, Backpressure: the fixed reply limit. */
  const MAX_WAITING_REPLY_BYTES = 8 * 1024 * 1024

  test('stops reading from a client that never reads its replies, and keeps serving others', async (t) => {
    // Frames of 349,000 lines are over the default lines-per-frame limit,
    // which would close the connection instead of testing backpressure.
    const server = await startServer(['--max-lines-per-frame', '400000'])
    t.after(() => server.dispose())
    const LINES = 349_000
    const FRAMES = 40
    const received = async () =>
      (await scrapeMetrics(server)).value('telemetry_lines_received_total')

    // The reply to one such line sizes the reply to a frame of them.
    const probe = await IngestClient.connect(server.wsUrl)
    const reply = await probe.send('xx')
    assert.match(reply, /^ERR malformed \S/)
    await probe.end()
    const replyBytes = LINES * Buffer.byteLength(`${reply}\n`) - 1
    const before = await received()

    // 40 frames of 1 MiB, each of 349,000 malformed lines: about 20 MB of
    // replies a frame, which this client never reads.
    const flood = await IngestClient.connect(server.wsUrl)
    t.after(() => flood.terminate())
    flood.ws.pause()
    const frame = 'xx\n'.repeat(LINES)
    for (let i = 0; i < FRAMES; i++) flood.sendFrame(frame)

    // Wait until the server has read a frame and reads no more: the count
    // of lines it received is the same over five scrapes in a row. Without
    // backpressure that is not before all 40 frames are read, since the
    // client keeps the socket full.
    let last = -1
    let same = 0
    const read = await waitFor(async () => {
      const now = await received()
      same = now === last ? same + 1 : 0
      last = now
      return same >= 5 && now - before >= LINES
        ? (now - before) / LINES
        : undefined
    }, 'the server reads a frame of the client that reads no replies, then stops')
    // Replies that do not fit in the kernel's socket buffers wait in the
    // server, which stops reading once 8 MiB of them wait: it can have read
    // only the frames whose replies fill both.
    const mostFrames = Math.ceil(
      (kernelBufferBytes() + MAX_WAITING_REPLY_BYTES) / replyBytes,
    )
    t.diagnostic(
      `read ${read} of ${FRAMES} frames (${replyBytes} bytes of replies each) before it stopped; at most ${mostFrames}`,
    )
    assert.ok(read >= 1, 'it read the first frame')
    assert.ok(
      read <= mostFrames,
      `it read ${read} frames of a client that reads no replies, at most ${mostFrames} may be`,
    )

    // Meanwhile another client is served, and the flood is still not read.
    const other = await IngestClient.connect(server.wsUrl)
    assert.equal(await other.send('1,2,3,Neighbour'), 'OK')
    await other.end()
    assert.equal(
      await received(),
      last + 2,
      'only the two lines of the other client',
    )
  })
})
