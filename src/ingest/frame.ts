/**
 * Frames of the ingest protocol: splitting a text frame into lines and
 * writing reply lines. See docs/protocol.md.
 */
import { isAscii, isUtf8 } from 'node:buffer'
import { ERROR_CATALOG, type ErrorCode } from '../errors.ts'
import {
  parseEventAt,
  parseEventLine,
  type MalformedLine,
  type TelemetryEvent,
} from '../domain/event.ts'
import type { Outcome } from '../domain/rules.ts'

/** A line that could not even be read as text, already answered. */
export interface UnreadableLine {
  readonly reply: string
}

/** Bytes of a frame turned into text at a time, as its lines are read. */
const CHUNK_BYTES = 16 * 1024

/**
 * The lines of one text frame, read in order, one at a time. A frame of
 * valid UTF-8 stays as it came, in its buffer; its lines become strings a
 * few kilobytes at a time, only when they are read. So a frame waiting for
 * its batch (batcher.ts) holds its bytes and no object a line, and no
 * large string is ever made (a large frame as one string cost a fresh
 * mapping of memory and a full collection to free).
 */
export class FrameLines implements Iterable<string | UnreadableLine> {
  /** How many lines the frame has. */
  readonly count: number
  /** The frame (valid UTF-8), or its lines (not valid UTF-8). */
  readonly #data: Buffer | undefined
  readonly #pieces: (string | UnreadableLine)[] | undefined
  /** Whether the frame is ASCII only: then it is decoded as Latin-1, a copy. */
  readonly #ascii: boolean
  /** Lines read so far. */
  #read = 0
  /** Where the next chunk starts in `#data`. */
  #at = 0
  /** The chunk being read, and where its next line starts. */
  #chunk = ''
  #chunkAt = 0
  /** The line last read, in `#chunk`. */
  #lineStart = 0
  #lineStop = 0

  constructor(data: Buffer, count: number, ascii: boolean)
  constructor(pieces: (string | UnreadableLine)[])
  constructor(
    source: Buffer | (string | UnreadableLine)[],
    count?: number,
    ascii = false,
  ) {
    this.#ascii = ascii
    if (Array.isArray(source)) {
      this.#pieces = source
      this.count = source.length
    } else {
      this.#data = source
      this.count = count!
    }
  }

  /** Lines not read yet. */
  get remaining(): number {
    return this.count - this.#read
  }

  /** The next line; call only while {@link remaining} is above 0. */
  next(): string | UnreadableLine {
    const piece = this.#advance()
    return piece ?? this.#chunk.slice(this.#lineStart, this.#lineStop)
  }

  /**
   * The next line parsed as an event, in place in the frame's text
   * ({@link parseEventAt}: no string is made for the line); call only
   * while {@link remaining} is above 0.
   */
  nextEvent(): TelemetryEvent | MalformedLine | UnreadableLine {
    const piece = this.#advance()
    if (piece === undefined) {
      return parseEventAt(this.#chunk, this.#lineStart, this.#lineStop)
    }
    return typeof piece === 'string' ? parseEventLine(piece) : piece
  }

  /**
   * Moves to the next line: its piece for a frame that is not valid UTF-8,
   * else `undefined`, the line being `#chunk` from `#lineStart` to
   * `#lineStop`.
   */
  #advance(): string | UnreadableLine | undefined {
    const index = this.#read++
    const data = this.#data
    if (data === undefined) return this.#pieces![index]!
    // Chunks end after a newline, so a line never spans two of them.
    if (this.#chunkAt >= this.#chunk.length) this.#nextChunk(data)
    const chunk = this.#chunk
    const start = this.#chunkAt
    const end = chunk.indexOf('\n', start)
    const stop = end < 0 ? chunk.length : end
    this.#chunkAt = stop + 1
    this.#lineStart = start
    this.#lineStop = stop
    return undefined
  }

  /** Decodes the next few kilobytes of whole lines. */
  #nextChunk(data: Buffer) {
    const start = this.#at
    let end = Math.min(start + CHUNK_BYTES, data.length)
    if (end < data.length) {
      // 0x0A never occurs inside a multi-byte UTF-8 sequence.
      const newline = data.indexOf(0x0a, end - 1)
      end = newline < 0 ? data.length : newline + 1
    }
    this.#chunk = data.toString(this.#ascii ? 'latin1' : 'utf8', start, end)
    this.#chunkAt = 0
    this.#at = end
  }

