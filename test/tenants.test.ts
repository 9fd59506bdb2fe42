/**
 * One user pool per tenant: `userPools` as the application's resolver. Many local pools (Cognito
 * issuers, their JWKS served on 127.0.0.1 by one server), a tenant store the test changes, and a
 * resolver that counts its questions.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import cognitoAuth, { type CognitoAuthOptions, type CognitoPoolAnswer, type PoolResolver } from '../index'
import { parseOptions } from '../lib/options'
import type { ResolvingDirectory } from '../lib/pools/directory'
import { CognitoVerifier } from '../lib/verify'
import { LocalIssuer } from '../testing'
import { fakeClock } from './helpers/clock'

const INVALID = 'Bearer realm="api", error="invalid_token", error_description="The token is invalid"'
const POOLS = 60

/** The JWKS of every local pool, at `/<poolId>/.well-known/jwks.json`, with its requests and open connections counted. */
class JwksHost {
  readonly requests = new Map<string, number>()
  private readonly sockets = new Set<Socket>()
  private readonly server: Server
  private port = 0

  constructor (private readonly pools: Map<string, LocalIssuer>) {
    this.server = createServer((request, response) => {
      const poolId = /^\/([^/]+)\/\.well-known\/jwks\.json$/.exec(request.url ?? '')?.[1] ?? ''
      this.requests.set(poolId, (this.requests.get(poolId) ?? 0) + 1)
      const pool = this.pools.get(poolId)
      if (pool === undefined) response.writeHead(404).end()
      else response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(pool.jwks))
    })
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket)
      socket.on('close', () => this.sockets.delete(socket))
    })
  }

  async listen (): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    this.port = (this.server.address() as AddressInfo).port
  }

  async close (): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    this.server.closeAllConnections()
    await closed
  }

  uri (poolId: string): string {
    return `http://127.0.0.1:${this.port}/${poolId}/.well-known/jwks.json`
  }

  /** Connections the plugin's key stores hold open to this server. */
  get connections (): number {
    return this.sockets.size
  }

  get total (): number {
    let sum = 0
    for (const count of this.requests.values()) sum += count
    return sum
  }
}

const regions = ['eu-central-1', 'us-east-1', 'ap-southeast-2']
const issuers = Array.from({ length: POOLS }, (_, i) =>
  new LocalIssuer({ userPoolId: `${regions[i % regions.length]}_Tenant${i}`, clientId: `client-${i}` }))
const byPoolId = new Map(issuers.map((issuer) => [issuer.userPoolId, issuer]))
const host = new JwksHost(byPoolId)

interface Tenant { id: number, name: string }

/** The application's tenant table: by issuer, the pool and the tenant's own data. */
function tenantTable (): Map<string, { poolId: string, clientId: string, tenant: Tenant }> {
  return new Map(issuers.map((issuer, i) => [issuer.issuer, { poolId: issuer.userPoolId, clientId: issuer.clientId, tenant: { id: i, name: `tenant ${i}` } }]))
}

interface Harness {
  app: FastifyInstance
  tenants: ReturnType<typeof tenantTable>
  /** Questions asked, by issuer. */
  asked: Map<string, number>
  questions: () => number
  get: (token: string, url?: string) => Promise<LightMyRequestResponse>
}

async function harness (t: Test, options: Partial<CognitoAuthOptions> & { resolver?: (issuer: string, tenants: ReturnType<typeof tenantTable>) => ReturnType<PoolResolver> } = {}): Promise<Harness> {
  const tenants = tenantTable()
  const asked = new Map<string, number>()
  const { resolver, ...rest } = options
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, {
    userPools: async (iss) => {
      asked.set(iss, (asked.get(iss) ?? 0) + 1)
      if (resolver !== undefined) return await resolver(iss, tenants)
      const row = tenants.get(iss)
      return row && { userPoolId: row.poolId, clientId: row.clientId, jwksUri: host.uri(row.poolId), tokenUse: 'any', tenant: row.tenant }
    },
    ...rest
  } as CognitoAuthOptions)
  app.get('/me', { onRequest: app.authenticate }, async (request) => ({
    sub: request.cognitoClaims?.sub,
    tenant: request.cognitoPool?.tenant,
    userPoolId: request.cognitoPool?.userPoolId
  }))
  app.get('/admin', { config: { cognito: { groups: 'admin' } } }, async () => 'admin')
  await app.ready()
  return {
    app,
    tenants,
    asked,
    questions: () => [...asked.values()].reduce((a, b) => a + b, 0),
    get: (token, url = '/me') => app.inject({ url, headers: { authorization: `Bearer ${token}` } })
  }
}

