/**
 * Access control against the started server (docs/security.md): every
 * endpoint with no token, an unknown token and each role; robot scopes of
 * ingest tokens, line by line; `access_token` on GET and on the upgrade;
 * revocation by SIGHUP while a connection streams; the start refused on an
 * open address; failed authentications in /metrics and the log, never a
 * token.
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import {
  IngestClient,
  assertError,
  downloadMcap,
  getJson,
  makeTempDir,
  newToken,
  openMcap,
  refusedUpgrade,
  removeTempDir,
  request,
  robotPath,
  runCli,
  runProcess,
  SEND_PATH,
  scrapeMetrics,
  startServer,
  waitFor,
  withTimeout,
  writeTokens,
  type ServerProcess,
  type TextResponse,
  type TokenSpec,
  type TokensFile,
} from '../support/index.ts'

const SPECS: readonly TokenSpec[] = [
  { name: 'ops', role: 'admin' },
  { name: 'dashboard', role: 'read' },
  { name: 'fleet', role: 'ingest' },
  { name: 'bay-7', role: 'ingest', robots: ['Bender', 'warehouse-7/*'] },
]

/** The routes of the API and the server, each answered 200 to a reader. */
const READ_PATHS = [
  '/metrics',
  '/api/openapi.json',
  '/api/robots',
  robotPath('Bender'),
  robotPath('Bender', '/events'),
  robotPath('Bender', '/odometer?start_time=0&end_time=9'),
  robotPath('Bender', '/events.mcap'),
  '/api/export.mcap?profile=ros2',
]

function bearer(token: string): RequestInit {
  return { headers: { authorization: `Bearer ${token}` } }
}

/** A 401 of the catalog, with the Bearer challenge. */
function assertUnauthorized(response: TextResponse, what: string) {
  assertError(response, 'UNAUTHORIZED', what)
  assert.match(
    response.headers.get('www-authenticate') ?? '',
    /^Bearer\b/,
    `${what}: WWW-Authenticate`,
  )
}

