/**
 * Issue 15's failover scenario, the part that streams: robots send their
 * events through server processes on a pg_auto_failover formation (a
 * primary and a synchronous secondary, test/support/formation.ts) while
 * the primary changes, and the acknowledgements tell how long the fleet
 * went unanswered each time. run.ts builds the formations, starts the
 * servers and runs the ingest and latency loads against them; this file
 * drives the robots and the failovers and checks what is stored.
 *
 * The robots are the test kit's `ResendingRobot` (what the failover test
 * drives): one event in flight each, sent again after `ERR unavailable`
 * or a lost connection until it is answered `OK` or `DUP`. Here each is
 * paced as a robot reporting at {@link FailoverStreamOptions.hz}: its
 * `n`-th event is due at `n / hz` s (robots offset evenly within one
 * period), and after a silence it sends what it holds as fast as the
 * answers come, as a robot with a buffer would.
 */
import {
  ResendingRobot,
  getRobot,
  longestSilence,
  request,
  waitFor,
  type Formation,
  type ListeningProcess,
} from '../test/support/index.ts'
import { ROBOT_PREFIX } from './fleet.ts'

// --- what it measures ---

/** One failover while the robots streamed. */
export interface FailoverEvent {
  readonly kind: 'planned' | 'unplanned'
  /** When it started, seconds into the stream. */
  readonly atSeconds: number
  /** The node primary before it, and the one primary after it. */
  readonly before: string
  readonly after: string
  /**
   * The longest time without any acknowledgement, from just before the
   * failover was started until the acknowledgements had resumed once the
   * formation was primary + secondary again (ms).
   */
  readonly silenceMs: number
  /**
   * Planned: `pg_autoctl perform failover`, to its return. Unplanned: the
   * kill until a second of acknowledgements had come again (the secondary
   * promoted and the servers on it).
   */
  readonly actionSeconds: number
  /** From the start until the formation was primary + secondary again. */
  readonly wholeSeconds: number
  /** From the start to the end of its window (acknowledgements resumed after that). */
  readonly windowSeconds: number
  /**
   * From the start to the first `ERR unavailable` (polled every 20 ms);
   * undefined when none came. Until then the robots' events in flight were
   * neither acknowledged nor refused.
   */
  readonly firstUnavailableSeconds: number | undefined
  /** `ERR unavailable` replies, lost connections and `DUP` replies in the window. */
  readonly unavailable: number
  readonly reconnects: number
  readonly dups: number
}

/** The whole stream through the failovers. */
export interface FailoverStream {
  readonly robots: number
  readonly hz: number
  readonly servers: number
  /** From the robots' start to their end. */
  readonly seconds: number
  /** The longest silence over {@link baselineMs} of streaming before any failover (ms). */
  readonly baselineSilenceMs: number
  readonly baselineMs: number
  readonly failovers: FailoverEvent[]
  /** Events answered OK or DUP, over all robots; the DUPs among them. */
  readonly acked: number
  readonly dups: number
  readonly unavailable: number
  readonly reconnects: number
  /** The sum of the robots' `event_count` afterwards; undefined when not read. */
  readonly stored: number | undefined
  /**
   * Robots still waiting for an answer to their last event when the
   * stream ended (their server gone): each may hold that one more.
   */
  readonly unended: number
  /** Robots whose `event_count` is not their acknowledged events, in words. */
  readonly mismatches: string[]
  /** `telemetry_store_failovers_total` of each server at the end. */
  readonly serverFailovers: (number | undefined)[]
  /**
   * Each server that ended during the stream: when (seconds into it) and
   * how (its exit code or signal); undefined for one that ran to the end.
   */
  readonly serverEnds: ({ seconds: number; exit: string } | undefined)[]
}

