/**
 * `npm run bench`: the plugin side by side with no authentication, a hand-written floor and its
 * peers, each variant a server process of its own, loaded in turn by autocannon; then the memory
 * step. `npm run bench -- --help` lists the options.
 */
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { runAlb } from './alb'
import { formatCold, runColdStart } from './cold'
import { OPTIONAL_VARIANTS, VARIANTS, type Variant } from './config'
import { assertAccepts, assertRefuses, measure, TokenCycle, type LoadOptions, type Measurement } from './load'
import { formatHeap, measureHeap } from './memory'
import { runRevocationStep } from './revocation'
import { startServer, stopAllServers, stopServersOnExit, type RunningServer } from './processes'
import { checkTargets, formatTable, formatTargets, summarize, type Summary } from './report'
import { runTenants, TENANTS } from './tenants'
import { distinctTokens, knownUserToken, openPool, refusedTokens } from './tokens'
import { runWatch } from './watch'

const HELP = `Usage: npm run bench -- [options]   (each option also reads BENCH_<NAME>, e.g. BENCH_DURATION=10)
  --quick               smoke run: 1 s per measurement, 1 round, fewer tokens
  --duration <s>        seconds per measurement (default 5)
  --rounds <n>          rounds, every variant once per round (default 3)
  --warmup <s>          seconds of load per server before the first round (default 1)
  --connections <n>     autocannon connections (default 32)
  --tokens <n>          distinct tokens of workload b (default 20000)
  --memory-tokens <n>   distinct tokens of the memory step, 0 to skip it (default 100000)
  --revocation-entries <n>  revoked sessions of the revocation step (needs redis-server), 0 to skip it (default 100000)
  --revocation-large <n>    entries of the large list whose load the revocation step times, 0 to skip it (default 1000000)
  --workloads <list>    e.g. a,c (default a,b,c,t,cold,alb,watch)
  --samples <n>         fresh processes per program of the cold workload (default 15)
  --watches <n>         watched responses of the watch workload's memory figure (default 10000)
  --watch-rounds <n>    sign-outs of 100 WebSockets of the watch workload (default 20)
  --variants <list>     e.g. none,floor,plugin (default all but plugin+events)
                        plugin+events: the plugin with a subscriber on each of its channels;
                        --quick --workloads a --variants plugin,plugin+events gives their ratio
                        plugin+claims: the plugin with a five-claim schema on its ID tokens;
                        --workloads b --variants plugin,plugin+claims gives the cost of the check
  --cpu-prof <list>     variants whose servers write a CPU profile (node --cpu-prof)`

const WORKLOADS = {
  a: 'one valid ID token, reused by every request',
  b: 'distinct valid ID tokens, more than any cache holds: a signature check per request',
  c: 'one valid ID token, and an async user lookup after verification (resolveUser)',
  cold: 'cold start: fresh processes importing the built package, then answering a first authenticated request',
  t: `${TENANTS} tenants, a user pool each resolved at run time, beside one pool (plugin only)`,
  alb: 'behind an Application Load Balancer: the authenticate hook in process on its headers, distinct and reused, against crypto.verify',
  watch: 'long-lived connections: heap per cognitoWatch, and signOutUser on another instance to the last of a user\'s 100 WebSockets closed (needs redis-server)'
} as const

/** Workloads that run on their own, without the variant servers: the memory step follows none of them. */
const STANDALONE: readonly Workload[] = ['cold', 'alb', 'watch']
type Workload = keyof typeof WORKLOADS

interface Settings {
  load: LoadOptions
  rounds: number
  warmup: number
  distinctTokens: number
  memoryTokens: number
  samples: number
  revocationEntries: number
  revocationLarge: number
  /** Whether `--revocation-entries` was given: the revocation step then runs even after standalone workloads only. */
  revocationAsked: boolean
  watches: number
  watchRounds: number
  workloads: Workload[]
  variants: Variant[]
  cpuProf: Variant[]
}

