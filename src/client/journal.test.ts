import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { FileJournal, readJournal } from './journal.ts'

const dir = mkdtempSync(join(tmpdir(), 'journal-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const fresh = () => join(dir, `j${files++}`)

const event = (seq: number) => ({
  seq,
  line: `${seq},0.5,${1000 + seq},R, with comma`,
  robot: 'R, with comma',
})

describe('the client journal', () => {
  it('should give back the events without a final outcome, in order, and the next sequence number', () => {
    const path = fresh()
    const journal = new FileJournal(path)
    assert.deepEqual(journal.recovered, { nextSeq: 0, events: [] })
    for (let seq = 0; seq < 10; seq++) journal.added(event(seq))
    journal.finished([0, 1, 2, 5])
    journal.finished([7])
    // close() writes nothing: the file is what a killed process leaves.
    const written = readFileSync(path, 'utf8')
    journal.close()
    assert.equal(readFileSync(path, 'utf8'), written)
    const again = new FileJournal(path)
    assert.deepEqual(again.recovered, {
      nextSeq: 10,
      events: [3, 4, 6, 8, 9].map(event),
    })
    again.close()
  })

  it('should keep the sequence going once every event is finished', () => {
    const path = fresh()
    const journal = new FileJournal(path)
    journal.added(event(0))
    journal.added(event(1))
    journal.finished([0, 1])
    journal.close()
    const again = new FileJournal(path)
    assert.deepEqual(again.recovered, { nextSeq: 2, events: [] })
    // Opening compacts: only the header and the next sequence number are left.
    assert.equal(readFileSync(path, 'utf8'), 'fleet-telemetry journal 1\nn 2\n')
    again.close()
  })

  it('should leave out a last record cut short by a crash', () => {
    const path = fresh()
    const journal = new FileJournal(path)
    journal.added(event(0))
    journal.added(event(1))
    journal.close()
    appendFileSync(path, 'd 0-1') // no newline: never finished writing
    assert.deepEqual(readJournal(path).events, [event(0), event(1)])
    appendFileSync(path, '\ne 2 2,0,5') // a torn event record
    assert.deepEqual(readJournal(path), {
      nextSeq: 2,
      events: [],
    })
  })

  it('should refuse a file that is not a journal, or a damaged record', () => {
    const path = fresh()
    writeFileSync(path, 'x,y,timestamp,robot_name\n')
    assert.throws(() => new FileJournal(path), /not a fleet-telemetry journal/)
    writeFileSync(path, 'fleet-telemetry journal 1\ne 0 not an event\n')
    assert.throws(() => readJournal(path), /:2: not a journal record/)
  })

  it('should compact as events are finished, so the file stays small', () => {
    const path = fresh()
    const journal = new FileJournal(path)
    let largest = 0
    for (let seq = 0; seq < 50_000; seq++) {
      journal.added(event(seq))
      if (seq % 100 === 99) {
        journal.finished(Array.from({ length: 100 }, (_, i) => seq - 99 + i))
        largest = Math.max(largest, statSync(path).size)
      }
    }
    journal.added(event(50_000))
    journal.close()
    // 50,000 events of about 36 bytes a record: 1.8 MB without compaction.
    assert.ok(largest < 600_000, `the file reached ${largest} bytes`)
    assert.deepEqual(readJournal(path), {
      nextSeq: 50_001,
      events: [event(50_000)],
    })
  })
  it('should be open in one client at a time, and taken over from a dead process', () => {
    const path = fresh()
    const journal = new FileJournal(path)
    assert.throws(
      () => new FileJournal(path),
      new RegExp(`in use by process ${process.pid}`),
    )
    journal.close()
    new FileJournal(path).close()
    // A lock left by a process that was killed: taken over.
    const dead = spawnSync(process.execPath, ['-e', '0']).pid
    writeFileSync(`${path}.lock`, `${dead}\n`)
    const after = new FileJournal(path)
    assert.equal(readFileSync(`${path}.lock`, 'utf8'), `${process.pid}\n`)
    after.close()
    assert.equal(existsSync(`${path}.lock`), false)
    // A file that is no journal leaves no lock behind.
    writeFileSync(path, 'not a journal\n')
    assert.throws(() => new FileJournal(path))
    assert.equal(existsSync(`${path}.lock`), false)
  })
})