describe('access control', () => {
  let dir: string
  let tokens: TokensFile
  let server: ServerProcess

  before(async () => {
    dir = makeTempDir('telemetry-access-')
    tokens = writeTokens(join(dir, 'tokens.json'), SPECS)
    server = await startServer(['--tokens', tokens.file])
    // One robot to read.
    const writer = await IngestClient.connect(server.wsUrl, {
      token: tokens.fleet,
    })
    assert.equal(await writer.send('1,2,1000,Bender'), 'OK')
    await writer.close()
  })

  after(async () => {
    await server?.dispose()
    removeTempDir(dir)
  })

  test('says so on the listening line', () => {
    assert.equal(server.access, 'access control: 4 tokens')
  })

  test('answers every HTTP endpoint by role: 401 without a valid token, 403 to ingest, 200 to read and admin', async () => {
    for (const path of READ_PATHS) {
      assertUnauthorized(await request(server, path), `${path}, no token`)
      assertUnauthorized(
        await request(server, path, bearer(newToken())),
        `${path}, unknown token`,
      )
      assertUnauthorized(
        await request(server, path, {
          headers: { authorization: 'Basic b3A6eA==' },
        }),
        `${path}, another scheme`,
      )
      assertError(
        await request(server, path, bearer(tokens.fleet!)),
        'FORBIDDEN',
        `${path}, ingest token`,
      )
      for (const name of ['dashboard', 'ops']) {
        const response = await request(server, path, bearer(tokens[name]!))
        assert.equal(response.status, 200, `${path}, ${name}: ${response.text}`)
      }
    }
    // A reader still gets the catalog's answers of the routes.
    assertError(
      await request(server, robotPath('Nobody'), bearer(tokens.dashboard!)),
      'ROBOT_NOT_FOUND',
      'unknown robot, read token',
    )
    assertError(
      await request(server, '/nowhere', bearer(tokens.dashboard!)),
      'ROUTE_NOT_FOUND',
      'unknown route, read token',
    )
    // Without a token, even a route that does not exist says 401 first.
    assertUnauthorized(await request(server, '/nowhere'), 'unknown route')
  })

  test('exports MCAP only to read and admin tokens, also from a download link with access_token', async () => {
    for (const path of [
      robotPath('Bender', '/events.mcap'),
      '/api/export.mcap?robot=Bender',
    ]) {
      for (const token of [undefined, newToken(), tokens.fleet!]) {
        const refused = await downloadMcap({ url: server.url, token }, path)
        assert.equal(
          refused.status,
          token === tokens.fleet ? 403 : 401,
          `${path}: ${new TextDecoder().decode(refused.bytes)}`,
        )
        assert.equal(
          refused.headers.get('content-type'),
          'application/json; charset=utf-8',
        )
      }
      const link = `${path}${path.includes('?') ? '&' : '?'}access_token=${tokens.dashboard}`
      for (const [token, at] of [
        [tokens.ops, path],
        [tokens.dashboard, path],
        [undefined, link],
      ] as const) {
        const file = await downloadMcap({ url: server.url, token }, at)
        assert.equal(file.status, 200, at)
        assert.equal(file.headers.get('content-type'), 'application/vnd.mcap')
        const mcap = await openMcap(file.bytes)
        assert.equal(mcap.statistics!.messageCount, 2n)
        assert.deepEqual(
          [...mcap.channelsById.values()].map((c) => c.metadata.get('robot')),
          ['Bender', 'Bender'],
        )
      }
    }
  })

  test('keeps /healthz open for load balancers', async () => {
    const health = await getJson(server, '/healthz')
    assert.deepEqual(
      { status: health.status, body: health.body },
      { status: 200, body: { status: 'ok', store: { writable: true } } },
    )
  })

  test('answers the /upstream upgrade by role, before any frame', async () => {
    for (const [token, status, what] of [
      [undefined, 401, 'no token'],
      [newToken(), 401, 'unknown token'],
      [tokens.dashboard, 403, 'read token'],
    ] as const) {
      const refused = await refusedUpgrade(server.wsUrl, '/upstream', token)
      assert.equal(refused.status, status, `${what}: ${refused.body}`)
      const body = JSON.parse(refused.body) as { code: string }
      assert.equal(body.code, status === 401 ? 'UNAUTHORIZED' : 'FORBIDDEN')
      assert.equal(
        refused.challenge !== undefined,
        status === 401,
        `${what}: WWW-Authenticate only with 401`,
      )
    }
    for (const name of ['fleet', 'ops']) {
      const client = await IngestClient.connect(server.wsUrl, {
        token: tokens[name],
      })
      assert.equal(await client.send(`0,0,${2000},${name}-bot`), 'OK')
      await client.close()
    }
  })

  test('takes access_token in the query of GET requests and upgrades, never twice or elsewhere', async () => {
    const ok = await request(
      server,
      `/api/robots?access_token=${tokens.dashboard}`,
    )
    assert.equal(ok.status, 200, ok.text)
    assert.equal(ok.headers.get('cache-control'), 'private')
    const client = await IngestClient.connect(server.wsUrl, {
      path: `/upstream?access_token=${encodeURIComponent(tokens.fleet!)}`,
    })
    assert.equal(await client.send('0,0,3000,query-bot'), 'OK')
    await client.close()
    assertUnauthorized(
      await request(server, `/api/robots?access_token=${newToken()}`),
      'unknown query token',
    )
    // RFC 6750 §2: one method at a time.
    assertUnauthorized(
      await request(
        server,
        `/api/robots?access_token=${tokens.dashboard}`,
        bearer(tokens.dashboard!),
      ),
      'header and query',
    )
    assertUnauthorized(
      await request(
        server,
        `/api/robots?access_token=${tokens.dashboard}&access_token=${tokens.dashboard}`,
      ),
      'twice in the query',
    )
    assertUnauthorized(
      await request(server, `/api/robots?access_token=${tokens.ops}`, {
        method: 'POST',
      }),
      'on a POST',
    )
  })

  test("answers a line outside an ingest token's robots with ERR forbidden and stores nothing of it", async () => {
    const client = await IngestClient.connect(server.wsUrl, {
      token: tokens['bay-7'],
    })
    const before = await scrapeMetrics({ url: server.url, token: tokens.ops })
    const lines = [
      '5,5,5000,Bender',
      '1,1,5000,Flexo',
      '2,2,5000,warehouse-7/arm',
      '3,3,5000,warehouse-8/arm',
      'not a line',
      '4,4,5000,bender',
      '6,6,5001,Bender',
    ]
    const replies = await client.lines(lines.join('\n'))
    assert.deepEqual(
      replies.map((reply) => reply.split(' ', 2).join(' ')),
      [
        'OK',
        'ERR forbidden',
        'OK',
        'ERR forbidden',
        'ERR malformed',
        'ERR forbidden',
        'OK',
      ],
    )
    await client.close()
    const reader = { url: server.url, token: tokens.dashboard }
    for (const robot of ['Flexo', 'warehouse-8/arm', 'bender']) {
      assertError(
        await request(reader, robotPath(robot)),
        'ROBOT_NOT_FOUND',
        `${robot} was not stored`,
      )
    }
    const bender = await getJson(reader, robotPath('Bender'))
    assert.equal((bender.body as { event_count: number }).event_count, 3)
    const metrics = await scrapeMetrics({ url: server.url, token: tokens.ops })
    const forbidden = 'telemetry_replies_total{reply="forbidden"}'
    assert.equal(metrics.value(forbidden) - before.value(forbidden), 3)
  })

  test('npm run send takes a token, and says why the server refused one', async () => {
    const send = (args: readonly string[]) =>
      runProcess(process.execPath, [
        SEND_PATH,
        '--url',
        server.upstreamUrl,
        ...args,
      ])
    // `--token=…`: a token may start with a dash, which parseArgs would
    // take for an option after a space (1 run in 64 failed so).
    const sent = await send([`--token=${tokens.fleet!}`, '0,0,7000,sent'])
    assert.deepEqual(
      { code: sent.code, stdout: sent.stdout },
      { code: 0, stdout: 'OK\n' },
    )
    const refused = await send(['0,0,7001,sent'])
    assert.equal(refused.code, 1)
    assert.match(
      refused.stderr,
      /^send: the server refused the connection: 401 a token is needed/,
    )
    const forbidden = await send([
      `--token=${tokens.dashboard!}`,
      '0,0,7001,sent',
    ])
    assert.match(forbidden.stderr, /refused the connection: 403 /)
  })

  test("counts and logs refusals with the token's name, never a token", async () => {
    const metrics = await scrapeMetrics({ url: server.url, token: tokens.ops })
    for (const reason of ['missing', 'unknown', 'forbidden']) {
      assert.ok(
        metrics.value(`telemetry_auth_failures_total{reason="${reason}"}`) > 0,
        reason,
      )
    }
    const refusals = server
      .log()
      .filter((line) => String(line.msg).startsWith('access refused'))
    assert.ok(
      refusals.some(
        (line) => line.token === 'fleet' && line.reason === 'forbidden',
      ),
      'a forbidden request names its token',
    )
    assert.ok(refusals.every((line) => typeof line.remote === 'string'))
    const log = server.stderr()
    for (const [name, token] of Object.entries(tokens)) {
      if (name !== 'file') assert.ok(!log.includes(token), `no ${name} token`)
    }
  })
})

