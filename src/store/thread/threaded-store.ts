/**
 * A store run on a worker thread: the calling thread keeps only a proxy.
 *
 * better-sqlite3 is synchronous: on the server's thread every commit (and
 * every wait for a lock) would stop the sockets from being read and
 * answered while it runs. On its own thread a commit overlaps with the next
 * batch being read and parsed, and the store's CPU time is no longer taken
 * from the network's.
 *
 * The proxy speaks a small request/response protocol (`Request`, `Response`
 * below) with `store-thread.ts`. Batches travel as columns in transferred
 * buffers; reads stream pages with a few pages of credit, so a slow HTTP
 * client never makes the thread read ahead without bound. A retention pass
 * is a request per chunk, each sent once the last is answered: it goes
 * behind the batches queued meanwhile, so ingest goes on during a long
 * pass. The contract is the same as in-process: `append` resolves after
 * the commit.
 */
import { Worker } from 'node:worker_threads'
import type { TelemetryEvent } from '../../domain/event.ts'
import {
  OUTCOMES,
  type Outcome,
  type RunningTotal,
} from '../../domain/rules.ts'
import { ERROR_CATALOG, TelemetryError } from '../../errors.ts'
import {
  retentionPass,
  type RetentionChunk,
  type RetentionCursor,
} from '../sqlite/sqlite-removal.ts'
import type { SqliteStoreOptions } from '../sqlite/sqlite-store.ts'
import type {
  CommitListener,
  EventPage,
  ListRobotsOptions,
  ReadEventsOptions,
  RetentionPass,
  Robot,
  Store,
  TimeRange,
  Unwatch,
} from '../store.ts'
import { CommitWatchers } from '../watchers.ts'

/** Pages the thread may send ahead of the reader. */
export const READ_AHEAD_PAGES = 4

/**
 * A batch as columns: one transferred buffer of numbers, and the names
 * end to end in one string (cloned as one copy, where an array of names
 * cost the server's thread a clone a name: 4 % of its time an event).
 */
export interface BatchColumns {
  readonly names: string
  /** x, y, timestamp and name length (UTF-16 units) of each event, in that order. */
  readonly numbers: Float64Array
}

/** A call from the proxy to the store thread. */
export type Request =
  | { readonly op: 'init'; readonly id: number }
  | {
      readonly op: 'append'
      readonly id: number
      readonly batch: BatchColumns
      /** Whether to answer the odometers: only while someone watches. */
      readonly odometers: boolean
    }
  | {
      readonly op: 'listRobots'
      readonly id: number
      readonly options: ListRobotsOptions | undefined
    }
  | { readonly op: 'getRobot'; readonly id: number; readonly name: string }
  | { readonly op: 'countRobots'; readonly id: number }
  | { readonly op: 'robotsInMemory'; readonly id: number }
  | {
      readonly op: 'runningTotal'
      readonly id: number
      readonly name: string
      readonly timestamp: number
    }
  | {
      readonly op: 'odometer'
      readonly id: number
      readonly name: string
      readonly range: TimeRange | undefined
    }
  | {
      readonly op: 'read'
      readonly id: number
      readonly name: string
      readonly options: ReadEventsOptions | undefined
    }
  /** The reader consumed a page: the thread may send one more. */
  | { readonly op: 'more'; readonly id: number }
  /** The reader stopped early. */
  | { readonly op: 'cancel'; readonly id: number }
  | { readonly op: 'deleteRobot'; readonly id: number; readonly name: string }
  /** One chunk of a retention pass (SqliteStore.removeChunk). */
  | {
      readonly op: 'removeChunk'
      readonly id: number
      readonly cutoff: number
      readonly after: RetentionCursor
    }
  | { readonly op: 'close'; readonly id: number }

/** The store thread's answer to an `append`. */
export interface AppendAnswer {
  /** One outcome per event ({@link encodeOutcomes}). */
  readonly codes: Uint8Array
  /** The lifetime odometer at each accepted event, in batch order. */
  readonly odometers: Float64Array
}

/** An error as it crosses the thread boundary. */
export interface WireError {
  readonly name: string
  readonly message: string
  /** A catalog code, or a driver's code such as `SQLITE_BUSY`. */
  readonly code?: string
}

/** The store thread's answer to one request, or one page of a read. */
export type Response =
  | { readonly id: number; readonly value: unknown }
  | { readonly id: number; readonly error: WireError }
  /** A page of read `id`; `{ id, value: undefined }` ends the read. */
  | { readonly id: number; readonly page: EventPage }

/** What the thread is started with: the options of the SQLite store it opens. */
export interface StoreThreadData {
  readonly options: SqliteStoreOptions
}

/** Outcomes as they travel: an index into {@link OUTCOMES} per event. */
export function encodeOutcomes(outcomes: readonly Outcome[]): Uint8Array {
  const codes = new Uint8Array(outcomes.length)
  for (let i = 0; i < outcomes.length; i++) {
    codes[i] = OUTCOMES.indexOf(outcomes[i]!)
  }
  return codes
}

