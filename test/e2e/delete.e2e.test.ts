/**
 * `DELETE /api/robots/{robot}` against the started server (docs/api.md):
 * 204, then the robot is gone from every route and a later event starts a
 * new one; 404 ROBOT_NOT_FOUND for a robot with no stored event; names
 * compared exactly, decoded as GET decodes them; only an admin token may
 * delete; and a robot deleted while its events stream in keeps exactly a
 * suffix of the events answered OK.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import {
  IngestClient,
  assertError,
  getJson,
  getRobot,
  makeTempDir,
  readEvents,
  readOdometer,
  removeTempDir,
  request,
  robotPath,
  startServer,
  waitFor,
  writeTokens,
  type Origin,
  type ServerProcess,
  type TextResponse,
  type TokensFile,
} from '../support/index.ts'

/** `DELETE /api/robots/{name}`, with the origin's token if it has one. */
function deleteRobot(
  origin: Origin,
  name: string,
  init: RequestInit = {},
): Promise<TextResponse> {
  return request(origin, robotPath(name), { ...init, method: 'DELETE' })
}

/** A 204 without a body. */
function assertDeleted(response: TextResponse, what: string) {
  assert.deepEqual(
    { status: response.status, text: response.text },
    { status: 204, text: '' },
    what,
  )
  assert.equal(response.headers.get('content-type'), null, what)
}

/** Stores `lines`, each answered OK. */
async function store(server: ServerProcess, lines: readonly string[]) {
  const client = await IngestClient.connect(server.wsUrl, {
    token: server.ingestToken,
  })
  await client.store(lines)
  await client.close()
}

async function robotNames(origin: Origin) {
  const listed = await getJson(origin, '/api/robots')
  assert.equal(listed.status, 200)
  return {
    names: (listed.body as { name: string }[]).map((r) => r.name),
    total: listed.headers.get('x-total-count'),
  }
}

