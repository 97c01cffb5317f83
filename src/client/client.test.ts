/**
 * What the real server never does, played by a scripted WebSocket peer:
 * a reply with the wrong number of lines, and a connection cut after a
 * frame was received but before its reply. (Everything else is tested
 * against the real server: test/e2e/client.e2e.test.ts.)
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { WebSocketServer, type WebSocket } from 'ws'
import { connect, type Outcome } from './node.ts'

const dir = mkdtempSync(join(tmpdir(), 'client-'))
after(() => rmSync(dir, { recursive: true, force: true }))

/** A peer on a free port; `reply(connection, frame, lines)` answers each frame. */
async function peer(
  reply: (
    connection: number,
    frame: number,
    lines: string[],
  ) => string | null | undefined,
) {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  await new Promise((resolve) => server.once('listening', resolve))
  let connections = 0
  server.on('connection', (ws: WebSocket) => {
    const connection = ++connections
    let frames = 0
    ws.on('message', (data) => {
      const answer = reply(connection, ++frames, String(data).split('\n'))
      // null: cut the connection; undefined: never answer.
      if (answer === null) ws.terminate()
      else if (answer !== undefined) ws.send(answer)
    })
  })
  const { port } = server.address() as { port: number }
  return {
    url: `ws://127.0.0.1:${port}/upstream`,
    close: () => new Promise((resolve) => server.close(resolve)),
  }
}

describe('the client against a faulty peer', () => {
  it('should read nothing more from a connection once a reply has the wrong number of lines', async (t) => {
    // First connection: frame 1 gets one reply line for two, frame 2 two
    // OKs (which must not be taken for frame 1's). Then: stale for all.
    const server = await peer((connection, frame, lines) => {
      if (connection === 1) {
        return frame === 1
          ? 'ERR unavailable x'
          : lines.map(() => 'OK').join('\n')
      }
      return lines.map(() => 'ERR stale s').join('\n')
    })
    t.after(() => server.close())
    const client = connect(server.url, { maxLinesPerFrame: 2, backoffMs: 10 })
    t.after(() => client.close({ timeoutMs: 0 }))
    const outcomes = await Promise.all(
      [0, 1, 2, 3].map((i) =>
        client.send({ robot: 'R', x: i, y: 0, timestamp: i }),
      ),
    )
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ['stale', 'stale', 'stale', 'stale'],
    )
    assert.equal(client.stats().connections, 2)
    await client.close()
  })

  it('should never drop an event that was sent, which may be stored', async (t) => {
    // The peer reads the frame, then cuts the connection: no reply. While
    // the client waits to reconnect, its buffer is full of the two sent
    // events; a third makes no room by dropping either.
    const server = await peer(() => null)
    t.after(() => server.close())
    const client = connect(server.url, {
      robot: 'R',
      maxBuffered: 2,
      backoffMs: 60_000,
      maxBackoffMs: 60_000,
    })
    t.after(() => client.close({ timeoutMs: 0 }))
    const seen: Promise<Outcome>[] = [
      client.send(0, 0, 1),
      client.send(0, 0, 2),
    ]
    // Until both were sent, and came back to the buffer with the connection.
    while (client.stats().resent < 2) {
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    assert.equal(client.pending, 2)
    seen.push(client.send(0, 0, 3))
    await client.close({ timeoutMs: 0 })
    assert.deepEqual(
      (await Promise.all(seen)).map((o) => o.status),
      ['unsent', 'unsent', 'dropped'],
    )
  })

  it('should let go of the journal when an option is refused', async () => {
    const journal = join(dir, 'refused.journal')
    assert.throws(
      () => connect('ws://127.0.0.1:1/upstream', { journal, maxBuffered: 0 }),
      /maxBuffered/,
    )
    const client = connect('ws://127.0.0.1:1/upstream', { journal })
    await client.close({ timeoutMs: 0 })
  })
  it('should give up a connection whose reply does not come, and send again on a new one', async (t) => {
    // The first connection reads and never answers; the second answers.
    const server = await peer((connection, _frame, lines) =>
      connection === 1 ? undefined : lines.map(() => 'OK').join('\n'),
    )
    t.after(() => server.close())
    const statuses: string[] = []
    const client = connect(server.url, {
      replyTimeoutMs: 200,
      backoffMs: 10,
      onStatus: (s) => s.error !== undefined && statuses.push(s.error),
    })
    t.after(() => client.close({ timeoutMs: 0 }))
    const outcome = await client.send({ robot: 'R', x: 1, y: 2, timestamp: 3 })
    assert.equal(outcome.status, 'stored')
    assert.ok(statuses.includes('no reply for 200 ms'), statuses.join(', '))
    await client.close()
  })

  it('should let a waiting producer go only when there is room', async () => {
    const client = connect('ws://127.0.0.1:1/upstream', {
      maxBuffered: 2,
      backoffMs: 60_000,
    })
    let roomed = 0
    const producer = (async () => {
      for (let i = 0; i < 3; i++) {
        await client.room()
        roomed++
        if (i < 2) void client.send({ robot: 'R', x: i, y: 0, timestamp: i })
      }
    })()
    await new Promise((resolve) => setTimeout(resolve, 50))
    // Two sent, the third waits: nothing was dropped for it.
    assert.equal(roomed, 2)
    assert.equal(client.stats().dropped, 0)
    await client.close({ timeoutMs: 0 })
    await producer
    assert.equal(roomed, 3)
  })

  it('should refuse a lone surrogate, which UTF-8 cannot carry', async () => {
    const client = connect('ws://127.0.0.1:1/upstream')
    const outcome = await client.sendLine('0,0,1,Lone\uD800')
    assert.equal(outcome.status, 'malformed')
    await client.close({ timeoutMs: 0 })
  })
})
