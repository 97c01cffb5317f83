/**
 * Frames of the ingest protocol: splitting a text frame into lines and
 * writing reply lines. See docs/protocol.md.
 */
import { isUtf8 } from 'node:buffer'
import { ERROR_CATALOG, type ErrorCode } from '../errors.ts'
import type { Outcome } from '../domain/rules.ts'

/** A line that could not even be read as text, already answered. */
export interface UnreadableLine {
  readonly reply: string
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
export function splitFrame(data: Buffer): (string | UnreadableLine)[] {
  if (isUtf8(data)) {
    const lines = data.toString('utf8').split('\n')
    if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop()
    return lines
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
  return lines
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
