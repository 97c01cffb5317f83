/**
 * The live Foxglove endpoint (`/foxglove`, the `foxglove.websocket.v1`
 * protocol), end to end against the started server, with the
 * `FoxgloveClient` of `@foxglove/ws-protocol` as Foxglove itself connects:
 * the channels and their schemas, robots advertised as they appear, every
 * committed event as a message on the channels subscribed to and nothing
 * on the others, the coalesced fleet scene, a client that stops reading,
 * the limits, access control and shutdown.
 *
 * No assertion depends on the machine's speed: a flood goes on until the
 * server reports what the test waits for, and "nothing on that channel" is
 * judged after a later message on the same connection has come (one
 * connection keeps the server's order).
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { PoseInFrame, SceneUpdate } from '@foxglove/schemas/jsonschema.js'
import {
  FoxgloveViewer,
  IngestClient,
  getRobot,
  makeTempDir,
  readOdometer,
  refusedUpgrade,
  removeTempDir,
  scrapeMetrics,
  startServer,
  waitFor,
  writeTokens,
  type ServerProcess,
} from '../support/index.ts'

/** `lines` cut into frames of `size` lines. */
function framesOf(lines: readonly string[], size: number): string[] {
  const frames: string[] = []
  for (let i = 0; i < lines.length; i += size) {
    frames.push(lines.slice(i, i + size).join('\n'))
  }
  return frames
}

/** A JSON schema without its annotations, as the server sends it. */
function withoutAnnotations(schema: unknown): unknown {
  return JSON.parse(
    JSON.stringify(schema, (key, value: unknown) =>
      key === 'description' || key === '$comment' ? undefined : value,
    ),
  )
}

/** The `foxglove.PoseInFrame` the server sends for an event. */
function pose(x: number, y: number, timestamp: number) {
  return {
    timestamp: {
      sec: Math.floor(timestamp / 1000),
      nsec: (timestamp % 1000) * 1_000_000,
    },
    frame_id: 'fleet',
    pose: {
      position: { x, y, z: 0 },
      orientation: { x: 0, y: 0, z: 0, w: 1 },
    },
  }
}

interface SceneEntity {
  id: string
  frame_id: string
  spheres: { pose: { position: { x: number; y: number } } }[]
  texts: { text: string }[]
}

/** The robots of scene updates, and the latest position of each. */
function sceneRobots(
  messages: readonly { data: unknown }[],
): Map<string, { x: number; y: number }> {
  const robots = new Map<string, { x: number; y: number }>()
  for (const message of messages) {
    const update = message.data as { entities: SceneEntity[] }
    for (const entity of update.entities) {
      robots.set(entity.id, entity.spheres[0]!.pose.position)
    }
  }
  return robots
}

