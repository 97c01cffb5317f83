/**
 * The MCAP export: the stored events of some robots (or of the whole
 * fleet) in an interval, written as one MCAP file (https://mcap.dev/spec)
 * with `@mcap/core`, into a sink that says when it can take more.
 *
 * The file:
 * - Header profile `''` (json) or `ros2`, library `fleet-telemetry <version>`.
 * - The profile's two schemas (messages.ts), registered once per file.
 * - Per robot with an event in the interval, two channels,
 *   `/robots/<name>/pose` and `/robots/<name>/odometer`, with channel
 *   metadata `robot` = the exact name (and, for ros2, the
 *   `offered_qos_profiles` its profile requires). A robot without an event
 *   in the interval has no channel.
 * - Per event one pose and one odometer message, both with the event's
 *   timestamp as log time and publish time (messages.ts, `logTime`), and
 *   sequence numbers counting each channel's messages from 1.
 * - Chunks of about {@link DEFAULT_CHUNK_BYTES} (before compression), each
 *   compressed with zstd, followed by its message indexes; then the
 *   summary: schemas, channels, statistics, chunk indexes, and the summary
 *   offsets.
 *
 * Robots are written one after the other, each in timestamp order: the
 * data section is in log-time order per robot, not across robots. The file
 * is indexed (chunk indexes with each chunk's time range, message indexes),
 * so readers that read by time (Foxglove, Lichtblick, `ros2 bag play`,
 * `McapIndexedReader.readMessages`) merge the robots by log time.
 * Reading every robot at once to interleave them would hold a page of each
 * robot in memory; one after the other holds one page and one chunk.
 *
 * Memory stays bounded whatever the number of events: pages of events are
 * read one at a time, a chunk is written once full, and the next page is
 * read only once the sink took the chunk (backpressure). What grows is per
 * robot and per chunk, never per event: the channels and their message
 * counts (the summary repeats them), and one chunk index per chunk. An
 * MCAP channel id is a uint16, so a file holds at most
 * {@link MAX_EXPORT_ROBOTS} robots.
 *
 * Times: a profile's times end at {@link Profile.maxTimestamp} (a uint64 of
 * nanoseconds, year 2554; ROS 2's int32 seconds, 2038-01-19), so the
 * interval's end is capped there: later events are left out.
 *
 * Topic names of the ros2 profile are ROS 2 names: see {@link rosToken}.
 */
import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import { McapWriter, type IWritable } from '@mcap/core'
import zstd from '@foxglove/wasm-zstd'
import { OdometerReplay } from '../store/odometer-replay.ts'
import type { Store, TimeRange } from '../store/store.ts'
import { MAX_EXPORT_ROBOTS } from './constants.ts'
import { logTime, odometerTopic, poseTopic, type Profile } from './messages.ts'

// --- options and results ---

/** Where the file goes. */
export interface McapSink {
  /**
   * Takes the next bytes of the file (they are the sink's to keep) and
   * resolves once it can take more: the export waits for it before it reads
   * on, so a slow reader slows the export instead of growing memory.
   */
  write(bytes: Uint8Array): Promise<void>
}

/** Options of {@link writeMcap}. */
export interface McapExportOptions {
  /**
   * The robots, each once, in the order they are written; absent for every
   * robot, in code point order of their names.
   */
  readonly robots?: readonly string[]
  /** Inclusive bounds on the events' timestamps; capped at the profile's end. */
  readonly range?: TimeRange
  readonly profile: Profile
  /** Bytes of records a chunk gathers before it is compressed and written. */
  readonly chunkBytes?: number
  /** Events read from the store at once. */
  readonly pageSize?: number
  /** Stops the export: the promise rejects with the signal's reason. */
  readonly signal?: AbortSignal
}

/** What {@link writeMcap} wrote. */
export interface McapExportSummary {
  /** Robots with at least one event in the file. */
  readonly robots: number
  readonly events: number
  readonly bytes: number
  readonly chunks: number
}

// --- settings ---

/**
 * Bytes of records per chunk: `@mcap/core`'s default. Measured on 1
 * million events of one robot (json profile, zstd level 3, two runs),
 * chunks of 256 KiB, 1 MiB and 4 MiB gave the same speed within the noise
 * (190-200k events/s) and files within 2 % of each other (67.1, 67.9 and
 * 68.4 MB, most of it the message indexes, which do not depend on the
 * chunk); a chunk is held twice, records and their compression, as it is
 * written, and a reader decompresses a whole chunk to seek into it.
 */
export const DEFAULT_CHUNK_BYTES = 1024 * 1024

/** The zstd level of each chunk: zstd's own default. */
const ZSTD_LEVEL = 3

/** Events read at once, the store's own default page. */
const DEFAULT_PAGE_SIZE = 4096

