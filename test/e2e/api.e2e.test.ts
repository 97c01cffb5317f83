/**
 * The HTTP API, end to end: events go in over the ingest WebSocket, then
 * every route is read with `fetch` and whole JSON bodies are compared.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import {
  ERROR_CODES,
  IngestClient,
  MAX_TIMESTAMP,
  assertErrorBody,
  assertErrorResponse,
  byCodePoint,
  getJson,
  getRobot,
  rawExchange,
  repeatLine,
  request,
  robotPath,
  startServer,
  withoutTimes,
  type ApiEvent,
  type ServerProcess,
} from '../support/index.ts'

/** The target of a `Link: <target>; rel="next"` header. */
function nextTarget(link: string | null): string {
  assert.ok(link !== null, 'a Link header is present')
  const match = /^<([^>]+)>; rel="next"$/.exec(link)
  assert.ok(match !== null, `Link header ${link} is <url>; rel="next"`)
  return match[1]!
}

const BENDER = ['0,0,0,Bender', '1,0,1,Bender', '0,0,2,Bender']

describe('HTTP API', () => {
  let server: ServerProcess
  let client: IngestClient

  before(async () => {
    server = await startServer()
    client = await IngestClient.connect(server.wsUrl)
  })
  after(async () => {
    await client?.close()
    await server?.dispose()
  })

  describe('health and description', () => {
    test('answers GET /healthz with 200 and a writable store', async () => {
      const response = await getJson(server, '/healthz')
      assert.equal(response.status, 200)
      assert.deepEqual(response.body, {
        status: 'ok',
        store: { writable: true },
      })
    })
  })

  describe('the original system', () => {
    before(async () => client.store(BENDER))

    test('gives Bender an odometer of 2 overall and 1 over [0,1]', async () => {
      assert.deepEqual(
        (await getJson(server, '/api/robots/Bender/odometer')).body,
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
            server,
            '/api/robots/Bender/odometer?start_time=0&end_time=1',
          )
        ).body,
        { robot: 'Bender', odometer: 1, start_time: 0, end_time: 1 },
      )
    })

    test('gives two Bender events over [0,1]', async () => {
      const response = await getJson(
        server,
        '/api/robots/Bender/events?start_time=0&end_time=1',
      )
      assert.equal(response.status, 200)
      assert.deepEqual(response.body, [
        { robot: 'Bender', x: 0, y: 0, timestamp: 0 },
        { robot: 'Bender', x: 1, y: 0, timestamp: 1 },
      ])
    })

    test('treats bender as another robot than Bender', async () => {
      await assertErrorResponse(
        server,
        '/api/robots/bender',
        404,
        'ROBOT_NOT_FOUND',
      )
      assert.deepEqual(
        (await getJson(server, '/api/robots/bender/events')).body,
        [],
      )
      assert.deepEqual(
        (await getJson(server, '/api/robots/bender/odometer')).body,
        {
          robot: 'bender',
          odometer: 0,
          start_time: null,
          end_time: null,
        },
      )
      assert.deepEqual(await getRobot(server, 'Bender'), {
        name: 'Bender',
        odometer: 2,
        last_x: 0,
        last_y: 0,
        first_timestamp: 0,
        last_timestamp: 2,
        event_count: 3,
      })
    })
  })

  describe('GET /api/robots/{robot}', () => {
    test('returns the robot with its odometer, last position, timestamps and event count', async () => {
      await client.store([
        '0,0,10,Robot one',
        '3,4,20,Robot one',
        '3,0,30,Robot one',
      ])
      const response = await getJson(server, '/api/robots/Robot%20one')
      assert.equal(response.status, 200)
      assert.deepEqual(withoutTimes(response.body), {
        name: 'Robot one',
        odometer: 9,
        last_x: 3,
        last_y: 0,
        first_timestamp: 10,
        last_timestamp: 30,
        event_count: 3,
      })
    })

    test('finds robots whose URL-encoded names hold /, %, spaces, emoji, quotes and other reserved characters', async () => {
      const names = [
        'a/b',
        '/leading/slash',
        '100% sure',
        '%2F',
        'with space inside',
        '🤖 unit 7',
        'say "hi"',
        "it's",
        'q?x=1#frag',
        'a+b',
        'semi;colon&amp=',
        'back\\slash',
        '<tag>',
        '...',
        'Ａｂｃ',
      ]
      await client.store(
        names.map((name, i) => `${i},${2 * i},${i + 1},${name}`),
      )
      for (const [i, name] of names.entries()) {
        const robot = await getJson(server, robotPath(name))
        assert.equal(robot.status, 200, name)
        assert.deepEqual(withoutTimes(robot.body), {
          name,
          odometer: 0,
          last_x: i,
          last_y: 2 * i,
          first_timestamp: i + 1,
          last_timestamp: i + 1,
          event_count: 1,
        })
        const events = await getJson(server, robotPath(name, '/events'))
        assert.deepEqual(events.body, [
          { robot: name, x: i, y: 2 * i, timestamp: i + 1 },
        ])
        const odometer = await getJson(server, robotPath(name, '/odometer'))
        assert.deepEqual(odometer.body, {
          robot: name,
          odometer: 0,
          start_time: null,
          end_time: null,
        })
      }
    })

    test('answers 404 ROBOT_NOT_FOUND for a robot with no stored event', async () => {
      await assertErrorResponse(
        server,
        '/api/robots/Nobody',
        404,
        'ROBOT_NOT_FOUND',
      )
      await assertErrorResponse(
        server,
        robotPath('🤖 nobody/at all'),
        404,
        'ROBOT_NOT_FOUND',
      )
    })
  })

  describe('GET /api/robots/{robot}/events', () => {
    const track: ApiEvent[] = [
      { robot: 'Track', x: 0, y: 0, timestamp: 10 },
      { robot: 'Track', x: 3, y: 4, timestamp: 20 },
      { robot: 'Track', x: 3, y: 0, timestamp: 30 },
      { robot: 'Track', x: 0, y: 0, timestamp: 40 },
      { robot: 'Track', x: -1.5, y: 0.25, timestamp: 50 },
    ]
    const between = (start: number, end: number) =>
      track.filter((e) => e.timestamp >= start && e.timestamp <= end)

    before(async () =>
      client.store(track.map((e) => `${e.x},${e.y},${e.timestamp},${e.robot}`)),
    )

    async function read(query: string, init?: RequestInit) {
      const response = await getJson(
        server,
        `/api/robots/Track/events${query}`,
        init,
      )
      assert.equal(response.status, 200, query)
      return response
    }

    test('returns every event by ascending timestamp as a JSON array', async () => {
      assert.deepEqual((await read('')).body, track)
      assert.deepEqual(
        (await read('', { headers: { accept: 'application/json' } })).body,
        track,
      )
    })

    test('includes both bounds of [start_time, end_time]', async () => {
      assert.deepEqual(
        (await read('?start_time=20&end_time=40')).body,
        between(20, 40),
      )
      assert.deepEqual(
        (await read('?start_time=20')).body,
        between(20, Infinity),
      )
      assert.deepEqual((await read('?end_time=20')).body, between(0, 20))
      assert.deepEqual(
        (await read('?start_time=30&end_time=30')).body,
        between(30, 30),
      )
      assert.deepEqual((await read('?start_time=21&end_time=29')).body, [])
    })

    test('treats an empty bound as absent', async () => {
      assert.deepEqual((await read('?start_time=&end_time=')).body, track)
      assert.deepEqual(
        (await read('?start_time=30&end_time=')).body,
        between(30, Infinity),
      )
      assert.deepEqual(
        (await read('?start_time=&end_time=30')).body,
        between(0, 30),
      )
    })

    test('swaps start_time and end_time when the start is after the end', async () => {
      assert.deepEqual(
        (await read('?start_time=40&end_time=20')).body,
        between(20, 40),
      )
    })

    test('returns [] for an unknown robot', async () => {
      for (const path of [
        '/api/robots/Unknown/events',
        '/api/robots/Unknown/events?start_time=0&end_time=100&limit=5',
        '/api/robots/track/events',
      ]) {
        const response = await getJson(server, path)
        assert.equal(response.status, 200)
        assert.deepEqual(response.body, [])
        assert.equal(response.headers.get('link'), null)
      }
    })

    test('writes one JSON object per line for Accept: application/x-ndjson', async () => {
      const response = await request(server, '/api/robots/Track/events', {
        headers: { accept: 'application/x-ndjson' },
      })
      assert.equal(response.status, 200)
      assert.match(
        response.headers.get('content-type') ?? '',
        /^application\/x-ndjson\b/,
      )
      assert.ok(response.text.endsWith('\n'), 'the last line ends with \\n')
      const lines = response.text.slice(0, -1).split('\n')
      assert.deepEqual(
        lines.map((line) => JSON.parse(line) as unknown),
        track,
      )
      const bounded = await request(
        server,
        '/api/robots/Track/events?start_time=20&end_time=30',
        { headers: { accept: 'application/x-ndjson' } },
      )
      assert.equal(
        bounded.text,
        '{"robot":"Track","x":3,"y":4,"timestamp":20}\n' +
          '{"robot":"Track","x":3,"y":0,"timestamp":30}\n',
      )
    })

    test('writes a CSV header and rows with CRLF line ends for Accept: text/csv', async () => {
      const response = await request(server, '/api/robots/Track/events', {
        headers: { accept: 'text/csv' },
      })
      assert.equal(response.status, 200)
      assert.match(response.headers.get('content-type') ?? '', /^text\/csv\b/)
      assert.equal(
        response.text,
        'robot,x,y,timestamp\r\n' +
          'Track,0,0,10\r\n' +
          'Track,3,4,20\r\n' +
          'Track,3,0,30\r\n' +
          'Track,0,0,40\r\n' +
          'Track,-1.5,0.25,50\r\n',
      )
    })

    test('quotes CSV names holding a comma or a double quote as RFC 4180 says', async () => {
      await client.store([
        '1,2,3,say "hi", then go',
        '1,2,3,comma,name',
        '1,2,3,"',
      ])
      const csv = async (name: string) =>
        (
          await request(server, robotPath(name, '/events'), {
            headers: { accept: 'text/csv' },
          })
        ).text
      assert.equal(
        await csv('say "hi", then go'),
        'robot,x,y,timestamp\r\n"say ""hi"", then go",1,2,3\r\n',
      )
      assert.equal(
        await csv('comma,name'),
        'robot,x,y,timestamp\r\n"comma,name",1,2,3\r\n',
      )
      assert.equal(await csv('"'), 'robot,x,y,timestamp\r\n"""",1,2,3\r\n')
      assert.equal(await csv('Nobody'), 'robot,x,y,timestamp\r\n')
    })

    test('pages events with limit and after, with a Link header whose after is the last timestamp of the page', async () => {
      const first = await read('?limit=2')
      assert.deepEqual(first.body, track.slice(0, 2))
      assert.equal(
        first.headers.get('link'),
        '</api/robots/Track/events?limit=2&after=20>; rel="next"',
      )
      const second = await read('?limit=2&after=20')
      assert.deepEqual(second.body, track.slice(2, 4))
      assert.equal(
        second.headers.get('link'),
        '</api/robots/Track/events?limit=2&after=40>; rel="next"',
      )
      const last = await read('?limit=2&after=40')
      assert.deepEqual(last.body, track.slice(4))
      assert.equal(last.headers.get('link'), null)

      const whole = await read('?limit=5')
      assert.deepEqual(whole.body, track)
      assert.equal(whole.headers.get('link'), null)
      assert.deepEqual((await read('?after=30')).body, between(31, Infinity))
      assert.deepEqual((await read(`?after=${MAX_TIMESTAMP}`)).body, [])
    })

    test('keeps the interval and the format when following the Link of a page', async () => {
      const collected: unknown[] = []
      let target: string | null =
        '/api/robots/Track/events?start_time=20&end_time=50&limit=2'
      let pages = 0
      while (target !== null) {
        const response = await request(server, target, {
          headers: { accept: 'application/x-ndjson' },
        })
        assert.equal(response.status, 200)
        assert.match(
          response.headers.get('content-type') ?? '',
          /^application\/x-ndjson\b/,
        )
        for (const line of response.text.split('\n').filter((l) => l !== '')) {
          collected.push(JSON.parse(line))
        }
        const link = response.headers.get('link')
        target = link === null ? null : nextTarget(link)
        pages++
      }
      assert.equal(pages, 2)
      assert.deepEqual(collected, between(20, 50))
    })

    test('follows Links for a robot whose name needs URL-encoding', async () => {
      const name = 'paged / robot %'
      await client.store(
        Array.from({ length: 5 }, (_, i) => `${i},0,${i},${name}`),
      )
      const timestamps: number[] = []
      let target: string | null = robotPath(name, '/events?limit=2')
      while (target !== null) {
        const response = await getJson(server, target)
        assert.equal(response.status, 200)
        for (const e of response.body as ApiEvent[]) {
          assert.equal(e.robot, name)
          timestamps.push(e.timestamp)
        }
        const link = response.headers.get('link')
        target = link === null ? null : nextTarget(link)
        if (target !== null) {
          assert.ok(target.startsWith(robotPath(name, '/events?')), target)
        }
      }
      assert.deepEqual(timestamps, [0, 1, 2, 3, 4])
    })

    test('answers 400 INVALID_QUERY for a limit of 0, -1, abc, 100001 or one given twice', async () => {
      for (const limit of ['0', '-1', 'abc', '100001', '1.5', '1e3']) {
        await assertErrorResponse(
          server,
          `/api/robots/Track/events?limit=${limit}`,
          400,
          'INVALID_QUERY',
          /\blimit\b/,
        )
      }
      await assertErrorResponse(
        server,
        '/api/robots/Track/events?limit=1&limit=2',
        400,
        'INVALID_QUERY',
        /\blimit\b/,
      )
      assert.deepEqual((await read('?limit=100000')).body, track)
      assert.deepEqual((await read('?limit=1')).body, track.slice(0, 1))
    })

    test('answers 400 INVALID_QUERY naming after for an after that is not a timestamp', async () => {
      for (const value of ['-1', '1.5', 'abc', '9007199254740992']) {
        await assertErrorResponse(
          server,
          `/api/robots/Track/events?limit=2&after=${value}`,
          400,
          'INVALID_QUERY',
          /\bafter\b/,
        )
      }
    })
  })

  describe('GET /api/robots/{robot}/odometer', () => {
    // Distances 5, 4 and 3 between consecutive events.
    before(async () =>
      client.store(['0,0,0,Odo', '3,4,10,Odo', '3,0,20,Odo', '0,0,30,Odo']),
    )

    async function odometer(query: string) {
      const response = await getJson(server, `/api/robots/Odo/odometer${query}`)
      assert.equal(response.status, 200, query)
      return response.body
    }

    test('sums the distances between consecutive events that both lie in the interval', async () => {
      const cases: [string, number, number | null, number | null][] = [
        ['', 12, null, null],
        ['?start_time=0&end_time=30', 12, 0, 30],
        ['?start_time=5&end_time=25', 4, 5, 25],
        ['?start_time=10&end_time=30', 7, 10, 30],
        ['?start_time=0&end_time=15', 5, 0, 15],
        ['?start_time=11&end_time=19', 0, 11, 19],
        ['?start_time=10&end_time=10', 0, 10, 10],
        ['?start_time=20', 3, 20, null],
        ['?end_time=20', 9, null, 20],
        ['?start_time=31', 0, 31, null],
      ]
      for (const [query, distance, start, end] of cases) {
        assert.deepEqual(
          await odometer(query),
          {
            robot: 'Odo',
            odometer: distance,
            start_time: start,
            end_time: end,
          },
          query,
        )
      }
    })

    test('echoes the bounds after swapping them, and null for absent or empty ones', async () => {
      assert.deepEqual(await odometer('?start_time=25&end_time=5'), {
        robot: 'Odo',
        odometer: 4,
        start_time: 5,
        end_time: 25,
      })
      assert.deepEqual(await odometer('?start_time=&end_time='), {
        robot: 'Odo',
        odometer: 12,
        start_time: null,
        end_time: null,
      })
      assert.deepEqual(await odometer('?start_time=10&end_time='), {
        robot: 'Odo',
        odometer: 7,
        start_time: 10,
        end_time: null,
      })
      assert.deepEqual(
        await odometer(`?start_time=0&end_time=${MAX_TIMESTAMP}`),
        {
          robot: 'Odo',
          odometer: 12,
          start_time: 0,
          end_time: MAX_TIMESTAMP,
        },
      )
    })

    test('answers 200 with odometer 0 for an unknown robot', async () => {
      const response = await getJson(
        server,
        '/api/robots/Ghost%20robot/odometer?start_time=9&end_time=3',
      )
      assert.equal(response.status, 200)
      assert.deepEqual(response.body, {
        robot: 'Ghost robot',
        odometer: 0,
        start_time: 3,
        end_time: 9,
      })
    })

    test('gives the exact odometer of an interval even after a long earlier trip', async () => {
      // The trip out and back is 2e16; the last step is 1 and lies alone in [3,4].
      await client.store([
        '0,0,1,Long trip',
        '1e16,0,2,Long trip',
        '0,0,3,Long trip',
        '1,0,4,Long trip',
      ])
      const response = await getJson(
        server,
        '/api/robots/Long%20trip/odometer?start_time=3&end_time=4',
      )
      assert.deepEqual(response.body, {
        robot: 'Long trip',
        odometer: 1,
        start_time: 3,
        end_time: 4,
      })
    })
  })

  describe('invalid requests', () => {
    test('answers 400 INVALID_QUERY naming the parameter for a negative, fractional, non-numeric or too large time bound', async () => {
      const values = [
        '-1',
        '1.5',
        'abc',
        '9007199254740992',
        '1e3',
        '0x10',
        '%20',
      ]
      for (const route of ['events', 'odometer']) {
        for (const name of ['start_time', 'end_time']) {
          for (const value of values) {
            await assertErrorResponse(
              server,
              `/api/robots/Bender/${route}?${name}=${value}`,
              400,
              'INVALID_QUERY',
              new RegExp(`\\b${name}\\b`),
            )
          }
        }
      }
    })

    test('answers 400 INVALID_URL for broken percent-encoding in the path', async () => {
      for (const path of [
        '/api/robots/%E0%A4%A',
        '/api/robots/%E0%A4%A/events',
        '/api/robots/%E0%A4%A/odometer',
      ]) {
        await assertErrorResponse(server, path, 400, 'INVALID_URL')
      }
    })

    test('answers 404 ROUTE_NOT_FOUND for unknown routes and methods', async () => {
      const cases: [string, string][] = [
        ['POST', '/api/robots'],
        ['GET', '/nope'],
        ['GET', '/api'],
        ['GET', '/api/robots/Bender/nope'],
        ['DELETE', '/api/robots'],
        ['DELETE', '/api/robots/Bender/events'],
        ['PUT', '/healthz'],
        ['PATCH', '/api/robots/Bender/events'],
        ['POST', '/api/robots/Bender/odometer'],
      ]
      for (const [method, path] of cases) {
        const init: RequestInit = { method }
        if (method !== 'GET') {
          init.headers = { 'content-type': 'application/json' }
          init.body = '{"x":1}'
        }
        await assertErrorResponse(
          server,
          path,
          404,
          'ROUTE_NOT_FOUND',
          undefined,
          init,
        )
      }
    })

    test('answers 431 HEADERS_TOO_LARGE for a URL over 16 KiB', async () => {
      await assertErrorResponse(
        server,
        `/api/robots/${'a'.repeat(17 * 1024)}`,
        431,
        'HEADERS_TOO_LARGE',
      )
      await assertErrorResponse(
        server,
        `/api/robots?after=${'b'.repeat(17 * 1024)}`,
        431,
        'HEADERS_TOO_LARGE',
      )
      const response = await getJson(server, '/healthz')
      assert.equal(response.status, 200)
    })

    test('answers 400 BAD_REQUEST to a request that is not HTTP', async () => {
      for (const text of [
        'NOT HTTP AT ALL\r\n\r\n',
        'GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n',
      ]) {
        const response = await rawExchange(server, text)
        assert.match(
          response.headers.get('content-type') ?? '',
          /^application\/json\b/,
        )
        assertErrorBody(response, 400, 'BAD_REQUEST')
      }
    })

    test('never answers with a 500 or a stack trace, whatever the request', async () => {
      const cases: [string, RequestInit?][] = [
        [`/api/robots/${'x'.repeat(5000)}`],
        [`/api/robots/${'x'.repeat(5000)}/events`],
        ['/api/robots/%FF'],
        ['/api/robots/%00'],
        ['/api/robots/%'],
        ['/api/robots?after=%FF'],
        ['/api/robots?after=a&after=b'],
        ['/api/robots?limit[a]=1'],
        ['/api/robots/Bender/events?start_time[]=1'],
        ['/api/robots/Bender/events?start_time=1&start_time=2'],
        ['/api/robots/Bender/odometer?end_time=1&end_time=2'],
        [
          '/api/robots/Bender/events',
          { headers: { accept: 'text/html, */*;q=0.1' } },
        ],
        ...['constructor', '__proto__', 'toString'].map(
          (accept): [string, RequestInit] => [
            '/api/robots/Bender/events',
            { headers: { accept } },
          ],
        ),
        [
          '/api/robots',
          {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: '{',
          },
        ],
        [
          '/api/robots/Bender/events',
          {
            method: 'POST',
            headers: { 'content-type': 'application/x-unknown' },
            body: 'x',
          },
        ],
      ]
      for (const [path, init] of cases) {
        const response = await request(server, path, init)
        assert.ok(response.status < 500, `${path} answered ${response.status}`)
        assert.doesNotMatch(
          response.text,
          /\n\s+at /,
          `${path}: no stack trace`,
        )
        if (response.status >= 400) {
          const body = JSON.parse(response.text) as Record<string, unknown>
          assert.deepEqual(Object.keys(body).sort(), [
            'code',
            'error',
            'message',
            'statusCode',
          ])
          assert.equal(body.statusCode, response.status)
          assert.ok(
            (ERROR_CODES as readonly unknown[]).includes(body.code),
            `${path}: code ${String(body.code)}`,
          )
        }
      }
    })
  })
})