describe('DELETE /api/robots/{robot}', () => {
  let server: ServerProcess

  before(async () => {
    server = await startServer()
  })
  after(() => server?.dispose())

  test('deletes a robot: 204 without a body, then GET and a second DELETE are 404 ROBOT_NOT_FOUND', async () => {
    await store(server, ['0,0,10,Bender', '3,4,20,Bender', '3,8,30,Bender'])
    assertDeleted(await deleteRobot(server, 'Bender'), 'the first DELETE')
    const gone = await request(server, robotPath('Bender'))
    assertError(gone, 'ROBOT_NOT_FOUND', 'GET after DELETE')
    const again = await deleteRobot(server, 'Bender')
    assertError(again, 'ROBOT_NOT_FOUND', 'DELETE again')
    // The same body as GET's.
    assert.deepEqual(JSON.parse(again.text), JSON.parse(gone.text))
    assert.deepEqual(JSON.parse(again.text), {
      statusCode: 404,
      code: 'ROBOT_NOT_FOUND',
      error: 'Not Found',
      message: 'robot "Bender" has no stored event',
    })
    assert.deepEqual(await readEvents(server, 'Bender'), [])
    assert.deepEqual(await readOdometer(server, 'Bender'), {
      robot: 'Bender',
      odometer: 0,
      start_time: null,
      end_time: null,
    })
  })

  test('answers 404 ROBOT_NOT_FOUND for a robot that never had an event', async () => {
    assertError(
      await deleteRobot(server, 'Nobody'),
      'ROBOT_NOT_FOUND',
      'never stored',
      /^robot "Nobody" has no stored event$/,
    )
  })

  test('drops the robot from the listing and from X-Total-Count', async () => {
    await store(server, ['0,0,1,list-a', '0,0,1,list-b', '0,0,1,list-c'])
    const before = await robotNames(server)
    assert.ok(before.names.includes('list-b'))
    assertDeleted(await deleteRobot(server, 'list-b'), 'list-b')
    const after = await robotNames(server)
    assert.deepEqual(
      after.names,
      before.names.filter((name) => name !== 'list-b'),
    )
    assert.equal(Number(after.total), Number(before.total) - 1)
    assert.equal(Number(after.total), after.names.length)
  })

  test('starts a new robot with the next event of the name, even one older than the deleted robot had', async () => {
    await store(server, ['0,0,1000,Phoenix', '6,8,2000,Phoenix'])
    assertDeleted(await deleteRobot(server, 'Phoenix'), 'Phoenix')
    // Older than the deleted robot's latest: stale before, stored now.
    await store(server, ['1,1,500,Phoenix'])
    assert.deepEqual(await getRobot(server, 'Phoenix'), {
      name: 'Phoenix',
      odometer: 0,
      last_x: 1,
      last_y: 1,
      first_timestamp: 500,
      last_timestamp: 500,
      event_count: 1,
    })
    assert.deepEqual(await readEvents(server, 'Phoenix'), [
      { robot: 'Phoenix', x: 1, y: 1, timestamp: 500 },
    ])
  })

  test('compares names exactly, case included, and decodes them as GET does', async () => {
    const names = [
      'Robot',
      'robot',
      'ROBOT',
      'Nibbler 1',
      'Ünïcødé 机器人 🤖',
      'Unit/7',
      '50%?#&+',
      'e\u0301', // e and a combining accent: not the same name as é
      '\u00e9',
    ]
    await store(
      server,
      names.map((name, i) => `${i},0,1,${name}`),
    )
    assertDeleted(await deleteRobot(server, 'Robot'), 'Robot')
    assertError(
      await request(server, robotPath('Robot')),
      'ROBOT_NOT_FOUND',
      'Robot is gone',
    )
    for (const name of ['robot', 'ROBOT']) {
      assert.equal((await getRobot(server, name)).name, name, name)
    }
    for (const name of names.slice(3)) {
      assert.equal((await getRobot(server, name)).name, name, name)
      assertDeleted(await deleteRobot(server, name), name)
      assertError(
        await request(server, robotPath(name)),
        'ROBOT_NOT_FOUND',
        `${name} is gone`,
      )
    }
    // A space written as %20 in the GET and the DELETE alike; an encoded
    // letter is the letter.
    await store(server, ['0,0,1,Nibbler 2', '0,0,1,AB'])
    assertDeleted(
      await request(server, '/api/robots/Nibbler%202', { method: 'DELETE' }),
      'Nibbler%202',
    )
    assertDeleted(
      await request(server, '/api/robots/%41B', { method: 'DELETE' }),
      '%41B',
    )
    const { names: left } = await robotNames(server)
    for (const name of names.filter((n) => n !== 'robot' && n !== 'ROBOT')) {
      assert.ok(!left.includes(name), `${name} is not listed`)
    }
    assert.ok(left.includes('robot') && left.includes('ROBOT'))
  })

  test('answers a broken percent-encoding with 400 INVALID_URL and an empty segment with ROUTE_NOT_FOUND', async () => {
    assertError(
      await request(server, '/api/robots/%E0%A4%A', { method: 'DELETE' }),
      'INVALID_URL',
      'broken encoding',
    )
    assertError(
      await request(server, '/api/robots/', { method: 'DELETE' }),
      'ROUTE_NOT_FOUND',
      'empty segment',
    )
  })

  test('keeps exactly a suffix of the events answered OK when the robot is deleted while they stream in', async () => {
    const robot = 'Streamer'
    const client = await IngestClient.connect<number>(server.wsUrl)
    /** Events answered before the DELETE was sent: surely deleted. */
    const FIRST = 200
    /** Events sent after the DELETE's answer arrived: surely kept. */
    const LAST = 200
    let sent = 0
    /** Set when the DELETE is answered: where the stream ends. */
    let end = Infinity
    const streamed = client.stream(() => {
      if (sent >= end) return undefined
      const i = sent++
      return { data: `${i},0,${1000 + i},${robot}`, tag: i }
    }, 8)
    await waitFor(() => client.answered >= FIRST, `${FIRST} events answered`)
    const answeredWhenSent = client.answered
    const response = await deleteRobot(server, robot)
    const sentWhenAnswered = sent
    end = sentWhenAnswered + LAST
    assertDeleted(response, 'the DELETE while events stream in')
    await streamed
    assert.equal(client.unanswered, 0, 'every event sent got an answer')
    await client.end()

    const ok = client.frames.filter((frame) => frame.reply === 'OK')
    assert.equal(ok.length, sent, 'every event was answered OK')
    const stored = await readEvents(server, robot)
    // The stored events are the OK ones from some point on, in order.
    const from = ok.length - stored.length
    assert.deepEqual(
      stored.map((event) => event.timestamp),
      ok.slice(from).map((frame) => 1000 + frame.tag),
      'a suffix of the events answered OK',
    )
    assert.ok(
      from >= answeredWhenSent,
      `the ${answeredWhenSent} events answered before the DELETE are gone (${from} are)`,
    )
    assert.ok(
      from <= sentWhenAnswered,
      `the events sent after the DELETE's answer are kept (from ${from}, sent ${sentWhenAnswered} by then)`,
    )
    const figures = await getRobot(server, robot)
    assert.equal(figures.event_count, stored.length)
    assert.equal(figures.first_timestamp, stored[0]!.timestamp)
    assert.equal(figures.last_timestamp, stored.at(-1)!.timestamp)
    assert.equal(figures.odometer, stored.length - 1)
  })
})

