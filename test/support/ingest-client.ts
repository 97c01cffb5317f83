/**
 * The one client of the ingest WebSocket `ws://HOST:PORT/upstream`. The
 * protocol answers every frame with exactly one reply frame, in order, so
 * each reply frame belongs to the oldest frame still unanswered: frames can
 * be pipelined, and each send resolves with its own reply. Every frame sent
 * is kept with its times (performance.now() when it was queued, written,
 * answered), so that a test can reason about what happened when.
 *
 * @example
 * const client = await IngestClient.connect(server.wsUrl)
 * assert.equal(await client.send('0,0,1,Bender'), 'OK')
 * await client.end()
 */
import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'

// --- types ---

/** How a WebSocket connection was closed. */
export interface Closed {
  readonly code: number
  readonly reason: string
}

/** One frame sent by an {@link IngestClient}, and what came back. */
export interface SentFrame<Tag> {
  /** What the sender attached to the frame. */
  readonly tag: Tag
  /** performance.now() just before the frame was given to the WebSocket. */
  readonly queuedAt: number
  /** performance.now() once the WebSocket had written it to the socket. */
  writtenAt: number | undefined
  /** The reply frame; undefined while none came (for ever, if the connection closed first). */
  reply: string | undefined
  /** performance.now() when the reply frame was read. */
  repliedAt: number | undefined
  /**
   * Resolves with the reply; rejects when the connection closes before it
   * or when it is binary. Never an unhandled rejection.
   */
  readonly replied: Promise<string>
}

/** A frame to send: text unless `binary`, and its tag. */
export interface Outgoing<Tag> {
  readonly data: string | Buffer
  readonly binary?: boolean
  readonly tag: Tag
}

/** Options of {@link IngestClient.connect}. */
export interface ConnectOptions {
  /** Default `/upstream`. */
  readonly path?: string
  /** Answer the server's pings (default); false plays a peer that has gone away. */
  readonly autoPong?: boolean
  /** Sent as `Authorization: Bearer …` on the upgrade. */
  readonly token?: string
  /** Trusted certificates, for `wss://` to a server with its own. */
  readonly ca?: string | Buffer
}

// --- the client ---

/** A pipelining client of `/upstream`; see the module comment. */
export class IngestClient<Tag = undefined> {
  readonly ws: WebSocket
  /** Resolves when the connection has closed, with the close code. */
  readonly closed: Promise<Closed>
  /** Every frame sent, in order. */
  readonly frames: SentFrame<Tag>[] = []
  /** Reply frames that came when no frame was waiting for one. */
  readonly extraReplies: string[] = []
  /** Binary reply frames (the protocol sends none). */
  binaryReplies = 0
  /** Pings received from the server (counted from the open, none missed). */
  pings = 0
  /** Called for each reply, in order, before {@link stream} sends more. */
  onReply: ((frame: SentFrame<Tag>) => void) | undefined
  readonly #settle: ((reply: string | Error) => void)[] = []
  #answered = 0
  #isClosed = false
  #window = 0
  #pump: () => void = () => {}

