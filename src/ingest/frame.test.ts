import assert from 'node:assert/strict'
import type { Writable } from 'node:stream'
import { describe, it } from 'node:test'
import * as ws from 'ws'
import {
  BINARY_FRAME_REPLY,
  OUTCOME_REPLIES,
  errorReply,
  splitFrame,
  textFrames,
} from './frame.ts'

/** ws's frame reader, as a client runs it (exported, not in its types). */
const { Receiver } = ws as unknown as {
  Receiver: new (options: { isServer: boolean }) => Writable
}

const text = (s: string) => Buffer.from(s, 'utf8')
const split = (data: Buffer) => [...splitFrame(data)]

describe('splitFrame', () => {
  it('should split on newlines, with one final newline ending the last line', () => {
    assert.deepStrictEqual(split(text('a\nb')), ['a', 'b'])
    assert.deepStrictEqual(split(text('a\nb\n')), ['a', 'b'])
    assert.deepStrictEqual(split(text('a\n\nb')), ['a', '', 'b'])
    assert.deepStrictEqual(split(text('a\nb\n\n')), ['a', 'b', ''])
    assert.deepStrictEqual(split(text('a\r\nb\r\n')), ['a\r', 'b\r'])
  })

  it('should read an empty frame as one empty line', () => {
    assert.deepStrictEqual(split(text('')), [''])
    assert.deepStrictEqual(split(text('\n')), [''])
  })

  it('should count the lines before any is read', () => {
    assert.equal(splitFrame(text('a\nb\n')).count, 2)
    assert.equal(splitFrame(text('a\n\nb')).count, 3)
    assert.equal(splitFrame(text('')).count, 1)
    assert.equal(splitFrame(text('\n\n')).count, 2)
    const lines = splitFrame(text('a\nb'))
    lines.next()
    assert.equal(lines.remaining, 1)
  })

  it('should read frames far larger than a chunk, whatever the lines, ASCII or not', () => {
    // Lines of every length around the 16 KiB chunk, empty ones among
    // them, multi-byte characters on either side of a chunk's end.
    for (const name of ['robot', 'röbot-é', '机器人']) {
      const lines: string[] = []
      for (let i = 0; i < 3000; i++) {
        lines.push(
          i % 7 === 0 ? '' : `${i},${i / 2},${i},${name}-${'x'.repeat(i % 40)}`,
        )
      }
      lines.push('x'.repeat(40_000), '', `1,2,3,${name}`)
      for (const trailer of ['', '\n']) {
        assert.deepStrictEqual(split(text(lines.join('\n') + trailer)), lines)
      }
    }
  })

  it('should reject only the lines that are not valid UTF-8', () => {
    const frame = Buffer.concat([
      text('1,1,1,é\n'),
      Buffer.from([0x31, 0xc3, 0x28, 0x0a]),
      text('2,2,2,ok\n'),
      Buffer.from([0xff]),
    ])
    const unreadable = { reply: 'ERR malformed line is not valid UTF-8' }
    assert.deepStrictEqual(split(frame), [
      '1,1,1,é',
      unreadable,
      '2,2,2,ok',
      unreadable,
    ])
  })
})

describe('replies', () => {
  it('should write the wire code in lower case with the catalog message', () => {
    assert.equal(errorReply('MALFORMED', 'x is bad'), 'ERR malformed x is bad')
    assert.deepStrictEqual(OUTCOME_REPLIES, {
      ok: 'OK',
      dup: 'DUP',
      stale: "ERR stale the event is older than the robot's latest event",
      conflict:
        'ERR conflict another event of this robot is stored at this timestamp',
    })
    assert.equal(
      BINARY_FRAME_REPLY,
      'ERR malformed binary frames are not accepted',
    )
  })
})

describe('textFrames', () => {
  it('should write frames that a WebSocket client reads back, at every header size', async () => {
    const texts = [
      'OK',
      '',
      'a'.repeat(125),
      'b'.repeat(126),
      'é'.repeat(63), // 126 bytes of UTF-8 from 63 characters
      'c'.repeat(65535),
      'd'.repeat(65536),
      'OK\nDUP\nERR stale 😀',
    ]
    const receiver = new Receiver({ isServer: false })
    const got: string[] = []
    receiver.on('message', (data: Buffer, isBinary: boolean) => {
      assert.equal(isBinary, false)
      got.push(data.toString('utf8'))
    })
    const bytes = textFrames(texts)
    // In pieces, as a socket would deliver them.
    for (let at = 0; at < bytes.length; at += 1000) {
      await new Promise<void>((resolve, reject) =>
        receiver.write(bytes.subarray(at, at + 1000), (error) =>
          error ? reject(error) : resolve(),
        ),
      )
    }
    assert.deepStrictEqual(got, texts)
    assert.equal(textFrames([]).length, 0)
  })
})
