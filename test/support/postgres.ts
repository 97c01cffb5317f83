/**
 * The test database for PostgreSQL tests: `TELEMETRY_TEST_POSTGRES` or
 * `postgres://postgres@127.0.0.1:5432/test`. Each test group gets its own
 * schema, dropped afterwards. Under CI=true the tests must run: a server
 * that does not answer fails them; elsewhere they skip with a message.
 */
import postgres from 'postgres'
import { waitFor } from './wait.ts'

export const TEST_POSTGRES_URL =
  process.env.TELEMETRY_TEST_POSTGRES ??
  'postgres://postgres@127.0.0.1:5432/test'

/** `false` when PostgreSQL answers (or under CI), else why the tests skip. */
export async function postgresSkip(): Promise<string | false> {
  if (process.env.CI === 'true') return false
  const sql = postgres(TEST_POSTGRES_URL, {
    max: 1,
    connect_timeout: 2,
    onnotice: () => {},
  })
  try {
    await sql`SELECT 1`
    return false
  } catch (error) {
    return `no PostgreSQL at ${TEST_POSTGRES_URL} (${String(error)}); set TELEMETRY_TEST_POSTGRES`
  } finally {
    await sql.end({ timeout: 1 })
  }
}

let schemas = 0

/** A fresh schema name for one test group, and the store URL that uses it. */
export function freshSchema(): { schema: string; url: string } {
  const schema = `telemetry_test_${process.pid}_${Date.now().toString(36)}_${++schemas}`
  const url = new URL(TEST_POSTGRES_URL)
  url.searchParams.set('schema', schema)
  return { schema, url: url.toString() }
}

/** Drops the schemas made by {@link freshSchema}. */
export async function dropSchemas(names: readonly string[]): Promise<void> {
  if (names.length === 0) return
  const sql = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => {} })
  try {
    for (const name of names) {
      // Partitions first, one a transaction: a schema's thousands of
      // partitions dropped at once would need more locks than the
      // server's lock table holds.
      const parts = await sql<{ name: string }[]>`
        SELECT c.relname AS name FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ${name} AND c.relispartition AND c.relkind = 'r'`
      for (const part of parts) {
        await sql`DROP TABLE IF EXISTS ${sql(name)}.${sql(part.name)}`
      }
      await sql`DROP SCHEMA IF EXISTS ${sql(name)} CASCADE`
    }
  } finally {
    await sql.end({ timeout: 5 })
  }
}

/** A robot's row inserted by the test and not committed (see {@link holdNewRobot}). */
export interface HeldRobot {
  /** Resolves once another session (a server's commit) waits for the row. */
  waited(what: string): Promise<void>
  /** Rolls the insert back, which lets the waiting commit go on. */
  release(): Promise<void>
}

/**
 * Inserts robot `name` into `schema` in a transaction of the test's own
 * and keeps it open: a server's batch with that robot's first event then
 * waits for the row's lock, deterministically, until {@link HeldRobot.release}.
 */
export async function holdNewRobot(
  schema: string,
  name: string,
): Promise<HeldRobot> {
  const sql = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => {} })
  const held = await sql.reserve()
  await held`BEGIN`
  await held`
    INSERT INTO ${held(schema)}.robots (name, first_ts, last_ts, last_x,
      last_y, odometer, odometer_carry, event_count, created_ms, updated_ms)
    VALUES (${name}, 0, 0, 0, 0, 0, 0, 0, 0, 0)`
  let released: Promise<void> | undefined
  return {
    waited: (what) =>
      waitFor(async () => {
        const [row] = await held<{ n: number }[]>`
          SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))`
        return row!.n > 0
      }, what).then(() => {}),
    release: () =>
      (released ??= (async () => {
        try {
          await held`ROLLBACK`
          held.release()
        } finally {
          await sql.end({ timeout: 5 })
        }
      })()),
  }
}