/** Options of {@link streamThroughFailovers}. */
export interface FailoverStreamOptions {
  readonly robots: number
  /** Events a robot a second. */
  readonly hz: number
  /** Planned failovers, one after the other. */
  readonly planned: number
  /** Then one unplanned failover (the primary killed). */
  readonly unplanned: boolean
  /** Streaming before the first failover, whose longest silence is the baseline (ms). */
  readonly baselineMs: number
  /** Streaming between one failover's end and the next one's start (ms). */
  readonly settleMs: number
  /** Progress on stderr; problems for the report. */
  readonly say: (message: string) => void
  readonly problem: (message: string) => void
}

// --- bounds ---

/** How long acknowledgements may take to resume after a planned failover. */
const RESUME_TIMEOUT_MS = 120_000
/**
 * How long after a kill of the primary: pg_auto_failover's monitor waits
 * `node_considered_unhealthy_timeout` (20 s) and more before it promotes.
 */
const PROMOTION_TIMEOUT_MS = 240_000
/** How long the formation may take to be primary + secondary again. */
const WHOLE_TIMEOUT_MS = 300_000
/** How long the robots may take to end once told to (each ends its event). */
const ROBOTS_END_TIMEOUT_MS = 120_000

// --- the robots ---

/** A {@link ResendingRobot} whose `n`-th event is due at `offset + n × period`. */
class PacedRobot extends ResendingRobot {
  readonly #periodMs: number
  readonly #offsetMs: number
  #start: number | undefined
  #next = 0

  constructor(name: string, wsUrl: string, periodMs: number, offsetMs: number) {
    super(name, wsUrl)
    this.#periodMs = periodMs
    this.#offsetMs = offsetMs
  }

  // run() calls deliver once per new event; its resends stay inside.
  override async deliver(line: string): Promise<'OK' | 'DUP'> {
    this.#start ??= performance.now() + this.#offsetMs
    const due = this.#start + this.#next++ * this.#periodMs
    const wait = due - performance.now()
    if (wait > 0) await delay(wait)
    return super.deliver(line)
  }
}

/** The robots' counters, summed. */
function totals(robots: readonly ResendingRobot[]) {
  let acked = 0
  let unavailable = 0
  let reconnects = 0
  for (const r of robots) {
    acked += r.acked.length
    unavailable += r.unavailable
    reconnects += r.reconnects
  }
  return { acked, unavailable, reconnects }
}

/** `DUP` answers that came in [from, to]. */
function dupsIn(robots: readonly ResendingRobot[], from: number, to: number) {
  let n = 0
  for (const r of robots) {
    for (const a of r.acked) {
      if (a.reply === 'DUP' && a.at >= from && a.at <= to) n++
    }
  }
  return n
}

// --- the stream ---

/**
 * Streams `options.robots` robots through `servers` (robot `r` on server
 * `r % servers.length`) on `formation`, a primary and a synchronous
 * secondary: a baseline, then the planned failovers and the unplanned one,
 * each timed by the acknowledgements; then the robots stop and each one's
 * `event_count` (`GET /api/robots/NAME`) is compared with the events it
 * had acknowledged. Leaves the formation primary + secondary; throws when
 * a wait outlives its bound (the caller stops the formation).
 */