describe('foxglove endpoint', () => {
  let server: ServerProcess
  let ingest: IngestClient
  before(async () => {
    server = await startServer(['--live-hz', '4'])
    ingest = await IngestClient.connect(server.wsUrl)
  })
  after(async () => {
    await ingest?.close()
    await server?.dispose()
  })

  test('advertises the scene and both channels of every robot, stored before or appearing later, with the schemas of @foxglove/schemas', async () => {
    await ingest.store(['1,2,1000,before', '1,2,1000,Before'])
    const viewer = await FoxgloveViewer.connect(server.wsUrl)
    assert.equal(viewer.serverInfo?.name, 'fleet-telemetry')
    assert.equal(viewer.ws.protocol, 'foxglove.websocket.v1')
    const scene = await viewer.channel('/fleet/scene')
    assert.equal(scene.encoding, 'json')
    assert.equal(scene.schemaName, 'foxglove.SceneUpdate')
    assert.equal(scene.schemaEncoding, 'jsonschema')
    assert.deepEqual(JSON.parse(scene.schema), withoutAnnotations(SceneUpdate))
    for (const robot of ['before', 'Before']) {
      const poseChannel = await viewer.channel(`/robots/${robot}/pose`)
      assert.equal(poseChannel.schemaName, 'foxglove.PoseInFrame')
      assert.equal(poseChannel.encoding, 'json')
      assert.deepEqual(
        JSON.parse(poseChannel.schema),
        withoutAnnotations(PoseInFrame),
      )
      const odometer = await viewer.channel(`/robots/${robot}/odometer`)
      assert.equal(odometer.schemaName, 'fleet_telemetry.Odometer')
      assert.deepEqual(
        Object.keys(
          (JSON.parse(odometer.schema) as { properties: object }).properties,
        ),
        ['timestamp', 'robot', 'odometer'],
      )
    }
    assert.equal(viewer.channels.size, 5, 'the scene and two per robot')
    await ingest.store(['0,0,5,later robot ☃'])
    await viewer.channel('/robots/later robot ☃/pose')
    await viewer.channel('/robots/later robot ☃/odometer')
    viewer.close()
  })

  test('sends each committed event on the channels subscribed to, as stored, and nothing on the others', async () => {
    await ingest.store(['0,0,1,alpha', '0,0,1,beta'])
    const viewer = await FoxgloveViewer.connect(server.wsUrl)
    const other = await FoxgloveViewer.connect(server.wsUrl)
    await viewer.subscribe('/robots/alpha/pose')
    await viewer.subscribe('/robots/alpha/odometer')
    await other.subscribe('/robots/beta/pose')
    // Subscriptions are taken in order on a connection: once a later
    // event of alpha comes, the subscriptions of both are in place.
    assert.equal(
      await ingest.send(
        [
          '3,4,2,alpha', // stored
          '3,4,2,alpha', // dup
          '1,1,0,alpha', // stale
          '9,9,2,beta', // stored, beta
          '3,8,3,alpha', // stored
          '6,8,1700000000123,alpha', // stored
        ].join('\n'),
      ),
      "OK\nDUP\nERR stale the event is older than the robot's latest event\nOK\nOK\nOK",
    )
    const poses = await viewer.until('/robots/alpha/pose', 3, 'three poses')
    assert.deepEqual(
      poses.map((m) => m.data),
      [pose(3, 4, 2), pose(3, 8, 3), pose(6, 8, 1700000000123)],
    )
    assert.deepEqual(
      poses.map((m) => m.logTime),
      [2_000_000n, 3_000_000n, 1_700_000_000_123_000_000n],
      'log time: the timestamp read as milliseconds, in nanoseconds',
    )
    const odometers = await viewer.until(
      '/robots/alpha/odometer',
      3,
      'three odometers',
    )
    for (const [i, timestamp] of [2, 3, 1700000000123].entries()) {
      const { odometer } = await readOdometer(server, 'alpha', {
        start_time: 0,
        end_time: timestamp,
      })
      assert.deepEqual(odometers[i]!.data, {
        timestamp: pose(0, 0, timestamp).timestamp,
        robot: 'alpha',
        odometer,
      })
    }
    assert.equal(
      (odometers[2]!.data as { odometer: number }).odometer,
      (await getRobot(server, 'alpha')).odometer,
      'the lifetime odometer',
    )
    await other.until('/robots/beta/pose', 1, "beta's pose")
    assert.deepEqual(
      other.received('/robots/beta/pose')[0]!.data,
      pose(9, 9, 2),
    )
    assert.equal(viewer.received('/robots/beta/pose').length, 0)
    assert.equal(other.received('/robots/alpha/pose').length, 0)

    // Unsubscribed: nothing more, judged once a later message came.
    viewer.unsubscribe('/robots/alpha/odometer')
    await viewer.subscribe('/robots/beta/pose')
    await ingest.store(['7,7,1700000000200,alpha'])
    await ingest.store(['1,1,10,beta'])
    await viewer.until('/robots/beta/pose', 1, "beta's pose after alpha's")
    assert.equal(viewer.received('/robots/alpha/pose').length, 4)
    assert.equal(viewer.received('/robots/alpha/odometer').length, 3)
    viewer.close()
    other.close()
  })

  test('sends the fleet scene: every robot first, then the robots that moved, at most --live-hz updates a second', async () => {
    await ingest.store(['5,6,100,scene a', '7,8,100,scene b'])
    const viewer = await FoxgloveViewer.connect(server.wsUrl)
    await viewer.subscribe('/fleet/scene')
    const [first] = await viewer.until('/fleet/scene', 1, 'the first scene')
    const robots = sceneRobots([first!])
    assert.deepEqual(robots.get('scene a'), { x: 5, y: 6, z: 0 })
    assert.deepEqual(robots.get('scene b'), { x: 7, y: 8, z: 0 })
    for (const robot of (await getRobotNames(server)) ?? []) {
      assert.ok(robots.has(robot), `${robot} is in the first scene`)
    }
    const entity = (first!.data as { entities: SceneEntity[] }).entities.find(
      (e) => e.id === 'scene a',
    )!
    assert.equal(entity.frame_id, 'fleet')
    assert.equal(entity.texts[0]!.text, 'scene a', 'labelled')

    // Many commits of one robot: coalesced into few updates.
    const startedAt = performance.now()
    const sent = viewer.received('/fleet/scene').length
    for (let ts = 101; ts <= 400; ts += 10) {
      const lines = []
      for (let t = ts; t < ts + 10; t++) lines.push(`${t},0,${t},scene a`)
      await ingest.store(lines)
    }
    await waitFor(
      () =>
        sceneRobots(viewer.received('/fleet/scene')).get('scene a')?.x === 400,
      'the latest position of scene a',
    )
    const elapsed = (performance.now() - startedAt) / 1000
    const updates = viewer.received('/fleet/scene').slice(sent)
    assert.ok(
      updates.length <= Math.ceil(elapsed * 4) + 1,
      `${updates.length} updates in ${elapsed.toFixed(2)} s at --live-hz 4`,
    )
    for (const update of updates) {
      const ids = (update.data as { entities: SceneEntity[] }).entities.map(
        (e) => e.id,
      )
      assert.deepEqual(ids, ['scene a'], 'only the robot that moved')
    }
    // A second subscriber gets every robot in its first update too.
    const second = await FoxgloveViewer.connect(server.wsUrl)
    await second.subscribe('/fleet/scene')
    const [full] = await second.until('/fleet/scene', 1, 'its first scene')
    const all = sceneRobots([full!])
    assert.deepEqual(all.get('scene a'), { x: 400, y: 0, z: 0 })
    assert.deepEqual(all.get('scene b'), { x: 7, y: 8, z: 0 })
    second.close()
    viewer.close()
  })

  test('refuses an upgrade without the subprotocol, and answers another path 404', async () => {
    const refused = await refusedUpgrade(server.wsUrl, '/foxglove')
    assert.equal(refused.status, 400)
    assert.match(refused.body, /foxglove\.websocket\.v1/)
    assert.equal((await refusedUpgrade(server.wsUrl, '/foxglove2')).status, 404)
  })
})

