/**
 * Which backend a `--store` address names. The server opens stores only
 * through {@link openStore}; everything else sees the {@link Store} contract.
 */
import type { SyncMode } from '../config.ts'
import { createPostgresStore } from './postgres/postgres-store.ts'
import { createSqliteStore } from './sqlite/sqlite-store.ts'
import type { Store } from './store.ts'
import {
  createThreadedStore,
  type ThreadedStoreOptions,
} from './thread/threaded-store.ts'

/**
 * The store the server uses for an address.
 *
 * SQLite (`sqlite:PATH`) runs on its own thread: better-sqlite3 is
 * synchronous, and on the server's thread every commit would stop the
 * sockets from being read and answered while it runs. PostgreSQL
 * (`postgres://…`) runs on the server's thread: its driver is asynchronous.
 *
 * @example
 * const store = openStore('sqlite:./data/telemetry.db')
 * await store.init()
 */
export function openStore(
  url: string,
  options: ThreadedStoreOptions & BackendOptions = {},
): Store {
  if (url.startsWith('sqlite:')) return createThreadedStore(url, options)
  return openBackend(url, options)
}

/** Options of {@link openBackend}. */
export interface BackendOptions {
  /** When a commit counts as durable; default `normal`. */
  readonly sync?: SyncMode
}

/**
 * The store for an address, on the calling thread: what the store thread
 * runs, and what tools that load data in bulk use.
 */
export function openBackend(url: string, options: BackendOptions = {}): Store {
  if (url.startsWith('sqlite:')) {
    return createSqliteStore({
      path: url.slice('sqlite:'.length),
      url,
      sync: options.sync,
      // On its own thread a wait for a lock blocks no socket, so a commit
      // may wait out a checkpoint instead of failing.
      busyTimeoutMs: 5000,
    })
  }
  if (isPostgresUrl(url)) return createPostgresStore({ url })
  throw new Error(`unsupported store ${url}`)
}

/** Whether a store address names a PostgreSQL database. */
export function isPostgresUrl(url: string): boolean {
  return url.startsWith('postgres://') || url.startsWith('postgresql://')
}
