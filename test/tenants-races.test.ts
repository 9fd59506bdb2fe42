/**
 * Tenant pools under attack and races: a flood of forged issuers against a slow resolver while a
 * held tenant's answer runs out, refreshes that fail, answers that change what is accepted, falsy
 * answers, forged headers, a pool discarded while its keys are fetched, and the directory's events.
 * Pools have their keys up front (no JWKS server) unless the test is about fetching them.
 */
import * as diagnostics from 'node:diagnostics_channel'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import cognitoAuth, { channels, type CognitoAuthOptions, type CognitoPoolAnswer, type CognitoPoolEvent, type PoolResolver } from '../index'
import { parseOptions } from '../lib/options'
import type { Pool } from '../lib/pools/pool'
import type { PoolRemovalCause } from '../lib/pools/directory'
import { CognitoVerifier } from '../lib/verify'
import { LocalIssuer } from '../testing'
import { fakeClock } from './helpers/clock'

const tenant = new LocalIssuer({ userPoolId: 'eu-central-1_RealTenant', clientId: 'real-client' })
const other = new LocalIssuer({ userPoolId: 'us-east-1_OtherTenant', clientId: 'other-client' })
/** Signs the forged tokens' claims; the key is no pool's, and the issuers are random. */
const forger = new LocalIssuer({ userPoolId: 'eu-central-1_Forger' })

function answerOf (issuer: LocalIssuer, extra: Partial<CognitoPoolAnswer> = {}): CognitoPoolAnswer {
  return { userPoolId: issuer.userPoolId, clientId: issuer.clientId, jwksUri: false, jwks: issuer.jwks, ...extra }
}

/** A well-formed Cognito issuer nobody has: the region of the host is the pool id's. */
function randomIssuer (): string {
  return `https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_${Math.random().toString(36).slice(2, 12)}`
}

function b64 (value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

/** A token that names `iss`, with a signature nobody made: the issuer is asked about before any signature is checked. */
function forged (iss: string, header: Record<string, unknown> = { alg: 'RS256', kid: forger.kid }): string {
  return `${b64(header)}.${b64({ iss, sub: 'mallory', token_use: 'id' })}.${'A'.repeat(342)}`
}

/** Subscribes to the directory's channel for the test's duration. */
function listen (t: Test): CognitoPoolEvent[] {
  const heard: CognitoPoolEvent[] = []
  const onMessage = (message: unknown): void => { heard.push(message as CognitoPoolEvent) }
  diagnostics.subscribe(channels.pools, onMessage)
  t.teardown(() => diagnostics.unsubscribe(channels.pools, onMessage))
  return heard
}

/** Questions the resolver was asked and has not answered yet, answered by the test. */
class SlowResolver {
  readonly asked: string[] = []
  private readonly pending: Array<() => void> = []

  constructor (private readonly answer: (issuer: string) => CognitoPoolAnswer | null) {}

  readonly resolve: PoolResolver = async (issuer) => {
    this.asked.push(issuer)
    await new Promise<void>((resolve) => this.pending.push(resolve))
    return this.answer(issuer)
  }

  /** Answers every question asked so far. */
  release (): void {
    for (const answer of this.pending.splice(0)) answer()
  }
}

interface App {
  app: FastifyInstance
  get: (token: string) => Promise<LightMyRequestResponse>
  /** Requests that have reached `authenticate`. */
  readonly arrived: number
}

async function build (t: Test, options: Partial<CognitoAuthOptions>): Promise<App> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, options as CognitoAuthOptions)
  let arrived = 0
  app.addHook('onRequest', (_request, _reply, done) => {
    arrived++
    done()
  })
  app.get('/me', { onRequest: app.authenticate }, async (request) => ({ sub: request.cognitoClaims?.sub, tenant: request.cognitoPool?.tenant }))
  await app.ready()
  return {
    app,
    get: (token) => app.inject({ url: '/me', headers: { authorization: `Bearer ${token}` } }),
    get arrived () { return arrived }
  }
}

