#!/usr/bin/env node
/**
 * A small client: sends event lines to the ingest endpoint and prints each
 * reply line. Lines come from the arguments, or from standard input.
 *
 *   npm run send -- '0,0,0,Bender' '1,0,1,Bender'
 *   cat events.txt | npm run send -- --url ws://127.0.0.1:9000/upstream
 *
 * Exits 0 when every line was answered `OK` or `DUP`, 1 otherwise.
 */
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string', default: 'ws://127.0.0.1:8000/upstream' },
  },
})

async function readLines(): Promise<string[]> {
  if (positionals.length > 0) return positionals
  const lines: string[] = []
  for await (const line of createInterface({ input: process.stdin })) {
    if (line !== '') lines.push(line)
  }
  return lines
}

const lines = await readLines()
const ws = new WebSocket(values.url)
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
  if (reply !== 'OK' && reply !== 'DUP') failed = true
  if (++answered === lines.length) ws.close()
})
ws.on('close', () => process.exit(failed ? 1 : 0))
