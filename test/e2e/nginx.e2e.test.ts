/**
 * nginx in front of three server processes that share one PostgreSQL
 * schema and one tokens file, with deploy/nginx.conf as its configuration:
 * the test runs a copy of that file in which only the ports are replaced
 * (and the /upstream timeouts, scaled down with the servers' keepalive, see
 * below). Every request and connection carries a token of the role it
 * needs, except those that check the refusals. Everything goes through
 * nginx except each process's `GET /metrics`, which shows where the
 * connections landed, the reads that compare a process's own answer with
 * nginx's, and the checks that each process re-read the tokens file. A
 * second nginx runs deploy/nginx-tls.conf (TLS ended at nginx), with only
 * its ports and certificate paths replaced. docs/deploy.md describes what
 * it checks.
 *
 * Needs nginx (`apt-get install -y nginx`) and PostgreSQL
 * (TELEMETRY_TEST_POSTGRES). Elsewhere than CI a missing one skips the
 * file with a message; under CI=true it fails.
 */
import assert from 'node:assert/strict'
import {
  accessSync,
  chmodSync,
  constants,
  existsSync,
  readFileSync,
  writeFileSync,
} from 'node:fs'
import { createServer } from 'node:net'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, test } from 'node:test'
import {
  IngestClient,
  assertError,
  assertErrorBody,
  assertOdometer,
  dropSchemas,
  expectedOdometer,
  freshSchema,
  getJson,
  http,
  httpsRequest,
  makeCertificate,
  makeTempDir,
  postgresSkip,
  readEvents,
  readOdometer,
  refusedUpgrade,
  removeTempDir,
  repeatLine,
  request,
  robotPath,
  scrapeMetrics,
  startProcess,
  startServer,
  waitFor,
  writeTokens,
  type ApiEvent,
  type Certificate,
  type ConnectOptions,
  type Origin,
  type ServerProcess,
  type TextResponse,
  type TokenSpec,
  type TokensFile,
} from '../support/index.ts'

const PROCESSES = 3
/** Ingest connections opened through nginx besides the idle one. */
const CLIENTS = 6
const BULK_EVENTS = 20_000
/**
 * The servers ping every second instead of every 30 s, and nginx's
 * /upstream timeouts are 3 s instead of 120 s: the same ratio, so that an
 * idle connection outliving the timeout takes seconds, not minutes.
 */
const KEEPALIVE_MS = 1000
const UPSTREAM_TIMEOUT = '3s'
const NGINX_STOP_TIMEOUT_MS = 5_000

// --- finding nginx and the configuration ---

/** The nginx binary: /usr/sbin/nginx, else `nginx` on PATH. */
function findNginx(): string | undefined {
  const candidates = [
    '/usr/sbin/nginx',
    ...(process.env.PATH ?? '')
      .split(delimiter)
      .filter((dir) => dir !== '')
      .map((dir) => join(dir, 'nginx')),
  ]
  for (const path of candidates) {
    try {
      accessSync(path, constants.X_OK)
      return path
    } catch {
      // not there
    }
  }
  return undefined
}

/** A file of deploy/, found from this file upwards (it runs from dist/). */
function readDeployFile(name: 'nginx.conf' | 'nginx-tls.conf'): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const path = join(dir, 'deploy', name)
    if (existsSync(path)) return readFileSync(path, 'utf8')
    const parent = dirname(dir)
    assert.notEqual(parent, dir, `deploy/${name} is found above the test`)
    dir = parent
  }
}

