/**
 * The server of workload t (bench/tenants.ts): the plugin with one pool configured up front, or
 * with 1,000 pools resolved at run time from a table in memory. Same protocol as server.ts: the
 * spec in BENCH_SERVER, `{"port":N}` on stdout once listening, SIGTERM or a closed IPC channel to stop.
 */
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import cognitoAuth from '../index'
import { CPU_ROUTE, ROUTE } from './config'
import { MEMORY_ROUTE, tenantPool, type TenantServerSpec } from './tenants-pools'

async function main (): Promise<void> {
  const spec = JSON.parse(process.env.BENCH_SERVER ?? '') as TenantServerSpec
  const app = Fastify()
  const tokenCache = spec.tokenCache ? {} : false as const
  if (spec.mode === 'one') {
    const { userPoolId, clientId, jwksUri } = tenantPool(spec.jwksBase, 0)
    await app.register(cognitoAuth, { userPoolId, clientId, jwksUri, tokenCache })
  } else {
    // The application's tenant table: by issuer, the pool's entry.
    const table = new Map(Array.from({ length: spec.tenants }, (_, i) => {
      const pool = tenantPool(spec.jwksBase, i)
      return [pool.issuer, pool] as const
    }))
    await app.register(cognitoAuth, {
      userPools: async (issuer) => {
        const pool = table.get(issuer)
        return pool && { userPoolId: pool.userPoolId, clientId: pool.clientId, jwksUri: pool.jwksUri, tenant: pool.tenant }
      },
      // Every tenant comes in the first second of the run: the rate of questions about issuers
      // not held yet must let them all be asked (the default, 100 a second, would refuse most).
      poolCache: { newIssuerRate: spec.tenants },
      tokenCache
    })
  }
  app.get(ROUTE, { onRequest: app.authenticate }, async (request) => ({ sub: request.cognitoClaims?.sub }))
  app.get(CPU_ROUTE, async () => {
    const { user, system } = process.cpuUsage()
    return { micros: user + system }
  })
  app.get(MEMORY_ROUTE, async () => {
    globalThis.gc?.()
    const { heapUsed, external, rss } = process.memoryUsage()
    return { heapUsed, external, rss, pools: app.cognitoKeyStores().length }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const stop = (): void => { app.close().finally(() => process.exit(0)) }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  process.once('disconnect', stop)
  process.stdout.write(`${JSON.stringify({ port: (app.server.address() as AddressInfo).port })}\n`)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