describe('GET /api/robots', () => {
  // Code point order: digits < upper case < space < + < , < lower case <
  // é (U+E9) < Ａ (U+FF21) < 😀 (U+1F600). UTF-16 order would put 😀 before Ａ.
  const sorted = ['100%', 'B', 'Z', 'a', 'a b', 'a+b', 'a,b', 'é', 'Ａ', '😀']
  const robots = sorted.map((name, i) => ({
    name,
    odometer: 5 * i,
    last_x: 3 * i,
    last_y: 4 * i,
    first_timestamp: i,
    last_timestamp: i === 0 ? 0 : i + 1,
    event_count: i === 0 ? 1 : 2,
  }))
  let server: ServerProcess

  before(async () => {
    server = await startServer()
    const client = await IngestClient.connect(server.wsUrl)
    // Sent in another order than the sorted one.
    const lines: string[] = []
    for (const [i, name] of [...sorted.entries()].reverse()) {
      lines.push(`0,0,${i},${name}`)
      if (i > 0) lines.push(`${3 * i},${4 * i},${i + 1},${name}`)
    }
    assert.equal(
      await client.send(lines.join('\n')),
      repeatLine('OK', lines.length),
    )
    await client.close()
  })
  after(async () => server?.dispose())

  async function list(query: string) {
    const response = await getJson(server, `/api/robots${query}`)
    assert.equal(response.status, 200, query)
    const body = response.body as unknown[]
    assert.ok(Array.isArray(body))
    return {
      link: response.headers.get('link'),
      robots: body.map(withoutTimes),
    }
  }

  test('lists every robot sorted by name in code point order, B before a and Ａ before 😀', async () => {
    assert.deepEqual([...sorted].sort(byCodePoint), sorted)
    const { link, robots: all } = await list('')
    assert.deepEqual(all, robots)
    assert.equal(link, null)
  })

  test('pages the list with limit and after, with a Link header to the next page until the last', async () => {
    const first = await list('?limit=3')
    assert.deepEqual(first.robots, robots.slice(0, 3))
    assert.equal(first.link, '</api/robots?limit=3&after=Z>; rel="next"')

    const seen: Record<string, unknown>[] = [...first.robots]
    let target: string | null = nextTarget(first.link)
    let pages = 1
    while (target !== null) {
      const next: URL = new URL(target, server.url)
      assert.equal(next.pathname, '/api/robots')
      assert.deepEqual([...next.searchParams.keys()].sort(), ['after', 'limit'])
      assert.equal(next.searchParams.get('limit'), '3')
      assert.equal(next.searchParams.get('after'), seen[seen.length - 1]!.name)
      const page: Awaited<ReturnType<typeof list>> = await list(
        target.slice('/api/robots'.length),
      )
      seen.push(...page.robots)
      target = page.link === null ? null : nextTarget(page.link)
      pages++
    }
    assert.equal(pages, 4)
    assert.deepEqual(seen, robots)
  })

  test('gives a Link header only while more robots remain', async () => {
    assert.equal((await list(`?limit=${sorted.length}`)).link, null)
    assert.equal((await list(`?limit=${sorted.length + 1}`)).link, null)
    assert.equal((await list('?limit=10000')).link, null)
    const short = await list(`?limit=${sorted.length - 1}`)
    assert.deepEqual(short.robots, robots.slice(0, -1))
    const next = new URL(nextTarget(short.link), server.url)
    assert.equal(next.pathname, '/api/robots')
    assert.equal(next.searchParams.get('limit'), String(sorted.length - 1))
    assert.equal(next.searchParams.get('after'), 'Ａ')
    const lastPage = await list('?limit=2&after=é')
    assert.deepEqual(lastPage.robots, robots.slice(-2))
    assert.equal(lastPage.link, null)
  })

  test('lists only the robots whose names sort after the given one', async () => {
    assert.deepEqual((await list('?after=a')).robots, robots.slice(4))
    assert.deepEqual((await list('?after=aa')).robots, robots.slice(7))
    assert.deepEqual(
      (await list(`?after=${encodeURIComponent('a b')}`)).robots,
      robots.slice(5),
    )
    assert.deepEqual((await list('?after=A')).robots, robots.slice(1))
    assert.deepEqual(
      (await list(`?after=${encodeURIComponent('😀')}`)).robots,
      [],
    )
    assert.deepEqual((await list('?after=')).robots, robots)
  })

  test('answers 400 INVALID_QUERY for a limit of 0, -1, abc, 10001 or one given twice', async () => {
    for (const query of [
      '?limit=0',
      '?limit=-1',
      '?limit=abc',
      '?limit=10001',
      '?limit=1.5',
      '?limit=1&limit=2',
    ]) {
      await assertErrorResponse(
        server,
        `/api/robots${query}`,
        400,
        'INVALID_QUERY',
        /\blimit\b/,
      )
    }
  })
})
