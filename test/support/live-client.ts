/**
 * A client of the live feed (`GET /api/live`, server-sent events) that keeps
 * every event it read, can stop reading (a stalled subscriber) and says how
 * its stream ended.
 *
 * @example
 * const live = await LiveClient.open(server, { robots: ['Bender'] })
 * await live.until((events) => events.length >= 3, 'three events')
 * live.close()
 */
import { request as httpRequest, type IncomingMessage } from 'node:http'
import type { Origin } from './http-api.ts'
import { waitFor, withTimeout } from './wait.ts'

/** The data of a `snapshot` or `position` event (`{}` for `live`). */
export interface LivePosition {
  readonly robot: string
  readonly x: number
  readonly y: number
  readonly timestamp: number
  readonly odometer: number | null
}

/** One event as read from the stream. */
export interface LiveEvent {
  /** `snapshot`, `position`, or `live` once the start is over. */
  readonly type: string
  /** The `id:` field, when the event has one. */
  readonly id: string | undefined
  readonly data: LivePosition
  /** `performance.now()` when it was read. */
  readonly receivedAt: number
}

/** Options of {@link LiveClient.open}. */
export interface LiveClientOptions {
  /** `robot=` parameters; none for the whole fleet. */
  readonly robots?: readonly string[]
  /** Sent as the `Last-Event-ID` header. */
  readonly lastEventId?: number | string
  /** Send the origin's token as `access_token` in the URL (as a browser's EventSource must) instead of a header. */
  readonly tokenInQuery?: boolean
}

/** How a stream ended: the server ended it, or it broke off (cut, reset). */
export type LiveEnd = 'end' | 'aborted'

/** An open live stream, or a refused one (`status` other than 200). */
export class LiveClient {
  readonly status: number
  readonly headers: IncomingMessage['headers']
  /** The body of a refused request; `''` for a stream. */
  body = ''
  /** Every `snapshot` and `position` event read so far, in order. */
  readonly events: LiveEvent[] = []
  /** `: comment` lines read (keepalives). */
  comments = 0
  /** The `retry:` field, when one came. */
  retry: number | undefined
  /** Resolves once the stream is over, with how it ended. */
  readonly ended: Promise<LiveEnd>
  readonly #response: IncomingMessage
  #pending = ''
  #isEnded = false

  private constructor(response: IncomingMessage) {
    this.#response = response
    this.status = response.statusCode ?? 0
    this.headers = response.headers
    response.setEncoding('utf8')
    this.ended = new Promise((resolve) => {
      let how: LiveEnd = 'aborted'
      response.on('end', () => (how = 'end'))
      response.on('error', () => {})
      response.on('close', () => {
        this.#isEnded = true
        resolve(response.complete && how === 'end' ? 'end' : 'aborted')
      })
    })
    response.on('data', (chunk: string) => {
      if (this.status !== 200) {
        this.body += chunk
        return
      }
      this.#pending += chunk
      let end: number
      while ((end = this.#pending.indexOf('\n\n')) >= 0) {
        this.#block(this.#pending.slice(0, end))
        this.#pending = this.#pending.slice(end + 2)
      }
    })
  }

  /** Opens a stream; resolves once the response's headers came. */
  static open(
    origin: Origin,
    options: LiveClientOptions = {},
  ): Promise<LiveClient> {
    const url = new URL('/api/live', origin.url)
    for (const robot of options.robots ?? []) {
      url.searchParams.append('robot', robot)
    }
    const headers: Record<string, string> = { accept: 'text/event-stream' }
    if (origin.token !== undefined) {
      if (options.tokenInQuery === true) {
        url.searchParams.set('access_token', origin.token)
      } else headers.authorization = `Bearer ${origin.token}`
    }
    if (options.lastEventId !== undefined) {
      headers['last-event-id'] = String(options.lastEventId)
    }
    return withTimeout(
      new Promise((resolve, reject) => {
        const req = httpRequest(url, { headers }, (response) =>
          resolve(new LiveClient(response)),
        )
        req.on('error', reject)
        req.end()
      }),
      `GET ${url.pathname}${url.search}`,
    )
  }

  /** Whether the stream is over. */
  get isEnded(): boolean {
    return this.#isEnded
  }

  /** The `position` events, of one robot when named. */
  positions(robot?: string): LivePosition[] {
    return this.events
      .filter((e) => e.type === 'position')
      .filter((e) => robot === undefined || e.data.robot === robot)
      .map((e) => e.data)
  }

  /**
   * Resolves once the stream's start is over (`event: live`): what came
   * before was read from the store, what comes after is sent as committed.
   */
  async started(): Promise<void> {
    await this.until((e) => e.some((x) => x.type === 'live'), 'event: live')
  }

  /** The `snapshot` events. */
  snapshots(): LivePosition[] {
    return this.events.filter((e) => e.type === 'snapshot').map((e) => e.data)
  }

  /** The last `id:` read, as a browser would send it on reconnect. */
  get lastEventId(): string | undefined {
    for (let i = this.events.length - 1; i >= 0; i--) {
      const id = this.events[i]!.id
      if (id !== undefined) return id
    }
    return undefined
  }

  /** Waits until `check(events)` holds; a stall fails after the safety timeout. */
  until(
    check: (events: readonly LiveEvent[]) => boolean,
    what: string,
  ): Promise<true> {
    return waitFor(() => check(this.events) || undefined, what)
  }

  /** Stops reading: the server's writes pile up, as for a stalled client. */
  pause(): void {
    this.#response.pause()
  }

  /** Reads again after {@link pause}. */
  resume(): void {
    this.#response.resume()
  }

  /** Leaves the stream. */
  close(): void {
    this.#response.destroy()
  }

  #block(block: string) {
    let type = 'message'
    let id: string | undefined
    const data: string[] = []
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) {
        this.comments++
        continue
      }
      const colon = line.indexOf(':')
      const field = colon < 0 ? line : line.slice(0, colon)
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
      if (field === 'event') type = value
      else if (field === 'id') id = value
      else if (field === 'data') data.push(value)
      else if (field === 'retry') this.retry = Number(value)
    }
    if (data.length === 0) return
    this.events.push({
      type,
      id,
      data: JSON.parse(data.join('\n')) as LivePosition,
      receivedAt: performance.now(),
    })
  }
}