/** Lets questions answered at once (or just released) settle, and the requests waiting on them. */
async function settle (): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve))
}

async function until (check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000 && !check(); i++) await new Promise((resolve) => setImmediate(resolve))
  if (!check()) throw new Error(`timed out waiting for ${what}`)
}

function codeOf (res: LightMyRequestResponse): string {
  return res.statusCode === 200 ? 'passed' : res.json<{ code: string }>().code
}

function count (values: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1
  return counts
}

t.test('1,100 forged issuers against a slow resolver: a held tenant whose ttl ran out keeps passing, the resolver is asked a bounded number of times', async (t) => {
  const clock = fakeClock(t)
  const resolver = new SlowResolver((issuer) => issuer === tenant.issuer ? answerOf(tenant, { tenant: 'real' }) : null)
  const events = listen(t)
  // The tenant's first answer comes at once; from then on every question hangs until released.
  let first = true
  const h = await build(t, {
    userPools: async (issuer) => {
      if (first && issuer === tenant.issuer) {
        first = false
        return answerOf(tenant, { tenant: 'real' })
      }
      return await resolver.resolve(issuer)
    },
    poolCache: { ttl: 60, max: 100 }
  })
  const cached = tenant.idToken({ sub: 'cached' })
  t.equal(codeOf(await h.get(cached)), 'passed')
  t.equal(codeOf(await h.get(cached)), 'passed', 'and now in the verified-token cache')
  clock.tick(60_000)
  await clock.settle()

  // The flood: every request reaches the directory before the tenant's.
  const flood = Array.from({ length: 1100 }, () => h.get(forged(randomIssuer())))
  await until(() => h.arrived === 2 + 1100, 'the flood to reach authenticate')
  await settle()
  t.equal(codeOf(await h.get(cached)), 'passed', 'a token from the verified-token cache passes')
  t.equal(codeOf(await h.get(tenant.idToken({ sub: 'fresh' }))), 'passed', 'a token verified now passes')
  t.same((await h.get(tenant.idToken({ sub: 'tenant data' }))).json(), { sub: 'tenant data', tenant: 'real' })
  const strangers = (): number => resolver.asked.filter((issuer) => issuer !== tenant.issuer).length
  t.equal(strangers(), 32, 'a few questions about strangers at a time')
  t.equal(resolver.asked.filter((issuer) => issuer === tenant.issuer).length, 1, 'the tenant\'s refresh: one question, under way')

  const outcomes = count((await Promise.all(flood.concat(releaseSoon(resolver)))).filter((res) => res.statusCode !== 0).map(codeOf))
  t.equal(strangers(), 100, 'the resolver was asked about poolCache.newIssuerRate (100) strangers, no more')
  t.same(outcomes, { FST_COGNITO_TOKEN_INVALID: 100, FST_COGNITO_POOL_UNAVAILABLE: 1000 }, 'the strangers asked about are no pool; the others were refused for load')
  const refused = events.filter((event) => event.event === 'refused')
  t.equal(refused.length, 1000, 'each refusal is an event')
  t.match(refused[0], { event: 'refused', reason: 'poolCache.newIssuerRate reached', pools: 1 })
  t.match(events.filter((event) => event.issuer === tenant.issuer && event.event === 'answered'), [{ refresh: false }, { refresh: true, changed: false }], 'the tenant\'s first answer, then its refresh')

  // A second later, a second flood: as many questions again, no more.
  clock.tick(1000)
  await clock.settle()
  const again = await Promise.all(Array.from({ length: 1100 }, () => h.get(forged(randomIssuer()))).concat(releaseSoon(resolver)))
  t.equal(again.filter((res) => res.statusCode === 503).length, 1000)
  t.equal(strangers(), 200, 'resolver calls grow with time, not with the issuers sent')
  t.equal(codeOf(await h.get(cached)), 'passed')
})