function readSettings (): Settings {
  const { values } = parseArgs({
    options: {
      help: { type: 'boolean' },
      quick: { type: 'boolean' },
      duration: { type: 'string' },
      rounds: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      tokens: { type: 'string' },
      'memory-tokens': { type: 'string' },
      samples: { type: 'string' },
      'revocation-entries': { type: 'string' },
      'revocation-large': { type: 'string' },
      watches: { type: 'string' },
      'watch-rounds': { type: 'string' },
      workloads: { type: 'string' },
      variants: { type: 'string' },
      'cpu-prof': { type: 'string' }
    }
  })
  if (values.help === true) {
    console.log(HELP)
    process.exit(0)
  }
  const quick = values.quick === true || process.env.BENCH_QUICK === '1'
  const option = (name: keyof typeof values): string | undefined =>
    values[name] as string | undefined ?? process.env[`BENCH_${name.toUpperCase().replace('-', '_')}`]
  const number = (name: keyof typeof values, normal: number, smoke: number): number => {
    const raw = option(name)
    const value = raw === undefined ? (quick ? smoke : normal) : Number(raw)
    if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a non-negative number`)
    return value
  }
  const list = <T extends string>(name: keyof typeof values, all: readonly T[], fallback: readonly T[]): T[] => {
    const raw = option(name)
    if (raw === undefined) return [...fallback]
    const picked = raw.split(',').map((item) => item.trim()).filter((item) => item !== '')
    const unknown = picked.filter((item) => !all.includes(item as T))
    if (unknown.length > 0) throw new Error(`--${name}: unknown ${unknown.join(', ')} (known: ${all.join(', ')})`)
    return all.filter((item) => picked.includes(item))
  }
  const workloads = Object.keys(WORKLOADS) as Workload[]
  return {
    load: { duration: number('duration', 5, 1), connections: number('connections', 32, 32) },
    rounds: Math.max(1, Math.round(number('rounds', 3, 1))),
    warmup: number('warmup', 1, 0.5),
    distinctTokens: Math.round(number('tokens', 20_000, 5_000)),
    memoryTokens: Math.round(number('memory-tokens', 100_000, 10_000)),
    samples: Math.max(1, Math.round(number('samples', 15, 5))),
    revocationEntries: Math.round(number('revocation-entries', 100_000, 100_000)),
    revocationLarge: Math.round(number('revocation-large', 1_000_000, 1_000_000)),
    revocationAsked: option('revocation-entries') !== undefined,
    watches: Math.max(100, Math.round(number('watches', 10_000, 2_000))),
    watchRounds: Math.max(1, Math.round(number('watch-rounds', 20, 5))),
    workloads: list('workloads', workloads, workloads),
    variants: list('variants', VARIANTS, VARIANTS.filter((variant) => !OPTIONAL_VARIANTS.includes(variant))),
    cpuProf: list('cpu-prof', VARIANTS, [])
  }
}

function log (message: string): void {
  console.error(`[bench] ${message}`)
}

async function timed<T> (what: string, work: () => T | Promise<T>): Promise<T> {
  const start = performance.now()
  const result = await work()
  log(`${what} (${((performance.now() - start) / 1000).toFixed(1)} s)`)
  return result
}

interface Context {
  settings: Settings
  jwksUri: string
  /** A valid token every server must accept before it is measured. */
  knownUser: string
  /** Tokens every authenticating server must refuse before it is measured. */
  refused: Record<string, string>
  profileDir: string
}

async function main (): Promise<void> {
  const settings = readSettings()
  stopServersOnExit()
  const pool = await openPool()
  try {
    const { issuer, jwksUri } = pool
    const context: Context = {
      settings,
      jwksUri,
      knownUser: knownUserToken(issuer),
      refused: refusedTokens(issuer),
      profileDir: join(tmpdir(), 'fastify-cognito-jwt-bench-profiles')
    }
    const needsDistinct = settings.workloads.includes('b') ? settings.distinctTokens : 0
    const distinct = needsDistinct === 0 ? [] : await timed(`signed ${needsDistinct} distinct tokens`, () => distinctTokens(issuer, needsDistinct))

    const { duration, connections } = settings.load
    console.log(`fastify-cognito-jwt benchmark: ${settings.rounds} round(s) of ${duration} s per variant, ` +
      `${connections} connections; node ${process.version}, ${machine()}`)
    for (const workload of settings.workloads) {
      if (workload === 'cold') {
        console.log(`\nWorkload cold: ${WORKLOADS.cold}; wall time per process, ${settings.samples} samples each`)
        console.log(formatCold(runColdStart(issuer, settings.samples, log)))
        continue
      }
      if (workload === 'alb') {
        // Distinct users beyond the token cache's 1000 entries: every call checks the signatures.
        const report = await runAlb({ tokens: settings.load.duration <= 1 ? 1500 : 3000, rounds: settings.rounds }, log)
        console.log(`\nWorkload alb: ${WORKLOADS.alb}\n${report}`)
        continue
      }
      if (workload === 'watch') {
        const report = await timed('watch workload', () => runWatch({ watches: settings.watches, rounds: settings.watchRounds }, log))
        console.log(`\nWorkload watch: ${WORKLOADS.watch}\n${report}`)
        continue
      }
      if (workload === 't') {
        const { load, rounds, warmup } = settings
        const report = await runTenants({ load, rounds, warmup, distinctTokens: settings.distinctTokens }, log)
        console.log(`\nWorkload t: ${WORKLOADS.t}\n${report}`)
        continue
      }
      if (workload === 'b' && distinct.length === 0) throw new Error('workload b needs --tokens > 0')
      const tokens = new TokenCycle(workload === 'b' ? distinct : [context.knownUser])
      const rows = await runWorkload(context, workload, tokens)
      console.log(`\nWorkload ${workload}: ${WORKLOADS[workload]}`)
      console.log(formatTable(rows))
      const targets = formatTargets(checkTargets(workload, rows))
      if (targets !== '') console.log(targets)
    }

    const servedWorkloads = settings.workloads.some((workload) => !STANDALONE.includes(workload))
    if (settings.memoryTokens > 0 && settings.variants.includes('plugin') && servedWorkloads) {
      const more = Math.max(0, settings.memoryTokens - distinct.length)
      const extra = more === 0 ? [] : await timed(`signed ${more} more distinct tokens for the memory step`, () => distinctTokens(issuer, more))
      const tokens = [...distinct, ...extra].slice(0, settings.memoryTokens)
      const readings = await measureHeap(jwksUri, tokens, connections)
      console.log(`\nMemory: plugin server (default token cache, 1000 entries), ${tokens.length} distinct valid tokens sent once each; ` +
        'heap used after a full GC')
      console.log(formatHeap(readings))
    }
    if (settings.revocationEntries > 0 && settings.variants.includes('plugin') && (servedWorkloads || settings.revocationAsked)) {
      await runRevocationStep(issuer, jwksUri, context.knownUser, {
        load: settings.load,
        rounds: settings.rounds,
        warmup: settings.warmup,
        entries: settings.revocationEntries,
        propagationSamples: 200,
        largeEntries: settings.revocationLarge
      }, log)
    }
    console.log(`\nload average at the end: ${loadavg().map((n) => n.toFixed(2)).join(' ')}`)
    if (settings.cpuProf.length > 0) console.log(`CPU profiles: ${context.profileDir}`)
  } finally {
    await stopAllServers()
    await pool.close()
  }
}

/** One workload: a fresh server per variant, checked, warmed up, then measured round after round. */
async function runWorkload (context: Context, workload: Workload, tokens: TokenCycle): Promise<Summary[]> {
  const { settings } = context
  const servers = await startServers(context, workload === 'c')
  try {
    for (const server of servers) {
      const { variant } = server.spec
      await assertAccepts(variant, server.url, context.knownUser)
      if (variant !== 'none') await assertRefuses(variant, server.url, context.refused)
      if (settings.warmup > 0) await measure(server.url, tokens, { ...settings.load, duration: settings.warmup })
    }
    const results = new Map<Variant, Measurement[]>(servers.map((server) => [server.spec.variant, []]))
    for (let round = 0; round < settings.rounds; round++) {
      // Each round starts with another variant, so that no variant always follows the same one.
      const order = servers.map((_, i) => servers[(i + round) % servers.length])
      for (const server of order) {
        const result = await measure(server.url, tokens, settings.load)
        results.get(server.spec.variant)?.push(result)
        log(`workload ${workload}, round ${round + 1}/${settings.rounds}, ${server.spec.variant}: ` +
          `${Math.round(result.requestsPerSecond)} req/s, p99 ${result.p99Ms.toFixed(2)} ms`)
      }
    }
    return servers.map((server) => summarize(server.spec.variant, results.get(server.spec.variant) ?? []))
  } finally {
    await stopAllServers()
  }
}

async function startServers ({ settings, jwksUri, profileDir }: Context, resolveUser: boolean): Promise<RunningServer[]> {
  const servers: RunningServer[] = []
  for (const variant of settings.variants) {
    const nodeArgs = settings.cpuProf.includes(variant) ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []
    servers.push(await startServer({ variant, jwksUri, resolveUser }, nodeArgs))
  }
  return servers
}

/** CPUs and load, so that a reader can judge how noisy the numbers may be. */
function machine (): string {
  const cores = cpus()
  return `${cores.length} x ${cores[0]?.model ?? 'unknown CPU'}, load average ${loadavg().map((n) => n.toFixed(2)).join(' ')}`
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
