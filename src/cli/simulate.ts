/**
 * `fleet-telemetry simulate`: a fleet of robots moving on a floor (the
 * seeded model of ./motion.ts), each sending its position `--rate` times a
 * second through the client library, with a live status line.
 *
 * Time: step `k` of every robot is due at `start + k / rate` (wall clock)
 * and carries that time as its timestamp, in milliseconds, so timestamps
 * rise strictly (a rate is at most 1000 Hz) and each step of the model
 * lasts exactly `1 / rate` seconds, whatever the timers do. A simulator
 * that falls behind catches up; the positions of a seed never depend on
 * the machine.
 */
import { randomInt } from 'node:crypto'
import { InvalidArgumentError, Option } from 'commander'
import { connect } from '../client/node.ts'
import { robotNameProblem } from '../domain/event.ts'
import { ConnectionWatch, Tally } from './ingest.ts'
import { createFleet, DEFAULT_FLOOR, MAX_SPEED, robotName } from './motion.ts'
import {
  createProgram,
  integerFrom,
  positiveNumber,
  runProgram,
  tokenOption,
  urlOption,
  type ServerUrls,
} from './options.ts'
import { count, RateMeter, startStatusLine } from './progress.ts'

/** How long the last events may take to be acknowledged at the end. */
const FLUSH_MS = 10_000

/** Steps sent at most in one turn of the event loop when catching up. */
const STEPS_PER_TURN = 10

const EXAMPLES = `
Robots are named PREFIX-001, PREFIX-002, ... and drive on a ${DEFAULT_FLOOR.width} m x ${DEFAULT_FLOOR.height} m
floor at up to ${MAX_SPEED} m/s, with turns and stops; positions are in metres, to the
millimetre, timestamps in milliseconds since the epoch. The seed is printed:
--seed replays the same motion. Without --duration it runs until SIGINT
(Ctrl-C) or SIGTERM; at the end it waits up to ${FLUSH_MS / 1000} s for the last
acknowledgements (not at all when interrupted while disconnected).
A status line on stderr shows events sent, acknowledged, errors, events/s,
pending and the connection (on a terminal, in place; otherwise every 5 s);
the summary goes to stdout.

Exit codes: 0 every event was stored (or a duplicate); 1 otherwise, or a
refused connection; 2 a usage error.

Examples:
  fleet-telemetry simulate --robots 50 --rate 10
  fleet-telemetry simulate --robots 3 --rate 10 --duration 60 --seed 42
`

interface SimulateOptions {
  readonly robots: number
  readonly rate: number
  readonly duration?: number
  readonly seed?: number
  readonly prefix: string
  readonly url: ServerUrls
  readonly token?: string
}

function prefix(text: string): string {
  const problem = robotNameProblem(robotName(text, 0, 1))
  if (problem !== undefined) {
    throw new InvalidArgumentError(`makes no robot name: ${problem}`)
  }
  return text
}

/** Runs `simulate …` (`args` after the word `simulate`); returns the exit code. */
export async function runSimulate(args: readonly string[]): Promise<number> {
  const result = { code: 0 }
  const program = createProgram(
    'simulate',
    'Stream a simulated fleet of robots to the server.',
  )
    .addOption(
      new Option('--robots <n>', 'how many robots')
        .default(10)
        .argParser(integerFrom(1, 100_000)),
    )
    .addOption(
      new Option('--rate <hz>', 'events a second, per robot (at most 1000)')
        .default(1)
        .argParser(positiveNumber(1000)),
    )
    .addOption(
      new Option(
        '--duration <s>',
        'stop after this many seconds (of events: duration x rate per robot)',
      ).argParser(positiveNumber()),
    )
    .addOption(
      new Option(
        '--seed <n>',
        "the motion model's seed (default: a random one, printed)",
      ).argParser(integerFrom(0, 2 ** 32 - 1)),
    )
    .addOption(
      new Option('--prefix <name>', 'robot names start with it')
        .default('sim')
        .argParser(prefix),
    )
    .addOption(urlOption())
    .addOption(tokenOption('an ingest or admin'))
    .addHelpText('after', EXAMPLES)
    .action(async (options: SimulateOptions) => {
      result.code = await simulate(options)
    })
  return runProgram(program, args, result)
}