/** Answers the resolver's questions as they come, until the requests waiting on them are done. */
function releaseSoon (resolver: SlowResolver): Promise<LightMyRequestResponse> {
  return (async () => {
    for (let i = 0; i < 200; i++) {
      await new Promise((resolve) => setImmediate(resolve))
      resolver.release()
    }
    return { statusCode: 0 } as LightMyRequestResponse
  })()
}

t.test('a refresh that fails keeps serving the held answer for poolCache.ttl more, then the pool\'s tokens wait on the resolver', async (t) => {
  const clock = fakeClock(t)
  let failing = false
  const events = listen(t)
  const h = await build(t, {
    userPools: (issuer) => {
      if (failing) throw new Error('the tenant table is down')
      return issuer === tenant.issuer ? answerOf(tenant) : null
    },
    poolCache: { ttl: 60 }
  })
  const cached = tenant.idToken()
  await h.get(cached)
  await h.get(cached)
  failing = true
  clock.tick(60_000)
  await clock.settle()
  t.equal(codeOf(await h.get(cached)), 'passed', 'past the ttl, served while refreshed')
  await settle()
  t.match(events.filter((event) => event.event === 'failed'), [{ issuer: tenant.issuer, refresh: true, reason: 'the resolver failed', pools: 1 }])
  clock.tick(59_999)
  await clock.settle()
  t.equal(codeOf(await h.get(cached)), 'passed', 'a failed refresh keeps the answer, up to ttl past its time')
  t.equal(codeOf(await h.get(tenant.idToken({ sub: 'new' }))), 'passed')
  await settle()
  clock.tick(1)
  await clock.settle()
  t.equal(codeOf(await h.get(cached)), 'FST_COGNITO_POOL_UNAVAILABLE', 'then a cached token waits on the resolver, which fails')
  t.equal(codeOf(await h.get(tenant.idToken({ sub: 'new' }))), 'FST_COGNITO_POOL_UNAVAILABLE', 'and so does any other')
  failing = false
  t.equal(codeOf(await h.get(cached)), 'passed', 'the resolver answers again: accepted')
  t.equal(h.app.cognitoKeyStores().length, 1, 'the same pool all along')
})

t.test('every field of an answer that decides acceptance is compared: a changed audience or token use refuses cached tokens', async (t) => {
  const clock = fakeClock(t)
  let answer = answerOf(tenant, { tokenUse: 'access', audience: 'api-a' })
  const h = await build(t, { userPools: () => answer, poolCache: { ttl: 60 } })
  const apiA = tenant.accessToken({ aud: 'api-a' })
  t.equal(codeOf(await h.get(apiA)), 'passed')
  t.equal(codeOf(await h.get(apiA)), 'passed', 'cached')

  answer = answerOf(tenant, { tokenUse: 'access', audience: 'api-b' })
  clock.tick(60_000)
  await clock.settle()
  await h.get(apiA) // past the ttl: the answer is asked again
  await settle()
  t.equal(codeOf(await h.get(apiA)), 'FST_COGNITO_TOKEN_INVALID', 'the tenant moved to api-b: its cached api-a token is refused')
  t.equal(codeOf(await h.get(tenant.accessToken({ aud: 'api-b' }))), 'passed')

  const id = tenant.idToken()
  answer = answerOf(tenant, { tokenUse: 'any', audience: 'api-b' })
  clock.tick(60_000)
  await clock.settle()
  await h.get(apiA)
  await settle()
  t.equal(codeOf(await h.get(id)), 'passed')
  t.equal(codeOf(await h.get(id)), 'passed', 'cached')
  answer = answerOf(tenant, { tokenUse: 'access', audience: 'api-b' })
  clock.tick(60_000)
  await clock.settle()
  await h.get(apiA)
  await settle()
  t.equal(codeOf(await h.get(id)), 'FST_COGNITO_TOKEN_INVALID', 'ID tokens no longer accepted: the cached one is refused')
})

