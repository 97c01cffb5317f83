/**
 * Which backend a `--store` address names: the one place that chooses.
 * The server opens its store only through {@link openStore}; everything
 * else sees the {@link Store} contract.
 *
 * A backend's modules load only when an address names it: a server on
 * SQLite never loads the PostgreSQL driver, and its own thread never loads
 * better-sqlite3, which runs on the store thread (issue 17: memory at rest).
 */
import type { SqliteStoreOptions } from './sqlite/sqlite-store.ts'
import {
  parseStoreAddress,
  type Store,
  type StoreAddress,
  type SyncMode,
} from './store.ts'

/** Options of {@link openStore} and {@link openBackend}. */
export interface OpenStoreOptions {
  /** When a commit counts as durable; default `normal` (SQLite only). */
  readonly sync?: SyncMode
  /**
   * Only reads, from a replica that a store on the primary migrates
   * (`--read-store`; PostgreSQL only).
   */
  readonly readOnly?: boolean
  /** Told when the SQLite store thread stops without being closed (it crashed). */
  readonly onExit?: (error: Error) => void
}

/**
 * The store the server uses for an address.
 *
 * SQLite (`sqlite:PATH`) runs on its own thread: better-sqlite3 is
 * synchronous, and on the server's thread every commit would stop the
 * sockets from being read and answered while it runs. PostgreSQL
 * (`postgres://…`) runs on the server's thread: its driver is asynchronous.
 *
 * @example
 * const store = await openStore('sqlite:./data/telemetry.db')
 * await store.init()
 */
export async function openStore(
  url: string,
  options: OpenStoreOptions = {},
): Promise<Store> {
  const address = parseStoreAddress(url)
  if (address.backend === 'postgres') {
    const { createPostgresStore } = await import('./postgres/postgres-store.ts')
    return createPostgresStore({ url, readOnly: options.readOnly })
  }
  if (options.readOnly === true) {
    throw new Error('only a PostgreSQL store can be a read-only replica')
  }
  const { createThreadedStore } = await import('./thread/threaded-store.ts')
  return createThreadedStore(sqliteOptions(address, options), {
    onExit: options.onExit,
  })
}

/**
 * The store for an address on the calling thread, for tools that load data
 * in bulk without a server (the benchmark's storage ceiling).
 */
export async function openBackend(
  url: string,
  options: OpenStoreOptions = {},
): Promise<Store> {
  const address = parseStoreAddress(url)
  if (address.backend === 'postgres') {
    const { createPostgresStore } = await import('./postgres/postgres-store.ts')
    return createPostgresStore({ url })
  }
  const { createSqliteStore } = await import('./sqlite/sqlite-store.ts')
  return createSqliteStore(sqliteOptions(address, options))
}

function sqliteOptions(
  address: Extract<StoreAddress, { backend: 'sqlite' }>,
  options: OpenStoreOptions,
): SqliteStoreOptions {
  return {
    path: address.path,
    url: address.url,
    sync: options.sync,
    // Off the sockets' thread a wait for a lock blocks no socket, so a
    // commit may wait out a checkpoint instead of failing.
    busyTimeoutMs: 5000,
  }
}
