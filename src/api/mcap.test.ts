import assert from 'node:assert/strict'
import { request, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import { waitFor } from '../../test/support/index.ts'
import { errorBody } from '../errors.ts'
import { MAX_EXPORT_ROBOTS } from '../robotics/mcap.ts'
import type {
  EventPage,
  ReadEventsOptions,
  Robot,
  Store,
} from '../store/store.ts'
import { registerMcap } from './mcap.ts'
import { registerSchemas } from './schemas.ts'

/** Events of the one robot: far more than any socket buffer holds. */
const EVENTS = 10_000_000
const T0 = 1_700_000_000_000

/**
 * A store of one robot `r` that counts the pages read and sees a read end;
 * it says it holds `robots` robots (`r` the only one listed).
 */
function countingStore() {
  const reads = { pages: 0, ended: 0, robots: 1 }
  const store = {
    async countRobots() {
      return reads.robots
    },
    async listRobots() {
      return [{ name: 'r' } as Robot]
    },
    async *readEvents(
      _name: string,
      options: ReadEventsOptions = {},
    ): AsyncIterable<EventPage> {
      const size = options.pageSize ?? 1000
      // Timestamps T0, T0 + 1, …: an end before T0 leaves none.
      const events = (options.end ?? Infinity) < T0 ? 0 : EVENTS
      try {
        for (let first = 0; first < events; first += size) {
          reads.pages++
          const ts = Array.from({ length: size }, (_, i) => T0 + first + i)
          yield { ts, x: ts.map((t) => t % 977), y: ts.map((t) => t % 13) }
        }
      } finally {
        reads.ended++
      }
    },
    async runningTotal() {
      return { total: 0, carry: 0 }
    },
  } as unknown as Store
  return { store, reads }
}

/** The pages read, once they stopped growing for a while. */
function settled(reads: { pages: number }): Promise<number> {
  let last = -1
  return waitFor(
    () => {
      const now = reads.pages
      const stable = now === last && now > 0
      last = now
      return stable ? now : undefined
    },
    'the export waits',
    { intervalMs: 250 },
  )
}

describe('the MCAP routes', () => {
  let app: FastifyInstance
  let url: string
  const { store, reads } = countingStore()

  before(async () => {
    app = Fastify()
    await registerSchemas(app)
    // As routes.ts renders errors.
    app.setErrorHandler((error, _request, reply) => {
      const body = errorBody(error)
      return reply.code(body.statusCode).send(body)
    })
    await registerMcap(app, { reads: store })
    await app.listen({ host: '127.0.0.1', port: 0 })
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  })
  after(() => app.close())

  it('should read no further than the socket takes, and stop reading once the client leaves', async () => {
    const req = request(`${url}/api/robots/r/events.mcap`)
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      req.on('response', resolve).on('error', reject).end()
    })
    assert.equal(response.statusCode, 200)
    response.pause()
    // The client reads nothing: the socket fills, then the export waits.
    const pages = await settled(reads)
    assert.ok(
      pages < EVENTS / 1000 / 10,
      `${pages} pages of 1,000 events read while the client reads nothing`,
    )
    assert.equal(reads.ended, 0)
    req.destroy()
    await waitFor(() => reads.ended === 1, 'the read ends')
    assert.ok(reads.pages <= pages + 2, `${reads.pages - pages} more pages`)
  })
  it(`should refuse every robot of a store of more than ${MAX_EXPORT_ROBOTS}, before a byte of the file`, async () => {
    reads.robots = MAX_EXPORT_ROBOTS + 1
    try {
      const refused = await fetch(`${url}/api/export.mcap?end_time=0`)
      assert.equal(refused.status, 400)
      assert.deepStrictEqual(await refused.json(), {
        statusCode: 400,
        code: 'INVALID_QUERY',
        error: 'Bad Request',
        message: `the store holds ${MAX_EXPORT_ROBOTS + 1} robots, more than one MCAP file holds (${MAX_EXPORT_ROBOTS}): name the robots with robot=`,
      })
      // Robots named: any store.
      const named = await fetch(`${url}/api/export.mcap?robot=r&end_time=0`)
      assert.equal(named.status, 200)
      assert.equal(named.headers.get('content-type'), 'application/vnd.mcap')
      await named.arrayBuffer()
    } finally {
      reads.robots = 1
    }
  })
})
