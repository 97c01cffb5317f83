import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import { DEFAULT_CONFIG } from './config.ts'
import { startServer } from './server.ts'

describe('startServer', () => {
  it(
    'should close even while a client has stopped reading a streamed response, by cutting its connection',
    // Without the grace period, close() would wait for the reader forever.
    { timeout: 60_000 },
    async () => {
      const server = await startServer(
        { ...DEFAULT_CONFIG, port: 0, store: 'sqlite::memory:' },
        { logger: pino({ level: 'silent' }), shutdownGraceMs: 200 },
      )
      // Enough events that the response outgrows the socket buffers.
      for (let i = 0; i < 300_000; i += 10_000) {
        await server.store.append(
          Array.from({ length: 10_000 }, (_, k) => ({
            robot: 'slow',
            timestamp: i + k,
            x: i + k,
            y: 0.5,
          })),
        )
      }
      const { port } = new URL(server.url)
      const socket = connect(Number(port), '127.0.0.1')
      await new Promise((resolve) => socket.once('connect', resolve))
      socket.write('GET /api/robots/slow/events HTTP/1.1\r\nHost: x\r\n\r\n')
      // Read the first bytes, then stop reading.
      const chunks: Buffer[] = [
        await new Promise<Buffer>((resolve) => socket.once('data', resolve)),
      ]
      socket.pause()

      await server.close()
      // The rest of what was sent, once the server has cut the connection.
      socket.on('data', (chunk: Buffer) => chunks.push(chunk))
      socket.on('error', () => {})
      const closed = new Promise((resolve) => socket.once('close', resolve))
      socket.resume()
      await closed
      const text = Buffer.concat(chunks).toString()
      assert.match(text, /^HTTP\/1\.1 200 /)
      assert.match(text, /\r\ntransfer-encoding: chunked\r\n/i)
      // A finished chunked body ends with its last, empty chunk.
      assert.ok(
        !text.endsWith('\r\n0\r\n\r\n'),
        'the response was cut, not finished',
      )
    },
  )
})