  private constructor(ws: WebSocket) {
    this.ws = ws
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.#isClosed = true
        const error = new Error(
          `connection closed (${code}) before the reply arrived`,
        )
        for (let i = this.#answered; i < this.frames.length; i++) {
          this.#settle[i]!(error)
        }
        resolve({ code, reason: reason.toString() })
        this.#pump()
      })
    })
    ws.on('message', (data, isBinary) => {
      const repliedAt = performance.now()
      const text = Buffer.isBuffer(data)
        ? data.toString('utf8')
        : Array.isArray(data)
          ? Buffer.concat(data).toString('utf8')
          : Buffer.from(data).toString('utf8')
      if (isBinary) this.binaryReplies++
      const frame = this.frames[this.#answered]
      if (frame === undefined) {
        this.extraReplies.push(text)
        return
      }
      frame.reply = text
      frame.repliedAt = repliedAt
      this.#settle[this.#answered]!(
        isBinary ? new Error(`binary reply frame: ${text}`) : text,
      )
      this.#answered++
      this.onReply?.(frame)
      this.#pump()
    })
    ws.on('ping', () => this.pings++)
    // Errors end in 'close', which rejects whoever waits.
    ws.on('error', () => {})
  }

  /** Opens a connection to `wsUrl` + `/upstream` (or `options.path`). */
  static connect<Tag = undefined>(
    wsUrl: string,
    options: ConnectOptions = {},
  ): Promise<IngestClient<Tag>> {
    const ws = new WebSocket(wsUrl + (options.path ?? '/upstream'), {
      perMessageDeflate: false,
      autoPong: options.autoPong ?? true,
      headers:
        options.token === undefined
          ? undefined
          : { authorization: `Bearer ${options.token}` },
      ca: options.ca,
    })
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new IngestClient<Tag>(ws)))
      ws.once('error', reject)
    })
  }

  /** Whether the connection has closed. */
  get isClosed(): boolean {
    return this.#isClosed
  }

  /** Frames sent so far. */
  get sent(): number {
    return this.frames.length
  }

  /** Frames answered so far. */
  get answered(): number {
    return this.#answered
  }

  /** Frames sent and not answered. */
  get unanswered(): number {
    return this.frames.length - this.#answered
  }

  /**
   * Sends one frame, text unless `binary` (a Buffer is sent as is, so a
   * text frame may carry invalid UTF-8), and returns its record.
   */
  sendFrame(
    data: string | Buffer,
    options: { readonly binary?: boolean; readonly tag?: Tag } = {},
  ): SentFrame<Tag> {
    let settle!: (reply: string | Error) => void
    const replied = new Promise<string>((resolve, reject) => {
      settle = (reply) =>
        typeof reply === 'string' ? resolve(reply) : reject(reply)
    })
    // A caller that expects no reply (the connection is to close) need not
    // await: never an unhandled rejection.
    replied.catch(() => {})
    const frame: SentFrame<Tag> = {
      tag: options.tag as Tag,
      queuedAt: performance.now(),
      writtenAt: undefined,
      reply: undefined,
      repliedAt: undefined,
      replied,
    }
    this.frames.push(frame)
    this.#settle.push(settle)
    if (this.#isClosed) {
      settle(new Error('the connection is closed'))
      return frame
    }
    // A failed write ends in 'close', which rejects whoever waits.
    this.ws.send(data, { binary: options.binary ?? false }, (error) => {
      if (error === undefined || error === null) {
        frame.writtenAt = performance.now()
      }
    })
    return frame
  }

  /** Sends one frame and resolves with its reply frame. */
  send(data: string | Buffer, binary = false): Promise<string> {
    return this.sendFrame(data, { binary }).replied
  }

  /** Sends `lines` as one frame and checks that every line was stored (`OK`). */
  async store(lines: readonly string[]): Promise<void> {
    assert.equal(
      await this.send(lines.join('\n')),
      repeatLine('OK', lines.length),
      `every line is stored: ${lines.join(' | ').slice(0, 300)}`,
    )
  }

  /** Sends every frame at once, without waiting, and resolves with the replies in order. */
  sendAll(frames: readonly (string | Buffer)[]): Promise<string[]> {
    return Promise.all(frames.map((frame) => this.send(frame)))
  }

  /** Sends one frame and returns its reply split into lines. */
  async lines(frame: string | Buffer): Promise<string[]> {
    return (await this.send(frame)).split('\n')
  }

  /**
   * Sends the frames `next()` gives, at most `window` of them unanswered at
   * a time, and resolves when `next()` has no more and every frame is
   * answered, or when the connection has closed.
   */
  stream(next: () => Outgoing<Tag> | undefined, window: number): Promise<void> {
    this.#window = window
    return new Promise((resolve) => {
      let exhausted = false
      this.#pump = () => {
        while (
          !this.#isClosed &&
          !exhausted &&
          this.unanswered < this.#window
        ) {
          const out = next()
          if (out === undefined) exhausted = true
          else this.sendFrame(out.data, out)
        }
        if (this.#isClosed || (exhausted && this.unanswered === 0)) {
          this.#pump = () => {}
          resolve()
        }
      }
      this.#pump()
    })
  }

  /** Lets {@link stream} keep `window` frames unanswered from now on, and sends up to it. */
  widen(window: number): void {
    this.#window = window
    this.#pump()
  }

  /**
   * Checks that the connection is still open and in step (one probe frame,
   * one reply, no extra reply frame so far), then closes it.
   */
  async end(): Promise<void> {
    assert.equal(await this.send(''), 'ERR malformed empty line')
    assert.deepEqual(this.extraReplies, [], 'no reply frame without a frame')
    await this.close()
  }

  /** Closes the connection (normal closure) and waits until it is closed. */
  async close(): Promise<Closed> {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000)
    else if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate()
    return this.closed
  }

  /** Cuts the connection without a close handshake and waits until it is closed. */
  async terminate(): Promise<Closed> {
    this.ws.terminate()
    return this.closed
  }
}

// --- other helpers of the protocol ---

/** `n` copies of a reply line, joined as a reply frame. */
export function repeatLine(line: string, n: number): string {
  return Array.from({ length: n }, () => line).join('\n')
}

/** A refused WebSocket upgrade: the HTTP response the server sent. */
export interface RefusedUpgrade {
  readonly status: number
  readonly contentType: string | undefined
  /** The `WWW-Authenticate` header, when sent. */
  readonly challenge: string | undefined
  readonly body: string
}

/**
 * Tries a WebSocket upgrade at `path` (with `token` as a Bearer header)
 * and returns the HTTP response that refused it.
 */
export function refusedUpgrade(
  wsUrl: string,
  path: string,
  token?: string,
): Promise<RefusedUpgrade> {
  const ws = new WebSocket(wsUrl + path, {
    headers:
      token === undefined ? undefined : { authorization: `Bearer ${token}` },
  })
  return new Promise((resolve, reject) => {
    ws.on('error', reject)
    ws.on('open', () => {
      ws.terminate()
      reject(new Error(`the upgrade to ${path} was accepted`))
    })
    ws.on('unexpected-response', (request, response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => {
        body += chunk
      })
      response.on('end', () => {
        request.destroy()
        resolve({
          status: response.statusCode ?? 0,
          contentType: response.headers['content-type'],
          challenge: response.headers['www-authenticate'],
          body,
        })
      })
    })
  })
}