/** Robots listed at once when every robot is exported. */
const ROBOTS_PAGE = 1000

export { MAX_EXPORT_ROBOTS }

/**
 * The QoS that `ros2 bag record` writes for a topic with one reliable,
 * volatile publisher, as its `offered_qos_profiles` channel metadata
 * (required by the ros2 profile of the MCAP registry; `ros2 bag play`
 * offers it again).
 */
const OFFERED_QOS_PROFILES = `- history: 3
  depth: 0
  reliability: 1
  durability: 2
  deadline:
    sec: 9223372036
    nsec: 854775807
  lifespan:
    sec: 9223372036
    nsec: 854775807
  liveliness: 1
  liveliness_lease_duration:
    sec: 9223372036
    nsec: 854775807
  avoid_ros_namespace_conventions: false
`

/** `fleet-telemetry <version>`, read from the package once. */
let library: string | undefined
function libraryName(): string {
  if (library === undefined) {
    // The package's own name resolves to its package.json through
    // `exports`, from src/ and dist/src/ alike.
    const require = createRequire(import.meta.url)
    const { version } = require('fleet-telemetry/package.json') as {
      version: string
    }
    library = `fleet-telemetry ${version}`
  }
  return library
}

// --- ROS 2 topic names ---

/** A ROS 2 name token: a letter, then letters, digits and single underscores. */
const ROS_TOKEN = /^[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*$/
const ALPHANUMERIC = /^[A-Za-z0-9]$/

/** Longest encoded token before it is cut and hashed. */
const MAX_ENCODED_TOKEN = 200
/** What is kept of a cut encoded token, before `_z` and the hash. */
const CUT_ENCODED_TOKEN = 160

const utf8 = new TextEncoder()

/**
 * A robot name as one token of a ROS 2 topic name
 * (design.ros2.org/articles/topic_and_service_names.html: letters, digits
 * and single underscores, not starting with a digit or an underscore,
 * which would hide the topic, nor ending with one; `rmw` refuses topic
 * names over 247 characters).
 *
 * - A name that is such a token, of at most 200 characters and not
 *   starting with `xx`, is kept: `Bender` → `/robots/Bender/pose`.
 * - Any other name becomes `xx` followed by the name with each UTF-8 byte
 *   that is not an ASCII letter or digit written `_` and two lower-case
 *   hex digits: `Unit 7/b` → `xxUnit_207_2fb`, `Émile` → `xx_c3_89mile`,
 *   `my_bot` stays, `my__bot` → `xxmy_5f_5fbot`, `xxl` → `xxxxl`.
 * - When that is longer than 200 characters, it is cut after at most 160
 *   (never inside a `_hh`) and `_z` and the first 32 hex digits of the
 *   name's SHA-256 follow.
 *
 * Distinct names give distinct tokens (kept names never start with `xx`,
 * encoded ones always do; the encoding is undone byte by byte, and `_z`
 * occurs only before a hash). The exact name is in the channel's metadata.
 */
export function rosToken(name: string): string {
  if (
    name.length <= MAX_ENCODED_TOKEN &&
    ROS_TOKEN.test(name) &&
    !name.startsWith('xx')
  ) {
    return name
  }
  let body = ''
  let cut: number | undefined
  for (const char of name) {
    let piece = char
    if (!ALPHANUMERIC.test(char)) {
      piece = ''
      for (const byte of utf8.encode(char)) {
        piece += `_${byte.toString(16).padStart(2, '0')}`
      }
    }
    if (cut === undefined && body.length + piece.length > CUT_ENCODED_TOKEN) {
      cut = body.length
    }
    body += piece
  }
  if (body.length + 2 <= MAX_ENCODED_TOKEN) return `xx${body}`
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 32)
  return `xx${body.slice(0, cut)}_z${hash}`
}

/** The topics of a robot in a profile. */
function topics(profile: Profile, robot: string) {
  const name = profile.name === 'ros2' ? rosToken(robot) : robot
  return { pose: poseTopic(name), odometer: odometerTopic(name) }
}

// --- the writer ---

/**
 * The sink as `@mcap/core` writes to it: each write is copied (the writer
 * reuses its buffer) and counted.
 */
class CountingWritable implements IWritable {
  readonly #sink: McapSink
  readonly #signal: AbortSignal | undefined
  #position = 0

  constructor(sink: McapSink, signal: AbortSignal | undefined) {
    this.#sink = sink
    this.#signal = signal
  }

  async write(buffer: Uint8Array): Promise<void> {
    this.#signal?.throwIfAborted()
    if (buffer.byteLength === 0) return
    this.#position += buffer.byteLength
    await this.#sink.write(Uint8Array.prototype.slice.call(buffer))
    this.#signal?.throwIfAborted()
  }

