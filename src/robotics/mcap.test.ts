import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { parse as parseRosMessage } from '@foxglove/rosmsg'
import { MessageReader } from '@foxglove/rosmsg2-serialization'
import {
  jsonMessage,
  mcapRecords,
  openMcap,
  readMcapMessages,
  recordsOf,
} from '../../test/support/index.ts'
import { openBackend } from '../store/open.ts'
import type {
  EventPage,
  ListRobotsOptions,
  ReadEventsOptions,
  Robot,
  Store,
} from '../store/store.ts'
import {
  MAX_EXPORT_ROBOTS,
  rosToken,
  writeMcap,
  type McapExportOptions,
} from './mcap.ts'
import {
  JSON_PROFILE,
  MAX_ROS2_TIMESTAMP_MS,
  ROS2_PROFILE,
  logTime,
} from './messages.ts'

/** Writes a file into memory; resolves with its bytes and the summary. */
async function exportFile(store: Store, options: McapExportOptions) {
  const parts: Uint8Array[] = []
  const summary = await writeMcap(
    store,
    { write: async (bytes) => void parts.push(bytes) },
    options,
  )
  const bytes = new Uint8Array(Buffer.concat(parts))
  assert.equal(summary.bytes, bytes.byteLength)
  return { bytes, summary }
}

