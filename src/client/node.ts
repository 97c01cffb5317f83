/**
 * `fleet-telemetry/client` in Node: the client of ./client.ts over the `ws`
 * package, with the token as an `Authorization: Bearer` header, and the
 * file journal of ./journal.ts.
 *
 * @example
 * import { connect } from 'fleet-telemetry/client'
 * const client = connect('ws://127.0.0.1:8000/upstream', { journal: 'robot.journal' })
 * const outcome = await client.send({ robot: 'R1', x: 1.5, y: 2, timestamp: Date.now() })
 * await client.close()
 */
import WebSocket from 'ws'
import {
  TelemetryClient,
  type ClientOptions,
  type OpenSocket,
  type Socket,
} from './client.ts'
import { FileJournal } from './journal.ts'

export * from './client.ts'
export { FileJournal, readJournal } from './journal.ts'

export interface NodeClientOptions extends ClientOptions {
  /**
   * A journal file: events wait there until they have a final outcome, and
   * a client that opens it again sends those first. One client at a time.
   */
  readonly journal?: string
  /** fdatasync the journal after each write (survives a power loss). */
  readonly journalSync?: boolean
}

const openSocket: OpenSocket = (url, token) =>
  new WebSocket(url, {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    perMessageDeflate: false,
  }) as unknown as Socket

/** A client of the ingest endpoint at `url` (`ws://HOST:PORT/upstream`). */
export function connect(
  url: string,
  options: NodeClientOptions = {},
): TelemetryClient {
  const journal =
    options.journal === undefined
      ? undefined
      : new FileJournal(options.journal, { sync: options.journalSync })
  try {
    return new TelemetryClient(url, options, openSocket, journal)
  } catch (error) {
    // A bad option: the journal is not kept open (and locked) for nothing.
    journal?.close()
    throw error
  }
}