/** The directives of a configuration: its lines without comments or indent. */
function directives(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.replace(/#.*$/, '').trim())
    .filter((line) => line !== '')
}

/** Replaces every match of `pattern` in `text` and checks how many there were. */
function replaceCounted(
  text: string,
  pattern: RegExp,
  replacement: string,
  expected: number,
): string {
  const found = text.match(pattern)?.length ?? 0
  assert.equal(found, expected, `${pattern} occurs ${expected} times`)
  return text.replace(pattern, replacement)
}

/**
 * The configuration with real ports, and either the scaled /upstream
 * timeouts (deploy/nginx.conf) or the paths of `certificate`
 * (deploy/nginx-tls.conf, whose timeouts stay).
 */
function configFor(
  template: string,
  listenPort: number,
  ports: readonly number[],
  certificate?: Certificate,
): string {
  let text =
    certificate === undefined
      ? replaceCounted(
          template,
          /^([ \t]*)listen 127\.0\.0\.1:\d+;$/gm,
          `$1listen 127.0.0.1:${listenPort};`,
          1,
        )
      : replaceCounted(
          template,
          /^([ \t]*)listen 127\.0\.0\.1:\d+ ssl;$/gm,
          `$1listen 127.0.0.1:${listenPort} ssl;`,
          1,
        )
  const servers =
    /^([ \t]*)server 127\.0\.0\.1:\d+;\n(?:\1server 127\.0\.0\.1:\d+;\n)*/m
  const block = servers.exec(text)
  assert.ok(block !== null, 'the upstream block has server lines')
  const indent = block[1]!
  text = text.replace(
    servers,
    ports.map((port) => `${indent}server 127.0.0.1:${port};\n`).join(''),
  )
  if (certificate !== undefined) {
    text = replaceCounted(
      text,
      /^([ \t]*)ssl_certificate \S+;$/gm,
      `$1ssl_certificate "${certificate.certFile}";`,
      1,
    )
    return replaceCounted(
      text,
      /^([ \t]*)ssl_certificate_key \S+;$/gm,
      `$1ssl_certificate_key "${certificate.keyFile}";`,
      1,
    )
  }
  text = replaceCounted(
    text,
    /proxy_read_timeout 120s;/g,
    `proxy_read_timeout ${UPSTREAM_TIMEOUT};`,
    1,
  )
  return replaceCounted(
    text,
    /proxy_send_timeout 120s;/g,
    `proxy_send_timeout ${UPSTREAM_TIMEOUT};`,
    1,
  )
}

// --- the nginx process ---

/** A free TCP port on 127.0.0.1 (free when asked; nginx may still lose it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      assert.ok(address !== null && typeof address === 'object')
      server.close(() => resolve(address.port))
    })
  })
}

interface Nginx {
  /** `http://127.0.0.1:PORT`, or `https://` with TLS. */
  readonly url: string
  /** `ws://127.0.0.1:PORT`, or `wss://` with TLS. */
  readonly wsUrl: string
  readonly pid: number
  readonly prefix: string
  /** WebSocket connections opened through it by {@link connect}. */
  readonly upgrades: number
  /** Opens an ingest connection through it, and counts it. */
  connect(options: ConnectOptions): Promise<IngestClient>
  /** nginx's own error log and what it wrote on stderr. */
  log(): string
  /** Its access log so far. */
  accessLog(): string
  stop(): Promise<void>
}

/** A file of nginx's prefix folder; empty while nginx has not written it. */
function readLog(prefix: string, name: string): string {
  try {
    return readFileSync(join(prefix, name), 'utf8')
  } catch {
    return '' // not written yet
  }
}

/**
 * Starts nginx in the foreground on a free port with the configuration for
 * `ports` (TLS with `certificate`, for deploy/nginx-tls.conf), and resolves
 * once `GET /healthz` answers 200 through it. Its workers are killed with
 * it (by pid) if it has to be killed.
 */