t.before(() => host.listen())
t.teardown(() => host.close())

/** Lets a question asked in the background (the harness' resolver answers at once) be answered. */
async function answered (): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve))
}

/** Resolves once `check` holds; sockets close a moment after the key store lets them go. */
async function until (check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 2))
  if (!check()) throw new Error(`timed out waiting for ${what}`)
}

t.test(`${POOLS} tenants, each resolved once, each with its own keys`, async (t) => {
  const h = await harness(t)
  const before = host.total
  for (const [i, issuer] of issuers.entries()) {
    const res = await h.get(issuer.idToken({ sub: `user-${i}` }))
    t.equal(res.statusCode, 200, `tenant ${i}`)
    t.same(res.json(), { sub: `user-${i}`, tenant: { id: i, name: `tenant ${i}` }, userPoolId: issuer.userPoolId })
  }
  for (const issuer of issuers) t.equal((await h.get(issuer.accessToken())).statusCode, 200)
  t.equal(h.questions(), POOLS, 'one question per tenant')
  t.equal(host.total - before, POOLS, 'one JWKS fetch per tenant')
  const stores = h.app.cognitoKeyStores()
  t.equal(stores.length, POOLS, 'every resolved pool is reported')
  t.same(new Set(stores.map((store) => store.jwksUri)), new Set(issuers.map((issuer) => host.uri(issuer.userPoolId))))
  t.ok(stores.every((store) => store.keys === 1 && store.fetches === 1 && store.failures === 0))

  // A token of one tenant's pool signed with another tenant's key (its kid too) is refused.
  const [a, b] = issuers
  const crossed = b.sign({ ...claimsOf(a.idToken()) })
  const res = await h.get(crossed)
  t.equal(res.statusCode, 401)
  t.equal(res.headers['www-authenticate'], INVALID)

  const admin = await h.get(issuers[3].idToken({ 'cognito:groups': ['admin'] }), '/admin')
  t.equal(admin.statusCode, 200, 'config.cognito groups hold for resolved pools')
  t.equal((await h.get(issuers[3].idToken(), '/admin')).statusCode, 403)

  await h.app.close()
  await until(() => host.connections === 0, 'the key stores to close their connections')
  t.equal(host.connections, 0, 'closing the app closes every resolved pool\'s connections')
})

t.test('eviction beyond poolCache.max: the least recently used pool goes, and its key store with it', async (t) => {
  const h = await harness(t, { poolCache: { max: 10 } })
  const hot = issuers[0].idToken({ sub: 'hot' })
  // Sent twice: the second verification puts the token in the cache.
  t.equal((await h.get(hot)).statusCode, 200)
  t.equal((await h.get(hot)).statusCode, 200)
  for (const issuer of issuers.slice(1, 30)) t.equal((await h.get(issuer.idToken())).statusCode, 200)
  t.equal(h.app.cognitoKeyStores().length, 10, 'at most max pools')
  t.same(h.app.cognitoKeyStores().map((store) => store.jwksUri), issuers.slice(20, 30).map((issuer) => host.uri(issuer.userPoolId)), 'the most recently used ones')
  await until(() => host.connections <= 10, 'evicted stores to close their connections')
  t.ok(host.connections <= 10, 'evicted pools keep no connection open')
  t.equal(activeTimers(), 0, 'and no timer')

  const questions = h.questions()
  const fetches = host.requests.get(issuers[0].userPoolId)
  t.equal((await h.get(hot)).statusCode, 200, 'an evicted tenant comes back')
  t.equal(h.questions(), questions + 1, 'asked again: the cached token did not pass on the evicted pool')
  t.equal(host.requests.get(issuers[0].userPoolId), (fetches ?? 0) + 1, 'its keys fetched again')
})

