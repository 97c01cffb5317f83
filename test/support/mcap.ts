/**
 * Reading MCAP files (the export of `GET /api/robots/{robot}/events.mcap`
 * and `GET /api/export.mcap`) with `@mcap/core`, as Foxglove reads them:
 * through the index, chunks decompressed with `@foxglove/wasm-zstd`. Also
 * a whole-file pass in file order that checks every CRC.
 *
 * @example
 * const file = await downloadMcap(server, robotPath('Bender', '/events.mcap'))
 * const mcap = await openMcap(file.bytes)
 * const messages = await readMcapMessages(mcap)
 */
import assert from 'node:assert/strict'
import {
  McapIndexedReader,
  McapStreamReader,
  type DecompressHandlers,
  type IReadable,
  type TypedMcapRecord,
  type TypedMcapRecords,
} from '@mcap/core'
import zstd from '@foxglove/wasm-zstd'
import type { Origin } from './http-api.ts'

/** One message of a file, with its channel's topic. */
export interface McapMessage {
  readonly topic: string
  readonly channelId: number
  readonly sequence: number
  readonly logTime: bigint
  readonly publishTime: bigint
  readonly data: Uint8Array
}

/** The zstd handler of the readers (the module is loaded by then). */
const DECOMPRESS: DecompressHandlers = {
  zstd: (data, size) => zstd.decompress(data, Number(size)),
}

/** A file in memory, read as `@mcap/core` reads a file: by ranges. */
function readable(bytes: Uint8Array): IReadable {
  return {
    size: async () => BigInt(bytes.byteLength),
    read: async (offset, length) =>
      bytes.subarray(Number(offset), Number(offset + length)),
  }
}

/**
 * Opens a file through its summary and index, as Foxglove does: fails if
 * the footer, the summary or its CRC are wrong.
 */
export async function openMcap(bytes: Uint8Array): Promise<McapIndexedReader> {
  await zstd.isLoaded
  return McapIndexedReader.Initialize({
    readable: readable(bytes),
    decompressHandlers: DECOMPRESS,
  })
}

/** Every message of an opened file, by log time (the reader merges chunks). */
export async function readMcapMessages(
  reader: McapIndexedReader,
  options: { startTime?: bigint; endTime?: bigint; topics?: string[] } = {},
): Promise<McapMessage[]> {
  const messages: McapMessage[] = []
  for await (const message of reader.readMessages(options)) {
    messages.push({
      topic: reader.channelsById.get(message.channelId)!.topic,
      channelId: message.channelId,
      sequence: message.sequence,
      logTime: message.logTime,
      publishTime: message.publishTime,
      data: message.data,
    })
  }
  return messages
}

/**
 * Every record of a file in file order, chunks included and decompressed
 * (their records follow each one), checking the CRC of every chunk, the
 * data section and the summary.
 */
export async function mcapRecords(
  bytes: Uint8Array,
): Promise<TypedMcapRecord[]> {
  await zstd.isLoaded
  const reader = new McapStreamReader({
    includeChunks: true,
    decompressHandlers: DECOMPRESS,
    validateCrcs: true,
  })
  reader.append(bytes)
  const records: TypedMcapRecord[] = []
  for (let record; (record = reader.nextRecord());) records.push(record)
  assert.ok(reader.done(), 'the file ends with its footer and magic')
  return records
}

/** The records of one type. */
export function recordsOf<K extends keyof TypedMcapRecords>(
  records: readonly TypedMcapRecord[],
  type: K,
): TypedMcapRecords[K][] {
  return records.filter((r) => r.type === type) as TypedMcapRecords[K][]
}

/** A downloaded file. */
export interface McapDownload {
  readonly status: number
  readonly headers: Headers
  readonly bytes: Uint8Array
}

/** `GET` of a path, its body as bytes (the origin's token sent, if any). */
export async function downloadMcap(
  origin: Origin,
  path: string,
): Promise<McapDownload> {
  const headers: Record<string, string> = {}
  if (origin.token !== undefined) {
    headers.authorization = `Bearer ${origin.token}`
  }
  const response = await fetch(origin.url + path, { headers })
  return {
    status: response.status,
    headers: response.headers,
    bytes: new Uint8Array(await response.arrayBuffer()),
  }
}

const decoder = new TextDecoder()

/** A JSON message's content. */
export function jsonMessage(message: { data: Uint8Array }): unknown {
  return JSON.parse(decoder.decode(message.data))
}
