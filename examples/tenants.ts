/**
 * One user pool per tenant, with the tenants in the application's own SQLite table:
 *   node --import tsx examples/tenants.ts
 * starts three local user pools (their JWKS served on 127.0.0.1), lists two of them as tenants,
 * sends a request per case, prints expected and actual status, and exits 0 only when all match.
 *
 * The plugin asks `userPools` which pool a token's issuer is; the answer comes from the tenant
 * table, the allow-list. A token of a pool that is not in the table is refused without a key
 * fetch, and a tenant removed from the table is refused once the table, asked again after
 * `poolCache.ttl`, no longer lists it (the request that finds the answer past its ttl is still
 * served, while the table is asked in the background).
 */
import Database from 'better-sqlite3'
import Fastify, { type FastifyInstance } from 'fastify'
// An application imports 'fastify-cognito-jwt' and 'fastify-cognito-jwt/testing'.
import cognitoAuth from '../index'
import { LocalIssuer } from '../testing'
import { formatResult, summarize, type CheckResult } from './checks'
import { UserStore } from './users'

/** A tenant, as `request.cognitoPool.tenant` holds it. */
export interface Tenant {
  id: number
  name: string
}

// Types the resolver's `tenant` and `request.cognitoPool.tenant` (an application names the package).
declare module '../index' {
  interface CognitoPoolRegistry {
    tenant: Tenant
  }
}

interface TenantRow extends Tenant {
  poolId: string
  clientId: string
  jwksUri: string
}

/** See examples/users.ts: better-sqlite3 objects stay reachable until the process ends. */
const neverCollected: object[] = []

/** The tenant table: one row per tenant, with its user pool, app client and issuer. */
class TenantStore {
  private readonly db = new Database(':memory:')
  private readonly insert
  private readonly byIssuerStatement
  private readonly ordersStatement

  constructor () {
    this.db.exec(`
      CREATE TABLE tenants (
        id        INTEGER PRIMARY KEY,
        name      TEXT NOT NULL,
        pool_id   TEXT NOT NULL,
        client_id TEXT NOT NULL,
        issuer    TEXT NOT NULL UNIQUE,
        jwks_uri  TEXT NOT NULL
      );
      CREATE TABLE orders (tenant_id INTEGER NOT NULL, item TEXT NOT NULL)`)
    this.insert = this.db.prepare<[string, string, string, string, string]>(
      'INSERT INTO tenants (name, pool_id, client_id, issuer, jwks_uri) VALUES (?, ?, ?, ?, ?) RETURNING id')
    this.byIssuerStatement = this.db.prepare<[string], TenantRow>(
      'SELECT id, name, pool_id AS poolId, client_id AS clientId, jwks_uri AS jwksUri FROM tenants WHERE issuer = ?')
    this.ordersStatement = this.db.prepare<[number], { item: string }>('SELECT item FROM orders WHERE tenant_id = ? ORDER BY item')
    neverCollected.push(this.db, this.insert, this.byIssuerStatement, this.ordersStatement)
  }

  add (name: string, pool: LocalIssuer, items: string[]): void {
    const { id } = this.insert.get(name, pool.userPoolId, pool.clientId, pool.issuer, pool.jwksUri) as { id: number }
    for (const item of items) this.db.prepare('INSERT INTO orders VALUES (?, ?)').run(id, item)
  }

  remove (name: string): void {
    this.db.prepare('DELETE FROM tenants WHERE name = ?').run(name)
  }

  byIssuer (issuer: string): TenantRow | undefined {
    return this.byIssuerStatement.get(issuer)
  }

  orders (tenant: Tenant): string[] {
    return this.ordersStatement.all(tenant.id).map((row) => row.item)
  }
}

function buildApp (tenants: TenantStore, users: UserStore): FastifyInstance {
  const app = Fastify()
  app.register(cognitoAuth, {
    // The allow-list: only issuers in the tenant table have a pool. The plugin caches answers
    // (here for one second, to show a removal in the checks below; the default is 300).
    userPools: async (issuer) => {
      const row = tenants.byIssuer(issuer)
      return row && {
        userPoolId: row.poolId,
        clientId: row.clientId,
        jwksUri: row.jwksUri, // only because the example's pools serve their keys on 127.0.0.1
        tenant: { id: row.id, name: row.name }
      }
    },
    poolCache: { ttl: 1 },
    resolveUser: (claims) => users.findOrCreate(claims)
  })
  app.register(async function routes (api) {
    api.get('/orders', { onRequest: [api.authenticate] }, async (request) => {
      // Set on every request authenticated by a resolved pool, with the resolver's `tenant`.
      const tenant = request.cognitoPool!.tenant!
      return { tenant: tenant.name, orders: tenants.orders(tenant) }
    })
  })
  return app
}

async function main (): Promise<number> {
  const acme = new LocalIssuer({ userPoolId: 'eu-central-1_Acme', clientId: 'acme-web' })
  const globex = new LocalIssuer({ userPoolId: 'us-east-1_Globex', clientId: 'globex-web' })
  const stranger = new LocalIssuer({ userPoolId: 'eu-west-1_Stranger', clientId: 'acme-web' })
  const pools = [acme, globex, stranger]
  for (const pool of pools) await pool.listen()
  const tenants = new TenantStore()
  tenants.add('acme', acme, ['anvil', 'rocket skates'])
  tenants.add('globex', globex, ['hammock'])
  const users = new UserStore()
  const app = buildApp(tenants, users)

  const results: CheckResult[] = []
  /** Sends the token to /orders; a 200 must come with the orders of `tenant`, and only its. */
  const check = async (what: string, token: string, expected: { status: number, code?: string }, tenant?: string): Promise<void> => {
    const response = await app.inject({ url: '/orders', headers: { authorization: `Bearer ${token}` } })
    const body = response.json<{ code?: string, tenant?: string }>()
    const pass = response.statusCode === expected.status && body.code === expected.code && body.tenant === tenant
    results.push({ check: { path: '/orders', what, expected }, status: response.statusCode, code: body.code, pass })
  }
  const refused = { status: 401, code: 'FST_COGNITO_TOKEN_INVALID' }
  const acmeClaims = JSON.parse(Buffer.from(acme.idToken().split('.')[1], 'base64url').toString()) as Record<string, unknown>
  try {
    await check('acme user', acme.idToken(), { status: 200 }, 'acme')
    await check('globex user', globex.idToken(), { status: 200 }, 'globex')
    await check('a pool that is no tenant', stranger.idToken(), refused)
    await check('acme claims, globex signature', globex.sign(acmeClaims), refused)
    tenants.remove('globex')
    await new Promise((resolve) => setTimeout(resolve, 1100)) // past poolCache.ttl
    // Served with the cached answer while the table is asked again, in the background.
    await check('globex, removed: asked again', globex.idToken(), { status: 200 }, 'globex')
    await check('globex, removed from the table', globex.idToken(), refused)
    await check('acme, still a tenant', acme.idToken(), { status: 200 }, 'acme')
  } finally {
    await app.close()
    for (const pool of pools) await pool.close()
    users.close()
  }
  for (const result of results) console.log(formatResult(result))
  const { line, exitCode } = summarize(results)
  console.log(line)
  return exitCode
}

// A failure rejects: Node.js prints it and exits with code 1.
void main().then((exitCode) => { process.exitCode = exitCode })