t.test('a cached token keeps the latest answer, and its pool moves to the front of the LRU', async (t) => {
  const h = await harness(t, { poolCache: { max: 2 } })
  const [a, b, c] = issuers
  const token = a.idToken()
  await h.get(token)
  await h.get(token) // cached from here
  await h.get(b.idToken())
  t.equal((await h.get(token)).statusCode, 200, 'from the cache')
  await h.get(c.idToken()) // evicts b, the least recently used
  t.same(h.app.cognitoKeyStores().map((store) => store.jwksUri), [host.uri(a.userPoolId), host.uri(c.userPoolId)])
})

t.test('a tenant removed from the store stops being accepted once the resolver, asked again past poolCache.ttl, says so', async (t) => {
  const clock = fakeClock(t)
  const h = await harness(t, { poolCache: { ttl: 60 } })
  const [a, b] = issuers
  const token = a.idToken({ sub: 'leaving' })
  t.equal((await h.get(token)).statusCode, 200)
  t.equal((await h.get(token)).statusCode, 200)
  t.equal((await h.get(b.idToken())).statusCode, 200)
  h.tenants.delete(a.issuer)
  clock.tick(59_000)
  await clock.settle()
  t.equal((await h.get(token)).statusCode, 200, 'within the TTL the answer holds')
  t.equal(h.asked.get(a.issuer), 1)

  clock.tick(1000)
  await clock.settle()
  t.equal((await h.get(token)).statusCode, 200, 'past the TTL, the answer is served while the resolver is asked again')
  t.equal(h.asked.get(a.issuer), 2, 'asked again')
  await answered()
  const res = await h.get(token)
  t.equal(res.statusCode, 401, 'once it answered "not a tenant", the cached token is refused')
  t.equal(res.headers['www-authenticate'], INVALID)
  t.equal(h.asked.get(a.issuer), 2)
  t.equal((await h.get(a.idToken())).statusCode, 401, 'and so is any other token of the tenant')
  t.equal(h.asked.get(a.issuer), 2, '"not a tenant" is remembered')
  t.same(h.app.cognitoKeyStores().map((store) => store.jwksUri), [host.uri(b.userPoolId)], 'the removed pool is gone')
})

t.test('an unchanged answer keeps the keys; a changed one starts afresh', async (t) => {
  const clock = fakeClock(t)
  const h = await harness(t, { poolCache: { ttl: 60 } })
  const a = issuers[5]
  const token = a.idToken()
  await h.get(token)
  await h.get(token)
  const row = h.tenants.get(a.issuer)
  if (row === undefined) throw new Error('no row')
  row.tenant = { id: 5, name: 'renamed' }
  clock.tick(60_000)
  await clock.settle()
  t.same((await h.get(token)).json<{ tenant: Tenant }>().tenant, { id: 5, name: 'tenant 5' }, 'past the TTL, the answer held while the resolver is asked')
  await answered()
  const renamed = await h.get(token)
  t.equal(renamed.statusCode, 200)
  t.same(renamed.json<{ tenant: Tenant }>().tenant, { id: 5, name: 'renamed' }, 'the latest answer\'s tenant')
  t.same((await h.get(token)).json<{ tenant: Tenant }>().tenant, { id: 5, name: 'renamed' }, 'from the cache too')
  t.equal(h.app.cognitoKeyStores()[0].fetches, 1, 'the keys were kept')

  row.clientId = 'another-client'
  clock.tick(60_000)
  await clock.settle()
  t.equal((await h.get(token)).statusCode, 200, 'served while the resolver is asked')
  await answered()
  t.equal((await h.get(token)).statusCode, 401, 'the app client changed: the cached token is refused')
  t.equal((await h.get(a.idToken({ aud: 'another-client' }))).statusCode, 200)
  t.match(h.app.cognitoKeyStores(), [{ fetches: 1 }], 'a new key store, which fetched its keys')
  t.equal(host.requests.get(a.userPoolId) !== undefined, true)
})

