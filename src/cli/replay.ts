/**
 * `fleet-telemetry replay FILE`: sends a file of `x,y,timestamp,robot_name`
 * lines (the original system's format) through the client library, as
 * fast as the server acknowledges (`--fast`, the default) or paced by the
 * lines' timestamps (`--speed X`), and sums up what became of each line.
 * Exit code 0 when every line ended stored or duplicate, 1 otherwise.
 *
 * Lines are read from the file's bytes as the server reads a frame
 * (docs/protocol.md, "Frames and lines"): split on `\n`, one `\r` removed
 * at the end, a final `\n` ends the last line; an empty line is malformed,
 * and so is a line that is not valid UTF-8. A first line that is no event
 * but a header (`x,y,timestamp,robot_name`) is skipped, and so is a UTF-8
 * byte order mark. Reading waits while the client holds
 * {@link MAX_BUFFERED} events, so a file of any size takes bounded memory.
 */
import { open } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { Option } from 'commander'
import { connect } from '../client/node.ts'
import type { Outcome, TelemetryClient } from '../client/client.ts'
import { isMalformed, parseEventLine } from '../domain/event.ts'
import { ConnectionWatch, Tally } from './ingest.ts'
import {
  createProgram,
  positiveNumber,
  runProgram,
  tokenOption,
  urlOption,
  UsageError,
  type ServerUrls,
} from './options.ts'
import { count, RateMeter, startProgressBar } from './progress.ts'

/** Events the client may hold without an outcome before reading waits. */
export const MAX_BUFFERED = 50_000

/** Failures listed on stderr, the first ones by line number. */
const SHOWN_FAILURES = 10

/** How long the client may take to finish after SIGINT or SIGTERM, when connected. */
const INTERRUPT_FLUSH_MS = 5000

const EXAMPLES = `
Lines are x,y,timestamp,robot_name (docs/protocol.md); a header line, CRLF
line ends and a UTF-8 byte order mark are accepted. --speed reads the
timestamps as milliseconds. Progress goes to stderr (a bar on a terminal),
the summary to stdout and the first failures, by line number, to stderr.

Exit codes: 0 every line ended stored or duplicate; 1 any other outcome,
a refused connection or an interruption; 2 a usage error.

Examples:
  fleet-telemetry replay events.csv
  fleet-telemetry replay events.csv --url http://10.0.0.5:8000 --token "$TOKEN"
  fleet-telemetry replay day.csv --speed 60      # an hour of events a minute
  zcat events.csv.gz | fleet-telemetry replay -
`

interface ReplayOptions {
  readonly url: ServerUrls
  readonly token?: string
  readonly speed?: number
  readonly fast?: boolean
}

/** Runs `replay …` (`args` after the word `replay`); returns the exit code. */
export async function runReplay(args: readonly string[]): Promise<number> {
  const result = { code: 0 }
  const program = createProgram(
    'replay',
    'Send a file of x,y,timestamp,robot_name lines to the server and sum up what became of each.',
  )
    .argument('<file>', 'the file, or - for standard input')
    .addOption(urlOption())
    .addOption(tokenOption('an ingest or admin'))
    .addOption(
      new Option(
        '--speed <x>',
        'pace the lines by their timestamps, read as milliseconds (2: twice as fast)',
      )
        .argParser(positiveNumber())
        .conflicts('fast'),
    )
    .addOption(
      new Option(
        '--fast',
        'as fast as the server acknowledges (the default)',
      ).conflicts('speed'),
    )
    .addHelpText('after', EXAMPLES)
    .action(async (file: string, options: ReplayOptions) => {
      result.code = await replay(file, options)
    })
  return runProgram(program, args, result)
}

// --- reading lines ---

