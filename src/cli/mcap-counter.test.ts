import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { McapWriter } from '@mcap/core'
import { McapMessageCounter } from './mcap-counter.ts'

/** A chunked, indexed file of `n` messages on two channels. */
async function file(n: number, chunkSize: number): Promise<Uint8Array> {
  const parts: Uint8Array[] = []
  let position = 0n
  const writer = new McapWriter({
    chunkSize,
    writable: {
      write: async (buffer) => {
        parts.push(buffer.slice())
        position += BigInt(buffer.byteLength)
      },
      position: () => position,
    },
  })
  await writer.start({ profile: '', library: 'test' })
  const schemaId = await writer.registerSchema({
    name: 's',
    encoding: 'jsonschema',
    data: new TextEncoder().encode('{}'),
  })
  const channels = [
    await writer.registerChannel({
      topic: '/a',
      schemaId,
      messageEncoding: 'json',
      metadata: new Map(),
    }),
    await writer.registerChannel({
      topic: '/b',
      schemaId,
      messageEncoding: 'json',
      metadata: new Map(),
    }),
  ]
  for (let i = 0; i < n; i++) {
    await writer.addMessage({
      channelId: channels[i % 2]!,
      sequence: i,
      logTime: BigInt(i),
      publishTime: BigInt(i),
      data: new TextEncoder().encode(`{"i":${i}}`),
    })
  }
  await writer.end()
  return new Uint8Array(Buffer.concat(parts))
}

describe('McapMessageCounter', () => {
  it('should count the messages of a file fed in pieces of any size', async () => {
    for (const [n, chunkSize] of [
      [0, 1024],
      [1, 1024],
      [1001, 1024],
      [1001, 1024 * 1024],
    ] as const) {
      const bytes = await file(n, chunkSize)
      for (const size of [1, 7, 15, 4096, bytes.length]) {
        const counter = new McapMessageCounter()
        for (let at = 0; at < bytes.length; at += size) {
          counter.push(bytes.subarray(at, at + size))
        }
        assert.equal(counter.messages, n, `${n} messages in pieces of ${size}`)
      }
    }
  })
})
