/**
 * The Foxglove endpoint as the server holds it: its path, and the bridge
 * (foxglove.ts), which loads with the Foxglove protocol's modules on the
 * first upgrade to the path. Most servers never see a Foxglove client, and
 * those modules were megabytes of every server's memory at rest (issue 17).
 * The bridge reads the robots when its first client opens either way, so a
 * bridge made then serves exactly what one made at start would.
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { rawHttpError, TelemetryError } from '../errors.ts'
import type { FoxgloveLive, FoxgloveOptions } from './foxglove.ts'

/** The endpoint: the bridge, made on first use. */
export class FoxgloveEndpoint {
  readonly #options: FoxgloveOptions
  #live: Promise<FoxgloveLive> | undefined
  #closed = false

  constructor(options: FoxgloveOptions) {
    this.#options = options
  }

  /** Takes over an HTTP upgrade to the endpoint's path (constants.ts). */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.#closed && this.#live === undefined) {
      const message = 'the server is shutting down'
      socket.end(rawHttpError(new TelemetryError('UNAVAILABLE', { message })))
      return
    }
    this.#bridge().then(
      (live) => live.handleUpgrade(request, socket, head),
      (error: unknown) => {
        this.#options.logger.error({ err: error }, 'foxglove bridge not loaded')
        socket.destroy()
      },
    )
  }

  /** Closes the clients whose token was revoked; none before the first. */
  revoke(): void {
    void this.#live?.then((live) => live.revoke())
  }

  /** Closes every client and stops watching; upgrades after it are refused. */
  close(): void {
    this.#closed = true
    // Upgrades already waiting for the bridge are taken, then closed.
    void this.#live?.then((live) => live.close())
  }

  #bridge(): Promise<FoxgloveLive> {
    this.#live ??= import('./foxglove.ts').then(
      ({ FoxgloveLive }) => new FoxgloveLive(this.#options),
    )
    return this.#live
  }
}