describe('DELETE /api/robots/{robot} with access control', () => {
  let dir: string
  let tokens: TokensFile
  let server: ServerProcess

  before(async () => {
    dir = makeTempDir('telemetry-delete-')
    tokens = writeTokens(join(dir, 'tokens.json'), [
      { name: 'ops', role: 'admin' },
      { name: 'dashboard', role: 'read' },
      { name: 'fleet', role: 'ingest' },
    ])
    server = await startServer(['--tokens', tokens.file])
    const client = await IngestClient.connect(server.wsUrl, {
      token: tokens.fleet,
    })
    await client.store(['0,0,1,Bender', '3,4,2,Bender'])
    await client.close()
  })
  after(async () => {
    await server?.dispose()
    removeTempDir(dir)
  })

  test('answers a read or an ingest token 403 FORBIDDEN and no token 401, and deletes nothing', async () => {
    for (const name of ['dashboard', 'fleet']) {
      assertError(
        await deleteRobot({ url: server.url, token: tokens[name] }, 'Bender'),
        'FORBIDDEN',
        `${name} token`,
        /may not delete robots: only an admin token may$/,
      )
    }
    assertError(await deleteRobot(server, 'Bender'), 'UNAUTHORIZED', 'none')
    // A token in the query is for GET and upgrades only.
    assertError(
      await request(
        server,
        `${robotPath('Bender')}?access_token=${tokens.ops}`,
        {
          method: 'DELETE',
        },
      ),
      'UNAUTHORIZED',
      'access_token on DELETE',
    )
    const reader = { url: server.url, token: tokens.dashboard }
    assert.equal((await getRobot(reader, 'Bender')).event_count, 2)
  })

  test('lets an admin token delete, and a reader then gets 404', async () => {
    const admin = { url: server.url, token: tokens.ops }
    assertDeleted(await deleteRobot(admin, 'Bender'), 'admin token')
    assertError(
      await deleteRobot(admin, 'Bender'),
      'ROBOT_NOT_FOUND',
      'admin, again',
    )
    assertError(
      await request(
        { url: server.url, token: tokens.dashboard },
        robotPath('Bender'),
      ),
      'ROBOT_NOT_FOUND',
      'read token, after',
    )
    // A reader still gets the catalog's answer for a DELETE of no route.
    assertError(
      await request(
        { url: server.url, token: tokens.dashboard },
        '/api/robots',
        {
          method: 'DELETE',
        },
      ),
      'ROUTE_NOT_FOUND',
      'no route, read token',
    )
  })
})
