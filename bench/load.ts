/**
 * The load generator: its own process, started by run.ts as
 * `node dist/bench/load.js '<LoadOptions as JSON>'`.
 *
 * It opens `connections` WebSockets to `/upstream`, gives each a fixed set of
 * robots (robot r belongs to connection r % connections), and sends frames of
 * `linesPerFrame` lines whose timestamps increase per robot. Each connection
 * keeps at most `window` frames in flight. Unpaced, a connection refills its
 * window as replies come; paced, frames leave on a schedule that spreads
 * `rate` events/s over the connections.
 *
 * It warms up for `warmupMs`, measures for `durationMs`, then stops sending
 * and waits for the replies still due. Stdout carries JSON lines: `phase`
 * lines as the measurement starts and ends (run.ts samples the server's CPU
 * then), and one final `result` line ({@link LoadResult}).
 */
import type { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import { livePositions, robotName } from './fleet.ts'
import { summarize, type LatencySummary } from './stats.ts'

/** What run.ts asks of one generator run. */
export interface LoadOptions {
  /** `ws://127.0.0.1:PORT/upstream` */
  readonly url: string
  readonly connections: number
  /** Robots `0..robots-1`, named by fleet.ts `robotName`. */
  readonly robots: number
  readonly linesPerFrame: number
  /** Frames in flight per connection at most. */
  readonly window: number
  readonly warmupMs: number
  readonly durationMs: number
  /** Count bound: no more events than this are sent. */
  readonly maxEvents: number
  /** Target events/s over all connections; 0 sends as fast as the window allows. */
  readonly rate: number
  /** Timestamp of each robot's first event, then + `step` per event. */
  readonly t0: number
  readonly step: number
  /** How long to wait for the replies still due after the measurement. */
  readonly drainTimeoutMs: number
  /**
   * Keep sending this long after the measured window has ended (default 0):
   * the load is then still in full swing when run.ts acts on the `end`
   * phase (the flood scenario sends SIGTERM to the server then).
   */
  readonly tailMs?: number
  /**
   * Live positions per robot (fleet.ts `livePositions`), made on a robot's
   * first event; default 64. The million-robot load, one event a robot,
   * uses 1.
   */
  readonly cycle?: number
  /**
   * A token sent as `Authorization: Bearer …` on every connection's
   * upgrade, for a server started with `--tokens` (the `ingest-tokens`
   * scenario); none by default.
   */
  readonly token?: string
  /**
   * Count bound per robot instead of over the fleet: a connection stops
   * once each of its robots was sent this many events, so that a run
   * sends exactly these events whatever the connections' pace (the peer
   * scenario writes the same ones to InfluxDB). Each connection's share
   * (its robots × this) must be whole frames.
   */
  readonly perRobot?: number
}

/** The one JSON line a run prints last. */
export interface LoadResult {
  readonly type: 'result'
  readonly options: LoadOptions
  readonly sentFrames: number
  readonly sentEvents: number
  readonly answeredFrames: number
  /** Reply lines `OK`, over the whole run. */
  readonly ok: number
  /** Reply lines other than `OK`, over the whole run. */
  readonly nonOk: number
  /** Up to 5 distinct non-OK reply lines. */
  readonly nonOkSamples: string[]
  /** Reply frames whose line count did not match their frame's. */
  readonly badFrames: number
  /** Frames sent and never answered (connection lost or drain timeout). */
  readonly unanswered: number
  /** Connections that closed or failed before the end. */
  readonly connectionFailures: number
  readonly connectionErrors: string[]
  /** Paced mode: most frames a connection had waiting for its window. */
  readonly maxBacklog: number
  /** Paced mode: each connection writes the frames due every this many ms. */
  readonly sendPeriodMs: number
  /** Whether the count bound ended sending before the time bound. */
  readonly countBound: boolean
  /** Reply lines `OK` when the measured window ended (the `end` phase). */
  readonly okAtMeasureEnd: number
  /** From the first frame sent to the last reply read, seconds (0: none). */
  readonly lastReplySeconds: number
  /** Events and frames answered inside the measurement window. */
  readonly measuredEvents: number
  readonly measuredFrames: number
  readonly measuredSeconds: number
  readonly eventsPerSecond: number
  /** Send of a frame to its reply, for frames answered in the window (ms). */
  readonly latency: LatencySummary
  /** The generator's own CPU over the window, core-seconds and % of a core. */
  readonly clientCpuSeconds: number
  readonly clientCpuPercent: number
}

/** Longest time one turn of the event loop spends building frames (ms). */
const REFILL_SLICE_MS = 20

/**
 * Unpaced, a connection sends no new frame while its socket holds this
 * much not yet written: the frames of its window beyond wait to be built,
 * as a robot's client would wait, instead of waiting in the socket. The
 * server sees the same stream (the kernel's buffers stay full); but with
 * every window of 64 frames of 10,000 lines handed to its socket at once,
 * the generator took 57 % of a core against 22 % with 10-line frames, at
 * the same events a second, on a machine of two cores it shares with the
 * server.
 */
const SEND_BUFFER_BYTES = 1024 * 1024

// --- one connection ---

class Connection {
  readonly ws: WebSocket
  socket: Socket | undefined
  open = false
  done = false
  /** Send times of the frames in flight, oldest first (a ring buffer). */
  readonly #sentAt: Float64Array
  #head = 0
  #count = 0
  /** Robots of this connection, their live position cycles and next event index. */
  readonly #robots: number[]
  readonly #names: string[]
  /** Each robot's live position cycle, made on its first event. */
  readonly #positions: (string[] | undefined)[]
  readonly #cycle: number
  readonly #next: number[]
  #cursor = 0
  sentFrames = 0
  /** Events this connection may still send (with `perRobot`). */
  quota = Infinity

  constructor(
    url: string,
    robots: number[],
    window: number,
    cycle: number,
    token: string | undefined,
  ) {
    this.ws = new WebSocket(url, {
      perMessageDeflate: false,
      skipUTF8Validation: true,
      ...(token === undefined
        ? {}
        : { headers: { authorization: `Bearer ${token}` } }),
    })
    this.#sentAt = new Float64Array(window)
    this.#robots = robots
    this.#names = robots.map((r) => robotName(r))
    this.#positions = new Array<string[] | undefined>(robots.length)
    this.#cycle = cycle
    this.#next = new Array<number>(robots.length).fill(0)
    this.ws.on('upgrade', (response) => {
      this.socket = response.socket as Socket
    })
  }

  get inFlight() {
    return this.#count
  }

  /** How many robots this connection sends for. */
  get robotCount() {
    return this.#names.length
  }

  /** Sends one frame of `lines` events, round-robin over the robots. */
  send(lines: number, t0: number, step: number, now: number) {
    let frame = ''
    for (let i = 0; i < lines; i++) {
      const r = this.#cursor
      this.#cursor = r + 1 === this.#names.length ? 0 : r + 1
      const k = this.#next[r]!
      this.#next[r] = k + 1
      const cycle = (this.#positions[r] ??= livePositions(
        this.#robots[r]!,
        this.#cycle,
      ))
      const line = `${cycle[k % cycle.length]},${t0 + k * step},${this.#names[r]}`
      frame = i === 0 ? line : `${frame}\n${line}`
    }
    const capacity = this.#sentAt.length
    this.#sentAt[(this.#head + this.#count) % capacity] = now
    this.#count++
    this.sentFrames++
    this.quota -= lines
    this.ws.send(frame)
  }

  /** The send time of the oldest frame in flight, which a reply answers. */
  answered(): number {
    const at = this.#sentAt[this.#head]!
    this.#head = (this.#head + 1) % this.#sentAt.length
    this.#count--
    return at
  }
}