t.test('a falsy answer is "not a tenant": 401, remembered, nothing logged', async (t) => {
  for (const falsy of [false, 0, '', null, undefined]) {
    let asked = 0
    const logged: unknown[] = []
    const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { logged.push(line) } } } })
    t.teardown(() => app.close())
    await app.register(cognitoAuth, {
      userPools: (issuer: string) => {
        asked++
        // Plain JavaScript's `known.has(iss) && { ... }`.
        return (issuer === other.issuer && answerOf(other)) || falsy
      }
    } as unknown as CognitoAuthOptions)
    app.get('/', { onRequest: app.authenticate }, async () => 'passed')
    for (let i = 0; i < 3; i++) {
      const res = await app.inject({ url: '/', headers: { authorization: `Bearer ${tenant.idToken()}` } })
      t.equal(res.statusCode, 401, `${JSON.stringify(falsy)}: refused as no pool`)
      t.equal(res.json<{ code: string }>().code, 'FST_COGNITO_TOKEN_INVALID')
    }
    t.equal(asked, 1, `${JSON.stringify(falsy)}: asked once, then remembered`)
    t.same(logged, [], 'no error logged')
    t.equal((await app.inject({ url: '/', headers: { authorization: `Bearer ${other.idToken()}` } })).statusCode, 200)
  }
})

t.test('20,000 refused tokens with distinct 8 KB headers leave the heap bounded', async (t) => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const verifier = new CognitoVerifier({ ...parseOptions({ userPools: () => null, maxTokenLength: 16_384 }), log: Fastify().log })
  t.teardown(() => verifier.close())
  const padding = 'p'.repeat(6000)
  t.ok(forged('https://evil.example/pool', { alg: 'RS256', kid: 'k', pad: padding }).indexOf('.') > 8000, 'an 8 KB header')
  gc()
  const before = process.memoryUsage().heapUsed
  const codes: string[] = []
  for (let i = 0; i < 20_000; i++) {
    const token = forged('https://evil.example/pool', { alg: 'RS256', kid: `k${i}`, pad: `${i}${padding}` })
    try {
      verifier.verify(token)
      codes.push('passed')
    } catch (err) {
      codes.push((err as { code: string }).code)
    }
  }
  t.same(count(codes), { FST_COGNITO_TOKEN_INVALID: 20_000 }, 'each refused')
  gc()
  const grown = process.memoryUsage().heapUsed - before
  // Kept whole, the headers would take 160 MB.
  t.ok(grown < 32 * 1024 * 1024, `the heap grew by ${(grown / 1024 / 1024).toFixed(1)} MB`)
})

t.test('a verified header is remembered only when of a sane size; either way its tokens pass', async (t) => {
  const verifier = new CognitoVerifier({ ...parseOptions({ userPools: () => answerOf(tenant), tokenCache: false }), log: Fastify().log })
  t.teardown(() => verifier.close())
  for (const header of [{}, { pad: 'x'.repeat(300) }]) {
    const token = tenant.idToken({}, { header })
    for (let i = 0; i < 2; i++) {
      const verified = await verifier.verify(token)
      t.equal(verified.claims.iss, tenant.issuer)
    }
  }
})