/** The events of a batch, rebuilt from {@link BatchColumns}. */
export function decodeBatch(batch: BatchColumns): TelemetryEvent[] {
  const { names, numbers } = batch
  const events = new Array<TelemetryEvent>(numbers.length / 4)
  let at = 0
  for (let i = 0; i < events.length; i++) {
    const end = at + numbers[4 * i + 3]!
    events[i] = {
      robot: names.slice(at, end),
      x: numbers[4 * i]!,
      y: numbers[4 * i + 1]!,
      timestamp: numbers[4 * i + 2]!,
    }
    at = end
  }
  return events
}

/** An error as {@link WireError}, keeping its catalog or driver code. */
export function toWireError(error: unknown): WireError {
  if (!(error instanceof Error)) {
    return { name: 'Error', message: String(error) }
  }
  const code = (error as { code?: unknown }).code
  return {
    name: error.name,
    message: error.message,
    ...(typeof code === 'string' ? { code } : {}),
  }
}

function fromWireError(wire: WireError): Error {
  if (wire.name === 'TelemetryError' && wire.code! in ERROR_CATALOG) {
    return new TelemetryError(wire.code as keyof typeof ERROR_CATALOG, {
      message: wire.message,
    })
  }
  const error = new Error(wire.message) as Error & { code?: string }
  error.name = wire.name
  if (wire.code !== undefined) error.code = wire.code
  return error
}

/** Options of {@link createThreadedStore} beyond the store's own. */
export interface ThreadedStoreOptions {
  /** Told when the thread stops without being closed (it crashed). */
  readonly onExit?: (error: Error) => void
}

/**
 * An SQLite store (sqlite-store.ts) run on a worker thread.
 *
 * @example
 * const store = createThreadedStore({ path: './data/telemetry.db' })
 * await store.init()
 */
export function createThreadedStore(
  store: SqliteStoreOptions,
  options: ThreadedStoreOptions = {},
): Store {
  return new ThreadedStore(store, options)
}

interface Call {
  resolve(value: unknown): void
  reject(error: Error): void
}

/** The reader's side of one streamed read. */
interface Stream {
  readonly pages: EventPage[]
  done: boolean
  error: Error | undefined
  wake: (() => void) | undefined
}

class ThreadedStore implements Store {
  readonly url: string
  readonly #store: SqliteStoreOptions
  readonly #options: ThreadedStoreOptions
  #worker: Worker | undefined
  #nextId = 1
  readonly #calls = new Map<number, Call>()
  readonly #streams = new Map<number, Stream>()
  /** Set once the thread is gone: every call fails with it. */
  #gone: Error | undefined
  #closing: Promise<void> | undefined
  readonly #watchers = new CommitWatchers()
  /**
   * Appends in flight sent without asking for odometers (nobody watched):
   * computing them cost the store thread 2 % of its events' CPU.
   */
  readonly #unwatched = new Set<Promise<unknown>>()
  /** Watches waiting for {@link #unwatched} to end. */
  #watchesWaiting = 0

  constructor(store: SqliteStoreOptions, options: ThreadedStoreOptions) {
    this.#store = Object.freeze({ ...store })
    this.url = store.url ?? `sqlite:${store.path}`
    this.#options = options
  }

