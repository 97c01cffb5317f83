/**
 * A robot's process for the journal kill test of client.e2e.test.ts: sends
 * stream `stream` of test/support/client-traffic.ts through the client
 * library with a journal, from the journal's next sequence number up to
 * `total`, logs each outcome as `seq status` to `outcomes`, and prints
 * `given N` as it goes, `done` at the end. Killed and started again, it
 * goes on where the journal says.
 *
 *   node client-journal-child.js '{"url":…,"journal":…,"outcomes":…,"stream":0,"total":3000}'
 */
import { appendFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { connect } from 'fleet-telemetry/client'
import { plannedEvent } from '../support/client-traffic.ts'

const { url, journal, outcomes, stream, total } = JSON.parse(
  process.argv[2]!,
) as {
  url: string
  journal: string
  outcomes: string
  stream: number
  total: number
}

const client = connect(url, {
  journal,
  maxBackoffMs: 300,
  onOutcome: (event, outcome) =>
    appendFileSync(outcomes, `${event.seq} ${outcome.status}\n`),
})
let k = client.sequence
process.stdout.write(`started at ${k} with ${client.pending} pending\n`)
while (k < total) {
  const burst = Math.min(total, k + 20)
  // Not awaited: the outcomes are logged by onOutcome.
  for (; k < burst; k++) void client.sendLine(plannedEvent(stream, k).line)
  process.stdout.write(`given ${k}\n`)
  await sleep(2)
  await client.room()
}
await client.flush()
await client.close()
process.stdout.write('done\n')