t.test('a pool discarded while its keys are fetched: no key installed, the request is not let through', async (t) => {
  const served = new LocalIssuer({ userPoolId: 'eu-west-2_Fetched', clientId: 'fetched' })
  await served.listen()
  t.teardown(() => served.close())
  const verifier = new CognitoVerifier({ ...parseOptions({ userPools: () => ({ userPoolId: served.userPoolId, clientId: served.clientId, jwksUri: served.jwksUri }) }), log: Fastify().log })
  t.teardown(() => verifier.close())
  // The moment the JWKS response is complete, and before the store has read it, the pool goes
  // (as when it is evicted, or the resolver's answer changed): the server closing does the same.
  const onTrailers = (): void => {
    diagnostics.unsubscribe('undici:request:trailers', onTrailers)
    for (const pool of verifier.pools) pool.store.discard()
  }
  diagnostics.subscribe('undici:request:trailers', onTrailers)
  t.teardown(() => diagnostics.unsubscribe('undici:request:trailers', onTrailers))
  await t.rejects(Promise.resolve().then(() => verifier.verify(served.idToken())), { code: 'FST_COGNITO_JWKS_UNAVAILABLE' })
  const [pool] = verifier.pools
  t.match(pool.store.stats(), { keys: 0, fetches: 1 }, 'the discarded store holds no key')
  t.equal(pool.store.get(served.kid), undefined)
})

t.test('onRemoved: told of each pool that stops being accepted, not of an unchanged answer', async (t) => {
  const clock = fakeClock(t)
  const answers = new Map<string, CognitoPoolAnswer | null>([[tenant.issuer, answerOf(tenant)], [other.issuer, answerOf(other)]])
  const logged: string[] = []
  const log = Fastify().log
  log.error = ((_details: unknown, message: string) => { logged.push(message) }) as typeof log.error
  const verifier = new CognitoVerifier({ ...parseOptions({ userPools: (issuer) => answers.get(issuer), poolCache: { ttl: 60, max: 1 } }), log })
  t.teardown(() => verifier.close())
  const removed: Array<[string, Pool, PoolRemovalCause]> = []
  verifier.directory.onRemoved(() => { throw new Error('a careless listener') })
  verifier.directory.onRemoved((issuer, pool, cause) => { removed.push([issuer, pool, cause]) })

  const first = await verifier.verify(tenant.idToken())
  await verifier.verify(other.idToken()) // max 1: the tenant's pool is evicted
  t.same(removed.map(([issuer, , cause]) => [issuer, cause]), [[tenant.issuer, 'evicted']], 'evicted')
  t.equal(removed[0][1].store, first.pool.store)
  t.same(logged, ['cognito: a listener of removed pools threw'], 'a listener that throws is logged; the others are told')

  const held = verifier.pools[0]
  clock.tick(60_000)
  await verifier.verify(other.idToken())
  await settle()
  t.equal(removed.length, 1, 'an unchanged answer removes nothing')
  t.equal(verifier.pools[0].store, held.store)

  answers.set(other.issuer, answerOf(other, { clientId: 'moved' }))
  clock.tick(60_000)
  await verifier.verify(other.idToken())
  await settle()
  t.same(removed.map(([issuer, , cause]) => [issuer, cause]), [[tenant.issuer, 'evicted'], [other.issuer, 'changed']], 'a changed answer replaces the pool')
  t.equal(removed[1][1].store, held.store)

  answers.set(other.issuer, null)
  clock.tick(60_000)
  await verifier.verify(other.idToken({ aud: 'moved' }))
  await settle()
  t.same(removed[2]?.[2], 'unknown', 'the resolver no longer answers it')
  t.equal(removed.length, 3)
  t.same(verifier.pools, [])

  const single = new CognitoVerifier({ ...parseOptions(tenant.pluginOptions()), log })
  single.directory.onRemoved(() => { throw new Error('never called') })
  single.close()
})

