#!/usr/bin/env node
/**
 * A small client: sends event lines to the ingest endpoint and prints each
 * reply line. Lines come from the arguments, or from standard input.
 *
 *   npm run send -- '0,0,0,Bender' '1,0,1,Bender'
 *   cat events.txt | npm run send -- --url ws://127.0.0.1:9000/upstream
 *   npm run send -- --token="$TOKEN" '0,0,0,Bender'   # with access control
 *
 * Exits 0 when every line was answered `OK` or `DUP`, 1 otherwise.
 */
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'

const USAGE = `usage: npm run send -- [--url URL] [--token TOKEN] [LINE ...]

Sends each LINE (x,y,timestamp,robot_name), or each line of standard input
when there is none, in a frame of its own, and prints each reply line.
Lines that start with a dash (a negative x) go after \`--\`. Exits 0 when
every line was answered OK or DUP, 1 otherwise, 2 for bad arguments.

options:
  --url URL     the ingest endpoint (default ws://127.0.0.1:8000/upstream)
  --token TOKEN an ingest or admin token, sent as Authorization: Bearer
                (write --token=TOKEN when it starts with a dash)
                (default: TELEMETRY_TOKEN, or none)
  -h, --help    print this text and exit
`

let parsed
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      url: { type: 'string', default: 'ws://127.0.0.1:8000/upstream' },
      token: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
} catch (error) {
  process.stderr.write(`send: ${(error as Error).message}\n\n${USAGE}`)
  process.exit(2)
}
const { values, positionals } = parsed
if (values.help === true) {
  process.stdout.write(USAGE)
  process.exit(0)
}
if (!/^wss?:\/\//.test(values.url) || !URL.canParse(values.url)) {
  process.stderr.write(
    `send: --url must be a ws:// or wss:// URL, not ${JSON.stringify(values.url)}\n\n${USAGE}`,
  )
  process.exit(2)
}

async function readLines(): Promise<string[]> {
  if (positionals.length > 0) return positionals
  const lines: string[] = []
  for await (const line of createInterface({ input: process.stdin })) {
    if (line !== '') lines.push(line)
  }
  return lines
}

const lines = await readLines()
const token = values.token ?? process.env.TELEMETRY_TOKEN
const ws = new WebSocket(values.url, {
  headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
})
// A refused upgrade (401, 403, 429, 503): its status and the server's message.
ws.on('unexpected-response', (_request, response) => {
  let body = ''
  response.setEncoding('utf8')
  response.on('data', (chunk: string) => (body += chunk))
  response.on('end', () => {
    let message = body
    try {
      message = (JSON.parse(body) as { message: string }).message
    } catch {
      // Not the server's JSON: shown as it came.
    }
    process.stderr.write(
      `send: the server refused the connection: ${response.statusCode} ${message}\n`,
    )
    process.exit(1)
  })
})
let answered = 0
let failed = false
ws.on('error', (error) => {
  process.stderr.write(`send: ${error.message}\n`)
  process.exit(1)
})
ws.on('open', () => {
  // One line per frame: one reply frame per line, in order.
  for (const line of lines) ws.send(line)
  if (lines.length === 0) ws.close()
})
ws.on('message', (data) => {
  const reply = data.toString()
  process.stdout.write(`${reply}\n`)
  // An argument may hold several lines: one reply line each.
  for (const line of reply.split('\n')) {
    if (line !== 'OK' && line !== 'DUP') failed = true
  }
  if (++answered === lines.length) ws.close()
})
ws.on('close', () => process.exit(failed ? 1 : 0))