async function startNginx(
  binary: string,
  template: string,
  ports: readonly number[],
  certificate?: Certificate,
): Promise<Nginx> {
  const scheme = certificate === undefined ? 'http' : 'https'
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const prefix = makeTempDir('telemetry-nginx-')
    // Started as root, nginx runs its worker as `nobody`, which must reach
    // the temp folders that nginx makes in here.
    chmodSync(prefix, 0o755)
    const conf = join(prefix, 'nginx.conf')
    writeFileSync(conf, configFor(template, port, ports, certificate))
    const child = startProcess(binary, ['-c', conf, '-p', `${prefix}/`], {
      killChildren: true,
    })
    const log = () =>
      `${child.stdout()}${child.stderr()}${readLog(prefix, 'error.log')}`
    const url = `${scheme}://127.0.0.1:${port}`
    const wsUrl = `${scheme === 'http' ? 'ws' : 'wss'}://127.0.0.1:${port}`
    const stop = async () => {
      // Fast shutdown: the master stops its workers.
      await child.stop(NGINX_STOP_TIMEOUT_MS)
      removeTempDir(prefix)
    }
    const healthz = async () =>
      certificate === undefined
        ? (await fetch(`${url}/healthz`)).status
        : (await httpsRequest(`${url}/healthz`, { ca: certificate.cert }))
            .status

    const ready = await waitFor(async () => {
      if (!child.running) return 'exited'
      try {
        return (await healthz()) === 200 && 'ready'
      } catch {
        return undefined // not listening yet
      }
    }, 'nginx answers GET /healthz')
    if (ready === 'ready') {
      let upgrades = 0
      return {
        url,
        wsUrl,
        pid: child.pid,
        prefix,
        get upgrades() {
          return upgrades
        },
        async connect(options) {
          const client = await IngestClient.connect(wsUrl, {
            ...(certificate === undefined ? {} : { ca: certificate.cert }),
            ...options,
          })
          upgrades++
          return client
        },
        log,
        accessLog: () => readLog(prefix, 'access.log'),
        stop,
      }
    }
    const why = log()
    await stop()
    // Another process may have taken the port between freePort() and bind().
    if (attempt < 3 && /Address already in use/.test(why)) continue
    throw new Error(`nginx did not start; its log:\n${why}`)
  }
}

// --- the tests ---

/** `telemetry_connections_open` of one process, asked directly. */
async function connectionsOpen(server: Origin): Promise<number> {
  return (await scrapeMetrics(server)).value('telemetry_connections_open')
}

/** The error lines of nginx's log, but the refused connections to a stopped process. */
function nginxErrors(log: string): string[] {
  return log
    .split('\n')
    .filter((l) => /\[(?:emerg|alert|crit|error)\]/.test(l))
    .filter((l) => !/connect\(\) failed \(111: Connection refused\)/.test(l))
}

/**
 * WebSocket connections in an access log: upgrades answered 101, logged
 * once closed (with or without a query, so that a log that has one still
 * counts, and fails the check of tokens).
 */
function upgradesLogged(accessLog: string): number {
  return (
    accessLog.match(/"GET \/upstream(?:\?\S*)? HTTP\/1\.1" 101 /g)?.length ?? 0
  )
}

/** Checks that an access log holds none of the tokens, nor a query string. */
function assertNoToken(accessLog: string, tokens: TokensFile): void {
  assert.ok(accessLog.length > 0, 'the access log has lines')
  for (const [name, token] of Object.entries(tokens)) {
    if (name === 'file') continue
    assert.ok(!accessLog.includes(token), `token ${name} is not in the log`)
  }
  assert.doesNotMatch(accessLog, /access_token|\?/, 'no query string')
}

/** A 401 of the catalog, with the Bearer challenge. */
function assertUnauthorized(response: TextResponse, what: string): void {
  assertError(response, 'UNAUTHORIZED', what)
  assert.match(
    response.headers.get('www-authenticate') ?? '',
    /^Bearer\b/,
    `${what}: WWW-Authenticate`,
  )
}

function line(event: ApiEvent): string {
  return `${event.x},${event.y},${event.timestamp},${event.robot}`
}

const NGINX = findNginx()
const ci = process.env.CI === 'true'
const nginxSkip =
  NGINX === undefined && !ci
    ? 'no nginx (/usr/sbin/nginx or nginx on PATH); install it with apt-get install -y nginx'
    : false
const skip = nginxSkip || (await postgresSkip())
if (skip !== false) console.log(`# skipping the nginx tests: ${skip}`)

/**
 * The one tokens file of the three processes: robots write with `robots`,
 * every read goes with `dashboard`, and `retired` is taken out of the file
 * on the way.
 */
const TOKEN_SPECS: readonly TokenSpec[] = [
  { name: 'robots', role: 'ingest' },
  { name: 'dashboard', role: 'read' },
  { name: 'retired', role: 'read' },
]

/** Shared robots: event k of robot r is ((k + r) % 3, (k * r) % 4) at 1000 k. */
const SHARED = ['Shared A', 'Shared B', 'Shared C']
const SHARED_EVENTS = 30
/**
 * 150 characters, the longest name, most of them 3 bytes in UTF-8, and a
 * slash and a space that the URL carries percent-encoded: about 500 bytes
 * an NDJSON line, 10 MB for the whole response, more than the socket
 * buffers between nginx and the client hold.
 */