t.test('the pools channel tells what the directory does', async (t) => {
  const clock = fakeClock(t)
  const events = listen(t)
  let answer: unknown = answerOf(tenant)
  const slow = new SlowResolver(() => null)
  const verifier = new CognitoVerifier({
    ...parseOptions({
      userPools: (issuer) => issuer === tenant.issuer ? answer as CognitoPoolAnswer : issuer === other.issuer ? answerOf(other) : slow.resolve(issuer),
      poolCache: { ttl: 60, max: 1, newIssuerRate: 2000 }
    }),
    log: Fastify().log
  })
  t.teardown(() => verifier.close())
  const strip = ({ durationMs, ...event }: CognitoPoolEvent): Omit<CognitoPoolEvent, 'durationMs'> => {
    if (event.event !== 'asked' && event.event !== 'evicted' && event.event !== 'refused') t.type(durationMs, 'number')
    return event
  }

  await verifier.verify(tenant.idToken())
  await verifier.verify(other.idToken())
  clock.tick(60_000)
  await verifier.verify(other.idToken())
  await settle()
  answer = { userPoolId: 'not a pool id' }
  await t.rejects(Promise.resolve().then(() => verifier.verify(tenant.idToken())), { code: 'FST_COGNITO_HOOK_FAILED' })
  answer = answerOf(other)
  await t.rejects(Promise.resolve().then(() => verifier.verify(tenant.idToken())), { code: 'FST_COGNITO_TOKEN_INVALID' })
  t.same(events.map(strip), [
    { event: 'asked', issuer: tenant.issuer, pools: 0, refresh: false },
    { event: 'answered', issuer: tenant.issuer, pools: 1, refresh: false, changed: false },
    { event: 'asked', issuer: other.issuer, pools: 1, refresh: false },
    { event: 'evicted', issuer: tenant.issuer, pools: 1 },
    { event: 'answered', issuer: other.issuer, pools: 1, refresh: false, changed: false },
    { event: 'asked', issuer: other.issuer, pools: 1, refresh: true },
    { event: 'answered', issuer: other.issuer, pools: 1, refresh: true, changed: false },
    { event: 'asked', issuer: tenant.issuer, pools: 1, refresh: false },
    { event: 'failed', issuer: tenant.issuer, pools: 1, refresh: false, reason: 'the resolver answered an invalid pool' },
    { event: 'asked', issuer: tenant.issuer, pools: 1, refresh: false },
    { event: 'unknown', issuer: tenant.issuer, pools: 1, refresh: false, reason: 'the resolver answered a pool of other issuers' }
  ])

  // More questions about strangers than may run and wait: the rest refused, each an event.
  events.length = 0
  const flood = Array.from({ length: 1100 }, () => Promise.resolve().then(() => verifier.verify(forged(randomIssuer()))))
  const outcomes = await Promise.allSettled([...flood, releaseSoon(slow)])
  t.equal(outcomes.filter((outcome) => outcome.status === 'rejected' && (outcome.reason as { code: string }).code === 'FST_COGNITO_POOL_UNAVAILABLE').length, 1100 - 32 - 1000)
  t.same(count(events.map((event) => `${event.event} ${event.reason ?? ''}`)), {
    'refused too many questions waiting': 68,
    'asked ': 1032,
    'unknown the resolver answered no pool': 1032
  })
})

t.test('a flood from the clock\'s side: a clock set back refills no question', async (t) => {
  const clock = fakeClock(t)
  let asked = 0
  const verifier = new CognitoVerifier({ ...parseOptions({ userPools: () => { asked++; return null }, poolCache: { newIssuerRate: 5 } }), log: Fastify().log })
  t.teardown(() => verifier.close())
  const codes = async (): Promise<string[]> => await Promise.all(Array.from({ length: 10 }, async () => {
    try {
      await verifier.verify(forged(randomIssuer()))
      return 'passed'
    } catch (err) {
      return (err as { code: string }).code
    }
  }))
  t.same(count(await codes()), { FST_COGNITO_TOKEN_INVALID: 5, FST_COGNITO_POOL_UNAVAILABLE: 5 }, 'a burst of newIssuerRate')
  clock.setSystemTime(clock.now - 3_600_000)
  t.same(count(await codes()), { FST_COGNITO_POOL_UNAVAILABLE: 10 })
  clock.tick(400)
  t.same(count(await codes()), { FST_COGNITO_TOKEN_INVALID: 2, FST_COGNITO_POOL_UNAVAILABLE: 8 }, '5 a second: 2 in 400 ms')
  t.equal(asked, 7)
})