describe('revocation', () => {
  test('re-reads the tokens file on SIGHUP: a removed token is cut off at once, a new one works, a broken file changes nothing', async (t) => {
    const dir = makeTempDir('telemetry-revoke-')
    t.after(() => removeTempDir(dir))
    const file = join(dir, 'tokens.json')
    const first = writeTokens(file, [
      { name: 'ops', role: 'admin' },
      { name: 'robot', role: 'ingest' },
      { name: 'reader', role: 'read' },
      { name: 'switcher', role: 'ingest' },
      { name: 'narrowed', role: 'ingest' },
    ])
    const server = await startServer(['--tokens', file])
    t.after(() => server.dispose())

    // A robot streams, one event a frame, as long as its connection lasts.
    const client = await IngestClient.connect(server.wsUrl, {
      token: first.robot,
    })
    let timestamp = 0
    const streaming = client.stream(
      () => ({ data: `1,1,${++timestamp},Streamer`, tag: undefined }),
      4,
    )
    await waitFor(() => timestamp > 50, 'the robot streams')
    // Three more connections: a token that becomes a reader, one whose
    // robots narrow, and an admin that stays.
    const [switcher, narrowed, admin] = await Promise.all(
      [first.switcher, first.narrowed, first.ops].map((token) =>
        IngestClient.connect(server.wsUrl, { token }),
      ),
    )

    // The robot's and the reader's tokens are removed, a new one added.
    const second = writeTokens(
      file,
      [
        { name: 'ops', role: 'admin' },
        { name: 'auditor', role: 'read' },
        { name: 'switcher', role: 'read' },
        { name: 'narrowed', role: 'ingest', robots: ['Narrow*'] },
      ],
      first,
    )
    server.kill('SIGHUP')
    const closed = await withTimeout(
      client.closed,
      'the revoked connection closes',
    )
    assert.equal(closed.code, 1008)
    assert.equal(closed.reason, 'token revoked')
    const switched = await withTimeout(switcher!.closed, 'the reader closes')
    assert.equal(switched.code, 1008, 'a token that may no longer write')
    // The others stay open, the narrowed one with its new robots.
    assert.equal(await admin!.send('1,1,1,Admin'), 'OK')
    assert.deepEqual(await narrowed!.lines('1,1,1,Narrowed\n1,1,1,Wide'), [
      'OK',
      "ERR forbidden the robot is outside this token's robots",
    ])
    await streaming.catch(() => {})
    await waitFor(
      async () =>
        (await request(server, '/api/robots', bearer(second.auditor!)))
          .status === 200,
      'the new token works',
    )
    assertUnauthorized(
      await request(server, '/api/robots', bearer(first.reader!)),
      'a removed read token',
    )
    const refused = await refusedUpgrade(server.wsUrl, '/upstream', first.robot)
    assert.equal(refused.status, 401)
    // What was answered OK before the cut is stored.
    const acknowledged = client.frames.filter((f) => f.reply === 'OK').length
    const robot = await getJson(
      { url: server.url, token: second.ops },
      robotPath('Streamer'),
    )
    assert.ok(
      (robot.body as { event_count: number }).event_count >= acknowledged,
    )

    // A file that does not parse is logged, and the tokens stay.
    writeFileSync(file, '[{"name": "ops"')
    server.kill('SIGHUP')
    await waitFor(
      () =>
        server
          .log()
          .find((line) =>
            String(line.msg).startsWith('the tokens file cannot be used'),
          ),
      'the broken file is logged',
    )
    const still = await request(server, '/api/robots', bearer(second.auditor!))
    assert.equal(still.status, 200)
    assert.ok(server.running, 'the server still runs')
  })
})

