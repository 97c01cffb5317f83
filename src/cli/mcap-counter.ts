/**
 * Counts the messages of an MCAP file as its bytes stream by, without
 * decompressing a chunk: `fleet-telemetry export --format mcap` shows its
 * progress and sums up with it.
 */

/** The opcode of a Message Index record (mcap.dev/spec). */
const MESSAGE_INDEX = 0x07
/** Magic bytes at the start of a file. */
const MAGIC_BYTES = 8
/** Opcode (1 byte) and content length (uint64). */
const RECORD_HEADER = 9
/** A Message Index's channel id (uint16) and its records' byte length (uint32). */
const INDEX_HEAD = 6
/** One entry of a Message Index: log time and offset, two uint64. */
const INDEX_ENTRY = 16

/**
 * Walks the top-level records of an MCAP file fed in pieces of any size,
 * and counts the entries of its Message Index records: one per message of
 * the chunk before them (the export writes them for every chunk). Only the
 * few bytes of each record's head are kept.
 *
 * @example
 * const counter = new McapMessageCounter()
 * for await (const piece of response.body) counter.push(piece)
 * counter.messages // 2 a event: a pose and an odometer
 */
export class McapMessageCounter {
  #messages = 0
  /** Bytes still to pass over: the magic, then the rest of each record. */
  #skip = MAGIC_BYTES
  /** The head of the record being read. */
  readonly #head = new Uint8Array(RECORD_HEADER + INDEX_HEAD)
  #headLength = 0
  /** How much of its head the record needs: 9, or 15 for a Message Index. */
  #headNeeded = RECORD_HEADER

  /** Messages counted so far. */
  get messages(): number {
    return this.#messages
  }

  push(piece: Uint8Array): void {
    let at = 0
    while (at < piece.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, piece.length - at)
        this.#skip -= n
        at += n
        continue
      }
      const n = Math.min(this.#headNeeded - this.#headLength, piece.length - at)
      this.#head.set(piece.subarray(at, at + n), this.#headLength)
      this.#headLength += n
      at += n
      if (this.#headLength === this.#headNeeded) this.#record()
    }
  }

  /** A record's head is complete: count, then pass over the rest. */
  #record(): void {
    const view = new DataView(this.#head.buffer)
    const length = Number(view.getBigUint64(1, true))
    if (this.#head[0] === MESSAGE_INDEX && this.#headNeeded === RECORD_HEADER) {
      if (length >= INDEX_HEAD) {
        this.#headNeeded = RECORD_HEADER + INDEX_HEAD
        return
      }
    } else if (this.#headNeeded > RECORD_HEADER) {
      this.#messages += view.getUint32(RECORD_HEADER + 2, true) / INDEX_ENTRY
    }
    this.#skip = length - (this.#headNeeded - RECORD_HEADER)
    this.#headLength = 0
    this.#headNeeded = RECORD_HEADER
  }
}