t.test('key rotation in a resolved pool', async (t) => {
  const rotating = new LocalIssuer({ userPoolId: 'eu-west-1_Rotating', clientId: 'rotating' })
  byPoolId.set(rotating.userPoolId, rotating)
  t.teardown(() => { byPoolId.delete(rotating.userPoolId) })
  const h = await harness(t, {
    resolver: (iss) => iss === rotating.issuer ? { userPoolId: rotating.userPoolId, clientId: 'rotating', jwksUri: host.uri(rotating.userPoolId) } : null,
    jwksCache: { cooldown: 0 }
  })
  t.equal((await h.get(rotating.idToken())).statusCode, 200)
  rotating.rotate()
  t.equal((await h.get(rotating.idToken())).statusCode, 200, 'the new kid is fetched')
  t.match(h.app.cognitoKeyStores(), [{ keys: 2, fetches: 2 }])
  t.equal(h.questions(), 1, 'without asking the resolver again')
})

t.test('a resolver that answers another tenant\'s pool lets no token through', async (t) => {
  const [a, b] = issuers
  const before = host.total
  const h = await harness(t, {
    // A careless lookup: every issuer gets tenant b's pool.
    resolver: () => ({ userPoolId: b.userPoolId, clientId: b.clientId, jwksUri: host.uri(b.userPoolId) })
  })
  for (const token of [a.idToken(), a.idToken({ aud: b.clientId }), b.sign(claimsOf(a.idToken({ aud: b.clientId })))]) {
    const res = await h.get(token)
    t.equal(res.statusCode, 401)
    t.equal(res.headers['www-authenticate'], INVALID)
  }
  t.equal(host.total, before, 'no key fetched for it')
  t.equal(h.app.cognitoKeyStores().length, 0, 'and no pool kept')
  t.equal(h.asked.get(a.issuer), 1, 'the mismatch is remembered as no pool')
  t.equal((await h.get(b.idToken())).statusCode, 200, 'tenant b itself is fine')
})

t.test('a resolver that throws or rejects: 503, never a pass, never remembered', async (t) => {
  let failing = true
  let failure: unknown
  const [a] = issuers
  const h = await harness(t, {
    resolver: (iss, tenants) => {
      if (failing) {
        if (failure instanceof Error) throw failure
        return Promise.reject(failure) as never
      }
      const row = tenants.get(iss)
      return row === undefined ? null : { userPoolId: row.poolId, clientId: row.clientId, jwksUri: host.uri(row.poolId) }
    }
  })
  for (const reason of [new Error('database down'), 'a string', undefined]) {
    failure = reason
    const res = await h.get(a.idToken())
    t.equal(res.statusCode, 503)
    t.equal(res.json<{ code: string }>().code, 'FST_COGNITO_POOL_UNAVAILABLE')
    t.equal(res.headers['www-authenticate'], undefined, 'no challenge: the token is not at fault')
  }
  failing = false
  t.equal((await h.get(a.idToken())).statusCode, 200, 'once the resolver answers, the tenant is accepted')
})

t.test('an invalid answer: 500, logged, not remembered', async (t) => {
  const [a] = issuers
  let answer: unknown = { userPoolId: a.userPoolId, clientId: a.clientId, tenantId: 7 }
  const h = await harness(t, { resolver: () => answer as CognitoPoolAnswer })
  for (const bad of [answer, 'eu-central-1_Tenant0', { userPoolId: 'nope', clientId: 'x' }]) {
    answer = bad
    const res = await h.get(a.idToken())
    t.equal(res.statusCode, 500)
    t.equal(res.json<{ code: string }>().code, 'FST_COGNITO_HOOK_FAILED')
    t.equal(res.headers['www-authenticate'], undefined)
  }
  answer = { userPoolId: a.userPoolId, clientId: a.clientId, jwksUri: host.uri(a.userPoolId) }
  t.equal((await h.get(a.idToken())).statusCode, 200)
  t.equal(h.asked.get(a.issuer), 4, 'asked each time')
})