describe('starting with and without access control', () => {
  test('refuses 0.0.0.0 without a tokens file unless --insecure, and says when access is open', async (t) => {
    const refused = await runCli(['--host', '0.0.0.0', '--port', '0'])
    assert.equal(refused.code, 2)
    assert.match(
      refused.stderr,
      /refusing to listen on 0\.0\.0\.0 without access control/,
    )
    assert.match(refused.stderr, /--tokens/)
    assert.match(refused.stderr, /--insecure/)
    assert.doesNotMatch(refused.stdout, /listening/)

    const open = await startServer(['--host', '0.0.0.0', '--insecure'])
    t.after(() => open.dispose())
    assert.equal(open.access, 'no access control')
    const local = await startServer()
    t.after(() => local.dispose())
    assert.equal(local.access, 'no access control')
    assert.equal((await request(local, '/api/robots')).status, 200)
  })

  test('exits 2 when the tokens file is missing or broken', async (t) => {
    const dir = makeTempDir('telemetry-tokens-')
    t.after(() => removeTempDir(dir))
    const broken = join(dir, 'broken.json')
    writeFileSync(broken, '[{"name": "a", "role": "admin"}]')
    for (const [file, message] of [
      [join(dir, 'missing.json'), /cannot read the tokens file/],
      [broken, /token "a": "token_sha256" must be 64 hexadecimal digits/],
    ] as const) {
      const run = await runCli([
        '--port',
        '0',
        '--store',
        `sqlite:${join(dir, 't.db')}`,
        '--tokens',
        file,
      ])
      assert.equal(run.code, 2, run.stderr)
      assert.match(run.stderr, message)
      assert.doesNotMatch(run.stdout, /listening/)
    }
  })
})