async function getRobotNames(server: ServerProcess): Promise<string[]> {
  const response = await fetch(`${server.url}/api/robots`)
  return ((await response.json()) as { name: string }[]).map((r) => r.name)
}

describe('foxglove endpoint limits', () => {
  test('drops the messages of a client that stops reading, never slows ingest, tells it, and resumes once it reads', async () => {
    const server = await startServer([
      '--live-buffer-bytes',
      '65536',
      '--keepalive-ms',
      '0',
    ])
    const ingest = await IngestClient.connect(server.wsUrl)
    try {
      await ingest.store(['0,0,0,flood'])
      const viewer = await FoxgloveViewer.connect(server.wsUrl)
      await viewer.subscribe('/robots/flood/pose')
      await ingest.store(['0,0,1,flood'])
      await viewer.until('/robots/flood/pose', 1, 'the first pose')
      viewer.pause()
      // Flood until the server says it dropped messages: the kernel's
      // socket buffers fill first, then the server's queue.
      let ts = 2
      let dropped = 0
      for (let round = 0; dropped === 0; round++) {
        assert.ok(round < 60, 'messages are dropped within 600,000 events')
        const lines = []
        for (let i = 0; i < 10_000; i++, ts++) lines.push(`${i},0,${ts},flood`)
        const replies = await ingest.sendAll(framesOf(lines, 1000))
        assert.ok(
          replies.every((reply) => /^OK(\nOK)*$/.test(reply)),
          'ingest goes on',
        )
        dropped = (await scrapeMetrics(server)).value(
          'telemetry_foxglove_dropped_messages_total',
        )
      }
      viewer.resume()
      await waitFor(
        () =>
          viewer.statuses.some(
            (s) => s.id === 'fleet-telemetry.dropping' && s.level === 1,
          ),
        'the client is told its messages are dropped',
      )
      const last = ts
      await ingest.store([`1,1,${last},flood`])
      await waitFor(
        () =>
          viewer
            .received('/robots/flood/pose')
            .some((m) => m.logTime === BigInt(last) * 1_000_000n),
        'the client gets messages again once it reads',
      )
      assert.ok(viewer.removedStatuses.includes('fleet-telemetry.dropping'))
      const received = viewer.received('/robots/flood/pose').length
      assert.ok(received < last, `${received} of ${last} poses: some dropped`)
      const times = viewer.received('/robots/flood/pose').map((m) => m.logTime)
      assert.deepEqual(
        times,
        [...times].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
        'what is sent keeps its order',
      )
      viewer.close()
    } finally {
      await ingest.close()
      await server.dispose()
    }
  })

  test('disconnects a client that lets advertisements of new robots pile up, and one that misses a pong', async () => {
    const server = await startServer([
      '--live-buffer-bytes',
      '16384',
      '--keepalive-ms',
      '0',
    ])
    const ingest = await IngestClient.connect(server.wsUrl)
    try {
      const viewer = await FoxgloveViewer.connect(server.wsUrl)
      viewer.pause()
      let robot = 0
      for (let round = 0; ; round++) {
        assert.ok(round < 50, 'disconnected within 100,000 new robots')
        const lines = []
        for (let i = 0; i < 2000; i++) lines.push(`0,0,1,new robot ${robot++}`)
        await ingest.sendAll(framesOf(lines, 1000))
        const scrape = await scrapeMetrics(server)
        if (scrape.value('telemetry_foxglove_slow_disconnects_total') > 0) break
      }
      viewer.resume()
      assert.equal(await viewer.ended(), 1006, 'terminated')
      assert.equal(
        (await scrapeMetrics(server)).value('telemetry_foxglove_clients'),
        0,
      )
    } finally {
      await ingest.close()
      await server.dispose()
    }

    const pinging = await startServer([
      '--keepalive-ms',
      '200',
      '--log-level',
      'info',
    ])
    try {
      const viewer = await FoxgloveViewer.connect(pinging.wsUrl)
      viewer.pause()
      await waitFor(
        () =>
          pinging
            .log()
            .some((line) =>
              /no pong within the keepalive/.test(String(line.msg)),
            ),
        'the client is closed for a missed pong',
      )
      // A paused client learns of the close once it reads again.
      viewer.resume()
      assert.equal(await viewer.ended(), 1006, 'closed without a pong')
    } finally {
      await pinging.dispose()
    }
  })

  test('refuses a client over --max-live-streams with 503', async () => {
    const server = await startServer(['--max-live-streams', '1'])
    try {
      const viewer = await FoxgloveViewer.connect(server.wsUrl)
      await assert.rejects(FoxgloveViewer.connect(server.wsUrl), /503/)
      assert.equal(
        (await scrapeMetrics(server)).value(
          'telemetry_foxglove_clients_refused_total',
        ),
        1,
      )
      viewer.close()
      await viewer.ended()
      await waitFor(
        async () =>
          (await scrapeMetrics(server)).value('telemetry_foxglove_clients') ===
          0,
        'the client is gone',
      )
      const again = await FoxgloveViewer.connect(server.wsUrl)
      again.close()
    } finally {
      await server.dispose()
    }
  })

  test('needs a read token (access_token) with access control on, and ends clients with 1001 at shutdown', async () => {
    const dir = makeTempDir('foxglove-access-')
    const tokens = writeTokens(`${dir}/tokens.json`, [
      { name: 'reader', role: 'read' },
      { name: 'robots', role: 'ingest' },
      { name: 'revoked', role: 'read' },
    ])
    const server = await startServer(['--tokens', tokens.file])
    try {
      await assert.rejects(FoxgloveViewer.connect(server.wsUrl), /401/)
      await assert.rejects(
        FoxgloveViewer.connect(server.wsUrl, tokens.robots),
        /403/,
      )
      await assert.rejects(
        FoxgloveViewer.connect(server.wsUrl, 'not-a-token'),
        /401/,
      )
      const ingest = await IngestClient.connect(server.wsUrl, {
        token: tokens.robots,
      })
      await ingest.store(['1,1,1,guarded'])
      const viewer = await FoxgloveViewer.connect(server.wsUrl, tokens.reader)
      await viewer.subscribe('/robots/guarded/pose')
      await ingest.store(['2,2,2,guarded'])
      await viewer.until('/robots/guarded/pose', 1, 'a pose with a read token')
      // A token taken out of the file closes its connections (SIGHUP).
      const doomed = await FoxgloveViewer.connect(server.wsUrl, tokens.revoked)
      writeTokens(
        tokens.file,
        [
          { name: 'reader', role: 'read' },
          { name: 'robots', role: 'ingest' },
        ],
        tokens,
      )
      server.kill('SIGHUP')
      assert.equal(await doomed.ended(), 1008, 'revoked')
      await ingest.store(['3,3,3,guarded'])
      await viewer.until('/robots/guarded/pose', 2, 'the other client stays')
      await ingest.close()
      server.kill('SIGTERM')
      assert.equal(await viewer.ended(), 1001)
    } finally {
      await server.dispose()
      removeTempDir(dir)
    }
  })
})
