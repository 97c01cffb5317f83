/**
 * The test database for PostgreSQL tests: `TELEMETRY_TEST_POSTGRES` or
 * `postgres://postgres@127.0.0.1:5432/test`. Each test group gets its own
 * schema, dropped afterwards. Under CI=true the tests must run: a server
 * that does not answer fails them; elsewhere they skip with a message.
 */
import postgres from 'postgres'

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
      await sql`DROP SCHEMA IF EXISTS ${sql(name)} CASCADE`
    }
  } finally {
    await sql.end({ timeout: 5 })
  }
}