t.test('"not a tenant": 401, no key fetched, remembered for poolCache.unknownTtl', async (t) => {
  const clock = fakeClock(t)
  const stranger = new LocalIssuer({ userPoolId: 'eu-west-1_Stranger', clientId: 'client-0' })
  const before = host.total
  const h = await harness(t, { poolCache: { unknownTtl: 30 } })
  for (let i = 0; i < 5; i++) {
    const res = await h.get(stranger.idToken())
    t.equal(res.statusCode, 401)
    t.equal(res.headers['www-authenticate'], INVALID)
  }
  t.equal(h.asked.get(stranger.issuer), 1, 'one question')
  clock.tick(30_000)
  await clock.settle()
  t.equal((await h.get(stranger.idToken())).statusCode, 401)
  t.equal(h.asked.get(stranger.issuer), 2, 'asked again past unknownTtl')
  t.equal(host.total, before, 'no key fetched')
  // The store may learn of the tenant later.
  byPoolId.set(stranger.userPoolId, stranger)
  t.teardown(() => { byPoolId.delete(stranger.userPoolId) })
  h.tenants.set(stranger.issuer, { poolId: stranger.userPoolId, clientId: stranger.clientId, tenant: { id: 99, name: 'new' } })
  clock.tick(30_000)
  await clock.settle()
  t.equal((await h.get(stranger.idToken())).statusCode, 200, 'a new tenant is accepted once unknownTtl has passed')
})

t.test('500 concurrent first requests of a new tenant: one question, one key fetch', async (t) => {
  const h = await harness(t)
  const a = issuers[7]
  const before = host.requests.get(a.userPoolId) ?? 0
  const responses = await Promise.all(Array.from({ length: 500 }, () => h.get(a.idToken())))
  t.ok(responses.every((res) => res.statusCode === 200), 'all accepted')
  t.equal(h.asked.get(a.issuer), 1)
  t.equal((host.requests.get(a.userPoolId) ?? 0) - before, 1)
})

t.test('only Cognito issuers are asked about, unless a prefix is allowed', async (t) => {
  const local = new LocalIssuer({ userPoolId: 'local_Emulated', clientId: 'local', issuer: 'http://127.0.0.1:9229/local_Emulated' })
  byPoolId.set(local.userPoolId, local)
  t.teardown(() => { byPoolId.delete(local.userPoolId) })
  const answer = (): CognitoPoolAnswer => ({ userPoolId: local.userPoolId, clientId: 'local', issuer: local.issuer, jwksUri: host.uri(local.userPoolId) })

  const strict = await harness(t, { resolver: answer })
  const refusedIssuers = [
    local.issuer,
    'https://cognito-idp.eu-central-1.amazonaws.com/us-east-1_WrongRegion',
    'https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_Tenant0/',
    'http://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_Tenant0',
    'https://attacker.example/eu-central-1_Tenant0'
  ]
  for (const iss of refusedIssuers) {
    const res = await strict.get(local.idToken({ iss }))
    t.equal(res.statusCode, 401, iss)
  }
  t.equal(strict.questions(), 0, 'none of them was asked about')

  const open = await harness(t, { resolver: answer, resolverIssuerPrefixes: ['http://127.0.0.1:'] })
  t.equal((await open.get(local.idToken())).statusCode, 200, 'an allowed prefix is asked about')
  t.equal((await open.get(local.idToken({ iss: `http://127.0.0.1:9229/${'x'.repeat(600)}` }))).statusCode, 401, 'an overlong issuer is not')
  t.equal(open.questions(), 1)
})

