/**
 * Workload watch: long-lived connections (bench/connections.ts), run as a process of its own with
 * `--expose-gc`, so that its heap figure is a full collection's and holds nothing of this
 * process's tokens and servers. It needs a redis-server for the propagation half (skipped,
 * and said so, without one).
 */
import { execFile } from 'node:child_process'
import { join } from 'node:path'

const ENTRY = join(__dirname, 'connections.ts')

export interface WatchSettings {
  /** Open responses with a watch each, for the memory per watch. */
  watches: number
  /** Rounds of 100 WebSockets of one user signed out from another instance. */
  rounds: number
}

/** The step's report: its figures, as it prints them. */
export async function runWatch ({ watches, rounds }: WatchSettings, log: (message: string) => void): Promise<string> {
  log(`watch: ${watches} watched responses, then ${rounds} rounds of 100 WebSockets signed out from another instance`)
  return await new Promise((resolve, reject) => {
    execFile(process.execPath, ['--expose-gc', '--import', 'tsx', ENTRY], {
      env: { ...process.env, BENCH_WATCHES: String(watches), BENCH_ROUNDS: String(rounds) },
      maxBuffer: 1 << 20
    }, (err, stdout, stderr) => {
      if (err !== null) {
        reject(new Error(`bench/connections.ts failed: ${stderr.trim() || err.message}`))
        return
      }
      resolve(stdout.trimEnd())
    })
  })
}
