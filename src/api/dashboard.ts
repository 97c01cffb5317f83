/**
 * The dashboard (web/, built into dist/web/ by `npm run build`): static
 * files served at `/` by `@fastify/static`. They hold no data: what they
 * show they read from the API with the user's token, so with access control
 * on they are served without one (docs/security.md).
 */
import { existsSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance } from 'fastify'

/** dist/web/, beside dist/src/. */
const ROOT = fileURLToPath(new URL('../../web/', import.meta.url))

/** The paths the dashboard serves (`/`, `/app.js`, …); none when it was not built. */
export function dashboardPaths(): ReadonlySet<string> {
  if (!existsSync(ROOT)) return new Set()
  return new Set(['/', ...readdirSync(ROOT).map((file) => `/${file}`)])
}

/** Serves the dashboard at `/`. */
export async function registerDashboard(app: FastifyInstance): Promise<void> {
  if (!existsSync(ROOT)) {
    app.log.warn({ root: ROOT }, 'no dashboard: run npm run build')
    return
  }
  await app.register(fastifyStatic, {
    root: ROOT,
    prefix: '/',
    // One route per file, made at start: anything else is the API's 404.
    wildcard: false,
    // Hidden from the OpenAPI document, which is the API's.
    schemaHide: true,
    cacheControl: true,
    maxAge: 0,
  })
}
