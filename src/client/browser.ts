/**
 * `fleet-telemetry/client` in browsers (the `browser` condition of the
 * package's exports): the client of ./client.ts over the browser's own
 * WebSocket. A browser cannot set a header on a WebSocket, so the token
 * goes as `?access_token=` (docs/security.md). There is no journal: the
 * buffer is in memory only.
 */
import { TelemetryClient, type ClientOptions, type Socket } from './client.ts'

export * from './client.ts'

type WebSocketClass = new (url: string) => Socket

/** A client of the ingest endpoint at `url` (`ws://HOST:PORT/upstream`). */
export function connect(
  url: string,
  options: ClientOptions = {},
): TelemetryClient {
  const WebSocket = (globalThis as { WebSocket?: WebSocketClass }).WebSocket
  if (WebSocket === undefined) throw new Error('this runtime has no WebSocket')
  return new TelemetryClient(url, options, (address, token) => {
    if (token === undefined) return new WebSocket(address)
    const withToken = new URL(address)
    withToken.searchParams.set('access_token', token)
    return new WebSocket(withToken.href)
  })
}