export async function streamThroughFailovers(
  formation: Formation,
  servers: readonly ListeningProcess[],
  options: FailoverStreamOptions,
): Promise<FailoverStream> {
  const { say, problem, hz } = options
  const periodMs = 1000 / hz
  const robots = Array.from(
    { length: options.robots },
    (_, r) =>
      new PacedRobot(
        `${ROBOT_PREFIX}failover-${String(r + 1).padStart(2, '0')}`,
        servers[r % servers.length]!.wsUrl,
        periodMs,
        (r * periodMs) / options.robots,
      ),
  )
  /** A second of the whole stream, in acknowledgements. */
  const aSecond = options.robots * hz
  const acked = () => totals(robots).acked
  const moreAcks = async (n: number, what: string, timeoutMs: number) => {
    const target = acked() + n
    await waitFor(() => acked() >= target, what, {
      timeoutMs,
      intervalMs: 10,
    })
  }

  let going = true
  const t0 = performance.now()
  // A robot whose server is gone resends for ever: each one's end is
  // kept, and why it stopped if it failed (a reply it did not expect).
  const ended = robots.map(() => false)
  const failed: string[] = []
  const runs = robots.map((r, i) =>
    r
      .run(() => going)
      .then(
        () => {
          ended[i] = true
        },
        (error: unknown) => {
          ended[i] = true
          failed.push(`${r.name}: ${(error as Error).message}`)
        },
      ),
  )
  // A server that ends during the stream is a problem of its own: its
  // robots stay unanswered from then on.
  let streaming = true
  const serverEnds: FailoverStream['serverEnds'] = servers.map(() => undefined)
  for (const [k, server] of servers.entries()) {
    void server.exited.then((exit) => {
      if (!streaming) return
      serverEnds[k] = {
        seconds: (performance.now() - t0) / 1000,
        exit: String(exit.code ?? exit.signal),
      }
      const tail = server
        .stderr()
        .split('\n')
        .filter((l) => l.trim() !== '' && !l.startsWith('{'))
        .slice(-4)
        .join(' | ')
      problem(
        `failover: server ${k + 1} ended during the stream (${exit.code ?? exit.signal}) after ${((performance.now() - t0) / 1000).toFixed(0)} s; its robots stay unanswered; its last lines: ${tail}`,
      )
    })
  }
  const progress = setInterval(() => {
    const t = totals(robots)
    say(
      `    ${((performance.now() - t0) / 1000).toFixed(0)} s: ${t.acked} acknowledged, ${t.unavailable} ERR unavailable, ${t.reconnects} reconnects`,
    )
  }, 5000)
  const failovers: FailoverEvent[] = []
  let baselineSilenceMs: number
  try {
    await moreAcks(aSecond, 'the robots streaming', RESUME_TIMEOUT_MS)
    const baselineFrom = performance.now()
    await delay(options.baselineMs)
    baselineSilenceMs = longestSilence(robots, baselineFrom, performance.now())
    say(`    baseline: longest silence ${baselineSilenceMs.toFixed(1)} ms`)

    const window = async (
      kind: FailoverEvent['kind'],
      act: () => Promise<void>,
      afterAct: () => Promise<void>,
    ) => {
      const before = (await formation.primary()).name
      const start = totals(robots)
      const from = performance.now()
      let firstUnavailable: number | undefined
      const watch = setInterval(() => {
        if (totals(robots).unavailable > start.unavailable) {
          firstUnavailable = performance.now()
          clearInterval(watch)
        }
      }, 20)
      let acted: number
      let whole: number
      let to: number
      try {
        await act()
        acted = performance.now()
        await afterAct()
        await formation.waitFor(['primary', 'secondary'], WHOLE_TIMEOUT_MS)
        whole = performance.now()
        await moreAcks(
          aSecond,
          `acknowledgements after the ${kind} failover`,
          RESUME_TIMEOUT_MS,
        )
        to = performance.now()
      } finally {
        clearInterval(watch)
      }
      const end = totals(robots)
      const event: FailoverEvent = {
        kind,
        atSeconds: (from - t0) / 1000,
        before,
        after: (await formation.primary()).name,
        silenceMs: longestSilence(robots, from, to),
        actionSeconds: (acted - from) / 1000,
        wholeSeconds: (whole - from) / 1000,
        windowSeconds: (to - from) / 1000,
        firstUnavailableSeconds:
          firstUnavailable === undefined
            ? undefined
            : (firstUnavailable - from) / 1000,
        unavailable: end.unavailable - start.unavailable,
        reconnects: end.reconnects - start.reconnects,
        dups: dupsIn(robots, from, to),
      }
      say(
        `    ${kind} failover ${failovers.length + 1}: ${event.before} → ${event.after}, longest silence ${event.silenceMs.toFixed(0)} ms, ${event.unavailable} ERR unavailable (the first after ${event.firstUnavailableSeconds?.toFixed(1) ?? '–'} s), ${event.reconnects} reconnects, ${event.dups} DUP; whole again after ${event.wholeSeconds.toFixed(1)} s`,
      )
      if (event.after === event.before) {
        problem(`failover: the ${kind} failover left ${event.before} primary`)
      }
      failovers.push(event)
      await delay(options.settleMs)
    }

    for (let k = 0; k < options.planned; k++) {
      await window(
        'planned',
        () => formation.performFailover(),
        async () => {},
      )
    }
    if (options.unplanned) {
      let victim: Formation['nodes'][number] | undefined
      await window(
        'unplanned',
        async () => {
          victim = await formation.primary()
          await formation.killNode(victim)
          // The secondary promoted and the servers writing to it.
          await moreAcks(
            aSecond,
            `acknowledgements after the kill of ${victim.name}`,
            PROMOTION_TIMEOUT_MS,
          )
        },
        async () => {
          formation.startNode(victim!)
        },
      )
    }
  } catch (error) {
    // The caller stops the servers: their ends are not news.
    streaming = false
    throw error
  } finally {
    going = false
    clearInterval(progress)
  }
  // Only the robots of a server still running can end.
  const onServer = (r: number) => servers[r % servers.length]!
  await Promise.race([
    Promise.all(runs.filter((_, r) => onServer(r).running)),
    delay(ROBOTS_END_TIMEOUT_MS),
  ])
  const seconds = (performance.now() - t0) / 1000
  streaming = false
  for (const failure of failed) problem(`failover: a robot stopped: ${failure}`)
  const unended = robots.filter((_, r) => !ended[r])
  if (unended.length > 0) {
    problem(
      `failover: ${unended.length} robots did not end (their last event never answered OK or DUP; ${ROBOTS_END_TIMEOUT_MS / 1000} s are given to those of a server still running): ${unended.map((r) => r.name).join(', ')}`,
    )
  }
  await Promise.all(robots.map((r) => r.close().catch(() => {})))

  // Every acknowledged event stored, once; through a server still running.
  // A robot that did not end may have had its last event committed
  // without an answer: one more is then allowed.
  const reader = servers.find((server) => server.running)
  let stored: number | undefined = reader === undefined ? undefined : 0
  const mismatches: string[] = []
  for (const [r, robot] of robots.entries()) {
    if (reader === undefined) {
      mismatches.push(`${robot.name}: no server left to ask`)
      continue
    }
    try {
      const view = await getRobot(reader, robot.name)
      const count = Number(view.event_count)
      stored = stored === undefined ? undefined : stored + count
      const acked = robot.acked.length
      if (count !== acked && !(!ended[r] && count === acked + 1)) {
        mismatches.push(
          `${robot.name}: event_count ${count}, ${acked} acknowledged`,
        )
      }
    } catch (error) {
      stored = undefined
      mismatches.push(`${robot.name}: ${(error as Error).message}`)
    }
  }
  const serverFailovers = await Promise.all(
    servers.map(async (server) => {
      if (!server.running) return undefined
      try {
        const text = (await request(server, '/metrics')).text
        const m = /^telemetry_store_failovers_total (\d+)/m.exec(text)
        return m === null ? undefined : Number(m[1])
      } catch {
        return undefined
      }
    }),
  )
  const t = totals(robots)
  return {
    robots: robots.length,
    hz,
    servers: servers.length,
    seconds,
    baselineSilenceMs,
    baselineMs: options.baselineMs,
    failovers,
    acked: t.acked,
    dups: dupsIn(robots, -Infinity, Infinity),
    unavailable: t.unavailable,
    reconnects: t.reconnects,
    stored,
    unended: unended.length,
    mismatches,
    serverFailovers,
    serverEnds,
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
