/**
 * Issue 16, the MCAP export (`GET /api/robots/{robot}/events.mcap` and
 * `GET /api/export.mcap`), end to end: events sent through the ingest
 * WebSocket to the started server, the files downloaded over HTTP and read
 * back with `@mcap/core` as Foxglove reads them (the index, zstd chunks),
 * and in file order with every CRC checked. Each event must be in the file
 * exactly once, with its position, its times and the server's own lifetime
 * odometer at that event; the ros2 profile is decoded with `@foxglove/cdr`.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { CdrReader } from '@foxglove/cdr'
import {
  IngestClient,
  Random,
  assertErrorResponse,
  downloadMcap,
  getRobot,
  jsonMessage,
  mcapRecords,
  openMcap,
  readEvents,
  readMcapMessages,
  readOdometer,
  recordsOf,
  robotPath,
  seedNote,
  startServer,
  testSeed,
  type ApiEvent,
  type McapMessage,
  type ServerProcess,
} from '../support/index.ts'

const seed = testSeed()

/**
 * Robots with names that topics and headers must survive: a space and a
 * slash, non-ASCII letters and an emoji, a quote; Bender has enough events
 * for several chunks of 1 MiB.
 */
const ROBOTS: Readonly<Record<string, number>> = {
  Bender: 9000,
  'Unit 7/b': 40,
  'Émile 🤖': 30,
  'say "hi"': 5,
}

/** The log time of an event: its timestamp (ms) in nanoseconds. */
const ns = (ms: number) => BigInt(ms) * 1_000_000n

/** `{sec, nsec}` of a timestamp in milliseconds. */
const time = (ms: number) => ({
  sec: Math.floor(ms / 1000),
  nsec: (ms % 1000) * 1_000_000,
})

interface PoseJson {
  timestamp: { sec: number; nsec: number }
  frame_id: string
  pose: {
    position: { x: number; y: number; z: number }
    orientation: { x: number; y: number; z: number; w: number }
  }
}

/** The pose and odometer messages of one robot, in log-time order. */
function ofRobot(messages: readonly McapMessage[], topic: string) {
  return {
    poses: messages.filter((m) => m.topic === `${topic}/pose`),
    odometers: messages.filter((m) => m.topic === `${topic}/odometer`),
  }
}

/** Checks a robot's json messages against its events as the API reads them. */
async function assertRobotMessages(
  server: ServerProcess,
  robot: string,
  messages: readonly McapMessage[],
  events: readonly ApiEvent[],
) {
  const { poses, odometers } = ofRobot(messages, `/robots/${robot}`)
  assert.equal(poses.length, events.length, `${robot}: one pose an event`)
  assert.equal(
    odometers.length,
    events.length,
    `${robot}: one odometer an event`,
  )
  for (const [i, event] of events.entries()) {
    const pose = poses[i]!
    const odometer = odometers[i]!
    for (const m of [pose, odometer]) {
      assert.equal(m.logTime, ns(event.timestamp))
      assert.equal(m.publishTime, ns(event.timestamp))
      assert.equal(m.sequence, i + 1)
    }
    assert.deepStrictEqual(jsonMessage(pose), {
      timestamp: time(event.timestamp),
      frame_id: 'fleet',
      pose: {
        position: { x: event.x, y: event.y, z: 0 },
        orientation: { x: 0, y: 0, z: 0, w: 1 },
      },
    } satisfies PoseJson)
    const body = jsonMessage(odometer) as Record<string, unknown>
    assert.deepStrictEqual(Object.keys(body), [
      'timestamp',
      'robot',
      'odometer',
    ])
    assert.deepStrictEqual(body.timestamp, time(event.timestamp))
    assert.equal(body.robot, robot)
  }
  // The odometer at an event is the server's odometer from the first event
  // to it; at the last, the robot's lifetime odometer. A sample of events.
  const at = (i: number) =>
    (jsonMessage(odometers[i]!) as { odometer: number }).odometer
  const sample = new Set([0, 1, events.length - 1])
  for (let i = 0; i < events.length; i += Math.ceil(events.length / 12)) {
    sample.add(i)
  }
  for (const i of sample) {
    const interval = await readOdometer(server, robot, {
      end_time: events[i]!.timestamp,
    })
    assert.equal(at(i), interval.odometer, `${robot}: odometer at event ${i}`)
  }
  assert.equal(
    at(events.length - 1),
    (await getRobot(server, robot)).odometer,
    `${robot}: the last odometer is the lifetime one`,
  )
}