  position(): bigint {
    return BigInt(this.#position)
  }

  get bytes(): number {
    return this.#position
  }
}

/** Compresses a chunk with zstd (the module is loaded by then). */
function compressChunk(data: Uint8Array) {
  return {
    compression: 'zstd',
    compressedData: zstd.compress(data, ZSTD_LEVEL),
  }
}

/**
 * Writes the MCAP file of the events of `options.robots` (or every robot)
 * in `options.range` into `sink`; resolves with what it wrote once the
 * file's last byte went to the sink. A robot with no stored event in the
 * interval is left out, so an unknown robot gives a valid file without
 * channels or messages. Rejects if the store fails or `options.signal`
 * aborts; the sink then has a truncated file.
 *
 * @example
 * const chunks: Uint8Array[] = []
 * await writeMcap(store, { write: async (b) => void chunks.push(b) }, {
 *   robots: ['Bender'],
 *   profile: JSON_PROFILE,
 * })
 */
export async function writeMcap(
  store: Store,
  sink: McapSink,
  options: McapExportOptions,
): Promise<McapExportSummary> {
  const { profile, signal } = options
  await zstd.isLoaded
  const writable = new CountingWritable(sink, signal)
  const writer = new McapWriter({
    writable,
    chunkSize: options.chunkBytes ?? DEFAULT_CHUNK_BYTES,
    compressChunk,
    useChunks: true,
    useChunkIndex: true,
    useMessageIndex: true,
    useStatistics: true,
    useSummaryOffsets: true,
    repeatSchemas: true,
    repeatChannels: true,
  })
  await writer.start({
    profile: profile.name === 'ros2' ? 'ros2' : '',
    library: libraryName(),
  })
  const schema = async (s: Profile['pose']) =>
    writer.registerSchema({
      name: s.name,
      encoding: s.schemaEncoding,
      data: utf8.encode(s.text),
    })
  const poseSchema = await schema(profile.pose)
  const odometerSchema = await schema(profile.odometer)

  // The profile's last time caps the interval (see the module's comment).
  const start = options.range?.start ?? 0
  const end = Math.min(
    options.range?.end ?? Number.MAX_SAFE_INTEGER,
    profile.maxTimestamp,
  )
  const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE
  let robots = 0
  let events = 0

  const writeRobot = async (robot: string) => {
    let channels: { pose: number; odometer: number } | undefined
    let sequence = 0
    if (start > end) return
    const replay = new OdometerReplay(store, robot)
    for await (const page of store.readEvents(robot, {
      start,
      end,
      pageSize,
    })) {
      signal?.throwIfAborted()
      const odometers = await replay.next(page)
      // Deleted since this page was read: what was written stays.
      if (odometers === undefined) return
      if (channels === undefined) {
        if (++robots > MAX_EXPORT_ROBOTS) {
          throw new RangeError(
            `an MCAP file holds at most ${MAX_EXPORT_ROBOTS} robots`,
          )
        }
        const topic = topics(profile, robot)
        const metadata = new Map([['robot', robot]])
        if (profile.name === 'ros2') {
          metadata.set('offered_qos_profiles', OFFERED_QOS_PROFILES)
        }
        channels = {
          pose: await writer.registerChannel({
            topic: topic.pose,
            schemaId: poseSchema,
            messageEncoding: profile.pose.messageEncoding,
            metadata,
          }),
          odometer: await writer.registerChannel({
            topic: topic.odometer,
            schemaId: odometerSchema,
            messageEncoding: profile.odometer.messageEncoding,
            metadata,
          }),
        }
      }
      const { ts, x, y } = page
      for (let i = 0; i < ts.length; i++) {
        const event = {
          robot,
          x: x[i]!,
          y: y[i]!,
          timestamp: ts[i]!,
          odometer: odometers[i]!,
        }
        const time = logTime(event.timestamp)
        // A uint32 in the file: it wraps after 4,294,967,295 messages.
        sequence = (sequence + 1) >>> 0
        await writer.addMessage({
          channelId: channels.pose,
          sequence,
          logTime: time,
          publishTime: time,
          data: profile.poseMessage(event),
        })
        await writer.addMessage({
          channelId: channels.odometer,
          sequence,
          logTime: time,
          publishTime: time,
          data: profile.odometerMessage(event),
        })
      }
      events += ts.length
    }
  }

  if (options.robots !== undefined) {
    for (const robot of options.robots) await writeRobot(robot)
  } else {
    let after: string | undefined
    for (;;) {
      const page = await store.listRobots({ after, limit: ROBOTS_PAGE })
      for (const robot of page) await writeRobot(robot.name)
      if (page.length < ROBOTS_PAGE) break
      after = page.at(-1)!.name
    }
  }
  await writer.end()
  return {
    robots,
    events,
    bytes: writable.bytes,
    chunks: writer.statistics?.chunkCount ?? 0,
  }
}
