/**
 * Raw HTTP: bytes written as they are on a new TCP connection, and the
 * first response parsed from what the server sends until it closes the
 * connection. For requests that `fetch` and `node:http` refuse to send.
 *
 * @example
 * const answer = await rawExchange(server, 'GET /healthz HTTP/1.1\r\n\r\n')
 * answer.status // 400: no Host header
 */
import { connect } from 'node:net'
import type { Origin, TextResponse } from './http-api.ts'
import { SAFETY_TIMEOUT_MS } from './wait.ts'

/** What a raw exchange got back. */
export interface RawResponse extends TextResponse {
  /** Bytes received in all (0: the server closed without a word). */
  readonly received: number
}

/** Decodes a chunked body (RFC 9112 §7.1); trailers are ignored. */
function dechunk(body: Buffer): Buffer {
  const parts: Buffer[] = []
  let at = 0
  for (;;) {
    const eol = body.indexOf('\r\n', at)
    if (eol < 0) break
    const size = parseInt(body.subarray(at, eol).toString('latin1'), 16)
    if (!(size > 0)) break
    parts.push(body.subarray(eol + 2, eol + 2 + size))
    at = eol + 2 + size + 2
  }
  return Buffer.concat(parts)
}

/** Parses the first response of `all`: status line, header fields, body. */
function parseResponse(all: Buffer): RawResponse {
  const split = all.indexOf('\r\n\r\n')
  const head = (split < 0 ? all : all.subarray(0, split)).toString('latin1')
  const [statusLine = '', ...fields] = head.split('\r\n')
  const headers = new Headers()
  for (const field of fields) {
    const colon = field.indexOf(':')
    if (colon > 0) {
      headers.append(
        field.slice(0, colon).trim(),
        field.slice(colon + 1).trim(),
      )
    }
  }
  let body: Buffer = split < 0 ? Buffer.alloc(0) : all.subarray(split + 4)
  const length = headers.get('content-length')
  if (/chunked/i.test(headers.get('transfer-encoding') ?? '')) {
    body = dechunk(body)
  } else if (length !== null) {
    body = body.subarray(0, Number(length))
  }
  return {
    status: Number(/^HTTP\/1\.[01] (\d{3})\b/.exec(statusLine)?.[1] ?? 0),
    headers,
    text: body.toString('utf8'),
    received: all.length,
  }
}

/**
 * Writes `data` as is on a new TCP connection and resolves with the first
 * response once the server has closed the connection. Rejects when the
 * server neither answers nor closes within `timeoutMs`.
 */
export function rawExchange(
  origin: Origin,
  data: Buffer | string,
  timeoutMs = SAFETY_TIMEOUT_MS,
): Promise<RawResponse> {
  const { hostname, port } = new URL(origin.url)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(data))
    const chunks: Buffer[] = []
    socket.setTimeout(timeoutMs, () =>
      socket.destroy(new Error(`no answer and no close in ${timeoutMs} ms`)),
    )
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // A reset after a complete answer is still an answer.
      if (error.code === 'ECONNRESET' && chunks.length > 0) return
      reject(error)
    })
    socket.on('close', () => {
      try {
        resolve(parseResponse(Buffer.concat(chunks)))
      } catch (error) {
        reject(error as Error)
      }
    })
  })
}