describe('the MCAP export', () => {
  let server: ServerProcess
  /** Each robot's events as `GET /api/robots/{robot}/events` reads them. */
  const stored = new Map<string, ApiEvent[]>()

  before(async () => {
    server = await startServer()
    const random = Random.derive(seed, 16)
    const client = await IngestClient.connect(server.wsUrl)
    for (const [robot, count] of Object.entries(ROBOTS)) {
      let timestamp = 1_700_000_000_000 + random.int(0, 999)
      const lines: string[] = []
      for (let i = 0; i < count; i++) {
        const x = random.int(-100_000, 100_000) / 1000
        const y = random.int(-100_000, 100_000) / 1000
        lines.push(`${x},${y},${timestamp},${robot}`)
        timestamp += random.int(1, 2000)
      }
      for (let i = 0; i < lines.length; i += 5000) {
        await client.store(lines.slice(i, i + 5000))
      }
    }
    await client.close()
    for (const robot of Object.keys(ROBOTS)) {
      stored.set(robot, await readEvents(server, robot))
    }
  })
  after(async () => server?.dispose())

  test('writes every event of a robot once, with its position, times and odometer, in an indexed file of zstd chunks', async () => {
    for (const robot of Object.keys(ROBOTS)) {
      const events = stored.get(robot)!
      assert.equal(events.length, ROBOTS[robot], seedNote(seed))
      const file = await downloadMcap(server, robotPath(robot, '/events.mcap'))
      assert.equal(file.status, 200)
      assert.equal(file.headers.get('content-type'), 'application/vnd.mcap')
      assert.equal(
        file.headers.get('content-disposition'),
        `attachment; filename="${`${robot}.mcap`.replace(/[^A-Za-z0-9._-]/g, '_')}"; filename*=UTF-8''${encodeURIComponent(`${robot}.mcap`)}`,
      )
      const mcap = await openMcap(file.bytes)
      assert.equal(mcap.header.profile, '')
      assert.match(mcap.header.library, /^fleet-telemetry /)
      assert.deepStrictEqual(
        [...mcap.schemasById.values()].map((s) => [s.name, s.encoding]),
        [
          ['foxglove.PoseInFrame', 'jsonschema'],
          ['fleet_telemetry.Odometer', 'jsonschema'],
        ],
      )
      const poseSchema = JSON.parse(
        new TextDecoder().decode(mcap.schemasById.get(1)!.data),
      ) as { title: string }
      assert.equal(poseSchema.title, 'foxglove.PoseInFrame')
      assert.deepStrictEqual(
        [...mcap.channelsById.values()].map((c) => [
          c.topic,
          c.schemaId,
          c.messageEncoding,
          Object.fromEntries(c.metadata),
        ]),
        [
          [`/robots/${robot}/pose`, 1, 'json', { robot }],
          [`/robots/${robot}/odometer`, 2, 'json', { robot }],
        ],
      )
      const stats = mcap.statistics!
      assert.equal(stats.messageCount, BigInt(2 * events.length))
      assert.equal(stats.channelCount, 2)
      assert.equal(stats.schemaCount, 2)
      assert.equal(stats.messageStartTime, ns(events[0]!.timestamp))
      assert.equal(stats.messageEndTime, ns(events.at(-1)!.timestamp))
      assert.equal(stats.chunkCount, mcap.chunkIndexes.length)
      for (const chunk of mcap.chunkIndexes) {
        assert.equal(chunk.compression, 'zstd')
        assert.equal(chunk.messageIndexOffsets.size, 2)
      }
      if (robot === 'Bender') {
        assert.ok(stats.chunkCount > 1, `${stats.chunkCount} chunks`)
      }
      assert.deepStrictEqual(
        [...mcap.summaryOffsetsByOpcode.keys()].sort((a, b) => a - b),
        [0x03, 0x04, 0x08, 0x0b],
      )
      await assertRobotMessages(
        server,
        robot,
        await readMcapMessages(mcap),
        events,
      )
      // In file order, with every CRC checked: the same messages.
      const records = await mcapRecords(file.bytes)
      assert.equal(recordsOf(records, 'Message').length, 2 * events.length)
      assert.equal(recordsOf(records, 'Chunk').length, stats.chunkCount)
    }
  })

  test('exports the whole fleet, or the robots named, as one file that readers merge by log time', async () => {
    const all = await openMcap(
      (await downloadMcap(server, '/api/export.mcap')).bytes,
    )
    // Every robot, in code point order of the names.
    const names = Object.keys(ROBOTS).sort()
    assert.deepStrictEqual(
      [...all.channelsById.values()].map((c) => c.metadata.get('robot')),
      names.flatMap((name) => [name, name]),
    )
    const messages = await readMcapMessages(all)
    const total = names.reduce((sum, name) => sum + ROBOTS[name]!, 0)
    assert.equal(messages.length, 2 * total)
    assert.equal(all.statistics!.messageCount, BigInt(2 * total))
    for (let i = 1; i < messages.length; i++) {
      assert.ok(messages[i - 1]!.logTime <= messages[i]!.logTime)
    }
    for (const name of names) {
      await assertRobotMessages(server, name, messages, stored.get(name)!)
    }

    const some = await downloadMcap(
      server,
      '/api/export.mcap?robot=Unit%207%2Fb&robot=%C3%89mile%20%F0%9F%A4%96&robot=Nobody&robot=Unit%207%2Fb',
    )
    assert.equal(some.status, 200)
    assert.match(
      some.headers.get('content-disposition') ?? '',
      /^attachment; filename="fleet\.mcap"/,
    )
    const file = await openMcap(some.bytes)
    // In the order named, each once; no channel for a robot without events.
    assert.deepStrictEqual(
      [...file.channelsById.values()].map((c) => c.topic),
      [
        '/robots/Unit 7/b/pose',
        '/robots/Unit 7/b/odometer',
        '/robots/Émile 🤖/pose',
        '/robots/Émile 🤖/odometer',
      ],
    )
    assert.equal(file.statistics!.messageCount, 2n * (40n + 30n))
  })

  test('keeps the events of the interval, both bounds included', async () => {
    const events = stored.get('Bender')!
    const start = events[1000]!.timestamp
    const end = events[3000]!.timestamp
    for (const query of [
      `?start_time=${start}&end_time=${end}`,
      `?start_time=${end}&end_time=${start}`, // swapped, as the API does
    ]) {
      const file = await downloadMcap(
        server,
        robotPath('Bender', `/events.mcap${query}`),
      )
      const mcap = await openMcap(file.bytes)
      const messages = await readMcapMessages(mcap)
      const poses = messages.filter((m) => m.topic === '/robots/Bender/pose')
      assert.deepStrictEqual(
        poses.map((m) => m.logTime),
        events.slice(1000, 3001).map((e) => ns(e.timestamp)),
      )
      assert.equal(mcap.statistics!.messageStartTime, ns(start))
      assert.equal(mcap.statistics!.messageEndTime, ns(end))
      // The odometer goes on from the robot's whole past.
      const first = messages.find((m) => m.topic === '/robots/Bender/odometer')!
      assert.equal(
        (jsonMessage(first) as { odometer: number }).odometer,
        (await readOdometer(server, 'Bender', { end_time: start })).odometer,
      )
    }
    const one = await downloadMcap(
      server,
      robotPath('Bender', `/events.mcap?start_time=${start}&end_time=${start}`),
    )
    assert.equal((await openMcap(one.bytes)).statistics!.messageCount, 2n)
  })

  test('gives a valid file without channels for a robot with no event, or none in the interval', async () => {
    for (const path of [
      robotPath('Nobody', '/events.mcap'),
      robotPath('Bender', '/events.mcap?end_time=1000'),
      '/api/export.mcap?robot=Nobody&profile=ros2',
    ]) {
      const file = await downloadMcap(server, path)
      assert.equal(file.status, 200, path)
      const mcap = await openMcap(file.bytes)
      assert.equal(mcap.channelsById.size, 0)
      assert.equal(mcap.schemasById.size, 2)
      assert.equal(mcap.statistics!.messageCount, 0n)
      assert.deepStrictEqual(await readMcapMessages(mcap), [])
      await mcapRecords(file.bytes)
    }
  })

  test('writes the ros2 profile as CDR PoseStamped and Float64 on ROS 2 topic names', async () => {
    const file = await downloadMcap(server, '/api/export.mcap?profile=ros2')
    const mcap = await openMcap(file.bytes)
    assert.equal(mcap.header.profile, 'ros2')
    assert.deepStrictEqual(
      [...mcap.schemasById.values()].map((s) => [s.name, s.encoding]),
      [
        ['geometry_msgs/msg/PoseStamped', 'ros2msg'],
        ['std_msgs/msg/Float64', 'ros2msg'],
      ],
    )
    const topics = new Map(
      [...mcap.channelsById.values()].map((c) => [
        c.topic,
        c.metadata.get('robot'),
      ]),
    )
    assert.deepStrictEqual(Object.fromEntries(topics), {
      '/robots/Bender/pose': 'Bender',
      '/robots/Bender/odometer': 'Bender',
      '/robots/xxUnit_207_2fb/pose': 'Unit 7/b',
      '/robots/xxUnit_207_2fb/odometer': 'Unit 7/b',
      '/robots/xx_c3_89mile_20_f0_9f_a4_96/pose': 'Émile 🤖',
      '/robots/xx_c3_89mile_20_f0_9f_a4_96/odometer': 'Émile 🤖',
      '/robots/xxsay_20_22hi_22/pose': 'say "hi"',
      '/robots/xxsay_20_22hi_22/odometer': 'say "hi"',
    })
    for (const channel of mcap.channelsById.values()) {
      assert.equal(channel.messageEncoding, 'cdr')
      assert.ok(channel.metadata.has('offered_qos_profiles'))
    }
    const messages = await readMcapMessages(mcap)
    for (const [topic, robot] of topics) {
      if (!topic.endsWith('/pose')) continue
      const base = topic.slice(0, -'/pose'.length)
      const { poses, odometers } = ofRobot(messages, base)
      const events = stored.get(robot!)!
      assert.equal(poses.length, events.length)
      for (const [i, event] of events.entries()) {
        // geometry_msgs/msg/PoseStamped, field by field.
        const cdr = new CdrReader(poses[i]!.data)
        assert.deepStrictEqual(
          {
            sec: cdr.int32(),
            nanosec: cdr.uint32(),
            frame: cdr.string(),
            position: [cdr.float64(), cdr.float64(), cdr.float64()],
            orientation: [
              cdr.float64(),
              cdr.float64(),
              cdr.float64(),
              cdr.float64(),
            ],
          },
          {
            sec: Math.floor(event.timestamp / 1000),
            nanosec: (event.timestamp % 1000) * 1_000_000,
            frame: 'fleet',
            position: [event.x, event.y, 0],
            orientation: [0, 0, 0, 1],
          },
        )
        assert.equal(poses[i]!.logTime, ns(event.timestamp))
        assert.equal(odometers[i]!.logTime, ns(event.timestamp))
      }
      const last = new CdrReader(odometers.at(-1)!.data).float64()
      assert.equal(last, (await getRobot(server, robot!)).odometer)
    }
  })

  test('refuses an unknown profile, a time that is no timestamp, and a robot= that is no robot name', async () => {
    for (const [path, message] of [
      [
        robotPath('Bender', '/events.mcap?profile=ros1'),
        /^profile must be json or ros2$/,
      ],
      ['/api/export.mcap?profile=JSON', /^profile must be json or ros2$/],
      [
        robotPath('Bender', '/events.mcap?profile=json&profile=ros2'),
        /^profile must be given once$/,
      ],
      [
        robotPath('Bender', '/events.mcap?start_time=yesterday'),
        /^start_time must be a non-negative integer$/,
      ],
      ['/api/export.mcap?robot=%20x', /^robot " x" is no robot name/],
    ] as const) {
      await assertErrorResponse(server, path, 400, 'INVALID_QUERY', message)
    }
  })

  test('answers HEAD with the headers of GET and no body', async () => {
    const response = await fetch(
      `${server.url}${robotPath('Bender', '/events.mcap')}`,
      { method: 'HEAD' },
    )
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('content-type'), 'application/vnd.mcap')
    assert.equal(response.headers.get('content-length'), null)
    assert.equal(await response.text(), '')
  })
})
