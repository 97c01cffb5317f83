/**
 * The ingest WebSocket `ws://HOST:PORT/upstream`, end to end: frames in,
 * reply frames out, and what the HTTP API then shows of the stored events.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import {
  IngestClient,
  MAX_TIMESTAMP,
  assertErrorBody,
  assertErrorResponse,
  getRobot,
  readEvents,
  refusedUpgrade,
  repeatLine,
  robotPath,
  startServer,
  type ServerProcess,
} from '../support/index.ts'

/** Checks a reply line `ERR malformed <message>` whose message names `field`. */
function assertMalformed(line: string | undefined, field: string, input = '') {
  assert.match(
    line ?? '',
    new RegExp(`^ERR malformed .*\\b${field}\\b`),
    `the reply to ${JSON.stringify(input)} is malformed, naming ${field}`,
  )
}

const STALE = /^ERR stale \S/
const CONFLICT = /^ERR conflict \S/

const MIB = 1024 * 1024
const EMOJI = '🤖'

describe('ingest at ws://HOST:PORT/upstream', () => {
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

  const events = (robot: string) => readEvents(server, robot)

  async function assertNoRobot(robot: string) {
    await assertErrorResponse(server, robotPath(robot), 404, 'ROBOT_NOT_FOUND')
  }

  describe('frames and lines', () => {
    test('stores a new event and answers OK', async () => {
      assert.equal(await client.send('1.5,-2,1700000000000,Ingest OK'), 'OK')
      assert.deepEqual(await getRobot(server, 'Ingest OK'), {
        name: 'Ingest OK',
        odometer: 0,
        last_x: 1.5,
        last_y: -2,
        first_timestamp: 1700000000000,
        last_timestamp: 1700000000000,
        event_count: 1,
      })
      assert.deepEqual(await events('Ingest OK'), [
        { robot: 'Ingest OK', x: 1.5, y: -2, timestamp: 1700000000000 },
      ])
    })

    test('answers every line of a frame with one reply line, in order', async () => {
      const lines = await client.lines(
        '0,0,1,Lines\n3,4,2,Lines\nnot an event\n6,8,3,Lines',
      )
      assert.equal(lines.length, 4)
      assert.deepEqual([lines[0], lines[1], lines[3]], ['OK', 'OK', 'OK'])
      assert.match(lines[2]!, /^ERR malformed \S/)
      assert.deepEqual(await getRobot(server, 'Lines'), {
        name: 'Lines',
        odometer: 10,
        last_x: 6,
        last_y: 8,
        first_timestamp: 1,
        last_timestamp: 3,
        event_count: 3,
      })
    })

    test('treats one final newline as the end of the last line, not as an empty line', async () => {
      assert.equal(
        await client.send('0,0,1,Newline\n1,0,2,Newline\n'),
        'OK\nOK',
      )
      assert.equal(await client.send('\n'), 'ERR malformed empty line')
      assert.equal(
        await client.send('2,0,3,Newline\n\n'),
        'OK\nERR malformed empty line',
      )
      assert.equal(
        await client.send('3,0,4,Newline\n\n4,0,5,Newline'),
        'OK\nERR malformed empty line\nOK',
      )
      assert.equal((await getRobot(server, 'Newline')).event_count, 5)
    })

    test('answers an empty frame as one empty line with ERR malformed empty line', async () => {
      assert.equal(await client.send(''), 'ERR malformed empty line')
    })

    test('tolerates a carriage return at the end of each line', async () => {
      assert.equal(await client.send('0,0,1,CRLF\r\n3,4,2,CRLF\r\n'), 'OK\nOK')
      assert.equal(await client.send('3,4,2,CRLF\r'), 'DUP')
      assert.deepEqual(await getRobot(server, 'CRLF'), {
        name: 'CRLF',
        odometer: 5,
        last_x: 3,
        last_y: 4,
        first_timestamp: 1,
        last_timestamp: 2,
        event_count: 2,
      })
      await assertNoRobot('CRLF\r')
    })

    test('keeps the connection open after rejected lines and answers the next frames', async () => {
      const other = await IngestClient.connect(server.wsUrl)
      assert.match(await other.send('garbage'), /^ERR malformed \S/)
      assert.equal(await other.send('1,2,3,Stays open'), 'OK')
      assert.match(await other.send('1,2,2,Stays open'), STALE)
      assert.match(await other.send('9,9,3,Stays open'), CONFLICT)
      assert.equal(await other.send('1,2,3,Stays open'), 'DUP')
      assert.equal(await other.send('1,2,4,Stays open'), 'OK')
      await other.end()
    })
  })

  describe('coordinates', () => {
    test('accepts finite decimal coordinates with a sign, a fraction or an exponent', async () => {
      const lines = [
        '-1.5e3,.5,1,Decimals',
        '+2,3.,2,Decimals',
        '1E2,-0,3,Decimals',
        '0,1e-3,4,Decimals',
        '-.25,+7.5E+1,5,Decimals',
        '007,-0.0,6,Decimals',
      ]
      assert.equal(await client.send(lines.join('\n')), repeatLine('OK', 6))
      assert.deepEqual(await events('Decimals'), [
        { robot: 'Decimals', x: -1500, y: 0.5, timestamp: 1 },
        { robot: 'Decimals', x: 2, y: 3, timestamp: 2 },
        { robot: 'Decimals', x: 100, y: 0, timestamp: 3 },
        { robot: 'Decimals', x: 0, y: 0.001, timestamp: 4 },
        { robot: 'Decimals', x: -0.25, y: 75, timestamp: 5 },
        { robot: 'Decimals', x: 7, y: 0, timestamp: 6 },
      ])
    })

    test('rejects a coordinate that is not a finite decimal number and names the field', async () => {
      const bad = [
        '0x10',
        'NaN',
        'Infinity',
        '-Infinity',
        '1e999',
        '-1e999',
        '',
        ' 1',
        '1 ',
        '.',
        '1e',
        'e5',
        '--1',
        '+-1',
        '1_000',
        '1.2.3',
        '١',
        'abc',
      ]
      const xLines = bad.map((v) => `${v},0,1,Bad coordinate`)
      const yLines = bad.map((v) => `0,${v},1,Bad coordinate`)
      const xReplies = await client.lines(xLines.join('\n'))
      const yReplies = await client.lines(yLines.join('\n'))
      assert.equal(xReplies.length, bad.length)
      assert.equal(yReplies.length, bad.length)
      bad.forEach((value, i) => {
        assertMalformed(xReplies[i], 'x', xLines[i])
        assertMalformed(yReplies[i], 'y', yLines[i])
      })
      await assertNoRobot('Bad coordinate')
    })
  })

  describe('timestamps', () => {
    test('accepts timestamps from 0 to 2^53−1 written as digits', async () => {
      assert.equal(
        await client.send(`0,0,0,Timestamps\n3,4,${MAX_TIMESTAMP},Timestamps`),
        'OK\nOK',
      )
      assert.deepEqual(await events('Timestamps'), [
        { robot: 'Timestamps', x: 0, y: 0, timestamp: 0 },
        { robot: 'Timestamps', x: 3, y: 4, timestamp: MAX_TIMESTAMP },
      ])
      assert.deepEqual(await getRobot(server, 'Timestamps'), {
        name: 'Timestamps',
        odometer: 5,
        last_x: 3,
        last_y: 4,
        first_timestamp: 0,
        last_timestamp: MAX_TIMESTAMP,
        event_count: 2,
      })
    })

    test('rejects a timestamp that is negative, fractional, in exponent form, not digits or above 2^53−1, naming the field', async () => {
      const bad = [
        '-1',
        '1.5',
        '1.',
        '1e3',
        '9007199254740992',
        '99999999999999999999',
        '',
        '+1',
        ' 1',
        '1 ',
        '0x1',
        'abc',
        'NaN',
        'Infinity',
      ]
      const lines = bad.map((v) => `0,0,${v},Bad timestamp`)
      const replies = await client.lines(lines.join('\n'))
      assert.equal(replies.length, bad.length)
      bad.forEach((_, i) => assertMalformed(replies[i], 'timestamp', lines[i]))
      await assertNoRobot('Bad timestamp')
    })
  })

  describe('robot names', () => {
    test('takes the robot name from the rest of the line after the third comma, commas included', async () => {
      assert.equal(await client.send('1,2,3,Robot, with, commas,'), 'OK')
      assert.deepEqual(await events('Robot, with, commas,'), [
        { robot: 'Robot, with, commas,', x: 1, y: 2, timestamp: 3 },
      ])
      await assertNoRobot('Robot')
    })

    test('accepts names of 1 to 150 code points, such as 150 emoji', async () => {
      const names = [
        'Q',
        EMOJI.repeat(150),
        'n'.repeat(150),
        'é'.repeat(150),
        '...',
        'inner  spaces\u00a0here',
        'ünïcödé ロボット',
      ]
      const reply = await client.send(
        names.map((name) => `1,1,1,${name}`).join('\n'),
      )
      assert.equal(reply, repeatLine('OK', names.length))
      for (const name of names) {
        assert.equal((await getRobot(server, name)).name, name)
      }
    })

    test('rejects names that are empty, longer than 150 code points, hold a control character, start or end with white space, or are . or ..', async () => {
      const bad = [
        '',
        EMOJI.repeat(151),
        'n'.repeat(151),
        'tab\tinside',
        'nul\u0000inside',
        'del\u007finside',
        'c1\u0085inside',
        'escape\u001b[0m',
        ' leading',
        'trailing ',
        '\u00a0leading nbsp',
        'trailing nbsp\u00a0',
        '.',
        '..',
      ]
      const lines = bad.map((name) => `0,0,1,${name}`)
      const replies = await client.lines(lines.join('\n'))
      assert.equal(replies.length, bad.length)
      bad.forEach((_, i) => assertMalformed(replies[i], 'robot_name', lines[i]))
      await assertNoRobot('leading')
      await assertNoRobot('trailing')
    })

    test('rejects a line with fewer than four fields', async () => {
      const replies = await client.lines('1,2,3\n1,2\n1\nabc')
      assert.equal(replies.length, 4)
      for (const line of replies) assert.match(line, /^ERR malformed \S/)
    })

    test('treats names as case-sensitive: McDonalds and mcdonalds are two robots', async () => {
      assert.equal(
        await client.send('0,0,1,McDonalds\n5,5,1,mcdonalds\n3,4,2,McDonalds'),
        'OK\nOK\nOK',
      )
      assert.deepEqual(await getRobot(server, 'McDonalds'), {
        name: 'McDonalds',
        odometer: 5,
        last_x: 3,
        last_y: 4,
        first_timestamp: 1,
        last_timestamp: 2,
        event_count: 2,
      })
      assert.deepEqual(await getRobot(server, 'mcdonalds'), {
        name: 'mcdonalds',
        odometer: 0,
        last_x: 5,
        last_y: 5,
        first_timestamp: 1,
        last_timestamp: 1,
        event_count: 1,
      })
      await assertNoRobot('MCDONALDS')
    })
  })

  describe('duplicates, stale and conflicting events', () => {
    test('answers DUP for the exact event already stored, at the latest or an older timestamp', async () => {
      assert.equal(await client.send('0,0,10,Dup\n3,4,20,Dup'), 'OK\nOK')
      assert.equal(await client.send('3,4,20,Dup'), 'DUP')
      assert.equal(await client.send('3.0,4e0,20,Dup'), 'DUP')
      assert.equal(await client.send('0,0,10,Dup'), 'DUP')
      assert.equal(await client.send('-0,0.0,10,Dup'), 'DUP')
      assert.deepEqual(await getRobot(server, 'Dup'), {
        name: 'Dup',
        odometer: 5,
        last_x: 3,
        last_y: 4,
        first_timestamp: 10,
        last_timestamp: 20,
        event_count: 2,
      })
    })

    test('answers ERR conflict for another position at the timestamp of a stored event, latest or older', async () => {
      assert.equal(
        await client.send('0,0,10,Conflict\n3,4,20,Conflict'),
        'OK\nOK',
      )
      assert.match(await client.send('3,5,20,Conflict'), CONFLICT)
      assert.match(await client.send('1,0,10,Conflict'), CONFLICT)
      assert.match(await client.send('0,-1e-9,10,Conflict'), CONFLICT)
      assert.deepEqual(await getRobot(server, 'Conflict'), {
        name: 'Conflict',
        odometer: 5,
        last_x: 3,
        last_y: 4,
        first_timestamp: 10,
        last_timestamp: 20,
        event_count: 2,
      })
      assert.deepEqual(await events('Conflict'), [
        { robot: 'Conflict', x: 0, y: 0, timestamp: 10 },
        { robot: 'Conflict', x: 3, y: 4, timestamp: 20 },
      ])
    })

    test('answers ERR stale for an event older than the latest with nothing stored at its timestamp', async () => {
      assert.equal(await client.send('0,0,10,Stale\n3,4,20,Stale'), 'OK\nOK')
      assert.match(await client.send('0,0,15,Stale'), STALE)
      assert.match(await client.send('0,0,9,Stale'), STALE)
      assert.match(await client.send('0,0,0,Stale'), STALE)
      assert.equal(await client.send('6,8,21,Stale'), 'OK')
      assert.deepEqual(await events('Stale'), [
        { robot: 'Stale', x: 0, y: 0, timestamp: 10 },
        { robot: 'Stale', x: 3, y: 4, timestamp: 20 },
        { robot: 'Stale', x: 6, y: 8, timestamp: 21 },
      ])
    })

    test('judges each line of a frame against the lines before it', async () => {
      const lines = await client.lines(
        [
          '0,0,10,Sequence',
          '0,0,10,Sequence',
          '1,1,10,Sequence',
          '0,0,5,Sequence',
          '3,4,11,Sequence',
          '0,0,10,Sequence',
          '7,7,10,Sequence',
          '3,4,11,Sequence',
        ].join('\n'),
      )
      assert.equal(lines.length, 8)
      assert.deepEqual(
        [lines[0], lines[1], lines[4], lines[5], lines[7]],
        ['OK', 'DUP', 'OK', 'DUP', 'DUP'],
      )
      assert.match(lines[2]!, CONFLICT)
      assert.match(lines[3]!, STALE)
      assert.match(lines[6]!, CONFLICT)
      assert.equal((await getRobot(server, 'Sequence')).event_count, 2)
    })

    test('creates a robot only with its first stored event', async () => {
      await assertNoRobot('Newborn')
      assertMalformed(await client.send('x,0,1,Newborn'), 'x')
      assertMalformed(await client.send('0,0,-1,Newborn'), 'timestamp')
      await assertNoRobot('Newborn')
      assert.deepEqual(await events('Newborn'), [])
      assert.equal(await client.send('0,0,7,Newborn'), 'OK')
      assert.deepEqual(await getRobot(server, 'Newborn'), {
        name: 'Newborn',
        odometer: 0,
        last_x: 0,
        last_y: 0,
        first_timestamp: 7,
        last_timestamp: 7,
        event_count: 1,
      })
    })
  })

  describe('binary frames, invalid UTF-8 and frame size', () => {
    test('answers a binary frame with ERR malformed binary frames are not accepted and stores nothing', async () => {
      assert.equal(
        await client.send(Buffer.from('0,0,1,Binary'), true),
        'ERR malformed binary frames are not accepted',
      )
      await assertNoRobot('Binary')
      assert.equal(await client.send('0,0,1,Binary'), 'OK')
    })

    test('answers only the lines that are not valid UTF-8 with ERR malformed line is not valid UTF-8', async () => {
      const frame = Buffer.concat([
        Buffer.from('0,0,1,Utf8 ok\n'),
        Buffer.from('0,0,1,Utf8 bad'),
        Buffer.from([0xff]),
        Buffer.from('\n1,0,2,Utf8 ok\r\n'),
        Buffer.from('0,0,1,Utf8 cut '),
        Buffer.from([0xe2, 0x82]),
        Buffer.from('\r\n'),
        Buffer.from('0,0,1,'),
        Buffer.from([0xed, 0xa0, 0x80]),
        Buffer.from('\n2,0,3,Utf8 ok ' + EMOJI + '\n'),
        Buffer.from('\n'),
        Buffer.from('3,0,4,Utf8 ok'),
      ])
      const invalid = 'ERR malformed line is not valid UTF-8'
      const lines = await client.lines(frame)
      assert.deepEqual(lines, [
        'OK',
        invalid,
        'OK',
        invalid,
        invalid,
        'OK',
        'ERR malformed empty line',
        'OK',
      ])
      assert.equal((await getRobot(server, 'Utf8 ok')).event_count, 3)
      assert.equal((await getRobot(server, `Utf8 ok ${EMOJI}`)).event_count, 1)
      await assertNoRobot('Utf8 bad')
      await assertNoRobot('Utf8 bad\ufffd')
    })

    test('answers a frame of exactly 1 MiB', async () => {
      const frame = '0,0,1,' + 'a'.repeat(MIB - 6)
      assert.equal(Buffer.byteLength(frame), MIB)
      assertMalformed(await client.send(frame), 'robot_name')
    })

    test('closes the connection with 1009 on a frame over 1 MiB, and other connections go on', async () => {
      const bystander = await IngestClient.connect(server.wsUrl)
      const big = await IngestClient.connect(server.wsUrl)
      assert.equal(await big.send('0,0,1,Big sender'), 'OK')
      await assert.rejects(big.send('0,0,2,' + 'a'.repeat(MIB - 5)))
      assert.equal((await big.closed).code, 1009)
      assert.equal(await bystander.send('0,0,1,Bystander'), 'OK')
      await bystander.end()
      assert.equal((await getRobot(server, 'Big sender')).event_count, 1)
    })

    test('answers the frames received before an oversized frame before closing with 1009', async () => {
      const big = await IngestClient.connect(server.wsUrl)
      const first = big.send('0,0,1,Before big frame\n1,0,2,Before big frame')
      const second = big.send('not an event')
      const oversized = big.send('x'.repeat(MIB + 1))
      assert.equal(await first, 'OK\nOK')
      assert.match(await second, /^ERR malformed \S/)
      await assert.rejects(oversized)
      assert.equal((await big.closed).code, 1009)
      assert.equal((await getRobot(server, 'Before big frame')).event_count, 2)
    })
  })

  describe('order and isolation', () => {
    test('applies the events of one connection in the order sent, with many frames pipelined', async () => {
      const n = 400
      const frames = Array.from(
        { length: n },
        (_, i) => `${i},0,${i},Pipelined\n${i},0,${i},Pipelined`,
      )
      const replies = await client.sendAll(frames)
      assert.deepEqual(
        replies,
        frames.map(() => 'OK\nDUP'),
      )
      assert.deepEqual(await getRobot(server, 'Pipelined'), {
        name: 'Pipelined',
        odometer: n - 1,
        last_x: n - 1,
        last_y: 0,
        first_timestamp: 0,
        last_timestamp: n - 1,
        event_count: n,
      })
    })

    test('sends the replies in frame order even when malformed-only or binary frames follow frames with events', async () => {
      const expected: string[] = []
      const replies: Promise<string>[] = []
      for (let i = 0; i < 50; i++) {
        replies.push(
          client.send(
            `${2 * i},0,${2 * i},Reply order\n${2 * i + 1},0,${2 * i + 1},Reply order`,
          ),
        )
        expected.push('OK\nOK')
        replies.push(client.send('not an event'))
        expected.push('malformed')
        replies.push(client.send(Buffer.from('x'), true))
        expected.push('ERR malformed binary frames are not accepted')
        replies.push(client.send(''))
        expected.push('ERR malformed empty line')
      }
      const got = await Promise.all(replies)
      got.forEach((reply, i) => {
        if (expected[i] === 'malformed') {
          assert.match(reply, /^ERR malformed \S[^\n]*$/, `reply ${i}`)
        } else {
          assert.equal(reply, expected[i], `reply ${i}`)
        }
      })
      assert.equal((await getRobot(server, 'Reply order')).event_count, 100)
    })

    test('never lets a bad line affect the other lines of its frame', async () => {
      const lines = await client.lines(
        [
          '0,0,1,Neighbour A',
          'bad,0,1,Neighbour B',
          '0,0,1,Neighbour B',
          `0,0,1,${'n'.repeat(151)}`,
          '3,4,2,Neighbour A',
          '\u0000',
          '0,0,2,Neighbour B',
        ].join('\n'),
      )
      assert.equal(lines.length, 7)
      assert.deepEqual(
        [lines[0], lines[2], lines[4], lines[6]],
        ['OK', 'OK', 'OK', 'OK'],
      )
      assertMalformed(lines[1], 'x')
      assertMalformed(lines[3], 'robot_name')
      assert.match(lines[5]!, /^ERR malformed \S/)
    })

    test('never lets bad lines of one connection affect another connection', async () => {
      const good = await IngestClient.connect(server.wsUrl)
      const bad = await IngestClient.connect(server.wsUrl)
      assert.equal(await bad.send('0,0,100,Shared'), 'OK')
      const n = 100
      const goodReplies = good.sendAll(
        Array.from({ length: n }, (_, i) => `${i},${i},${i},Good neighbour`),
      )
      const badReplies = bad.sendAll(
        Array.from({ length: n }, (_, i) =>
          [
            'garbage',
            `1,1,${i},Shared`,
            '',
            `0,0,${i},Good neighbour ${'x'.repeat(150)}`,
          ].join('\n'),
        ),
      )
      assert.deepEqual(await goodReplies, Array(n).fill('OK'))
      for (const reply of await badReplies) {
        const lines = reply.split('\n')
        assert.equal(lines.length, 4)
        assert.match(lines[0]!, /^ERR malformed /)
        assert.match(lines[1]!, STALE)
        assert.equal(lines[2], 'ERR malformed empty line')
        assertMalformed(lines[3], 'robot_name')
      }
      assert.equal((await getRobot(server, 'Good neighbour')).event_count, n)
      await good.end()
      await bad.end()
    })
  })

  describe('other paths', () => {
    test('refuses a WebSocket upgrade to any other path with HTTP 404 and a JSON error body', async () => {
      for (const path of [
        '/',
        '/nope',
        '/upstream/extra',
        '/Upstream',
        '/upstreams',
        '/api/robots',
      ]) {
        const refused = await refusedUpgrade(server.wsUrl, path)
        assert.match(refused.contentType ?? '', /^application\/json\b/, path)
        assertErrorBody(
          { status: refused.status, text: refused.body },
          404,
          'ROUTE_NOT_FOUND',
        )
      }
      assert.equal(await client.send('0,0,1,After refusals'), 'OK')
    })
  })

  test('keeps the shared connection in step: one reply frame per frame and no extra one', async () => {
    await client.end()
  })
})
