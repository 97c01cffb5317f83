/**
 * The client's journal in Node: an append-only file where each event waits
 * until it has a final outcome, so that a client that starts again after
 * its process died sends what the dead one had not finished.
 *
 * The file is text, one record a line:
 *
 *     fleet-telemetry journal 1      the first line
 *     n 1200                         the next sequence number (after a compaction)
 *     e 1200 1.5,2,1700000000000,R1  an event given to send()
 *     d 1200-1203,1205               events with a final outcome
 *
 * Every record is written (`writeSync`) before the call that makes it
 * returns, so a killed process loses nothing that `send` took; with `sync`
 * each write is also flushed to the disk (fdatasync), so a power loss
 * loses nothing either. A last line cut short by a crash is left out.
 * Once more events are finished than pending (and at least 10,000), the
 * file is rewritten with only the pending ones (a new file, then renamed
 * over the old one), and again each time it is opened.
 *
 * `PATH.lock` holds the pid of the process that has the journal open; a
 * second client is refused while that process lives.
 */
import {
  closeSync,
  existsSync,
  fdatasyncSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import type { Journal, SentEvent } from './client.ts'
import { isMalformed, parseEventLine } from '../domain/event.ts'

const HEADER = 'fleet-telemetry journal 1'

/** Finished records that make a compaction due, at least. */
const COMPACT_AFTER = 10_000

export interface JournalOptions {
  /** fdatasync after each write (survives a power loss; much slower). */
  readonly sync?: boolean
}

/** A file journal; see the module's comment for its format. */
export class FileJournal implements Journal {
  readonly recovered: { nextSeq: number; events: SentEvent[] }
  readonly #path: string
  readonly #sync: boolean
  /** The pending events, in sequence order. */
  readonly #live = new Map<number, SentEvent>()
  #fd: number
  #finished = 0
  #nextSeq: number

  constructor(path: string, options: JournalOptions = {}) {
    this.#path = path
    this.#sync = options.sync === true
    lock(path)
    try {
      const { nextSeq, events } = existsSync(path)
        ? readJournal(path)
        : { nextSeq: 0, events: [] }
      this.#nextSeq = nextSeq
      for (const event of events) this.#live.set(event.seq, event)
      this.recovered = { nextSeq, events }
      this.#fd = this.#rewrite()
    } catch (error) {
      unlock(path)
      throw error
    }
  }

  added(event: SentEvent) {
    // Written first: an event the file did not take is not kept either.
    this.#write(`e ${event.seq} ${event.line}\n`)
    this.#live.set(event.seq, event)
    this.#nextSeq = Math.max(this.#nextSeq, event.seq + 1)
  }

  finished(seqs: readonly number[]) {
    for (const seq of seqs) this.#live.delete(seq)
    this.#write(`d ${ranges(seqs)}\n`)
    this.#finished += seqs.length
    if (this.#finished >= COMPACT_AFTER && this.#finished > this.#live.size) {
      // The new file is in place before the old one is let go of.
      const old = this.#fd
      this.#fd = this.#rewrite()
      closeSync(old)
    }
  }

  close() {
    if (this.#fd < 0) return
    closeSync(this.#fd)
    this.#fd = -1
    unlock(this.#path)
  }

  #write(text: string) {
    writeSync(this.#fd, text)
    if (this.#sync) fdatasyncSync(this.#fd)
  }

  /** Writes the pending events to a new file, renames it over the journal, and opens it to append. */
  #rewrite(): number {
    const temporary = `${this.#path}.compacting`
    const fd = openSync(temporary, 'w')
    try {
      let text = `${HEADER}\nn ${this.#nextSeq}\n`
      for (const event of this.#live.values()) {
        text += `e ${event.seq} ${event.line}\n`
        if (text.length > 1 << 20) {
          writeSync(fd, text)
          text = ''
        }
      }
      writeSync(fd, text)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(temporary, this.#path)
    this.#finished = 0
    return openSync(this.#path, 'a')
  }
}

/** Journals this process has open, by lock file. */
const held = new Set<string>()

/**
 * Takes `PATH.lock` for this process: one client at a time per journal.
 * A lock left by a process that is gone (killed) is taken over.
 */
function lock(path: string) {
  const file = `${path}.lock`
  // Written whole beside it, then linked into place: never seen empty.
  const mine = `${file}.${process.pid}`
  writeFileSync(mine, `${process.pid}\n`)
  try {
    for (;;) {
      try {
        linkSync(mine, file)
        held.add(file)
        return
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      }
      let owner: number
      try {
        owner = Number(readFileSync(file, 'utf8').trim())
      } catch (error) {
        // Let go of between the two calls: try again.
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue
        throw error
      }
      if (held.has(file) || (owner !== process.pid && alive(owner))) {
        throw new Error(
          `${path} is in use by process ${owner} (one client at a time per journal)`,
        )
      }
      rmSync(file, { force: true })
    }
  } finally {
    rmSync(mine, { force: true })
  }
}

function unlock(path: string) {
  const file = `${path}.lock`
  held.delete(file)
  rmSync(file, { force: true })
}

function alive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** The events of a journal file that have no final outcome, and its next sequence number. */
export function readJournal(path: string): {
  nextSeq: number
  events: SentEvent[]
} {
  const text = readFileSync(path, 'utf8')
  // A last line without its newline was cut short by a crash: left out.
  const lines = text.slice(0, text.lastIndexOf('\n') + 1).split('\n')
  lines.pop()
  if (lines[0] !== HEADER) {
    throw new Error(`${path} is not a fleet-telemetry journal`)
  }
  let nextSeq = 0
  const live = new Map<number, SentEvent>()
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!
    const kind = line.slice(0, 2)
    if (kind === 'n ') {
      nextSeq = Math.max(nextSeq, Number(line.slice(2)))
    } else if (kind === 'e ') {
      const space = line.indexOf(' ', 2)
      const seq = Number(line.slice(2, space))
      const eventLine = line.slice(space + 1)
      const parsed = parseEventLine(eventLine)
      if (space < 0 || !Number.isSafeInteger(seq) || isMalformed(parsed)) {
        throw new Error(`${path}:${i + 1}: not a journal record`)
      }
      live.set(seq, { seq, line: eventLine, robot: parsed.robot })
      nextSeq = Math.max(nextSeq, seq + 1)
    } else if (kind === 'd ') {
      for (const range of line.slice(2).split(',')) {
        const [first, last = first] = range.split('-').map(Number)
        for (let seq = first!; seq <= last!; seq++) live.delete(seq)
      }
    } else {
      throw new Error(`${path}:${i + 1}: not a journal record`)
    }
  }
  return { nextSeq, events: [...live.values()].sort((a, b) => a.seq - b.seq) }
}

/** `1,2,3,5` as `1-3,5`. */
function ranges(seqs: readonly number[]): string {
  const parts: string[] = []
  let i = 0
  while (i < seqs.length) {
    let j = i
    while (j + 1 < seqs.length && seqs[j + 1] === seqs[j]! + 1) j++
    parts.push(j === i ? `${seqs[i]}` : `${seqs[i]}-${seqs[j]}`)
    i = j + 1
  }
  return parts.join(',')
}
