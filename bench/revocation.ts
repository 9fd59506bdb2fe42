/**
 * The revocation step, on a redis-server the bench starts on loopback:
 *   - throughput of the authenticated route (workload a's one token) for the plugin without the
 *     revocation list, with an empty list, and with 100,000 revoked sessions, as ratios;
 *   - the replica's memory: the heap of the server holding the entries, less that of the empty one;
 *   - propagation: from `revokeSession` resolving on one process to another process refusing
 *     the session's token (polled over HTTP, so a figure includes one request's round trip);
 *   - a large list (1,000,000 entries by default): the load's duration, in pages, and the
 *     replica's memory, in this process.
 */
import { randomUUID } from 'node:crypto'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import Redis from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'
import type { CognitoClaims } from '../index'
import { RevocationList } from '../lib/revocation/list'
import type { LocalIssuer } from '../testing'
import { RedisServer, redisSkip } from '../test/helpers/redis-server'
import { HEAP_ROUTE, REVOKE_ROUTE, ROUTE, USER_POOL_ID, type ServerSpec } from './config'
import { assertAccepts, measure, TokenCycle, type LoadOptions } from './load'
import { startServer, stopAllServers, type RunningServer } from './processes'
import { median } from './report'

export interface RevocationSettings {
  load: LoadOptions
  rounds: number
  warmup: number
  entries: number
  propagationSamples: number
  /** Entries of the large list whose load is timed; 0 skips it. */
  largeEntries: number
}

/** Session entries written straight into the sorted set, as revokeSession would, in batches. */
export async function fill (port: number, keyPrefix: string, count: number): Promise<void> {
  const redis = new Redis({ host: '127.0.0.1', port })
  try {
    const expires = Date.now() + 86_400_000
    for (let done = 0; done < count; done += 10_000) {
      const batch: Array<string | number> = []
      for (let i = done; i < Math.min(count, done + 10_000); i++) batch.push(expires, JSON.stringify(['s', USER_POOL_ID, randomUUID()]))
      await redis.zadd(`${keyPrefix}entries`, ...batch)
    }
  } finally {
    redis.disconnect()
  }
}

async function heapUsed (server: RunningServer): Promise<number> {
  return (await (await fetch(`${server.url}${HEAP_ROUTE}`)).json() as { heapUsed: number }).heapUsed
}