t.test('request.cognitoPool for pools listed up front: their entry, frozen', async (t) => {
  const [a, b] = issuers
  for (const options of [{ ...a.pluginOptions() }, { userPools: [a.pluginOptions(), b.pluginOptions()] }] as CognitoAuthOptions[]) {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(cognitoAuth, options)
    app.get('/', { onRequest: app.authenticate }, async (request) => ({ pool: request.cognitoPool, frozen: Object.isFrozen(request.cognitoPool) }))
    const res = await app.inject({ url: '/', headers: { authorization: `Bearer ${a.idToken()}` } })
    t.same(res.json(), { pool: { userPoolId: a.userPoolId, clientId: a.clientId, jwksUri: false, jwks: a.jwks }, frozen: true })
  }
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, { ...a.pluginOptions(), resolveUser: async (claims) => claims })
  app.get('/', { onRequest: app.authenticate }, async (request) => request.cognitoPool?.userPoolId)
  t.equal((await app.inject({ url: '/', headers: { authorization: `Bearer ${a.idToken()}` } })).body, a.userPoolId, 'with resolveUser too')
})

t.test('options of the resolver are checked at register', async (t) => {
  const resolver = (): null => null
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ userPools: resolver, poolCache: { max: 10, tll: 5 } }, /poolCache\.tll: is not an option; did you mean ttl\?/],
    [{ userPools: resolver, poolCache: 5 }, /poolCache: must be an object/],
    [{ userPools: resolver, poolCache: { capacity: 5 } }, /poolCache\.capacity: is not an option; expected one of max, ttl, unknownTtl, newIssuerRate/],
    [{ userPools: resolver, poolCache: { newIssuersRate: 5 } }, /poolCache\.newIssuersRate: is not an option; did you mean newIssuerRate\?/],
    [{ userPools: resolver, poolCache: { newIssuerRate: 0 } }, /poolCache\.newIssuerRate: must be a positive integer/],
    [{ userPools: resolver, poolCache: { newIssuerRate: 2.5 } }, /poolCache\.newIssuerRate: must be a positive integer/],
    [{ userPools: resolver, poolCache: { newIssuerRate: '100' } }, /poolCache\.newIssuerRate: must be a positive integer/],
    [{ userPools: resolver, poolCache: { max: 0 } }, /poolCache\.max: must be a positive integer/],
    [{ userPools: resolver, poolCache: { ttl: 0 } }, /poolCache\.ttl: must be a positive number/],
    [{ userPools: resolver, poolCache: { unknownTtl: -1 } }, /poolCache\.unknownTtl/],
    [{ userPools: resolver, resolverIssuerPrefixes: 'http://' }, /resolverIssuerPrefixes: each prefix must start/],
    [{ userPools: resolver, resolverIssuerPrefixes: [] }, /resolverIssuerPrefixes: must be a non-empty string/],
    [{ userPools: resolver, userPoolId: 'eu-central-1_X' }, /userPools: cannot be combined with top-level userPoolId/],
    [{ userPools: [issuers[0].pluginOptions()], poolCache: {} }, /poolCache: applies only when userPools is a function/],
    [{ ...issuers[0].pluginOptions(), resolverIssuerPrefixes: 'http://127.0.0.1:' }, /resolverIssuerPrefixes: applies only when userPools is a function/],
    [{ userPools: 'eu-central-1_X' }, /userPools: must be a non-empty array, or a function/]
  ]
  for (const [options, message] of cases) {
    t.throws(() => parseOptions(options as unknown as CognitoAuthOptions), { code: 'FST_COGNITO_INVALID_OPTION', message }, message.source)
  }
  const parsed = parseOptions({ userPools: resolver })
  t.match(parsed.resolver, { max: 5000, ttlMs: 300_000, unknownTtlMs: 60_000, newIssuerRate: 100, issuerPrefixes: [] }, 'defaults')
  t.same(parsed.pools, [])
})