  async init(): Promise<void> {
    const worker = new Worker(new URL('./store-thread.js', import.meta.url), {
      workerData: { options: this.#store } satisfies StoreThreadData,
    })
    this.#worker = worker
    worker.on('message', (response: Response) => this.#receive(response))
    worker.on('error', (error) => this.#fail(error))
    worker.once('exit', (code) => {
      this.#fail(new Error(`the store thread exited with code ${code}`))
    })
    try {
      await this.#call({ op: 'init', id: this.#id() })
    } catch (error) {
      // A store that cannot open is of no use: end its thread, which would
      // otherwise keep the process alive.
      this.#closing = worker.terminate().then(() => undefined)
      await this.#closing
      throw error
    }
  }

  async append(events: readonly TelemetryEvent[]): Promise<Outcome[]> {
    let names = ''
    const numbers = new Float64Array(4 * events.length)
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!
      names += event.robot
      numbers[4 * i] = event.x
      numbers[4 * i + 1] = event.y
      numbers[4 * i + 2] = event.timestamp
      numbers[4 * i + 3] = event.robot.length
    }
    const withOdometers = this.#watchers.active || this.#watchesWaiting > 0
    const call = this.#call(
      {
        op: 'append',
        id: this.#id(),
        batch: { names, numbers },
        odometers: withOdometers,
      },
      [numbers.buffer],
    )
    if (!withOdometers) {
      this.#unwatched.add(call)
      const done = () => void this.#unwatched.delete(call)
      call.then(done, done)
    }
    const { codes, odometers } = (await call) as AppendAnswer
    const outcomes = new Array<Outcome>(codes.length)
    for (let i = 0; i < codes.length; i++) outcomes[i] = OUTCOMES[codes[i]!]!
    this.#watchers.batch(events, (i) => outcomes[i]!, odometers)
    return outcomes
  }

  /**
   * Resolves once every commit in flight was asked for its odometers: the
   * appends sent while nobody watched end first, and those sent from the
   * call on ask. So a commit that ends after it resolves is told.
   */
  async watch(listener: CommitListener): Promise<Unwatch> {
    this.#watchesWaiting++
    try {
      await Promise.allSettled([...this.#unwatched])
    } finally {
      this.#watchesWaiting--
    }
    return this.#watchers.add(listener)
  }

  async listRobots(options?: ListRobotsOptions): Promise<Robot[]> {
    return (await this.#call({
      op: 'listRobots',
      id: this.#id(),
      options,
    })) as Robot[]
  }

  async getRobot(name: string): Promise<Robot | undefined> {
    return (await this.#call({ op: 'getRobot', id: this.#id(), name })) as
      Robot | undefined
  }

  async countRobots(): Promise<number> {
    return (await this.#call({ op: 'countRobots', id: this.#id() })) as number
  }

  async robotsInMemory(): Promise<number> {
    return (await this.#call({
      op: 'robotsInMemory',
      id: this.#id(),
    })) as number
  }

  async runningTotal(
    name: string,
    timestamp: number,
  ): Promise<RunningTotal | undefined> {
    return (await this.#call({
      op: 'runningTotal',
      id: this.#id(),
      name,
      timestamp,
    })) as RunningTotal | undefined
  }

  async odometer(name: string, range?: TimeRange): Promise<number> {
    return (await this.#call({
      op: 'odometer',
      id: this.#id(),
      name,
      range,
    })) as number
  }

  async deleteRobot(name: string): Promise<boolean> {
    return (await this.#call({
      op: 'deleteRobot',
      id: this.#id(),
      name,
    })) as boolean
  }

  removeBefore(cutoff: number): Promise<RetentionPass> {
    // The thread answers requests in order: each chunk is sent after the
    // last one's answer, so the batches sent meanwhile are stored between.
    return retentionPass(
      async (after) =>
        (await this.#call({
          op: 'removeChunk',
          id: this.#id(),
          cutoff,
          after,
        })) as RetentionChunk,
    )
  }

  async *readEvents(
    name: string,
    options?: ReadEventsOptions,
  ): AsyncIterable<EventPage> {
    const id = this.#id()
    const stream: Stream = {
      pages: [],
      done: false,
      error: undefined,
      wake: undefined,
    }
    this.#streams.set(id, stream)
    try {
      this.#post({ op: 'read', id, name, options })
      for (;;) {
        const page = stream.pages.shift()
        if (page !== undefined) {
          yield page
          if (!stream.done) this.#post({ op: 'more', id })
          continue
        }
        if (stream.error !== undefined) throw stream.error
        if (stream.done) return
        await new Promise<void>((resolve) => (stream.wake = resolve))
      }
    } finally {
      this.#streams.delete(id)
      if (!stream.done && this.#gone === undefined) {
        this.#post({ op: 'cancel', id })
      }
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close() {
    const worker = this.#worker
    if (worker === undefined || this.#gone !== undefined) return
    const exited = new Promise((resolve) => worker.once('exit', resolve))
    try {
      await this.#call({ op: 'close', id: this.#id() })
    } finally {
      await exited
    }
  }

  #id() {
    return this.#nextId++
  }

  #post(request: Request, transfer?: ArrayBuffer[]) {
    if (this.#gone !== undefined) throw this.#gone
    if (this.#worker === undefined) throw new Error('the store is not open')
    this.#worker.postMessage(request, transfer)
  }

  #call(request: Request, transfer?: ArrayBuffer[]): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.#post(request, transfer)
      this.#calls.set(request.id, { resolve, reject })
    })
  }

  #receive(response: Response) {
    const stream = this.#streams.get(response.id)
    if (stream !== undefined) {
      if ('page' in response) stream.pages.push(response.page)
      else if ('error' in response) stream.error = fromWireError(response.error)
      else stream.done = true
      stream.wake?.()
      stream.wake = undefined
      return
    }
    const call = this.#calls.get(response.id)
    if (call === undefined) return // a read cancelled meanwhile
    this.#calls.delete(response.id)
    if ('error' in response) call.reject(fromWireError(response.error))
    else if ('value' in response) call.resolve(response.value)
  }

  /** The thread is gone: everything waiting on it fails. */
  #fail(cause: Error) {
    if (this.#gone !== undefined) return
    const closing = this.#closing !== undefined
    this.#gone = new TelemetryError('UNAVAILABLE', {
      message: 'the store thread has stopped',
      cause,
    })
    for (const call of this.#calls.values()) call.reject(this.#gone)
    this.#calls.clear()
    for (const stream of this.#streams.values()) {
      stream.error = this.#gone
      stream.wake?.()
    }
    if (!closing) this.#options.onExit?.(cause)
  }
}
