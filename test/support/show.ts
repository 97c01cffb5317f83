/**
 * Generated inputs in failure messages: short, printable, and exact enough
 * to rebuild the input (JSON for text, hex for bytes that are not UTF-8).
 */
import { isUtf8 } from 'node:buffer'

/** A short, printable form of a generated input, cut after `max` characters. */
export function show(data: string | Buffer, max = 120): string {
  const text =
    typeof data === 'string'
      ? JSON.stringify(data)
      : isUtf8(data)
        ? JSON.stringify(data.toString('utf8'))
        : `bytes ${data.toString('hex')}`
  return text.length > max ? `${text.slice(0, max)}…(${text.length})` : text
}