t.test('a flood of random issuers: bounded questions and memory, no key fetch', async (t) => {
  let running = 0
  let peak = 0
  let questions = 0
  const settings = parseOptions({
    userPools: async () => {
      questions++
      running++
      peak = Math.max(peak, running)
      await new Promise((resolve) => setImmediate(resolve))
      running--
      return null
    },
    poolCache: { max: 100 }
  })
  const verifier = new CognitoVerifier({ ...settings, log: Fastify().log })
  t.teardown(() => verifier.close())
  const directory = verifier.directory as ResolvingDirectory
  const before = host.total
  const forged = new LocalIssuer({ userPoolId: 'eu-central-1_Forger' })
  const random = (i: number): string => `https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_R${i.toString(36)}x${Math.random().toString(36).slice(2, 10)}`

  const outcomes = await Promise.allSettled(Array.from({ length: 10_000 }, (_, i) =>
    Promise.resolve().then(() => verifier.verify(forged.idToken({ iss: random(i) })))))
  const codes = new Map<string, number>()
  for (const outcome of outcomes) {
    const code = outcome.status === 'rejected' ? (outcome.reason as { code: string }).code : 'passed'
    codes.set(code, (codes.get(code) ?? 0) + 1)
  }
  t.same([...codes.keys()].sort(), ['FST_COGNITO_POOL_UNAVAILABLE', 'FST_COGNITO_TOKEN_INVALID'], 'each refused: not a pool, or too many questions')
  t.ok(peak <= 32, `at most 32 questions at once (${peak})`)
  t.ok(questions <= 32 + 1000, `the rest waited or was refused without a question (${questions})`)
  t.match(directory.sizes(), { pools: 0, asking: 0, waiting: 0 })
  t.ok(directory.sizes().unknown <= 100, 'at most max issuers remembered as no pool')
  t.equal(host.total, before, 'no key fetched')
  t.same(verifier.pools, [])

  // Issuers of no Cognito form cost no question at all.
  const asked = questions
  for (let i = 0; i < 10_000; i++) {
    t.throws(() => verifier.verify(forged.idToken({ iss: `https://evil.example/${i}` })), { code: 'FST_COGNITO_TOKEN_INVALID' })
  }
  t.equal(questions, asked)
  t.ok(directory.sizes().unknown <= 100)
})

t.test('an answer that arrives after the server closed installs no pool', async (t) => {
  let answer: (value: CognitoPoolAnswer) => void = () => {}
  const [a] = issuers
  const h = await harness(t, { resolver: () => new Promise<CognitoPoolAnswer>((resolve) => { answer = resolve }) })
  const pending = h.get(a.idToken())
  await until(() => h.questions() === 1, 'the question')
  await h.app.close()
  answer({ userPoolId: a.userPoolId, clientId: a.clientId, jwksUri: host.uri(a.userPoolId) })
  const res = await pending
  t.equal(res.statusCode, 503)
  t.equal(h.app.cognitoKeyStores().length, 0)
})

/** Timers of the process that keep it alive: none is left by an evicted key store. */
function activeTimers (): number {
  return process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length
}

function claimsOf (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8')) as Record<string, unknown>
}

t.test('a resolver that throws synchronously is refused the same way', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, { userPools: () => { throw new Error('no connection') } })
  app.get('/', { onRequest: app.authenticate }, async () => 'passed')
  const res = await app.inject({ url: '/', headers: { authorization: `Bearer ${issuers[0].idToken()}` } })
  t.equal(res.statusCode, 503)
  t.equal(res.json<{ code: string }>().code, 'FST_COGNITO_POOL_UNAVAILABLE')
})

