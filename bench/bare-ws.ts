/**
 * The network and framing ceiling: a bare `ws` server, in its own process,
 * that speaks the ingest protocol at `/upstream` but stores nothing. It
 * splits each text frame into lines, parses each line as an event
 * (x, y, timestamp, robot name) and answers `OK` per line, so the load
 * generator can run against it exactly as against the real server.
 *
 * `node dist/bench/bare-ws.js [--cork] [--port 0]` prints
 * `listening on http://127.0.0.1:PORT (bare-ws …)` and exits on SIGTERM.
 *
 * Without `--cork` every reply is its own `ws.send` (one socket write each).
 * With `--cork` the replies of one socket are gathered: the socket is corked
 * at the first reply of a turn of the event loop and uncorked in
 * `setImmediate`, so all replies to what one read brought go out in one
 * write, as the real server does after a group commit.
 */
import { createServer } from 'node:http'
import type { Duplex } from 'node:stream'
import { parseArgs } from 'node:util'
import { WebSocketServer, type RawData } from 'ws'

const { values } = parseArgs({
  options: {
    cork: { type: 'boolean', default: false },
    port: { type: 'string', default: '0' },
  },
})
const cork = values.cork === true

/**
 * A line's fields, checked about as much as the real parser does, so the
 * ceiling pays for parsing too: four fields, two finite numbers, an integer
 * timestamp, a non-empty name.
 */
function parseLine(line: string): boolean {
  const a = line.indexOf(',')
  const b = line.indexOf(',', a + 1)
  const c = line.indexOf(',', b + 1)
  if (a < 0 || b < 0 || c < 0 || c + 1 >= line.length) return false
  const x = Number(line.slice(0, a))
  const y = Number(line.slice(a + 1, b))
  const ts = Number(line.slice(b + 1, c))
  const name = line.slice(c + 1)
  return (
    Number.isFinite(x) &&
    Number.isFinite(y) &&
    Number.isSafeInteger(ts) &&
    ts >= 0 &&
    name.length > 0
  )
}

function reply(data: RawData, isBinary: boolean): string {
  if (isBinary) return 'ERR malformed binary frames are not accepted'
  const lines = (data as Buffer).toString('utf8').split('\n')
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop()
  let out = ''
  for (let i = 0; i < lines.length; i++) {
    const answer = parseLine(lines[i]!) ? 'OK' : 'ERR malformed'
    out = i === 0 ? answer : `${out}\n${answer}`
  }
  return out
}

const server = createServer((_request, response) => {
  response.writeHead(404).end()
})
const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: false,
  skipUTF8Validation: true,
})
server.on('upgrade', (request, socket: Duplex, head) => {
  if ((request.url ?? '').split('?', 1)[0] !== '/upstream') {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n')
    return
  }
  wss.handleUpgrade(request, socket, head, (ws) => {
    let corked = false
    const uncork = () => {
      corked = false
      socket.uncork()
    }
    ws.on('message', (data, isBinary) => {
      if (cork && !corked) {
        corked = true
        socket.cork()
        setImmediate(uncork)
      }
      ws.send(reply(data, isBinary))
    })
    ws.on('error', () => ws.terminate())
  })
})

server.listen(Number(values.port), '127.0.0.1', () => {
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : 0
  process.stdout.write(
    `listening on http://127.0.0.1:${port} (bare-ws, ${cork ? 'corked replies' : 'one write per reply'})\n`,
  )
})

function stop() {
  for (const client of wss.clients) client.terminate()
  server.close(() => process.exit(0))
  setTimeout(() => process.exit(0), 2000).unref()
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
