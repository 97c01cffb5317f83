/**
 * The store thread: opens the SQLite store and answers
 * the proxy's requests (`threaded-store.ts` has the protocol). Requests are
 * handled in arrival order; the store is synchronous, so it finishes
 * each before the next one starts. A retention pass is one request per
 * chunk, each a short transaction, so requests that arrive during a pass
 * are answered between its chunks.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { createSqliteStore } from '../sqlite/sqlite-store.ts'
import type { EventPage } from '../store.ts'
import {
  decodeBatch,
  encodeOutcomes,
  READ_AHEAD_PAGES,
  toWireError,
  type Request,
  type Response,
  type StoreThreadData,
} from './threaded-store.ts'

const port = parentPort!
const { options } = workerData as StoreThreadData
const store = createSqliteStore(options)

/** Streamed reads in progress, by request id. */
const reads = new Map<number, Read>()

interface Read {
  credit: number
  cancelled: boolean
  wake: (() => void) | undefined
}

function send(response: Response, transfer?: ArrayBuffer[]) {
  port.postMessage(response, transfer)
}

async function answer(id: number, work: () => Promise<unknown>) {
  try {
    send({ id, value: await work() })
  } catch (error) {
    send({ id, error: toWireError(error) })
  }
}

async function stream(request: Extract<Request, { op: 'read' }>) {
  const read: Read = {
    credit: READ_AHEAD_PAGES,
    cancelled: false,
    wake: undefined,
  }
  reads.set(request.id, read)
  const pages = store.readEvents(request.name, request.options)
  try {
    for await (const page of pages) {
      if (read.cancelled) return
      send({ id: request.id, page: page as EventPage })
      read.credit--
      while (read.credit <= 0 && !read.cancelled) {
        await new Promise<void>((resolve) => (read.wake = resolve))
      }
      if (read.cancelled) return
    }
    send({ id: request.id, value: undefined })
  } catch (error) {
    send({ id: request.id, error: toWireError(error) })
  } finally {
    reads.delete(request.id)
  }
}

function wakeRead(id: number, change: (read: Read) => void) {
  const read = reads.get(id)
  if (read === undefined) return
  change(read)
  read.wake?.()
  read.wake = undefined
}

port.on('message', (request: Request) => {
  switch (request.op) {
    case 'init':
      return void answer(request.id, () => store.init())
    case 'append':
      return void answer(request.id, async () => {
        const { outcomes, odometers } = store.appendBatch(
          decodeBatch(request.batch),
          request.odometers,
        )
        return { codes: encodeOutcomes(outcomes), odometers }
      })
    case 'listRobots':
      return void answer(request.id, () => store.listRobots(request.options))
    case 'getRobot':
      return void answer(request.id, () => store.getRobot(request.name))
    case 'countRobots':
      return void answer(request.id, () => store.countRobots())
    case 'robotsInMemory':
      return void answer(request.id, async () => store.robotsInMemory!())
    case 'runningTotal':
      return void answer(request.id, () =>
        store.runningTotal(request.name, request.timestamp),
      )
    case 'odometer':
      return void answer(request.id, () =>
        store.odometer(request.name, request.range),
      )
    case 'deleteRobot':
      return void answer(request.id, () => store.deleteRobot(request.name))
    case 'removeChunk':
      return void answer(request.id, async () =>
        store.removeChunk(request.cutoff, request.after),
      )
    case 'read':
      return void stream(request)
    case 'more':
      return wakeRead(request.id, (read) => read.credit++)
    case 'cancel':
      return wakeRead(request.id, (read) => (read.cancelled = true))
    case 'close':
      for (const id of reads.keys()) {
        wakeRead(id, (read) => (read.cancelled = true))
      }
      // Once answered, the port closes and the thread ends by itself.
      return void answer(request.id, () => store.close()).then(() =>
        port.close(),
      )
  }
})
