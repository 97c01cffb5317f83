/**
 * postgres.js as this server uses it, where it needed help: a message
 * written on a connection that has just closed fails the query that sent
 * it with a catchable error instead of ending the process
 * (scripts/patch-postgres.mjs, run by `npm install`).
 */
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { describe, it } from 'node:test'
import postgres from 'postgres'
import {
  postgresSkip,
  TEST_POSTGRES_URL,
} from '../../../test/support/postgres.ts'

const skip = await postgresSkip()

describe('postgres.js', { skip }, () => {
  it('should fail a query on a connection that closed, and keep the process', async () => {
    const { hostname, port } = new URL(TEST_POSTGRES_URL)
    const sockets: Socket[] = []
    // The driver's sockets, to see when one has closed: its `socket`
    // option (not in its types) makes them.
    const socket = () => {
      const made = connect(Number(port), hostname)
      sockets.push(made)
      return made
    }
    const sql = postgres(TEST_POSTGRES_URL, {
      max: 1,
      onnotice: () => {},
      ...({ socket } as object),
    })
    const admin = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => {} })
    try {
      // A reserved connection is not replaced when it closes: its next
      // query is written once the socket is gone.
      const reserved = await sql.reserve()
      const [row] = await reserved<
        { pid: number }[]
      >`SELECT pg_backend_pid() AS pid`
      const closed = new Promise((resolve) =>
        sockets[0]!.once('close', resolve),
      )
      await admin`SELECT pg_terminate_backend(${row!.pid})`
      await closed
      // The driver's own 'close' handler has run too.
      await new Promise((resolve) => setImmediate(resolve))
      // Unguarded, the write throws a TypeError from a setImmediate, which
      // ends the process (porsager/postgres#1154).
      await assert.rejects(reserved`SELECT 1`, { code: 'CONNECTION_CLOSED' })
    } finally {
      await sql.end({ timeout: 1 })
      await admin.end({ timeout: 5 })
    }
  })
})