/** A name's topic token is a ROS 2 token (design.ros2.org, rmw). */
const ROS_TOKEN = /^[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*$/

describe('rosToken', () => {
  it('should keep a name that is a ROS 2 token and does not start with xx', () => {
    for (const name of ['Bender', 'robot_7', 'A', 'x', 'xY', 'sim_001']) {
      assert.equal(rosToken(name), name)
    }
  })

  it('should encode any other name byte by byte after xx', () => {
    assert.equal(rosToken('Unit 7/b'), 'xxUnit_207_2fb')
    assert.equal(rosToken('Émile'), 'xx_c3_89mile')
    assert.equal(rosToken('my__bot'), 'xxmy_5f_5fbot')
    assert.equal(rosToken('bot_'), 'xxbot_5f')
    assert.equal(rosToken('_bot'), 'xx_5fbot')
    assert.equal(rosToken('7up'), 'xx7up')
    assert.equal(rosToken('xxl'), 'xxxxl')
    assert.equal(rosToken('🤖'), 'xx_f0_9f_a4_96')
  })

  it('should give distinct names distinct valid tokens, long ones cut and hashed', () => {
    const names = [
      'a b',
      'a_20b',
      'xxa_20b',
      'xxa b',
      'a/b',
      'a_2fb',
      'Unit 7/b',
      'xxUnit_207_2fb',
      '7up',
      'xx7up',
      '_',
      '__',
      'é'.repeat(150),
      `${'é'.repeat(149)}e`,
      '🤖'.repeat(150),
      `${'🤖'.repeat(149)}x`,
      'a'.repeat(150),
      ' '.repeat(150),
    ]
    const tokens = names.map(rosToken)
    assert.equal(new Set(tokens).size, names.length, tokens.join('\n'))
    for (const token of tokens) {
      assert.match(token, ROS_TOKEN)
      assert.ok(token.length <= 200, `${token.length} characters`)
      // rmw refuses topic names over 247 characters.
      assert.ok(`/robots/${token}/odometer`.length <= 247)
    }
    assert.match(rosToken('é'.repeat(150)), /^xx(_c3_a9){26}_z[0-9a-f]{32}$/)
  })
})

const writeMcapStore = await openBackend('sqlite::memory:')

describe('writeMcap', () => {
  const store = writeMcapStore
  const T0 = 1_700_000_000_000
  /** Bender: a 3-4-5 zigzag; "Unit 7/b": two events; "Émile": one. */
  const bender = Array.from({ length: 300 }, (_, i) => ({
    robot: 'Bender',
    x: (i % 2) * 3,
    y: (i % 2) * 4,
    timestamp: T0 + i * 100,
  }))

  before(async () => {
    await store.init()
    await store.append(bender)
    await store.append([
      { robot: 'Unit 7/b', x: 1.5, y: -2, timestamp: T0 + 50 },
      { robot: 'Unit 7/b', x: 4.5, y: 2, timestamp: T0 + 1050 },
      { robot: 'Émile', x: 0, y: 0, timestamp: T0 + 7 },
    ])
  })
  after(() => store.close())

  it('should write an indexed, chunked, zstd-compressed file with the header, schemas and channels of the json profile', async () => {
    const { bytes, summary } = await exportFile(store, {
      profile: JSON_PROFILE,
      chunkBytes: 4096,
    })
    assert.deepStrictEqual(
      { ...summary, bytes: 0, chunks: 0 },
      { robots: 3, events: 303, bytes: 0, chunks: 0 },
    )
    const mcap = await openMcap(bytes)
    assert.equal(mcap.header.profile, '')
    assert.match(mcap.header.library, /^fleet-telemetry \d+\.\d+\.\d+/)
    assert.deepStrictEqual(
      [...mcap.schemasById.values()].map((s) => [s.id, s.name, s.encoding]),
      [
        [1, 'foxglove.PoseInFrame', 'jsonschema'],
        [2, 'fleet_telemetry.Odometer', 'jsonschema'],
      ],
    )
    assert.equal(
      new TextDecoder().decode(mcap.schemasById.get(1)!.data),
      JSON_PROFILE.pose.text,
    )
    // Every robot, in code point order, two channels each.
    assert.deepStrictEqual(
      [...mcap.channelsById.values()].map((c) => [
        c.id,
        c.topic,
        c.schemaId,
        c.messageEncoding,
        Object.fromEntries(c.metadata),
      ]),
      [
        [0, '/robots/Bender/pose', 1, 'json', { robot: 'Bender' }],
        [1, '/robots/Bender/odometer', 2, 'json', { robot: 'Bender' }],
        [2, '/robots/Unit 7/b/pose', 1, 'json', { robot: 'Unit 7/b' }],
        [3, '/robots/Unit 7/b/odometer', 2, 'json', { robot: 'Unit 7/b' }],
        [4, '/robots/Émile/pose', 1, 'json', { robot: 'Émile' }],
        [5, '/robots/Émile/odometer', 2, 'json', { robot: 'Émile' }],
      ],
    )
    const stats = mcap.statistics!
    assert.equal(stats.messageCount, 606n)
    assert.equal(stats.schemaCount, 2)
    assert.equal(stats.channelCount, 6)
    assert.equal(stats.messageStartTime, logTime(T0))
    assert.equal(stats.messageEndTime, logTime(T0 + 29_900))
    assert.deepStrictEqual(
      [...stats.channelMessageCounts],
      [
        [0, 300n],
        [1, 300n],
        [2, 2n],
        [3, 2n],
        [4, 1n],
        [5, 1n],
      ],
    )
    // Small chunks: several, each zstd, each with its message indexes.
    assert.ok(mcap.chunkIndexes.length > 3, `${mcap.chunkIndexes.length}`)
    assert.equal(stats.chunkCount, mcap.chunkIndexes.length)
    for (const chunk of mcap.chunkIndexes) {
      assert.equal(chunk.compression, 'zstd')
      assert.ok(chunk.compressedSize < chunk.uncompressedSize)
      assert.ok(chunk.messageIndexOffsets.size > 0)
    }
    // Summary offsets to each group of the summary.
    assert.deepStrictEqual(
      [...mcap.summaryOffsetsByOpcode.keys()].sort((a, b) => a - b),
      [0x03, 0x04, 0x08, 0x0b],
    )
    // In file order: each robot's messages in timestamp order, robot after
    // robot; pose then odometer for each event.
    const records = await mcapRecords(bytes)
    const inFile = recordsOf(records, 'Message')
    assert.deepStrictEqual(
      inFile.slice(0, 4).map((m) => [m.channelId, m.sequence, m.logTime]),
      [
        [0, 1, logTime(T0)],
        [1, 1, logTime(T0)],
        [0, 2, logTime(T0 + 100)],
        [1, 2, logTime(T0 + 100)],
      ],
    )
    assert.deepStrictEqual(
      inFile.slice(600).map((m) => [m.channelId, m.sequence]),
      [
        [2, 1],
        [3, 1],
        [2, 2],
        [3, 2],
        [4, 1],
        [5, 1],
      ],
    )
    assert.equal(recordsOf(records, 'ChunkIndex').length, stats.chunkCount)
  })

  it('should write each event as a pose and an odometer message whose times are its timestamp', async () => {
    const { bytes } = await exportFile(store, {
      robots: ['Unit 7/b', 'Bender'],
      profile: JSON_PROFILE,
    })
    const mcap = await openMcap(bytes)
    // Named robots in the order named.
    assert.deepStrictEqual(
      [...mcap.channelsById.values()].map((c) => c.topic),
      [
        '/robots/Unit 7/b/pose',
        '/robots/Unit 7/b/odometer',
        '/robots/Bender/pose',
        '/robots/Bender/odometer',
      ],
    )
    const messages = await readMcapMessages(mcap, {
      topics: ['/robots/Unit 7/b/pose', '/robots/Unit 7/b/odometer'],
    })
    assert.deepStrictEqual(
      messages.map((m) => [m.topic, m.logTime, m.publishTime, jsonMessage(m)]),
      [
        [
          '/robots/Unit 7/b/pose',
          logTime(T0 + 50),
          logTime(T0 + 50),
          {
            timestamp: { sec: 1_700_000_000, nsec: 50_000_000 },
            frame_id: 'fleet',
            pose: {
              position: { x: 1.5, y: -2, z: 0 },
              orientation: { x: 0, y: 0, z: 0, w: 1 },
            },
          },
        ],
        [
          '/robots/Unit 7/b/odometer',
          logTime(T0 + 50),
          logTime(T0 + 50),
          {
            timestamp: { sec: 1_700_000_000, nsec: 50_000_000 },
            robot: 'Unit 7/b',
            odometer: 0,
          },
        ],
        [
          '/robots/Unit 7/b/pose',
          logTime(T0 + 1050),
          logTime(T0 + 1050),
          {
            timestamp: { sec: 1_700_000_001, nsec: 50_000_000 },
            frame_id: 'fleet',
            pose: {
              position: { x: 4.5, y: 2, z: 0 },
              orientation: { x: 0, y: 0, z: 0, w: 1 },
            },
          },
        ],
        [
          '/robots/Unit 7/b/odometer',
          logTime(T0 + 1050),
          logTime(T0 + 1050),
          {
            timestamp: { sec: 1_700_000_001, nsec: 50_000_000 },
            robot: 'Unit 7/b',
            odometer: 5,
          },
        ],
      ],
    )
    // Bender's odometer steps by 5 at each event, to its lifetime figure.
    const odometers = (
      await readMcapMessages(mcap, { topics: ['/robots/Bender/odometer'] })
    ).map((m) => (jsonMessage(m) as { odometer: number }).odometer)
    assert.deepStrictEqual(
      odometers,
      bender.map((_, i) => 5 * i),
    )
    assert.equal(odometers.at(-1), (await store.getRobot('Bender'))!.odometer)
  })

  it('should take the interval inclusively, with odometers that go on from before it', async () => {
    const { bytes, summary } = await exportFile(store, {
      robots: ['Bender'],
      range: { start: T0 + 1000, end: T0 + 2000 },
      profile: JSON_PROFILE,
    })
    assert.equal(summary.events, 11)
    const messages = await readMcapMessages(await openMcap(bytes), {
      topics: ['/robots/Bender/odometer'],
    })
    assert.deepStrictEqual(
      messages.map((m) => [m.logTime, m.sequence, jsonMessage(m)]),
      Array.from({ length: 11 }, (_, i) => [
        logTime(T0 + 1000 + i * 100),
        i + 1,
        {
          timestamp: {
            sec: 1_700_000_001 + Math.floor(i / 10),
            nsec: (i % 10) * 100_000_000,
          },
          robot: 'Bender',
          odometer: 5 * (10 + i),
        },
      ]),
    )
  })

  it('should write a valid file without channels for an unknown robot or an empty interval', async () => {
    for (const options of [
      { robots: ['Nobody'] },
      { robots: ['Bender'], range: { start: T0 + 29_901 } },
      { range: { start: 5, end: 4 } },
    ]) {
      const { bytes, summary } = await exportFile(store, {
        ...options,
        profile: JSON_PROFILE,
      })
      assert.deepStrictEqual(summary, {
        robots: 0,
        events: 0,
        bytes: bytes.byteLength,
        chunks: 0,
      })
      const mcap = await openMcap(bytes)
      assert.equal(mcap.schemasById.size, 2)
      assert.equal(mcap.channelsById.size, 0)
      assert.equal(mcap.statistics!.messageCount, 0n)
      assert.equal(mcap.chunkIndexes.length, 0)
      assert.deepStrictEqual(await readMcapMessages(mcap), [])
      await mcapRecords(bytes)
    }
  })

  it('should write the ros2 profile: CDR PoseStamped and Float64, ROS 2 topic names, QoS metadata', async () => {
    const { bytes } = await exportFile(store, {
      robots: ['Unit 7/b', 'Bender'],
      range: { end: T0 + 100 },
      profile: ROS2_PROFILE,
    })
    const mcap = await openMcap(bytes)
    assert.equal(mcap.header.profile, 'ros2')
    const schemas = [...mcap.schemasById.values()]
    assert.deepStrictEqual(
      schemas.map((s) => [s.name, s.encoding]),
      [
        ['geometry_msgs/msg/PoseStamped', 'ros2msg'],
        ['std_msgs/msg/Float64', 'ros2msg'],
      ],
    )
    const channels = [...mcap.channelsById.values()]
    assert.deepStrictEqual(
      channels.map((c) => [
        c.topic,
        c.messageEncoding,
        c.metadata.get('robot'),
      ]),
      [
        ['/robots/xxUnit_207_2fb/pose', 'cdr', 'Unit 7/b'],
        ['/robots/xxUnit_207_2fb/odometer', 'cdr', 'Unit 7/b'],
        ['/robots/Bender/pose', 'cdr', 'Bender'],
        ['/robots/Bender/odometer', 'cdr', 'Bender'],
      ],
    )
    for (const channel of channels) {
      assert.match(channel.metadata.get('offered_qos_profiles')!, /^- history:/)
    }
    // Decoded with the schemas the file carries.
    const reader = (name: string) =>
      new MessageReader(
        parseRosMessage(
          new TextDecoder().decode(schemas.find((s) => s.name === name)!.data),
          { ros2: true },
        ),
      )
    const pose = reader('geometry_msgs/msg/PoseStamped')
    const float64 = reader('std_msgs/msg/Float64')
    const decoded = (await readMcapMessages(mcap)).map((m) => [
      m.topic,
      m.logTime,
      m.topic.endsWith('/pose')
        ? pose.readMessage(m.data)
        : float64.readMessage(m.data),
    ])
    const stamp = (ms: number) => ({
      sec: Math.floor(ms / 1000),
      nanosec: (ms % 1000) * 1_000_000,
    })
    const poseOf = (ms: number, x: number, y: number) => ({
      header: { stamp: stamp(ms), frame_id: 'fleet' },
      pose: {
        position: { x, y, z: 0 },
        orientation: { x: 0, y: 0, z: 0, w: 1 },
      },
    })
    assert.deepStrictEqual(decoded, [
      ['/robots/Bender/pose', logTime(T0), poseOf(T0, 0, 0)],
      ['/robots/Bender/odometer', logTime(T0), { data: 0 }],
      [
        '/robots/xxUnit_207_2fb/pose',
        logTime(T0 + 50),
        poseOf(T0 + 50, 1.5, -2),
      ],
      ['/robots/xxUnit_207_2fb/odometer', logTime(T0 + 50), { data: 0 }],
      ['/robots/Bender/pose', logTime(T0 + 100), poseOf(T0 + 100, 3, 4)],
      ['/robots/Bender/odometer', logTime(T0 + 100), { data: 5 }],
    ])
  })

  it('should write an odometer past the largest double as null in JSON, as the HTTP API does', async () => {
    const far = await openBackend('sqlite::memory:')
    await far.init()
    try {
      await far.append([
        { robot: 'Far', x: 1.7e308, y: 0, timestamp: 0 },
        { robot: 'Far', x: -1.7e308, y: 0, timestamp: 1 },
      ])
      const { bytes } = await exportFile(far, { profile: JSON_PROFILE })
      const messages = await readMcapMessages(await openMcap(bytes), {
        topics: ['/robots/Far/odometer'],
      })
      assert.deepStrictEqual(
        messages.map((m) => (jsonMessage(m) as { odometer: unknown }).odometer),
        [0, null],
      )
    } finally {
      await far.close()
    }
  })

  it('should leave out events after the last time of the profile', async () => {
    const late = await openBackend('sqlite::memory:')
    await late.init()
    try {
      const last = MAX_ROS2_TIMESTAMP_MS
      await late.append([
        { robot: 'r', x: 0, y: 0, timestamp: last - 1 },
        { robot: 'r', x: 1, y: 0, timestamp: last },
        { robot: 'r', x: 2, y: 0, timestamp: last + 1 },
        { robot: 'r', x: 3, y: 0, timestamp: Number.MAX_SAFE_INTEGER },
      ])
      const ros2 = await exportFile(late, { profile: ROS2_PROFILE })
      assert.equal(ros2.summary.events, 2)
      const messages = await readMcapMessages(await openMcap(ros2.bytes), {
        topics: ['/robots/r/pose'],
      })
      assert.deepStrictEqual(
        messages.map((m) => m.logTime),
        [logTime(last - 1), logTime(last)],
      )
      // JSON goes on to the last nanosecond of a uint64 (year 2554).
      const json = await exportFile(late, { profile: JSON_PROFILE })
      assert.equal(json.summary.events, 3)
    } finally {
      await late.close()
    }
  })
})

// --- a store that counts its reads ---

/** A store of `robots` robots with `events` events each (steps of 1 in x). */
function countingStore(robots: number, events: number) {
  const names = Array.from(
    { length: robots },
    (_, i) => `r${String(i).padStart(6, '0')}`,
  )
  const counts = { pages: 0 }
  const store = {
    async countRobots() {
      return robots
    },
    async listRobots(options: ListRobotsOptions = {}) {
      const from =
        options.after === undefined ? 0 : names.indexOf(options.after) + 1
      return names
        .slice(from, from + (options.limit ?? robots))
        .map((name) => ({ name }) as Robot)
    },
    async *readEvents(
      _name: string,
      options: ReadEventsOptions = {},
    ): AsyncIterable<EventPage> {
      const size = options.pageSize ?? 1000
      for (let first = 0; first < events; first += size) {
        counts.pages++
        const ts = Array.from(
          { length: Math.min(size, events - first) },
          (_, i) => 1_700_000_000_000 + first + i,
        )
        yield { ts, x: ts.map((t) => t % 1000), y: ts.map(() => 0) }
      }
    },
    async runningTotal() {
      return { total: 0, carry: 0 }
    },
  } as unknown as Store
  return { store, counts }
}

describe('writeMcap against its sink and its signal', () => {
  it('should read no further while the sink has not taken the last chunk', async () => {
    const { store, counts } = countingStore(1, 100_000)
    let release: (() => void) | undefined
    let writes = 0
    const sink = {
      write(): Promise<void> {
        writes++
        // The header goes through; then the sink stops taking bytes.
        if (writes === 1) return Promise.resolve()
        return new Promise<void>((resolve) => (release = resolve))
      },
    }
    const done = writeMcap(store, sink, {
      profile: JSON_PROFILE,
      chunkBytes: 64 * 1024,
      pageSize: 100,
    })
    for (let i = 0; i < 50; i++) await new Promise(setImmediate)
    // One chunk of 64 KiB holds a few hundred events: a few pages.
    assert.ok(release !== undefined, 'a chunk is waiting on the sink')
    const readWhileBlocked = counts.pages
    assert.ok(readWhileBlocked <= 10, `${readWhileBlocked} pages read`)
    for (let i = 0; i < 50; i++) await new Promise(setImmediate)
    assert.equal(counts.pages, readWhileBlocked, 'no page read meanwhile')
    // Released for good, it goes to the end.
    sink.write = () => Promise.resolve()
    release()
    const summary = await done
    assert.equal(summary.events, 100_000)
    assert.equal(counts.pages, 1000)
  })

  it('should stop reading and reject once its signal aborts', async () => {
    const { store, counts } = countingStore(3, 100_000)
    const controller = new AbortController()
    let writes = 0
    const done = writeMcap(
      store,
      {
        async write() {
          if (++writes === 3) controller.abort(new Error('client left'))
        },
      },
      {
        profile: JSON_PROFILE,
        chunkBytes: 64 * 1024,
        signal: controller.signal,
      },
    )
    await assert.rejects(done, /client left/)
    const pages = counts.pages
    assert.ok(pages <= 5, `${pages} pages read`)
    for (let i = 0; i < 20; i++) await new Promise(setImmediate)
    assert.equal(counts.pages, pages)
  })

  it(`should refuse more than ${MAX_EXPORT_ROBOTS} robots, which channel ids cannot number`, async () => {
    const { store } = countingStore(MAX_EXPORT_ROBOTS + 1, 1)
    const written = await writeMcap(
      store,
      { write: async () => {} },
      {
        robots: Array.from(
          { length: MAX_EXPORT_ROBOTS },
          (_, i) => `r${String(i).padStart(6, '0')}`,
        ),
        profile: JSON_PROFILE,
      },
    )
    assert.equal(written.robots, MAX_EXPORT_ROBOTS)
    await assert.rejects(
      writeMcap(store, { write: async () => {} }, { profile: JSON_PROFILE }),
      new RangeError(`an MCAP file holds at most ${MAX_EXPORT_ROBOTS} robots`),
    )
  })
})