function percentile (sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

async function statusOf (server: RunningServer, token: string): Promise<number> {
  const response = await fetch(`${server.url}${ROUTE}`, { headers: { authorization: `Bearer ${token}` } })
  await response.arrayBuffer()
  return response.status
}

/**
 * The request path's check alone, in this process: nanoseconds per call against a replica of
 * `entries` sessions and against an empty one, for a token that is in neither. Unlike req/s, it
 * does not move when other processes share the cores.
 */
function checkCost (entries: number, claims: CognitoClaims): { empty: number, full: number } {
  const settings = { store: 'memory' as const, keyPrefix: '', maxTokenLifetimeMs: 86_400_000, maxStaleMs: Infinity, timeoutMs: 5000, replicas: 0, clockToleranceMs: 0 }
  const pool = { userPoolId: 'eu-central-1_Bench' }
  const silent = { debug () {}, info () {}, warn () {} } as unknown as FastifyBaseLogger
  const time = (list: RevocationList): number => {
    const calls = 2_000_000
    for (let i = 0; i < 100_000; i++) list.refusal(claims, pool)
    const start = process.hrtime.bigint()
    let refused = 0
    for (let i = 0; i < calls; i++) if (list.refusal(claims, pool) !== undefined) refused++
    if (refused !== 0) throw new Error('the check refused a token that is not revoked')
    return Number(process.hrtime.bigint() - start) / calls
  }
  const empty = new RevocationList(settings, () => ({ settings: pool }), silent)
  const full = new RevocationList(settings, () => ({ settings: pool }), silent)
  const expires = Date.now() + 86_400_000
  for (let i = 0; i < entries; i++) full.apply({ kind: 'session', pool: pool.userPoolId, id: randomUUID(), expires })
  full.apply({ kind: 'user', pool: pool.userPoolId, sub: randomUUID(), mark: 0, expires })
  return { empty: time(empty), full: time(full) }
}

/** A full garbage collection, without starting node with --expose-gc. */
function collect (): void {
  setFlagsFromString('--expose-gc')
  ;(runInNewContext('gc') as () => void)()
}

/**
 * The load of a large list, in this process: its duration from `start()` to loaded (every page),
 * and the heap the replica holds once loaded, after a full GC, less the heap before.
 */
export async function measureLargeList (port: number, entries: number): Promise<{ ms: number, bytes: number }> {
  const keyPrefix = `bench:${randomUUID()}:`
  await fill(port, keyPrefix, entries)
  const redis = new Redis({ host: '127.0.0.1', port })
  const silent = { debug () {}, info () {}, warn () {} } as unknown as FastifyBaseLogger
  const list = new RevocationList({
    store: 'redis',
    redis,
    keyPrefix,
    maxTokenLifetimeMs: 86_400_000,
    maxStaleMs: Infinity,
    timeoutMs: 5000,
    replicas: 0,
    clockToleranceMs: 0
  }, () => ({ settings: { userPoolId: USER_POOL_ID } }), silent)
  try {
    collect()
    const before = process.memoryUsage().heapUsed
    const started = performance.now()
    await list.start()
    const ms = performance.now() - started
    if (list.stats().entries !== entries) throw new Error(`loaded ${list.stats().entries} of ${entries} entries`)
    collect()
    return { ms, bytes: process.memoryUsage().heapUsed - before }
  } finally {
    await list.close()
    redis.disconnect()
  }
}

export async function runRevocationStep (issuer: LocalIssuer, jwksUri: string, token: string, settings: RevocationSettings, log: (message: string) => void): Promise<void> {
  if (redisSkip !== false) {
    console.log(`\nRevocation: skipped, ${redisSkip}`)
    return
  }
  const teardown: Array<() => Promise<void> | void> = []
  try {
    const redis = await RedisServer.start({ teardown: (fn) => teardown.push(fn) })
    const full = `bench:${randomUUID()}:`
    const empty = `bench:${randomUUID()}:`
    await fill(redis.port, full, settings.entries)
    log(`wrote ${settings.entries} revoked sessions into Redis`)
    const spec = (revocation?: ServerSpec['revocation']): ServerSpec => ({ variant: 'plugin', jwksUri, resolveUser: false, revocation })
    const servers: Array<[string, RunningServer]> = [
      ['plugin, no revocation list', await startServer(spec(), ['--expose-gc'])],
      ['plugin, empty list', await startServer(spec({ redisPort: redis.port, keyPrefix: empty }), ['--expose-gc'])],
      [`plugin, ${settings.entries} revoked sessions`, await startServer(spec({ redisPort: redis.port, keyPrefix: full }), ['--expose-gc'])]
    ]
    const tokens = new TokenCycle([token])
    for (const [, server] of servers) {
      await assertAccepts('plugin', server.url, token)
      if (settings.warmup > 0) await measure(server.url, tokens, { ...settings.load, duration: settings.warmup })
    }
    const results = servers.map((): number[] => [])
    const cpu = servers.map((): number[] => [])
    for (let round = 0; round < settings.rounds; round++) {
      for (let i = 0; i < servers.length; i++) {
        const index = (i + round) % servers.length
        const result = await measure(servers[index][1].url, tokens, settings.load)
        results[index].push(result.requestsPerSecond)
        cpu[index].push(result.cpuMicrosPerRequest)
        log(`revocation, round ${round + 1}/${settings.rounds}, ${servers[index][0]}: ${Math.round(result.requestsPerSecond)} req/s, ` +
          `${result.cpuMicrosPerRequest.toFixed(1)} µs CPU per request`)
      }
    }
    const rps = results.map(median)
    // CPU time per request holds when other processes share the cores; req/s does not.
    const micros = cpu.map(median)
    const heaps = await Promise.all(servers.map(async ([, server]) => await heapUsed(server)))
    const replicaBytes = heaps[2] - heaps[1]

    // Propagation: revoke on one process, poll another until it refuses.
    const [writer, reader] = [
      await startServer(spec({ redisPort: redis.port, keyPrefix: empty })),
      await startServer(spec({ redisPort: redis.port, keyPrefix: empty }))
    ]
    const delays: number[] = []
    for (let i = 0; i < settings.propagationSamples; i++) {
      const origin = randomUUID()
      const session = issuer.idToken({ origin_jti: origin })
      if (await statusOf(reader, session) !== 200) throw new Error('the reader refused a valid token')
      const response = await fetch(`${writer.url}${REVOKE_ROUTE}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ iss: issuer.issuer, origin_jti: origin }) })
      if (response.status !== 204) throw new Error(`revokeSession answered ${response.status}`)
      const resolved = performance.now()
      while (await statusOf(reader, session) !== 401) { /* poll */ }
      delays.push(performance.now() - resolved)
    }
    delays.sort((a, b) => a - b)
    const check = checkCost(settings.entries, JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as CognitoClaims)

    console.log(`\nRevocation: workload a's token on the plugin, Redis-backed revocation list (${settings.rounds} round(s))`)
    console.log('  (ratio: throughput per CPU second against no list, from the server\'s CPU time per request)')
    for (let i = 0; i < servers.length; i++) {
      console.log(`  ${servers[i][0].padEnd(36)} ${String(Math.round(rps[i])).padStart(8)} req/s ${micros[i].toFixed(1).padStart(8)} µs CPU/request   ratio ${(micros[0] / micros[i]).toFixed(3)}`)
    }
    const ratio = micros[0] / micros[2]
    console.log(`  target: ${settings.entries} revoked sessions >= 0.95 of no list: ${ratio.toFixed(3)} ${ratio >= 0.95 ? 'met' : 'NOT met'}`)
    console.log(`  the check alone: ${check.full.toFixed(0)} ns per request with ${settings.entries} sessions and a signed-out user, ` +
      `${check.empty.toFixed(0)} ns with an empty list; against ${micros[0].toFixed(1)} µs of CPU per request without a list, ` +
      `a ratio of ${(micros[0] * 1000 / (micros[0] * 1000 + check.full)).toFixed(4)}`)
    console.log(`  replica memory: ${(replicaBytes / 1024 / 1024).toFixed(1)} MiB for ${settings.entries} sessions ` +
      `(${Math.round(replicaBytes / settings.entries)} bytes each; heap after a full GC, less the empty list's)`)
    console.log(`  propagation, revokeSession resolved -> another process refuses (${delays.length} samples, one HTTP round trip included): ` +
      `p50 ${percentile(delays, 0.5).toFixed(2)} ms, p99 ${percentile(delays, 0.99).toFixed(2)} ms`)
    if (settings.largeEntries > 0) {
      const large = await measureLargeList(redis.port, settings.largeEntries)
      console.log(`  a list of ${settings.largeEntries} entries: loaded in ${(large.ms / 1000).toFixed(2)} s (pages of ZSCAN, each within the 5 s timeout), ` +
        `replica ${(large.bytes / 1024 / 1024).toFixed(1)} MiB (${Math.round(large.bytes / settings.largeEntries)} bytes each)`)
    }
  } finally {
    await stopAllServers()
    for (const fn of teardown.reverse()) await fn()
  }
}
