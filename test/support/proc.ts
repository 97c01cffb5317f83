/**
 * A child process seen from outside, through /proc (Linux): its CPU time and
 * its resident memory. The benchmark's meters (bench/proc.ts) and the tests
 * that bound the server's memory read them the same way.
 *
 * @example
 * const { rss } = memory(server.pid) // bytes
 */
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'

let clockTicks: number | undefined

/** Clock ticks per second of /proc/PID/stat times (`getconf CLK_TCK`). */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks =
        Number(execFileSync('getconf', ['CLK_TCK']).toString()) || 100
    } catch {
      clockTicks = 100
    }
  }
  return clockTicks
}

/** User plus system CPU time of a process so far, in seconds (utime + stime). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name, which is in parentheses and may hold
  // spaces: state is field 3, utime field 14 and stime field 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond()
}

/** Resident memory now (VmRSS) and at its peak (VmHWM), in bytes. */
export function memory(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = (key: string) =>
    Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN)
  return { rss: kib('VmRSS') * 1024, hwm: kib('VmHWM') * 1024 }
}

/**
 * Resets a process's peak resident set (VmHWM) to its current one, by
 * writing 5 to /proc/PID/clear_refs (Linux 4.0+); false when not allowed.
 */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5')
    return true
  } catch {
    return false
  }
}
