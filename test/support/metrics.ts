/**
 * `GET /metrics`, the Prometheus text exposition, read one series at a
 * time. The server builds the whole text in one go, so the values of one
 * scrape are taken at one moment.
 *
 * @example
 * const metrics = await scrapeMetrics(server)
 * metrics.value('telemetry_connections_open') // 0
 */
import assert from 'node:assert/strict'
import { request, type Origin } from './http-api.ts'

/** The value of one series (`name` or `name{labels}`) of an exposition. */
export function metricValue(text: string, series: string): number {
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`${series} `) && !l.startsWith('#'))
  assert.ok(line !== undefined, `series ${series} is in /metrics`)
  return Number(line.slice(series.length + 1))
}

/** One scrape of `GET /metrics`. */
export interface Scrape {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  /** {@link metricValue} of this scrape. */
  value(series: string): number
}

/** Reads `GET /metrics` once. */
export async function scrapeMetrics(origin: Origin): Promise<Scrape> {
  const response = await request(origin, '/metrics')
  return {
    ...response,
    value: (series) => metricValue(response.text, series),
  }
}
