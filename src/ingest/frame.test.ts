import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  BINARY_FRAME_REPLY,
  OUTCOME_REPLIES,
  errorReply,
  splitFrame,
} from './frame.ts'

const text = (s: string) => Buffer.from(s, 'utf8')

describe('splitFrame', () => {
  it('should split on newlines, with one final newline ending the last line', () => {
    assert.deepStrictEqual(splitFrame(text('a\nb')), ['a', 'b'])
    assert.deepStrictEqual(splitFrame(text('a\nb\n')), ['a', 'b'])
    assert.deepStrictEqual(splitFrame(text('a\n\nb')), ['a', '', 'b'])
    assert.deepStrictEqual(splitFrame(text('a\nb\n\n')), ['a', 'b', ''])
    assert.deepStrictEqual(splitFrame(text('a\r\nb\r\n')), ['a\r', 'b\r'])
  })

  it('should read an empty frame as one empty line', () => {
    assert.deepStrictEqual(splitFrame(text('')), [''])
    assert.deepStrictEqual(splitFrame(text('\n')), [''])
  })

  it('should reject only the lines that are not valid UTF-8', () => {
    const frame = Buffer.concat([
      text('1,1,1,é\n'),
      Buffer.from([0x31, 0xc3, 0x28, 0x0a]),
      text('2,2,2,ok\n'),
      Buffer.from([0xff]),
    ])
    const unreadable = { reply: 'ERR malformed line is not valid UTF-8' }
    assert.deepStrictEqual(splitFrame(frame), [
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