describe('per-token limits', () => {
  test("answers lines over a token's events per second with ERR rate_limited and stores none of them", async (t) => {
    const dir = makeTempDir('telemetry-limits-')
    t.after(() => removeTempDir(dir))
    const tokens = writeTokens(join(dir, 'tokens.json'), [
      { name: 'robot', role: 'ingest' },
      { name: 'other', role: 'ingest' },
      { name: 'ops', role: 'admin' },
    ])
    const rate = 5
    const server = await startServer([
      '--tokens',
      tokens.file,
      '--max-token-events-per-second',
      String(rate),
    ])
    t.after(() => server.dispose())
    const client = await IngestClient.connect(server.wsUrl, {
      token: tokens.robot,
    })
    const lines = Array.from({ length: 40 }, (_, i) => `${i},0,${i + 1},Rover`)
    const sentAt = performance.now()
    const replies = await client.lines(lines.join('\n'))
    const seconds = (performance.now() - sentAt) / 1000
    const ok = replies.filter((r) => r === 'OK').length
    const limited = replies.filter((r) => r.startsWith('ERR rate_limited '))
    assert.equal(ok + limited.length, lines.length, replies.join('\n'))
    // A full bucket holds one second of events; it refills at the rate
    // while the frame is read, which is no longer than the reply took.
    assert.ok(ok >= rate, `at least ${rate} OK, not ${ok}`)
    assert.ok(
      ok <= rate + Math.ceil(seconds * rate),
      `${ok} OK in ${seconds.toFixed(2)} s at ${rate} events a second`,
    )
    // Another token has its own bucket.
    const other = await IngestClient.connect(server.wsUrl, {
      token: tokens.other,
    })
    assert.equal(await other.send('0,0,1,Other'), 'OK')
    // Stored: exactly the events answered OK.
    const ops = { url: server.url, token: tokens.ops }
    const robot = await getJson(ops, robotPath('Rover'))
    assert.equal((robot.body as { event_count: number }).event_count, ok)
    const metrics = await scrapeMetrics(ops)
    assert.equal(
      metrics.value('telemetry_replies_total{reply="rate_limited"}'),
      limited.length,
    )
    await client.close()
    await other.close()
  })

  test("refuses a token's ingest connection over its limit with 429, and HTTP requests over its rate", async (t) => {
    const dir = makeTempDir('telemetry-limits-')
    t.after(() => removeTempDir(dir))
    const tokens = writeTokens(join(dir, 'tokens.json'), [
      { name: 'robot', role: 'ingest' },
      { name: 'other', role: 'ingest' },
      { name: 'reader', role: 'read' },
      { name: 'ops', role: 'admin' },
    ])
    const perSecond = 3
    const server = await startServer([
      '--tokens',
      tokens.file,
      '--max-token-connections',
      '2',
      '--max-token-requests-per-second',
      String(perSecond),
    ])
    t.after(() => server.dispose())
    const connect = (token: string) =>
      IngestClient.connect(server.wsUrl, { token })
    const open = [await connect(tokens.robot!), await connect(tokens.robot!)]
    const refused = await refusedUpgrade(
      server.wsUrl,
      '/upstream',
      tokens.robot,
    )
    assert.equal(refused.status, 429, refused.body)
    assert.equal(
      (JSON.parse(refused.body) as { code: string }).code,
      'TOO_MANY_REQUESTS',
    )
    // Another token is not held by this one's limit.
    const other = await connect(tokens.other!)
    assert.equal(await other.send('0,0,1,Other'), 'OK')
    // Once one closes, the token may open another.
    await open.pop()!.close()
    const again = await waitFor(
      () => connect(tokens.robot!).catch(() => undefined),
      'a connection once one closed',
    )
    assert.equal(await again.send('0,0,1,Robot'), 'OK')

    // HTTP: at most `perSecond` a second per token, in fixed windows.
    const reader = { url: server.url, token: tokens.reader }
    const count = 30
    const startedAt = performance.now()
    const responses = await Promise.all(
      Array.from({ length: count }, () => request(reader, '/api/robots')),
    )
    const windows = Math.ceil((performance.now() - startedAt) / 1000) + 1
    const ok = responses.filter((r) => r.status === 200).length
    for (const response of responses.filter((r) => r.status !== 200)) {
      assertError(response, 'TOO_MANY_REQUESTS', 'over the rate')
      assert.match(response.headers.get('retry-after') ?? '', /^\d+$/)
    }
    assert.ok(
      ok >= 1 && ok <= perSecond * windows,
      `${ok} OK in ${windows} windows`,
    )
    // Another token, and /healthz, are not held by it.
    const admin = await request(
      { url: server.url, token: tokens.ops },
      '/api/robots',
    )
    assert.equal(admin.status, 200)
    for (let i = 0; i < 10; i++) {
      assert.equal((await request(server, '/healthz')).status, 200)
    }
    const metrics = await scrapeMetrics({ url: server.url, token: tokens.ops })
    assert.equal(
      metrics.value('telemetry_token_limited_total{limit="connections"}'),
      1,
    )
    assert.equal(
      metrics.value('telemetry_token_limited_total{limit="requests"}'),
      count - ok,
    )
    for (const client of [...open, other, again]) await client.close()
  })
})
