// Runs tap with a report that suits where it is read. On a terminal: tap's default report, which
// redraws itself as tests run. Anywhere else (CI, a pipe, a log file): the terse report, failures
// in full and passes as counts. tap draws its reports with Ink, which only writes the final frame
// when it believes it runs in CI; outside a terminal it would write every redraw, so CI is set.
// Arguments are passed on to tap, e.g. `node scripts/tap.mjs test/options.test.ts`.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

const require = createRequire(import.meta.url)
const tapBin = join(dirname(require.resolve('tap/package.json')), 'dist/esm/run.mjs')
const terminal = process.stdout.isTTY === true
const args = terminal ? [] : ['--reporter=terse']
const env = terminal ? process.env : { ...process.env, CI: process.env.CI ?? 'true' }

const { status, signal } = spawnSync(process.execPath, [tapBin, ...args, ...process.argv.slice(2)], { stdio: 'inherit', env })
process.exitCode = status ?? (signal === null ? 1 : 128)

// The Redis suites run against a real redis-server (test/helpers/redis-server.ts finds it the same
// way); without one they skip, and the Redis store's module stays out of the coverage. Said once.
const redisServer = process.env.REDIS_SERVER ?? spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).stdout.trim()
if (redisServer === '' || !existsSync(redisServer)) {
  console.log('Skipped the Redis suites (revocation-redis, revocation-fleet, revocation-races, revocation-processes, revocation-sentinel, revocation-cluster, revocation-chaos): no redis-server; install it with `apt-get install -y redis-server`')
}