// --- the run ---

async function main(options: LoadOptions): Promise<LoadResult> {
  const C = options.connections
  const L = options.linesPerFrame
  const paced = options.rate > 0
  // Paced, frames wait for a slot in the window rather than being dropped;
  // the window is then only a bound on memory.
  const window = paced ? Math.max(options.window, 4096) : options.window
  const expectedReply = Buffer.from(Array(L).fill('OK').join('\n'))

  let sentEvents = 0
  let answeredFrames = 0
  let ok = 0
  let nonOk = 0
  let badFrames = 0
  const nonOkSamples = new Set<string>()
  let connectionFailures = 0
  const connectionErrors: string[] = []
  let maxBacklog = 0
  let period = 0
  /** Frames in flight on connections that closed before answering them. */
  let lost = 0

  let measuring = false
  let sending = false
  let countBound = false
  let measureStart = 0
  let measureEnd = 0
  let measuredFrames = 0
  let okAtMeasureEnd = 0
  let lastReplyAt = 0
  const latencies: number[] = []
  let cpuStart = process.cpuUsage()
  let cpuSeconds = 0

  const connections: Connection[] = []
  for (let c = 0; c < C; c++) {
    const robots: number[] = []
    for (let r = c; r < options.robots; r += C) robots.push(r)
    if (robots.length === 0) break
    connections.push(
      new Connection(
        options.url,
        robots,
        window,
        options.cycle ?? 64,
        options.token,
      ),
    )
  }

  let finish: () => void = () => {}
  const finished = new Promise<void>((resolve) => (finish = resolve))
  const totalInFlight = () =>
    connections.reduce((n, c) => n + (c.done ? 0 : c.inFlight), 0)
  const checkDrained = () => {
    if (!sending && totalInFlight() === 0) finish()
  }

  if (options.perRobot !== undefined) {
    for (const conn of connections) {
      conn.quota = conn.robotCount * options.perRobot
      if (conn.quota % L !== 0) {
        throw new Error(
          `perRobot: a connection's ${conn.quota} events are not whole frames of ${L}`,
        )
      }
    }
  }
  const canSend = (conn: Connection) => {
    if (!sending) return false
    if (sentEvents + L > options.maxEvents) {
      stopSending(true)
      return false
    }
    if (conn.quota < L) {
      if (connections.every((c) => c.done || c.quota < L)) stopSending(true)
      return false
    }
    return true
  }

  // Unpaced: refill every window once per turn of the event loop, after all
  // replies read in this turn, each connection's frames in one write. A
  // turn spends at most REFILL_SLICE_MS building frames and leaves the rest
  // to the next: filling 16 windows of 64 frames of 10,000 lines at once
  // took the generator about 20 s, in which its timers (the measured
  // window) could not fire.
  const dirty = new Set<Connection>()
  let refillScheduled = false
  const refill = () => {
    refillScheduled = false
    const now = performance.now()
    const deadline = now + REFILL_SLICE_MS
    let late = false
    for (const conn of dirty) {
      if (!conn.done) {
        conn.socket?.cork()
        while (
          conn.inFlight < window &&
          conn.ws.bufferedAmount < SEND_BUFFER_BYTES &&
          canSend(conn)
        ) {
          conn.send(L, options.t0, options.step, now)
          sentEvents += L
          if (performance.now() > deadline) {
            late = true
            break
          }
        }
        conn.socket?.uncork()
      }
      if (late && conn.inFlight < window) break
      dirty.delete(conn)
      if (late) break
    }
    if (late && dirty.size > 0 && !refillScheduled) {
      refillScheduled = true
      setImmediate(refill)
    }
  }
  const markDirty = (conn: Connection) => {
    dirty.add(conn)
    if (!refillScheduled) {
      refillScheduled = true
      setImmediate(refill)
    }
  }

  for (const conn of connections) {
    conn.ws.on('message', (data: Buffer) => {
      const now = performance.now()
      const sentAt = conn.answered()
      answeredFrames++
      lastReplyAt = now
      if (data.equals(expectedReply)) {
        ok += L
      } else {
        const lines = data.toString('utf8').split('\n')
        if (lines.length !== L) badFrames++
        for (const line of lines) {
          if (line === 'OK') ok++
          else {
            nonOk++
            if (nonOkSamples.size < 5) nonOkSamples.add(line)
          }
        }
      }
      if (measuring) {
        measuredFrames++
        latencies.push(now - sentAt)
      }
      if (sending && !paced) markDirty(conn)
      else if (!sending) checkDrained()
    })
    conn.ws.on('error', (error) => {
      if (connectionErrors.length < 5) connectionErrors.push(error.message)
    })
    conn.ws.on('close', () => {
      if (!conn.done) {
        conn.done = true
        if (sending || conn.inFlight > 0) connectionFailures++
        lost += conn.inFlight
      }
      if (connections.every((c) => c.done)) finish()
      else checkDrained()
    })
  }

  // Every connection open (or failed) before the clock starts; one that
  // does not open in time is dropped.
  const connectTimer = setTimeout(() => {
    for (const conn of connections) if (!conn.open) conn.ws.terminate()
  }, 10_000)
  await Promise.all(
    connections.map(
      (conn) =>
        new Promise<void>((resolve) => {
          conn.ws.once('open', () => {
            conn.open = true
            resolve()
          })
          conn.ws.once('close', () => resolve())
        }),
    ),
  )
  clearTimeout(connectTimer)
  const live = connections.filter((c) => c.open && !c.done)
  connectionFailures += connections.length - live.length
  if (live.length === 0) {
    throw new Error(`no connection opened: ${connectionErrors.join('; ')}`)
  }

  const phase = (name: string) =>
    process.stdout.write(`${JSON.stringify({ type: 'phase', phase: name })}\n`)

  function stopSending(byCount: boolean) {
    if (!sending) return
    sending = false
    countBound = byCount
    if (measuring) endMeasure()
    // Bounded wait for the replies still due.
    setTimeout(finish, options.drainTimeoutMs).unref()
    checkDrained()
  }

  function endMeasure() {
    measuring = false
    measureEnd = performance.now()
    okAtMeasureEnd = ok
    const cpu = process.cpuUsage(cpuStart)
    cpuSeconds = (cpu.user + cpu.system) / 1e6
    phase('end')
  }

  const started = performance.now()
  sending = true
  phase('warmup')
  const warmupTimer = setTimeout(() => {
    if (!sending) return
    measuring = true
    measureStart = performance.now()
    cpuStart = process.cpuUsage()
    phase('measure')
  }, options.warmupMs)
  const tailMs = options.tailMs ?? 0
  const endTimer = setTimeout(() => {
    if (tailMs === 0) stopSending(false)
    else if (measuring) endMeasure()
  }, options.warmupMs + options.durationMs)
  const tailTimer = setTimeout(
    () => stopSending(false),
    options.warmupMs + options.durationMs + tailMs,
  )

  let pacer: NodeJS.Timeout | undefined
  if (paced) {
    // Connection c's frame n is due at (n + c / C) / perConnectionFrameRate.
    const frameRate = options.rate / L / live.length
    // A connection writes what is due every `period` ms (1 to 5), so that a
    // write carries about two frames: one write per frame cost the generator
    // a core at 40,000 frames/s. The connections take turns, so the server
    // still sees a steady flow.
    period = Math.min(5, Math.max(1, Math.round(2000 / frameRate)))
    const lastFlush = live.map((_, c) => -(c % period) - 1)
    pacer = setInterval(() => {
      const now = performance.now()
      const elapsedMs = now - started
      const tick = Math.floor(elapsedMs)
      for (let c = 0; c < live.length; c++) {
        const conn = live[c]!
        if (conn.done || tick - lastFlush[c]! < period) continue
        lastFlush[c] = tick
        const due = Math.floor((elapsedMs / 1000) * frameRate + c / live.length)
        const late = due - conn.sentFrames
        if (late <= 0) continue
        conn.socket?.cork()
        let sent = 0
        while (sent < late && conn.inFlight < window && canSend(conn)) {
          conn.send(L, options.t0, options.step, now)
          sentEvents += L
          sent++
        }
        conn.socket?.uncork()
        if (late - sent > maxBacklog) maxBacklog = late - sent
      }
    }, 1)
  } else {
    for (const conn of live) {
      // A connection that stopped at SEND_BUFFER_BYTES goes on once its
      // socket has written what it held.
      conn.socket?.on('drain', () => markDirty(conn))
      markDirty(conn)
    }
  }

  await finished
  // Every connection may have closed while sending: end the window there.
  if (measuring) endMeasure()
  sending = false
  clearTimeout(warmupTimer)
  clearTimeout(endTimer)
  clearTimeout(tailTimer)
  if (pacer !== undefined) clearInterval(pacer)

  const unanswered = totalInFlight() + lost
  for (const conn of connections) {
    conn.done = true
    conn.ws.terminate()
  }

  const seconds = measureStart > 0 ? (measureEnd - measureStart) / 1000 : 0
  const measuredEvents = measuredFrames * L
  return {
    type: 'result',
    options,
    sentFrames: sentEvents / L,
    sentEvents,
    answeredFrames,
    ok,
    nonOk,
    nonOkSamples: [...nonOkSamples],
    badFrames,
    unanswered,
    connectionFailures,
    connectionErrors,
    maxBacklog,
    sendPeriodMs: period,
    countBound,
    okAtMeasureEnd: measureEnd > 0 ? okAtMeasureEnd : ok,
    lastReplySeconds: lastReplyAt > 0 ? (lastReplyAt - started) / 1000 : 0,
    measuredEvents,
    measuredFrames,
    measuredSeconds: seconds,
    eventsPerSecond: seconds > 0 ? measuredEvents / seconds : 0,
    latency: summarize(latencies),
    clientCpuSeconds: cpuSeconds,
    clientCpuPercent: seconds > 0 ? (100 * cpuSeconds) / seconds : 0,
  }
}

const options = JSON.parse(process.argv[2] ?? '{}') as LoadOptions
main(options).then(
  (result) => {
    process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0))
  },
  (error: unknown) => {
    process.stderr.write(`load: ${(error as Error).stack ?? String(error)}\n`)
    process.exit(1)
  },
)
