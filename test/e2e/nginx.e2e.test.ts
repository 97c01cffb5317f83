/**
 * nginx in front of three server processes that share one PostgreSQL
 * schema, with deploy/nginx.conf as its configuration: the test runs a copy
 * of that file in which only the ports are replaced (and the /upstream
 * timeouts, scaled down with the servers' keepalive, see below). Everything
 * goes through nginx except each process's `GET /metrics`, which shows where
 * the connections landed, and the reads that compare a process's own answer
 * with nginx's. docs/deploy.md describes what it checks.
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
  assertErrorBody,
  assertOdometer,
  dropSchemas,
  expectedOdometer,
  freshSchema,
  getJson,
  http,
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
  type ApiEvent,
  type Origin,
  type ServerProcess,
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

/** deploy/nginx.conf, found from this file upwards (it runs from dist/). */
function findConfig(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const path = join(dir, 'deploy', 'nginx.conf')
    if (existsSync(path)) return path
    const parent = dirname(dir)
    assert.notEqual(parent, dir, 'deploy/nginx.conf is found above the test')
    dir = parent
  }
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

/** The configuration with real ports and the scaled /upstream timeouts. */
function configFor(
  template: string,
  listenPort: number,
  ports: readonly number[],
): string {
  let text = replaceCounted(
    template,
    /^([ \t]*)listen 127\.0\.0\.1:\d+;$/gm,
    `$1listen 127.0.0.1:${listenPort};`,
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
  readonly url: string
  readonly wsUrl: string
  readonly pid: number
  readonly prefix: string
  /** nginx's own error log and what it wrote on stderr. */
  log(): string
  stop(): Promise<void>
}

/**
 * Starts nginx in the foreground on a free port with the configuration for
 * `ports`, and resolves once `GET /healthz` answers 200 through it. Its
 * workers are killed with it (by pid) if it has to be killed.
 */
async function startNginx(
  binary: string,
  template: string,
  ports: readonly number[],
): Promise<Nginx> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const prefix = makeTempDir('telemetry-nginx-')
    // Started as root, nginx runs its worker as `nobody`, which must reach
    // the temp folders that nginx makes in here.
    chmodSync(prefix, 0o755)
    const conf = join(prefix, 'nginx.conf')
    writeFileSync(conf, configFor(template, port, ports))
    const child = startProcess(binary, ['-c', conf, '-p', `${prefix}/`], {
      killChildren: true,
    })
    const log = () => {
      let errorLog = ''
      try {
        errorLog = readFileSync(join(prefix, 'error.log'), 'utf8')
      } catch {
        // not written yet
      }
      return `${child.stdout()}${child.stderr()}${errorLog}`
    }
    const url = `http://127.0.0.1:${port}`
    const stop = async () => {
      // Fast shutdown: the master stops its workers.
      await child.stop(NGINX_STOP_TIMEOUT_MS)
      removeTempDir(prefix)
    }

    const ready = await waitFor(async () => {
      if (!child.running) return 'exited'
      try {
        return (await fetch(`${url}/healthz`)).status === 200 && 'ready'
      } catch {
        return undefined // not listening yet
      }
    }, 'nginx answers GET /healthz')
    if (ready === 'ready') {
      return {
        url,
        wsUrl: `ws://127.0.0.1:${port}`,
        pid: child.pid,
        prefix,
        log,
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
    let nginx: Nginx | undefined
    let proxy: { readonly url: string }
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
      const before = await Promise.all(servers.map(connectionsOpen))
      const client = await IngestClient.connect(nginx!.wsUrl)
      const after = await Promise.all(servers.map(connectionsOpen))
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
      // Started at once: the first to take the migration lock creates the
      // tables, the others find them.
      servers.push(
        ...(await Promise.all(
          Array.from({ length: PROCESSES }, () =>
            startServer(
              ['--keepalive-ms', String(KEEPALIVE_MS)],
              {},
              { store: url },
            ),
          ),
        )),
      )
      nginx = await startNginx(
        NGINX,
        readFileSync(findConfig(), 'utf8'),
        servers.map((s) => Number(new URL(s.url).port)),
      )
      proxy = nginx
    })

    after(async () => {
      try {
        for (const client of [idle, ...clients]) await client?.close()
        await nginx?.stop()
        await Promise.all(servers.map((s) => s.dispose()))
      } finally {
        await dropSchemas(schemas)
      }
    })

    test('spreads the ingest connections over every process', async () => {
      idle = await connect()
      assert.equal(await idle.send('0,0,1,Idle'), 'OK')
      markIdle()
      for (let i = 0; i < CLIENTS; i++) {
        clients.push(await connect())
      }
      const open = await Promise.all(servers.map(connectionsOpen))
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
      for (const origin of [proxy, ...servers]) {
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
      const direct = await request(
        servers[1]!,
        robotPath(BULK, '/events'),
        init,
      )
      assert.ok(
        direct.text === response.text,
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
        const refused = await refusedUpgrade(nginx!.wsUrl, path)
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
        fresh.push(await IngestClient.connect(nginx!.wsUrl))
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
      const open = await Promise.all(servers.slice(1).map(connectionsOpen))
      assert.equal(
        open.reduce((a, b) => a + b, 0),
        all.length,
        `the other processes hold every connection now: ${open.join(', ')}`,
      )
      clients.push(...fresh)
    })

    test('logs no error in nginx but the refused connections to the stopped process', () => {
      const errors = nginx!
        .log()
        .split('\n')
        .filter((l) => /\[(?:emerg|alert|crit|error)\]/.test(l))
        .filter(
          (l) => !/connect\(\) failed \(111: Connection refused\)/.test(l),
        )
      assert.deepEqual(errors, [])
    })
  },
)