t.test('an answer with its keys up front and every app client: no fetch; new keys, a new pool', async (t) => {
  const clock = fakeClock(t)
  const a = new LocalIssuer({ userPoolId: 'eu-north-1_KeysUpFront', clientId: 'any-client' })
  let jwks = a.jwks
  const before = host.total
  const h = await harness(t, {
    resolver: (iss) => iss === a.issuer ? { userPoolId: a.userPoolId, clientId: null, jwksUri: false, jwks } : null,
    poolCache: { ttl: 60 }
  })
  const token = a.idToken({ aud: 'whatever-client' })
  t.equal((await h.get(token)).statusCode, 200)
  t.equal((await h.get(token)).statusCode, 200)
  t.match(h.app.cognitoKeyStores(), [{ jwksUri: null, keys: 1, fetches: 0 }])
  a.rotate({ keepOld: false })
  jwks = a.jwks
  clock.tick(60_000)
  await clock.settle()
  t.equal((await h.get(token)).statusCode, 200, 'served while the resolver is asked')
  await answered()
  t.equal((await h.get(token)).statusCode, 401, 'the old key is gone with the old answer')
  t.equal((await h.get(a.idToken())).statusCode, 200, 'the new key is the pool\'s')
  t.equal(host.total, before, 'nothing fetched')
})

t.test('revocation and JWKS outages hold for resolved pools as for configured ones', async (t) => {
  const [a, b] = issuers
  const revoked = new Set<string>()
  const h = await harness(t, {
    isRevoked: async (claims) => revoked.has(claims.sub),
    resolver: (iss, tenants) => {
      const row = tenants.get(iss)
      // Tenant b's JWKS URI names no pool of the host: its fetch fails (404).
      return row && { userPoolId: row.poolId, clientId: row.clientId, jwksUri: host.uri(iss === b.issuer ? 'eu-central-1_Gone' : row.poolId) }
    }
  })
  const token = a.idToken({ sub: 'alice' })
  t.equal((await h.get(token)).statusCode, 200)
  revoked.add('alice')
  const res = await h.get(token)
  t.equal(res.statusCode, 401)
  t.equal(res.json<{ code: string }>().code, 'FST_COGNITO_TOKEN_REVOKED')

  const down = await h.get(b.idToken())
  t.equal(down.statusCode, 503)
  t.equal(down.json<{ code: string }>().code, 'FST_COGNITO_JWKS_UNAVAILABLE')
  t.match(h.app.cognitoKeyStores().find((store) => store.jwksUri === host.uri('eu-central-1_Gone')), { failures: 1, keys: 0 })
})

t.test('the revocation list holds for resolved pools: a session revoked, a user of a tenant signed out', async (t) => {
  const [a, b] = issuers
  const h = await harness(t, { revocation: { store: 'memory' } })
  const originJti = 'sign-in-of-alice'
  const session = a.idToken({ sub: 'alice', origin_jti: originJti })
  const sameSignIn = a.accessToken({ sub: 'alice', origin_jti: originJti })
  const me = await h.get(session)
  t.equal(me.statusCode, 200)
  await h.app.cognitoRevocation.revokeSession({ iss: a.issuer, origin_jti: originJti })
  t.equal((await h.get(session)).json<{ code: string }>().code, 'FST_COGNITO_TOKEN_REVOKED', 'the revoked session, from the token cache or not')
  t.equal((await h.get(sameSignIn)).json<{ code: string }>().code, 'FST_COGNITO_TOKEN_REVOKED', 'every token of that sign-in')

  // A user is signed out by the issuer of the tenant's pool, known only to the resolver.
  const bob = b.idToken({ sub: 'bob', auth_time: Math.floor(Date.now() / 1000) - 10 })
  t.equal((await h.get(bob)).statusCode, 200)
  await h.app.cognitoRevocation.signOutUser({ iss: b.issuer, sub: 'bob' })
  t.equal((await h.get(bob)).json<{ code: string }>().code, 'FST_COGNITO_TOKEN_REVOKED', 'bob, signed out')
  t.equal((await h.get(a.idToken({ sub: 'bob', auth_time: Math.floor(Date.now() / 1000) - 10 }))).statusCode, 200, 'a user of the same sub in another tenant is not')
  await t.rejects(h.app.cognitoRevocation.signOutUser({ iss: 'https://example.com/eu-central-1_Tenant1', sub: 'bob' }), /not an issuer of the user pools/,
    'an issuer the resolver would never be asked about is a mistake, not a revocation')
})