/** A line of the input, as read. */
interface InputLine {
  /** From 1, header included. */
  readonly number: number
  /** Decoded, without its line end; undefined when it is not valid UTF-8. */
  readonly text: string | undefined
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

function decode(bytes: Buffer): string | undefined {
  const text = bytes.toString('utf8')
  // U+FFFD is either in the file or stands for bytes that are not UTF-8.
  if (text.includes('\uFFFD')) {
    try {
      strictUtf8.decode(bytes)
    } catch {
      return undefined
    }
  }
  return text.endsWith('\r') ? text.slice(0, -1) : text
}

/**
 * Calls `each` for every line of `input`, waiting when it returns a
 * promise; stops once `stopped()` says so.
 */
async function forEachLine(
  input: AsyncIterable<Buffer>,
  each: (line: InputLine, bytesRead: number) => Promise<void> | undefined,
  stopped: () => boolean,
): Promise<void> {
  let carry: Buffer | undefined
  let number = 0
  let bytesRead = 0
  for await (const chunk of input) {
    bytesRead += chunk.length
    const data: Buffer =
      carry === undefined ? chunk : Buffer.concat([carry, chunk])
    carry = undefined
    let start = 0
    for (;;) {
      const end = data.indexOf(0x0a, start)
      if (end === -1) break
      const wait = each(
        { number: ++number, text: decode(data.subarray(start, end)) },
        bytesRead,
      )
      if (wait !== undefined) await wait
      if (stopped()) return
      start = end + 1
    }
    if (start < data.length) carry = Buffer.from(data.subarray(start))
  }
  // A last line without its `\n`.
  if (carry !== undefined && !stopped()) {
    const wait = each({ number: number + 1, text: decode(carry) }, bytesRead)
    if (wait !== undefined) await wait
  }
}

/** Whether the first line is a header such as `x,y,timestamp,robot_name`. */
function isHeader(text: string): boolean {
  return (
    isMalformed(parseEventLine(text)) &&
    /^"?[A-Za-z_][^,]*,"?[A-Za-z_][^,]*,"?[A-Za-z_][^,]*,./.test(text)
  )
}

// --- replaying ---

interface Failure {
  readonly number: number
  readonly text: string
  readonly outcome: Outcome
}

async function replay(file: string, options: ReplayOptions): Promise<number> {
  // The input first: a file that cannot be read is a bad argument.
  let input: AsyncIterable<Buffer> & { destroy(): void }
  let size: number | undefined
  if (file === '-') {
    input = process.stdin
  } else {
    try {
      const handle = await open(file)
      const stat = await handle.stat()
      if (stat.isDirectory()) {
        await handle.close()
        throw Object.assign(new Error('is a directory'), { code: 'EISDIR' })
      }
      if (stat.isFile()) size = stat.size
      input = handle.createReadStream({ highWaterMark: 256 * 1024 })
    } catch (error) {
      throw new UsageError(
        `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      )
    }
  }

  const tally = new Tally()
  const failures: Failure[] = []
  let failed = 0
  const fail = (number: number, text: string, outcome: Outcome) => {
    failed++
    if (failures.length === SHOWN_FAILURES) {
      if (failures[SHOWN_FAILURES - 1]!.number < number) return
      failures.pop()
    }
    failures.push({ number, text, outcome })
    failures.sort((a, b) => a.number - b.number)
  }
  const settle = (number: number, text: string) => (outcome: Outcome) => {
    tally.add(outcome.status)
    // Unsent lines were never judged: the summary counts them, the list leaves them out.
    if (!['stored', 'duplicate', 'unsent'].includes(outcome.status)) {
      fail(number, text, outcome)
    }
  }

  const watch = new ConnectionWatch()
  const client: TelemetryClient = connect(options.url.upstream, {
    token: options.token,
    maxBuffered: MAX_BUFFERED,
    overflow: 'drop-newest',
    onStatus: watch.onStatus,
  })

  // Stopping early: a signal, or a connection refused for good.
  let stop: string | undefined
  const abort = new AbortController()
  const stopWith = (why: string) => {
    stop ??= why
    abort.abort()
    input.destroy()
  }
  let flushMs: number | undefined
  const onSignal = (signal: NodeJS.Signals) => {
    // A second signal gives up on what is still pending at once, and so
    // does the first when not connected: nothing will be acknowledged soon.
    flushMs = stop === undefined && watch.connected ? INTERRUPT_FLUSH_MS : 0
    stopWith(`interrupted (${signal})`)
    void client.close({ timeoutMs: flushMs })
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  void watch.refused.then((message) => {
    flushMs = 0
    stopWith(message)
    void client.close({ timeoutMs: 0 })
  })

  let lines = 0
  let bytes = 0
  let header: string | undefined
  const rate = new RateMeter()
  const progress = startProgressBar(
    () => ({
      value: bytes,
      total: size,
      text: `${count(lines)} lines, ${count(tally.delivered)} acknowledged, ${count(tally.failed)} failed, ${count(Math.round(rate.sample(tally.total)))} lines/s, ${watch.describe()}`,
    }),
    { label: 'replay: ' },
  )

  // Pacing: the first event's timestamp is now; later ones follow, divided by the speed.
  let pace: { timestamp: number; at: number } | undefined
  const paced = async (timestamp: number) => {
    pace ??= { timestamp, at: performance.now() }
    const due = pace.at + (timestamp - pace.timestamp) / options.speed!
    // setTimeout takes at most 2^31−1 ms: long gaps are waited in parts.
    for (let left = due - performance.now(); left > 0 && stop === undefined;) {
      await sleep(Math.min(left, 3_600_000), undefined, {
        signal: abort.signal,
      }).catch(() => {})
      left = due - performance.now()
    }
  }

  const each = (line: InputLine, read: number): Promise<void> | undefined => {
    bytes = read
    if (stop !== undefined) return undefined
    let text = line.text
    if (line.number === 1 && text !== undefined) {
      if (text.startsWith('\uFEFF')) text = text.slice(1)
      if (isHeader(text)) {
        header = text
        return undefined
      }
    }
    if (text === undefined) {
      lines++
      // The server's own reply to such a line (docs/protocol.md).
      const record = settle(line.number, '(not UTF-8)')
      record({ status: 'malformed', message: 'line is not valid UTF-8' })
      return undefined
    }
    const send = () => {
      if (stop !== undefined) return
      lines++
      void client.sendLine(text).then(settle(line.number, text))
    }
    if (options.speed !== undefined) {
      const event = parseEventLine(text)
      if (!isMalformed(event)) {
        return paced(event.timestamp).then(() => client.room().then(send))
      }
    }
    if (client.pending >= MAX_BUFFERED) return client.room().then(send)
    send()
    return undefined
  }

  try {
    await forEachLine(input, each, () => stop !== undefined)
  } catch (error) {
    // A stream destroyed on purpose ends the reading; anything else is told.
    if (stop === undefined) {
      stopWith(`cannot read ${file}: ${(error as Error).message}`)
      flushMs = INTERRUPT_FLUSH_MS
    }
  }
  await client.close(flushMs === undefined ? {} : { timeoutMs: flushMs })
  progress.stop()
  process.off('SIGINT', onSignal)
  process.off('SIGTERM', onSignal)

  if (header !== undefined) {
    process.stderr.write(`replay: line 1 is a header, skipped: ${header}\n`)
  }
  if (failed > 0) {
    process.stderr.write(
      `replay: ${failed} line${failed === 1 ? '' : 's'} failed${failed > failures.length ? `; the first ${failures.length}` : ''}:\n`,
    )
    for (const { number, text, outcome } of failures) {
      const why = outcome.message === undefined ? '' : ` (${outcome.message})`
      process.stderr.write(
        `  line ${number}: ${outcome.status}${why}: ${shorten(text)}\n`,
      )
    }
  }
  if (stop !== undefined) process.stderr.write(`replay: ${stop}\n`)
  process.stdout.write(
    `replayed ${lines} line${lines === 1 ? '' : 's'}: ${tally.describe()}\n`,
  )
  const clean = stop === undefined && tally.failed === 0
  return clean ? 0 : 1
}

function shorten(text: string): string {
  return text.length > 120 ? `${text.slice(0, 117)}...` : text
}
