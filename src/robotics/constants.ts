/**
 * What the server needs of the robotics modules before it loads them: they
 * load on first use (foxglove-endpoint.ts, api/mcap.ts), and with them the
 * MCAP writer, zstd and the Foxglove protocol, megabytes of memory that a
 * server without a Foxglove client or an MCAP export never needs (issue 17).
 */

/** The path of the Foxglove endpoint. */
export const FOXGLOVE_PATH = '/foxglove'

/**
 * The most robots one MCAP file holds: two channels each, and an MCAP
 * channel id is a uint16 (65,536 ids; `@mcap/core` would wrap past that
 * silently).
 */
export const MAX_EXPORT_ROBOTS = 32_768