async function simulate(options: SimulateOptions): Promise<number> {
  const seed = options.seed ?? randomInt(2 ** 32)
  const fleet = createFleet({
    robots: options.robots,
    seed,
    prefix: options.prefix,
  })
  const names = fleet.names
  const steps =
    options.duration === undefined
      ? Infinity
      : Math.max(1, Math.round(options.duration * options.rate))
  process.stdout.write(
    `simulating ${options.robots} robot${options.robots === 1 ? '' : 's'} (${names.length === 1 ? names[0] : `${names[0]} to ${names[names.length - 1]}`}) at ${options.rate} Hz${options.duration === undefined ? ' until interrupted' : ` for ${options.duration} s`}, seed ${seed}, to ${options.url.upstream}\n`,
  )

  const tally = new Tally()
  let sent = 0
  const watch = new ConnectionWatch()
  const client = connect(options.url.upstream, {
    token: options.token,
    onStatus: watch.onStatus,
    onOutcome: (_event, outcome) => tally.add(outcome.status),
  })

  const rate = new RateMeter()
  const status = startStatusLine(
    () =>
      `sent ${count(sent)}, acknowledged ${count(tally.delivered)}, errors ${count(tally.failed)}, ${rate.sample(tally.delivered).toFixed(1)} events/s, pending ${count(client.pending)}, ${watch.describe()}`,
    { label: 'simulate: ' },
  )

  const period = 1000 / options.rate
  const start = Date.now()
  let k = 0
  let timer: NodeJS.Timeout | undefined
  let stop: string | undefined
  let finished!: () => void
  const done = new Promise<void>((resolve) => (finished = resolve))

  const tick = () => {
    timer = undefined
    const now = Date.now()
    let turn = 0
    while (k < steps && start + k * period <= now && turn++ < STEPS_PER_TURN) {
      const positions =
        k === 0 ? fleet.positions() : fleet.step(1 / options.rate)
      const timestamp = start + Math.round(k * period)
      for (const { robot, x, y } of positions) {
        void client.send({ robot, x, y, timestamp })
        sent++
      }
      k++
    }
    if (k >= steps) {
      stop ??= 'done'
      finished()
      return
    }
    timer = setTimeout(tick, Math.max(0, start + k * period - Date.now()))
  }
  const end = (why: string) => {
    stop ??= why
    clearTimeout(timer)
    finished()
  }
  let signals = 0
  const onSignal = (signal: NodeJS.Signals) => {
    // A signal while the run already ends (a second one, or one after
    // --duration): give up on what is pending at once.
    if (signals++ > 0 || stop !== undefined) void client.close({ timeoutMs: 0 })
    end(signal)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  let refusal: string | undefined
  void watch.refused.then((message) => {
    refusal = message
    end('refused')
    void client.close({ timeoutMs: 0 })
  })

  tick()
  await done
  // Interrupted while not connected: nothing will be acknowledged soon.
  const interrupted = stop !== 'done' && stop !== 'refused'
  await client.close({
    timeoutMs: interrupted && !watch.connected ? 0 : FLUSH_MS,
  })
  status.stop()
  process.off('SIGINT', onSignal)
  process.off('SIGTERM', onSignal)

  // Simulated time: the steps sent, each 1 / rate seconds.
  const seconds = (k / options.rate).toFixed(1)
  if (refusal !== undefined) process.stderr.write(`simulate: ${refusal}\n`)
  const until = interrupted ? ` until ${stop}` : ''
  process.stdout.write(
    `simulated ${options.robots} robot${options.robots === 1 ? '' : 's'} for ${seconds} s${until} (seed ${seed}): ${sent} event${sent === 1 ? '' : 's'} sent, ${tally.describe()}\n`,
  )
  return refusal === undefined && tally.failed === 0 && tally.total === sent
    ? 0
    : 1
}
