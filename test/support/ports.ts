/** Free ports of 127.0.0.1, for the servers a test or the bench starts. */
import { createServer } from 'node:net'

/** A port of 127.0.0.1 free now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}
