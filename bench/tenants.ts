/**
 * Workload t: 1,000 tenants, a user pool each, resolved at run time (`userPools` as a function),
 * beside one pool configured up front, each server loaded with the same number of distinct tokens
 * (spread across the tenants, or across users of the one pool); then the memory a resolved pool
 * costs: a fresh server without the token cache, its heap read before and after one token of
 * each tenant.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { LocalIssuer } from '../testing'
import { assertAccepts, measure, TokenCycle, type LoadOptions, type Measurement } from './load'
import { startProcess } from './processes'
import { median } from './report'
import { MEMORY_ROUTE, tenantPool, type TenantServerSpec } from './tenants-pools'

export const TENANTS = 1000
const ENTRY = join(__dirname, 'tenants-server.ts')

export interface TenantsSettings {
  load: LoadOptions
  rounds: number
  warmup: number
  /** Distinct tokens of the signature-bound run (in all, for each server). */
  distinctTokens: number
}

interface Memory { heapUsed: number, external: number, rss: number, pools: number }

/** Every pool's JWKS: the one key, under the pool's own `kid`. */
async function serveJwks (issuer: LocalIssuer): Promise<{ base: string, server: Server }> {
  const [key] = issuer.jwks.keys
  const server = createServer((request, response) => {
    const i = Number(/^\/eu-central-1_Tenant(\d+)\/jwks\.json$/.exec(request.url ?? '')?.[1] ?? NaN)
    if (Number.isNaN(i)) {
      response.writeHead(404).end()
      return
    }
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [{ ...key, kid: tenantPool('', i).kid }] }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }
}

/** `count` tokens: user j of pool `poolOf(j)`, signed with the shared key under that pool's `kid`. */
function tokens (issuer: LocalIssuer, count: number, poolOf: (j: number) => number): string[] {
  return Array.from({ length: count }, (_, j) => {
    const pool = tenantPool('', poolOf(j))
    return issuer.idToken({ iss: pool.issuer, aud: pool.clientId }, { header: { kid: pool.kid } })
  })
}

async function memoryOf (url: string): Promise<Memory> {
  const response = await fetch(`${url}${MEMORY_ROUTE}`)
  return await response.json() as Memory
}

function kb (bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KB`
}

export async function runTenants (settings: TenantsSettings, log: (message: string) => void): Promise<string> {
  const issuer = new LocalIssuer({ userPoolId: 'eu-central-1_Tenant0' })
  const { base, server } = await serveJwks(issuer)
  const spec = (mode: TenantServerSpec['mode'], tokenCache = true): TenantServerSpec => ({ mode, jwksBase: base, tenants: TENANTS, tokenCache })
  const stops: Array<() => Promise<void>> = []
  try {
    const perTenant = Math.max(2, Math.round(settings.distinctTokens / TENANTS))
    const sets = [
      { name: `${TENANTS} tokens, cached`, one: tokens(issuer, TENANTS, () => 0), tenants: tokens(issuer, TENANTS, (j) => j) },
      {
        name: `${perTenant * TENANTS} tokens, distinct`,
        one: tokens(issuer, perTenant * TENANTS, () => 0),
        tenants: tokens(issuer, perTenant * TENANTS, (j) => j % TENANTS)
      }
    ]
    log(`workload t: signed ${2 * (TENANTS + perTenant * TENANTS)} tokens`)
    const servers = {
      one: await startProcess(ENTRY, spec('one'), 'one pool'),
      tenants: await startProcess(ENTRY, spec('tenants'), `${TENANTS} tenants`)
    }
    stops.push(servers.one.stop, servers.tenants.stop)
    for (const mode of ['one', 'tenants'] as const) {
      await assertAccepts(mode, servers[mode].url, sets[0][mode][0])
      // Warm-up: every tenant resolved and its keys fetched before anything is measured.
      if (settings.warmup > 0) await measure(servers[mode].url, new TokenCycle(sets[1][mode]), { ...settings.load, duration: settings.warmup })
    }
    const results = new Map<string, Measurement[]>()
    for (const set of sets) {
      // Each set twice first: the token cache admits a token on its second verification.
      for (const mode of ['one', 'tenants'] as const) {
        await measure(servers[mode].url, new TokenCycle(set[mode]), { ...settings.load, duration: 0, amount: 2 * set[mode].length })
      }
      for (let round = 0; round < settings.rounds; round++) {
        const modes = round % 2 === 0 ? ['one', 'tenants'] as const : ['tenants', 'one'] as const
        for (const mode of modes) {
          const result = await measure(servers[mode].url, new TokenCycle(set[mode]), settings.load)
          const key = `${set.name} ${mode}`
          results.set(key, [...results.get(key) ?? [], result])
          log(`workload t, ${set.name}, round ${round + 1}/${settings.rounds}, ${mode}: ${Math.round(result.requestsPerSecond)} req/s` +
            (result.non2xx > 0 ? `, ${result.non2xx} non-2xx` : ''))
        }
      }
    }
    const rate = (key: string): number => median((results.get(key) ?? []).map((m) => m.requestsPerSecond))
    const cpu = (key: string): number => median((results.get(key) ?? []).map((m) => m.cpuMicrosPerRequest))
    const non2xx = [...results.values()].flat().reduce((sum, m) => sum + m.non2xx + m.errors, 0)
    const lines = [
      `tokens                    one pool req/s  ${TENANTS} tenants req/s  ratio  CPU µs/req (one / tenants)`,
      '------------------------  --------------  ------------------  -----  --------------------------'
    ]
    for (const set of sets) {
      const one = rate(`${set.name} one`)
      const many = rate(`${set.name} tenants`)
      lines.push(`${set.name.padEnd(24)}  ${Math.round(one).toString().padStart(14)}  ${Math.round(many).toString().padStart(18)}  ${(many / one).toFixed(2).padStart(5)}  ` +
        `${cpu(`${set.name} one`).toFixed(0)} / ${cpu(`${set.name} tenants`).toFixed(0)}`)
    }
    lines.push(`non-2xx and errors: ${non2xx}`)

    // Memory: a fresh server, no token cache, so that what grows is the pools.
    const fresh = await startProcess(ENTRY, spec('tenants', false), 'memory', ['--expose-gc'])
    stops.push(fresh.stop)
    const before = await memoryOf(fresh.url)
    await measure(fresh.url, new TokenCycle(sets[0].tenants), { ...settings.load, duration: 0, amount: TENANTS })
    const after = await memoryOf(fresh.url)
    const pools = after.pools
    lines.push('', `Memory per resolved pool (${pools} pools held, heap after a full GC): ` +
      `heap ${kb((after.heapUsed - before.heapUsed) / pools)}, external ${kb((after.external - before.external) / pools)}, ` +
      `RSS ${kb((after.rss - before.rss) / pools)}`)
    return lines.join('\n')
  } finally {
    for (const stop of stops) await stop()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}