  *[Symbol.iterator](): Iterator<string | UnreadableLine> {
    while (this.remaining > 0) yield this.next()
  }
}

/**
 * Splits a text frame into lines on `\n`. One final `\n` ends the last line
 * rather than starting an empty one, so `"a\nb\n"` is two lines; an empty
 * frame is one empty line (answered as malformed).
 *
 * A frame that is not valid UTF-8 is split on the byte 0x0A, which never
 * occurs inside a multi-byte UTF-8 sequence, so that only the lines that are
 * not valid UTF-8 are rejected.
 */
export function splitFrame(data: Buffer): FrameLines {
  const ascii = isAscii(data)
  if (ascii || isUtf8(data)) {
    // Counted by indexOf (memchr), not byte by byte in JavaScript.
    let newlines = 0
    for (
      let at = data.indexOf(0x0a);
      at >= 0;
      at = data.indexOf(0x0a, at + 1)
    ) {
      newlines++
    }
    const endsWithNewline = data.length > 0 && data[data.length - 1] === 0x0a
    return new FrameLines(data, newlines + 1 - (endsWithNewline ? 1 : 0), ascii)
  }
  const lines: (string | UnreadableLine)[] = []
  let start = 0
  for (;;) {
    const end = data.indexOf(0x0a, start)
    const piece = data.subarray(start, end < 0 ? data.length : end)
    lines.push(
      isUtf8(piece)
        ? piece.toString('utf8')
        : { reply: errorReply('MALFORMED', 'line is not valid UTF-8') },
    )
    if (end < 0) break
    start = end + 1
    if (start === data.length) break
  }
  return new FrameLines(lines)
}

/** Bytes of a frame's header before its payload, by the payload's length. */
function headerBytes(length: number): number {
  return length < 126 ? 2 : length < 65536 ? 4 : 10
}

/**
 * Text frames as a server sends them (RFC 6455 §5.2: FIN, opcode 1, not
 * masked), one for each of `texts`, in one buffer to write at once.
 */
export function textFrames(texts: readonly string[]): Buffer {
  const lengths = new Array<number>(texts.length)
  let size = 0
  for (let i = 0; i < texts.length; i++) {
    const length = Buffer.byteLength(texts[i]!)
    lengths[i] = length
    size += headerBytes(length) + length
  }
  const out = Buffer.allocUnsafe(size)
  let at = 0
  for (let i = 0; i < texts.length; i++) {
    const length = lengths[i]!
    out[at] = 0x81
    if (length < 126) {
      out[at + 1] = length
    } else if (length < 65536) {
      out[at + 1] = 126
      out.writeUInt16BE(length, at + 2)
    } else {
      out[at + 1] = 127
      out.writeUInt16BE(0, at + 2)
      out.writeUIntBE(length, at + 4, 6)
    }
    at += headerBytes(length)
    at += out.write(texts[i]!, at, 'utf8')
  }
  return out
}

/** The reply line `ERR <code> <message>` for a catalog code. */
export function errorReply(code: ErrorCode, message?: string): string {
  return `ERR ${code.toLowerCase()} ${message ?? ERROR_CATALOG[code].message}`
}

/** The reply line for each outcome of the ingest rules. */
export const OUTCOME_REPLIES: Readonly<Record<Outcome, string>> = {
  ok: 'OK',
  dup: 'DUP',
  stale: errorReply('STALE'),
  conflict: errorReply('CONFLICT'),
}

/** The reply to a binary frame. */
export const BINARY_FRAME_REPLY = errorReply(
  'MALFORMED',
  'binary frames are not accepted',
)