const BULK = `Bulk / ${'€'.repeat(143)}`
const sharedEvents = SHARED.map((robot, r) =>
  Array.from({ length: SHARED_EVENTS }, (_, k): ApiEvent => ({
    robot,
    x: (k + r) % 3,
    y: (k * r) % 4,
    timestamp: 1000 * k,
  })),
)

describe(
  'nginx in front of several processes on one PostgreSQL database',
  { skip },
  () => {
    const schemas: string[] = []
    const servers: ServerProcess[] = []
    /** Each process, asked directly with the read token. */
    let direct: Origin[] = []
    let dir: string | undefined
    let tokens: TokensFile
    let nginx: Nginx | undefined
    /** nginx, asked with the read token. */
    let proxy: Origin
    let idle: IngestClient
    /** performance.now() and the idle connection's pings at its last frame. */
    let idleSince = { at: 0, pings: 0 }
    const markIdle = () => {
      idleSince = { at: performance.now(), pings: idle.pings }
    }
    const clients: IngestClient[] = []
    /** The index in `servers` of the process that holds each connection. */
    const processOf = new Map<IngestClient, number>()

    /** Opens a connection through nginx and finds the process it landed on. */
    async function connect(): Promise<IngestClient> {
      const before = await Promise.all(direct.map(connectionsOpen))
      const client = await nginx!.connect({ token: tokens.robots })
      const after = await Promise.all(direct.map(connectionsOpen))
      const grew = after.flatMap((n, i) => (n === before[i]! + 1 ? [i] : []))
      assert.equal(grew.length, 1, `one process got it: ${after.join(', ')}`)
      processOf.set(client, grew[0]!)
      return client
    }

    before(async () => {
      assert.ok(
        NGINX !== undefined,
        'nginx is not installed: CI must run `apt-get install -y nginx` (Debian package nginx)',
      )
      const { schema, url } = freshSchema()
      schemas.push(schema)
      dir = makeTempDir('telemetry-nginx-tokens-')
      tokens = writeTokens(join(dir, 'tokens.json'), TOKEN_SPECS)
      // Started at once: the first to take the migration lock creates the
      // tables, the others find them.
      servers.push(
        ...(await Promise.all(
          Array.from({ length: PROCESSES }, () =>
            startServer(
              ['--keepalive-ms', String(KEEPALIVE_MS), '--tokens', tokens.file],
              {},
              { store: url },
            ),
          ),
        )),
      )
      direct = servers.map((s) => ({ url: s.url, token: tokens.dashboard }))
      nginx = await startNginx(
        NGINX,
        readDeployFile('nginx.conf'),
        servers.map((s) => Number(new URL(s.url).port)),
      )
      proxy = { url: nginx.url, token: tokens.dashboard }
    })

    after(async () => {
      try {
        for (const client of [idle, ...clients]) await client?.close()
        await nginx?.stop()
        await Promise.all(servers.map((s) => s.dispose()))
      } finally {
        if (dir !== undefined) removeTempDir(dir)
        await dropSchemas(schemas)
      }
    })

    test('runs every process with the one tokens file', () => {
      for (const server of servers) {
        assert.equal(server.access, 'access control: 3 tokens', server.url)
      }
    })

    test('spreads the ingest connections over every process', async () => {
      idle = await connect()
      assert.equal(await idle.send('0,0,1,Idle'), 'OK')
      markIdle()
      for (let i = 0; i < CLIENTS; i++) {
        clients.push(await connect())
      }
      const open = await Promise.all(direct.map(connectionsOpen))
      assert.equal(
        open.reduce((a, b) => a + b, 0),
        CLIENTS + 1,
        `every connection is open on some process: ${open.join(', ')}`,
      )
      // least_conn with 7 connections over 3 processes: 3, 2 and 2.
      assert.deepEqual(
        [...open].sort((a, b) => a - b),
        [2, 2, 3],
        `connections per process: ${open.join(', ')}`,
      )
    })

    test('judges the events of the same robots sent through different connections', async () => {
      // Event k of robot r goes through a connection to process (k + r) % 3:
      // each event of a robot to another process than the one before.
      const on = (index: number, k: number) => {
        const there = clients.filter((c) => processOf.get(c) === index)
        assert.ok(there.length > 0, `a connection to process ${index}`)
        return there[k % there.length]!
      }
      for (let k = 0; k < SHARED_EVENTS; k++) {
        const replies = await Promise.all(
          sharedEvents.map((events, r) =>
            on((k + r) % PROCESSES, k).send(line(events[k]!)),
          ),
        )
        assert.deepEqual(replies, ['OK', 'OK', 'OK'], `round ${k}`)
      }
      // Every event again, one frame per robot, through other connections.
      const again = await Promise.all(
        sharedEvents.map((events, r) =>
          on(r, 1).send(events.map(line).join('\n')),
        ),
      )
      for (const reply of again) {
        assert.equal(reply, repeatLine('DUP', SHARED_EVENTS))
      }
      // Older than the latest with nothing stored there; and another position
      // at a stored timestamp.
      const [robot] = SHARED
      const replies = await clients[4]!.lines(
        `0,0,500,${robot}\n99,99,${1000 * (SHARED_EVENTS - 1)},${robot}`,
      )
      assert.match(replies[0]!, /^ERR stale /)
      assert.match(replies[1]!, /^ERR conflict /)
    })

    test('answers OK once and DUP to the others when every connection sends the same event at once', async () => {
      const all = [idle, ...clients]
      for (let ts = 0; ts < 20; ts++) {
        const replies = await Promise.all(
          all.map((client) => client.send(`${ts},0,${ts},Race`)),
        )
        assert.deepEqual(
          [...replies].sort(),
          [...Array.from({ length: all.length - 1 }, () => 'DUP'), 'OK'],
          `timestamp ${ts}: ${replies.join(', ')}`,
        )
      }
      markIdle()
      const robot = await getJson(proxy, robotPath('Race'))
      assert.equal(robot.status, 200)
      assert.equal((robot.body as { event_count: number }).event_count, 20)
    })

    test('reads the same events, robot and odometer through nginx and from each process', async () => {
      for (const origin of [proxy, ...direct]) {
        for (const events of sharedEvents) {
          const name = events[0]!.robot
          assert.deepEqual(
            await readEvents(origin, name),
            events,
            `${name} from ${origin.url}`,
          )
          assertOdometer(
            (await readOdometer(origin, name)).odometer,
            expectedOdometer(events),
            `odometer of ${name}`,
          )

          const robot = await getJson(origin, robotPath(name))
          assert.equal(robot.status, 200)
          const fields = robot.body as Record<string, unknown>
          assert.equal(fields.event_count, SHARED_EVENTS)
          assert.equal(fields.last_timestamp, 1000 * (SHARED_EVENTS - 1))
          assertOdometer(
            fields.odometer,
            expectedOdometer(events),
            `robot ${name}`,
          )
        }
      }
    })

    test('answers without a token 401 through nginx, a read token on /upstream 403, and takes access_token on the upgrade and on GET', async () => {
      const anonymous: Origin = { url: nginx!.url }
      for (const path of ['/api/robots', robotPath('Shared A'), '/metrics']) {
        assertUnauthorized(await request(anonymous, path), `${path}, no token`)
        assertError(
          await request({ url: nginx!.url, token: tokens.robots }, path),
          'FORBIDDEN',
          `${path}, ingest token`,
        )
      }
      const health = await getJson(anonymous, '/healthz')
      assert.deepEqual(
        { status: health.status, body: health.body },
        { status: 200, body: { status: 'ok', store: { writable: true } } },
        '/healthz stays open',
      )

      // The upgrade is answered by the process, before any frame.
      for (const [token, code] of [
        [undefined, 'UNAUTHORIZED'],
        [tokens.dashboard, 'FORBIDDEN'],
      ] as const) {
        const refused = await refusedUpgrade(nginx!.wsUrl, '/upstream', token)
        assert.match(refused.contentType ?? '', /^application\/json\b/)
        assertErrorBody(
          { status: refused.status, text: refused.body },
          code === 'UNAUTHORIZED' ? 401 : 403,
          code,
        )
        if (code === 'UNAUTHORIZED') {
          assert.match(refused.challenge ?? '', /^Bearer\b/, 'the challenge')
        } else {
          assert.equal(refused.challenge, undefined, 'no challenge with 403')
        }
      }

      // The query string reaches the process as the client sent it.
      const byQuery = await nginx!.connect({
        path: `/upstream?access_token=${encodeURIComponent(tokens.robots!)}`,
      })
      assert.equal(await byQuery.send('0,0,1,Query token'), 'OK')
      await byQuery.close()
      const robot = await getJson(
        anonymous,
        robotPath('Query token', `?access_token=${tokens.dashboard}`),
      )
      assert.equal(robot.status, 200)
      assert.equal((robot.body as { event_count: number }).event_count, 1)
    })

    test('ends TLS at nginx with deploy/nginx-tls.conf: https and wss to the plain-http processes, tokens passed on', async (t) => {
      const certDir = makeTempDir('telemetry-nginx-tls-')
      t.after(() => removeTempDir(certDir))
      const certificate = await makeCertificate(certDir, 'nginx')
      const ca = certificate.cert
      const openBefore = await Promise.all(direct.map(connectionsOpen))
      const tls = await startNginx(
        NGINX!,
        readDeployFile('nginx-tls.conf'),
        servers.map((s) => Number(new URL(s.url).port)),
        certificate,
      )
      t.after(() => tls.stop())
      assert.match(tls.url, /^https:\/\//)
      assert.match(tls.wsUrl, /^wss:\/\//)

      const health = await httpsRequest(`${tls.url}/healthz`, { ca })
      assert.equal(health.status, 200)
      assert.equal(health.fingerprint, certificate.fingerprint)
      assertUnauthorized(
        await httpsRequest(`${tls.url}/api/robots`, { ca }),
        'https without a token',
      )

      // wss, with the token as a header and as access_token.
      const byHeader = await tls.connect({ token: tokens.robots })
      assert.equal(await byHeader.send('1,1,1,Over TLS'), 'OK')
      const byQuery = await tls.connect({
        path: `/upstream?access_token=${encodeURIComponent(tokens.robots!)}`,
      })
      assert.equal(await byQuery.send('2,2,2,Over TLS'), 'OK')
      await byHeader.close()
      await byQuery.close()

      // https reads, with the token as a header and as access_token.
      const events = await httpsRequest(
        `${tls.url}${robotPath('Over TLS', '/events')}`,
        { ca, token: tokens.dashboard },
      )
      assert.equal(events.status, 200, events.text)
      assert.deepEqual(JSON.parse(events.text), [
        { robot: 'Over TLS', x: 1, y: 1, timestamp: 1 },
        { robot: 'Over TLS', x: 2, y: 2, timestamp: 2 },
      ])
      const robot = await httpsRequest(
        `${tls.url}${robotPath('Over TLS')}?access_token=${tokens.dashboard}`,
        { ca },
      )
      assert.equal(robot.status, 200, robot.text)
      assert.equal(
        (JSON.parse(robot.text) as { event_count: number }).event_count,
        2,
      )
      assertError(
        await httpsRequest(`${tls.url}/api/robots`, {
          ca,
          token: tokens.robots,
        }),
        'FORBIDDEN',
        'https with an ingest token',
      )

      // Plain http on the TLS port is nginx's own 400.
      const plain = await fetch(`http://${new URL(tls.url).host}/healthz`)
      assert.equal(plain.status, 400)
      await plain.text()

      await waitFor(
        () => upgradesLogged(tls.accessLog()) === tls.upgrades,
        `the ${tls.upgrades} wss connections are in the access log`,
      )
      assertNoToken(tls.accessLog(), tokens)
      assert.deepEqual(nginxErrors(tls.log()), [])
      // The processes hold no connection of this nginx any more.
      await waitFor(async () => {
        const open = await Promise.all(direct.map(connectionsOpen))
        return open.every((n, i) => n === openBefore[i]) || undefined
      }, 'the wss connections are closed on the processes')
    })

    test(`streams ${BULK_EVENTS.toLocaleString('en')} events as NDJSON through nginx intact`, async () => {
      const events = Array.from({ length: BULK_EVENTS }, (_, i): ApiEvent => ({
        robot: BULK,
        x: i / 4,
        y: -i,
        timestamp: 1_700_000_000_000 + 100 * i,
      }))
      const frames: string[] = []
      for (let i = 0; i < BULK_EVENTS; i += 1000) {
        frames.push(
          events
            .slice(i, i + 1000)
            .map(line)
            .join('\n'),
        )
      }
      const replies = await clients[0]!.sendAll(frames)
      for (const reply of replies) assert.equal(reply, repeatLine('OK', 1000))

      const init = { headers: { accept: 'application/x-ndjson' } }
      // A client that waits a second before it reads: nginx must not spool
      // the response to a file meanwhile (proxy_buffering off).
      const response = await http(proxy, robotPath(BULK, '/events'), {
        ...init,
        readDelayMs: 1000,
      })
      assert.equal(response.status, 200)
      assert.match(
        response.headers.get('content-type') ?? '',
        /^application\/x-ndjson\b/,
      )
      const expected = events.map((e) => JSON.stringify(e) + '\n').join('')
      assert.equal(response.text.length, expected.length, 'length of the body')
      assert.ok(response.text === expected, 'the body is every event, in order')
      // Byte for byte what a process answers directly.
      const fromProcess = await request(
        direct[1]!,
        robotPath(BULK, '/events'),
        init,
      )
      assert.ok(
        fromProcess.text === response.text,
        'the same body as a process sends',
      )

      assert.doesNotMatch(nginx!.log(), /buffered to a temporary file/)

      assertOdometer(
        (await readOdometer(proxy, BULK)).odometer,
        expectedOdometer(events),
        'odometer of the bulk robot',
      )
    })

    test('passes a WebSocket upgrade to another path on to a process, which answers its 404', async () => {
      for (const path of ['/', '/nope', '/upstream/extra', '/api/robots']) {
        const refused = await refusedUpgrade(nginx!.wsUrl, path, tokens.robots)
        assert.match(refused.contentType ?? '', /^application\/json\b/, path)
        assertErrorBody(
          { status: refused.status, text: refused.body },
          404,
          'ROUTE_NOT_FOUND',
          // The upgrade reached the process: a plain GET would get another message.
          /^no WebSocket endpoint at /,
        )
      }
    })

    test(`keeps an idle connection open past nginx's ${UPSTREAM_TIMEOUT} read timeout: the server's pings cross it`, async () => {
      // Idle for 4 s, longer than the timeout, and pinged meanwhile: the
      // wait is the point (nginx's timeout is one of time); a close ends it.
      const IDLE_MS = 4000
      await waitFor(() => {
        assert.ok(!idle.isClosed, 'the idle connection stays open')
        return (
          performance.now() - idleSince.at >= IDLE_MS &&
          idle.pings - idleSince.pings >= 2
        )
      }, `the idle connection is open ${IDLE_MS} ms after its last frame, pinged twice`)
      assert.equal(idle.ws.readyState, idle.ws.OPEN, 'the idle one is open')
      assert.equal(await idle.send('0,0,2,Idle'), 'OK')
    })

    test('stops a token on every process once each one re-read the shared tokens file on SIGHUP', async () => {
      const retired = tokens.retired!
      const asRetired = (origin: Origin) => ({
        url: origin.url,
        token: retired,
      })
      const status = async (origin: Origin) =>
        (await request(asRetired(origin), '/api/robots')).status
      assert.equal(await status(proxy), 200, 'before: through nginx')

      // The file without `retired`; the other tokens stay as they were.
      writeTokens(
        tokens.file,
        TOKEN_SPECS.filter((spec) => spec.name !== 'retired'),
        tokens,
      )
      servers[0]!.kill('SIGHUP')
      await waitFor(
        async () => (await status(direct[0]!)) === 401,
        'process 0 refuses the retired token',
      )
      // A process reads the file on its own SIGHUP only.
      for (const origin of direct.slice(1)) {
        assert.equal(await status(origin), 200, `${origin.url}, no SIGHUP yet`)
      }
      for (const [i, server] of servers.entries()) {
        if (i === 0) continue
        server.kill('SIGHUP')
        await waitFor(
          async () => (await status(direct[i]!)) === 401,
          `process ${i} refuses the retired token`,
        )
      }

      for (let i = 0; i < 2 * PROCESSES; i++) {
        assertUnauthorized(
          await request(asRetired(proxy), '/api/robots'),
          `retired token through nginx, request ${i}`,
        )
        assert.equal((await request(proxy, '/api/robots')).status, 200)
      }
      // The robots' token stayed: their connections too.
      for (const client of [idle, ...clients]) {
        assert.equal(client.ws.readyState, client.ws.OPEN)
      }
      assert.equal(await clients[0]!.send('0,0,1,After reload'), 'OK')
    })

    test('lets the robots of a stopped process reconnect through nginx to the others', async () => {
      const all = [idle, ...clients]
      const onStopped = all.filter((c) => processOf.get(c) === 0)
      assert.equal((await servers[0]!.stop()).code, 0)
      // The server closed its connections (1001) before it exited; nginx
      // passed the close on. The others stay open.
      for (const client of onStopped) {
        assert.equal((await client.closed).code, 1001)
      }
      for (const client of all) {
        if (onStopped.includes(client)) continue
        assert.equal(client.ws.readyState, client.ws.OPEN)
      }
      // Each robot goes on where it was, through new connections. nginx
      // finds the stopped process refusing and takes another.
      const fresh: IngestClient[] = []
      for (let i = 0; i < onStopped.length; i++) {
        fresh.push(await nginx!.connect({ token: tokens.robots }))
      }
      for (const events of sharedEvents) {
        const next: ApiEvent = {
          ...events.at(-1)!,
          x: 10,
          timestamp: 1000 * SHARED_EVENTS,
        }
        const replies: string[] = []
        for (const client of fresh) replies.push(await client.send(line(next)))
        // Stored once, through the first connection; the others get DUP.
        assert.deepEqual(replies, [
          'OK',
          ...Array.from({ length: fresh.length - 1 }, () => 'DUP'),
        ])
        const robot = await getJson(proxy, robotPath(next.robot))
        const fields = robot.body as Record<string, unknown>
        assert.equal(fields.event_count, SHARED_EVENTS + 1)
        assert.equal(fields.last_x, 10)
        assertOdometer(
          fields.odometer,
          expectedOdometer([...events, next]),
          `odometer of ${next.robot}`,
        )
      }
      const open = await Promise.all(direct.slice(1).map(connectionsOpen))
      assert.equal(
        open.reduce((a, b) => a + b, 0),
        all.length,
        `the other processes hold every connection now: ${open.join(', ')}`,
      )
      clients.push(...fresh)
    })

    test('logs no error in nginx but the refused connections to the stopped process', () => {
      assert.deepEqual(nginxErrors(nginx!.log()), [])
    })

    test('writes no token to its access log: each request as its method and path, without the query string', async () => {
      for (const client of [idle, ...clients]) await client.close()
      // nginx logs a WebSocket connection once it has closed.
      await waitFor(
        () => upgradesLogged(nginx!.accessLog()) === nginx!.upgrades,
        `the ${nginx!.upgrades} WebSocket connections are in the access log`,
      )
      const log = nginx!.accessLog()
      assertNoToken(log, tokens)
      // The requests that carried their token in the query are there.
      assert.match(log, /"GET \/api\/robots\/Query token HTTP\/1\.1" 200 /)
      assert.match(log, /"GET \/upstream HTTP\/1\.1" 401 /)
    })
  },
)

describe('deploy/nginx-tls.conf', () => {
  test('is deploy/nginx.conf with TLS added: only the listen line and the ssl_ lines differ', () => {
    const plain = directives(readDeployFile('nginx.conf'))
    const tls = directives(readDeployFile('nginx-tls.conf'))
    assert.deepEqual(
      tls.filter((d) => !/^(?:listen|ssl_)/.test(d)),
      plain.filter((d) => !/^listen /.test(d)),
    )
    assert.deepEqual(
      tls.filter((d) => /^listen /.test(d)).map((d) => / ssl;$/.test(d)),
      [true],
      'one listen line, with ssl',
    )
  })
})
