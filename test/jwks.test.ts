/**
 * The key store against a real JWKS endpoint on 127.0.0.1: single flight, warm start, TTL and
 * stale serving, the unknown-`kid` cooldown, failures and backoff, timeouts, logs and counters.
 * Only `Date` is faked, so that sockets and timers stay real while hours pass in a test.
 */
import { randomUUID } from 'node:crypto'
import Fastify, { LogController, type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import t from 'tap'
import cognitoAuth, { type JsonWebKeySet, type JwksCacheOptions, type KeyStoreStats } from '../index'
import { JwksUnavailableError } from '../lib/errors'
import { KeyStore, type KeyStoreOptions } from '../lib/keys/store'
import { LocalIssuer } from '../testing'
import { fakeClock, type TestClock } from './helpers/clock'
import { JwksServer, type JwksServerMode } from './helpers/jwks-server'

type Clock = TestClock

interface LogLine {
  level: number
  msg: string
  [field: string]: unknown
}

const DEBUG = 20
const INFO = 30
const WARN = 40
const ERROR = 50

/**
 * The pool's signing key, and the key it rotates to: same pool, same client, another key pair.
 * Tests publish one, the other or both (generating RSA keys is too slow to do it per test).
 */
const issuer = new LocalIssuer()
const successor = new LocalIssuer()
const current: JsonWebKeySet = issuer.jwks
const next: JsonWebKeySet = successor.jwks
const both: JsonWebKeySet = { keys: [...issuer.jwks.keys, ...successor.jwks.keys] }

const FETCHED = 'cognito: JWKS fetched'
const FAILED = 'cognito: JWKS fetch failed'
const ROTATED = 'cognito: JWKS keys rotated'
const ABORTED = 'cognito: JWKS fetch aborted: the server is closing'
const EXPIRED = 'cognito: JWKS keys expired without a successful refresh; refusing tokens until one succeeds'

/** Fakes the time, from now, until the test ends. */
function fakeDate (t: tap.Test): Clock {
  return fakeClock(t)
}

/** Waits (in real time) for something that happens in the background, such as a refresh. */
async function until (condition: () => boolean, what: string): Promise<void> {
  for (let tries = 0; tries < 1000; tries++) {
    if (condition()) return
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  throw new Error(`gave up waiting for ${what}`)
}

/** A logger that keeps every line, as parsed JSON. */
function captureLogs (): { lines: LogLine[], logger: { level: string, stream: { write: (line: string) => void } } } {
  const lines: LogLine[] = []
  return { lines, logger: { level: 'debug', stream: { write: (line) => { lines.push(JSON.parse(line) as LogLine) } } } }
}

interface Harness {
  app: FastifyInstance
  server: JwksServer
  clock: Clock
  logs: LogLine[]
  stats: () => KeyStoreStats
  /** Changes what the endpoint serves from now on. */
  publish: (jwks: JsonWebKeySet) => void
  request: (token: string) => Promise<LightMyRequestResponse>
  /** Log lines with this message. */
  logged: (msg: string) => LogLine[]
  /** Resolves once every fetch started has ended (and logged its outcome). */
  fetchesSettled: () => Promise<void>
}

interface HarnessOptions {
  jwksCache?: JwksCacheOptions
  /** Hand the current key over in the `jwks` option too. */
  upFront?: boolean
  /** What the endpoint serves at first. */
  published?: JsonWebKeySet
  mode?: JwksServerMode
}

/** An app with the plugin, a protected route, its JWKS endpoint and captured logs. */
async function harness (t: tap.Test, { jwksCache, upFront = false, published = current, mode = 'ok' }: HarnessOptions = {}): Promise<Harness> {
  const clock = fakeDate(t)
  let served = published
  const server = await JwksServer.start(t, { keys: () => served })
  await server.setMode(mode)
  const { lines, logger } = captureLogs()
  // Thousands of requests: their own log lines would only slow the test down.
  const app = Fastify({ logger, logController: new LogController({ disableRequestLogging: true }) })
  t.teardown(() => app.close())
  await app.register(cognitoAuth, {
    userPoolId: issuer.userPoolId,
    clientId: issuer.clientId,
    jwksUri: server.url,
    ...(upFront ? { jwks: current } : {}),
    jwksCache
  })
  app.get('/', { onRequest: app.authenticate }, async (request) => ({ sub: request.cognitoClaims?.sub }))
  const logged = (msg: string): LogLine[] => lines.filter((line) => line.msg === msg)
  const stats = (): KeyStoreStats => app.cognitoKeyStores()[0]
  return {
    app,
    server,
    clock,
    logs: lines,
    stats,
    logged,
    publish: (jwks) => { served = jwks },
    request: async (token) => {
      await clock.settle()
      return app.inject({ url: '/', headers: { authorization: `Bearer ${token}` } })
    },
    fetchesSettled: () => until(() => logged(FETCHED).length + logged(FAILED).length === stats().fetches, 'the fetches to end')
  }
}

/**
 * A token naming a `kid` that no JWKS has. Its signature is not checked (there is no key to check
 * it with), so it is a valid token's with the header swapped: no RSA signing per token.
 */
function unknownKidToken (): string {
  const [, payload, signature] = issuer.idToken().split('.')
  const header = Buffer.from(JSON.stringify({ alg: 'RS256', kid: randomUUID() })).toString('base64url')
  return `${header}.${payload}.${signature}`
}

function codes (responses: LightMyRequestResponse[]): Set<string> {
  return new Set(responses.map((response) => `${response.statusCode} ${(response.json() as { code?: string }).code ?? ''}`.trim()))
}

const TTL = 60
const MAX_STALE = 600

t.test('single flight: 500 concurrent cold requests cause one fetch and all succeed', async (t) => {
  const h = await harness(t, { jwksCache: { prefetch: false } })
  await h.app.ready()
  t.equal(h.server.requests, 0, 'no fetch at ready without prefetch')
  const tokens = Array.from({ length: 20 }, () => issuer.idToken())
  const responses = await Promise.all(Array.from({ length: 500 }, (_, i) => h.request(tokens[i % tokens.length])))
  t.same(codes(responses), new Set(['200']))
  t.equal(h.server.requests, 1)
  t.equal(h.stats().fetches, 1)
})

t.test('warm start', async (t) => {
  t.test('the keys are fetched at ready; the first request fetches nothing', async (t) => {
    const h = await harness(t)
    await h.app.ready()
    t.equal(h.server.requests, 1)
    const response = await h.request(issuer.idToken({ sub: 'alice' }))
    t.equal(response.statusCode, 200)
    t.same(response.json(), { sub: 'alice' })
    t.equal(h.server.requests, 1)
  })

  t.test('a failed prefetch warns and the server starts; requests retry after the backoff', async (t) => {
    const h = await harness(t, { mode: 'error' })
    await h.app.ready()
    t.equal(h.server.requests, 1)
    const [warning] = h.logged(FAILED)
    t.match(warning, { level: WARN, jwksUri: h.server.url, status: 500, reason: 'unexpected status 500', retryInMs: 1000 })
    t.type(warning.durationMs, 'number')
    await h.server.setMode('ok')
    const token = issuer.idToken()
    const during = await h.request(token)
    t.equal(during.statusCode, 503, 'no key, and no fetch during the backoff')
    t.equal(during.json().code, 'FST_COGNITO_JWKS_UNAVAILABLE')
    t.equal(h.server.requests, 1)
    h.clock.tick(1000)
    t.equal((await h.request(token)).statusCode, 200, 'the backoff over, the request fetches')
    t.equal(h.server.requests, 2)
  })

  t.test("prefetch 'required': a failed prefetch stops the server from starting", async (t) => {
    const h = await harness(t, { mode: 'not-jwks', jwksCache: { prefetch: 'required' } })
    await t.rejects(async () => { await h.app.ready() }, { message: 'the document is not a JWKS' })
    t.equal(h.server.requests, 1)
  })

  t.test("prefetch 'required' with a working endpoint starts", async (t) => {
    const h = await harness(t, { jwksCache: { prefetch: 'required' } })
    await h.app.ready()
    t.equal(h.stats().keys, 1)
  })

  t.test('keys given in the jwks option: no fetch until an unknown kid comes', async (t) => {
    const h = await harness(t, { upFront: true, published: both })
    await h.app.ready()
    t.equal(h.server.requests, 0, 'nothing fetched at ready')
    for (let i = 0; i < 5; i++) t.equal((await h.request(issuer.idToken())).statusCode, 200)
    t.equal(h.server.requests, 0, 'nor for tokens of known keys')
    t.same(h.stats(), { jwksUri: h.server.url, keys: 1, fetches: 0, failures: 0, lastSuccess: null, lastFailure: null })
    t.equal((await h.request(successor.idToken())).statusCode, 200, 'a new kid is fetched')
    t.equal(h.server.requests, 1)
    t.equal((await h.request(issuer.idToken())).statusCode, 200, 'the key given up front is still published')
    t.equal(h.stats().keys, 2)
  })

  t.test('keys given up front stay while fetches for unknown kids fail', async (t) => {
    const h = await harness(t, { upFront: true, mode: 'error' })
    await h.app.ready()
    const unknown = await h.request(unknownKidToken())
    t.equal(unknown.statusCode, 503, 'a kid that cannot be checked is not called invalid')
    t.equal(h.server.requests, 1)
    h.clock.tick(3600_000)
    t.equal((await h.request(issuer.idToken())).statusCode, 200, 'keys given up front outlive failing refreshes')
    await h.fetchesSettled()
    t.ok(h.stats().fetches > 1, 'past the TTL, they were refreshed, and the refresh failed')
    t.equal(h.stats().keys, 1)
  })

  t.test('past maxStale, fetched keys expire and keys given up front stay', async (t) => {
    const h = await harness(t, { upFront: true, published: both, jwksCache: { ttl: TTL, maxStale: MAX_STALE } })
    await h.app.ready()
    t.equal((await h.request(successor.idToken())).statusCode, 200, 'a key fetched beside the one given up front')
    await h.server.setMode('error')
    h.clock.tick((TTL + MAX_STALE) * 1000)
    await h.request(issuer.idToken())
    await h.fetchesSettled()
    t.equal((await h.request(successor.idToken())).statusCode, 503, 'the fetched key expired')
    t.equal((await h.request(issuer.idToken())).statusCode, 200, 'the key given up front stays')
    t.match(h.logged(EXPIRED), [{ level: ERROR, dropped: [successor.kid] }], 'the expiry names what it dropped')
  })

  t.test('past maxStale with only keys given up front, nothing expires', async (t) => {
    const h = await harness(t, { upFront: true, published: current, jwksCache: { ttl: TTL, maxStale: MAX_STALE } })
    await h.app.ready()
    h.clock.tick(TTL * 1000)
    await h.request(issuer.idToken())
    await h.fetchesSettled()
    t.equal(h.stats().lastSuccess, Date.now(), 'refreshed once')
    await h.server.setMode('error')
    h.clock.tick((TTL + MAX_STALE) * 1000)
    t.equal((await h.request(issuer.idToken())).statusCode, 200)
    await h.fetchesSettled()
    t.equal((await h.request(issuer.idToken())).statusCode, 200, 'still served')
    t.same(h.logged(EXPIRED), [], 'and no expiry is logged')
  })

  t.test('keys given up front follow the TTL: a fetch that no longer lists one retires it', async (t) => {
    const h = await harness(t, { upFront: true, published: both, jwksCache: { ttl: TTL } })
    await h.app.ready()
    const token = issuer.idToken()
    t.equal((await h.request(token)).statusCode, 200)
    h.clock.tick(TTL * 1000 - 1)
    t.equal((await h.request(token)).statusCode, 200)
    t.equal(h.server.requests, 0, 'within the TTL: no fetch')
    h.clock.tick(1)
    t.equal((await h.request(issuer.idToken())).statusCode, 200, 'at the TTL, served while refreshed')
    await h.fetchesSettled()
    t.equal(h.server.requests, 1, 'refreshed once')
    t.equal(h.stats().keys, 2, 'the refresh listed both keys')

    h.publish(next)
    h.clock.tick(TTL * 1000)
    await h.request(issuer.idToken())
    await h.fetchesSettled()
    t.equal(h.server.requests, 2)
    t.same(h.logged(ROTATED).at(-1), { ...h.logged(ROTATED).at(-1), added: [], removed: [issuer.kid] }, 'the key Cognito retired is retired')
    const refused = await h.request(token)
    t.equal(refused.statusCode, 401, 'its tokens are refused, cached ones included')
    t.equal(refused.json().code, 'FST_COGNITO_TOKEN_INVALID')
    t.equal((await h.request(successor.idToken())).statusCode, 200)
  })
})

t.test('past the TTL', async (t) => {
  t.test('a known key is served at once, and refreshed once in the background', async (t) => {
    const h = await harness(t, { jwksCache: { ttl: TTL, maxStale: MAX_STALE } })
    await h.app.ready()
    const cached = issuer.idToken()
    t.equal((await h.request(cached)).statusCode, 200)
    await h.server.setMode('slow')
    h.clock.tick(TTL * 1000)
    // The refresh hangs: an answer proves the request did not wait for it.
    t.equal((await h.request(cached)).statusCode, 200, 'a token already verified')
    await until(() => h.server.requests === 2, 'the refresh, started by a token already verified')
    const fresh = await Promise.all(Array.from({ length: 20 }, () => h.request(issuer.idToken())))
    t.same(codes(fresh), new Set(['200']), 'new tokens of the known key')
    t.equal(h.server.requests, 2, 'one refresh for all')
    t.equal(h.stats().fetches, 2)
  })

  t.test('a key removed from the JWKS is refused once the refresh saw it go', async (t) => {
    const h = await harness(t, { jwksCache: { ttl: TTL, maxStale: MAX_STALE } })
    await h.app.ready()
    const oldToken = issuer.idToken()
    t.equal((await h.request(oldToken)).statusCode, 200)
    h.publish(next)
    const newToken = successor.idToken()
    t.equal((await h.request(newToken)).statusCode, 401, 'the new kid is unknown until a fetch, within the cooldown')
    h.clock.tick(TTL * 1000)
    t.equal((await h.request(oldToken)).statusCode, 200, 'served while the refresh runs')
    await h.fetchesSettled()
    const refused = await h.request(oldToken)
    t.equal(refused.statusCode, 401, 'the token cache lets go of it')
    t.equal(refused.json().code, 'FST_COGNITO_TOKEN_INVALID')
    t.equal((await h.request(issuer.idToken())).statusCode, 401, 'nor is any token of the removed key')
    t.equal((await h.request(newToken)).statusCode, 200)
    t.match(h.logged(ROTATED), [{ level: INFO, jwksUri: h.server.url, added: [successor.kid], removed: [issuer.kid] }])
    t.equal(h.stats().keys, 1)
  })

  t.test('a kid reused with new key material: new tokens pass, old ones fail, cached or not', async (t) => {
    const h = await harness(t, { jwksCache: { ttl: TTL, maxStale: MAX_STALE } })
    await h.app.ready()
    const kid = issuer.kid
    const oldCached = issuer.idToken()
    const oldUncached = issuer.idToken()
    const newToken = successor.idToken({}, { header: { kid } })
    t.equal((await h.request(oldCached)).statusCode, 200)
    t.equal((await h.request(newToken)).statusCode, 401, 'the new material is not known yet')
    h.publish({ keys: [{ ...next.keys[0], kid }] })
    h.clock.tick(TTL * 1000)
    t.equal((await h.request(oldCached)).statusCode, 200, 'served while the refresh runs')
    await h.fetchesSettled()
    t.equal((await h.request(oldCached)).statusCode, 401, 'a token of the old material, although cached')
    t.equal((await h.request(oldUncached)).statusCode, 401, 'a token of the old material')
    t.equal((await h.request(newToken)).statusCode, 200, 'a token of the new material')
    t.match(h.logged(ROTATED), [{ added: [kid], removed: [kid] }])
  })
})

t.test('unknown kids: at most one refetch per cooldown', async (t) => {
  const h = await harness(t)
  await h.app.ready()
  h.clock.tick(10_000)
  const burst = await Promise.all(Array.from({ length: 100 }, () => h.request(unknownKidToken())))
  t.same(codes(burst), new Set(['401 FST_COGNITO_TOKEN_INVALID']))
  t.equal(h.server.requests, 2, '100 unknown kids, one fetch')

  // A fetch now would hang: answers prove that none is attempted, so none is waited for.
  await h.server.setMode('slow')
  const more: LightMyRequestResponse[] = []
  for (let i = 0; i < 100; i++) {
    more.push(await h.request(unknownKidToken()))
    h.clock.tick(50)
  }
  t.same(codes(more), new Set(['401 FST_COGNITO_TOKEN_INVALID']))
  t.equal(h.server.requests, 2, 'no fetch within the cooldown')
  await h.server.setMode('ok')

  h.clock.tick(5000)
  t.equal((await h.request(unknownKidToken())).statusCode, 401)
  t.equal(h.server.requests, 3, 'past the cooldown, the next unknown kid refetches')

  h.publish(both)
  const rotated = successor.idToken()
  t.equal((await h.request(rotated)).statusCode, 401, 'a new key published within the cooldown is not fetched yet')
  t.equal(h.server.requests, 3)
  h.clock.tick(10_000)
  t.equal((await h.request(rotated)).statusCode, 200, 'and is picked up when the cooldown ends')
  t.equal(h.server.requests, 4)
})

/** Each way the endpoint can fail, and the status the failure is logged with. */
const failures: Array<[JwksServerMode, number | undefined, string | RegExp]> = [
  ['error', 500, 'unexpected status 500'],
  ['no-content', 204, 'unexpected status 204'],
  ['refused', undefined, /^connect ECONNREFUSED 127\.0\.0\.1:/],
  ['redirect', 302, 'unexpected status 302'],
  ['not-json', 200, 'the body is not JSON'],
  ['not-jwks', 200, 'the document is not a JWKS'],
  ['unusable-keys', 200, 'the JWKS holds no usable RS256 key'],
  ['oversize', 200, 'the body is over 65536 bytes'],
  ['oversize-chunked', 200, 'the body is over 65536 bytes'],
  ['slow', undefined, 'timed out after 1000 ms'],
  ['slow-body', 200, 'timed out after 1000 ms']
]

t.test('a failing endpoint', async (t) => {
  for (const [mode, status, reason] of failures) {
    t.test(mode, async (t) => {
      // A short timeout for the hanging modes only: the first fetch must succeed even on a busy machine.
      const timeout = mode.startsWith('slow') ? 1 : 5
      const h = await harness(t, { jwksCache: { ttl: TTL, maxStale: MAX_STALE, timeout } })
      await h.app.ready()
      const token = issuer.idToken()
      t.equal((await h.request(token)).statusCode, 200)
      await h.server.setMode(mode)

      h.clock.tick(TTL * 1000)
      t.equal((await h.request(issuer.idToken())).statusCode, 200, 'stale keys are served while the refresh fails')
      await h.fetchesSettled()
      const [warning] = h.logged(FAILED)
      t.match(warning, { level: WARN, jwksUri: h.server.url, reason, retryInMs: 1000 }, 'the failure is logged')
      t.equal(warning.status, status, 'with the status of the response')
      t.type(warning.durationMs, 'number')
      t.match(h.stats(), { keys: 1, fetches: 2, failures: 1, lastFailure: Date.now() }, 'and counted; the keys are kept')
      h.clock.tick(30_000)
      t.equal((await h.request(issuer.idToken())).statusCode, 200, 'still served, within maxStale')
      t.equal((await h.request(token)).statusCode, 200)

      h.clock.tick(MAX_STALE * 1000)
      const expired = await h.request(issuer.idToken())
      t.equal(expired.statusCode, 503, 'past ttl + maxStale')
      t.equal(expired.json().code, 'FST_COGNITO_JWKS_UNAVAILABLE')
      t.equal((await h.request(token)).statusCode, 503, 'a token verified before is refused too')
      t.equal(h.logged(EXPIRED).length, 1, 'the expiry is logged, once')
      t.match(h.logged(EXPIRED)[0], { level: ERROR, jwksUri: h.server.url })
      t.equal(h.stats().keys, 0)

      const fetches = h.stats().fetches
      await h.server.setMode('ok')
      t.equal((await h.request(issuer.idToken())).statusCode, 503, 'in the backoff: no fetch, even for a known kid')
      t.equal(h.stats().fetches, fetches)
      h.clock.tick(60_000)
      t.equal((await h.request(token)).statusCode, 200, 'the endpoint back and the backoff over, keys are fetched again')
      t.match(h.stats(), { keys: 1, fetches: fetches + 1, lastSuccess: Date.now() })
    })
  }
})

t.test('backoff: during an outage, 1,000 requests cause a handful of fetches', async (t) => {
  t.test('with no key at all, each answer is a fast 503', async (t) => {
    const h = await harness(t, { jwksCache: { prefetch: false }, mode: 'refused' })
    await h.app.ready()
    const token = issuer.idToken()
    const burst = await Promise.all(Array.from({ length: 1000 }, () => h.request(token)))
    t.same(codes(burst), new Set(['503 FST_COGNITO_JWKS_UNAVAILABLE']))
    t.equal(h.stats().fetches, 1, 'concurrent requests share one fetch')
    const spread: LightMyRequestResponse[] = []
    for (let i = 0; i < 1000; i++) {
      spread.push(await h.request(token))
      h.clock.tick(10)
    }
    t.same(codes(spread), new Set(['503 FST_COGNITO_JWKS_UNAVAILABLE']))
    t.equal(h.stats().fetches, 4, 'over 10 s: retries 1 s, 2 s and 4 s after the failures')
    t.same(h.logged(FAILED).map((line) => line.retryInMs), [1000, 2000, 4000, 8000])
  })

  t.test('with stale keys, requests keep passing and the refreshes back off', async (t) => {
    const h = await harness(t, { jwksCache: { ttl: TTL, maxStale: MAX_STALE } })
    await h.app.ready()
    await h.server.setMode('error')
    h.clock.tick(TTL * 1000)
    const token = issuer.idToken()
    const answers: LightMyRequestResponse[] = []
    for (let i = 0; i < 1000; i++) {
      answers.push(await h.request(token))
      h.clock.tick(10)
    }
    t.same(codes(answers), new Set(['200']))
    await h.fetchesSettled()
    const refreshes = h.stats().fetches - 1
    t.ok(refreshes >= 1 && refreshes <= 4, `${refreshes} refreshes in 10 s of outage`)
    t.equal(h.server.requests, h.stats().fetches)
  })
})

t.test('a slow endpoint', async (t) => {
  t.test('each fetch times out on its own, and the request is answered 503', async (t) => {
    const h = await harness(t, { jwksCache: { prefetch: false, timeout: 0.2 }, mode: 'slow' })
    await h.app.ready()
    const token = issuer.idToken()
    const first = await h.request(token)
    t.equal(first.statusCode, 503)
    t.equal(first.json().code, 'FST_COGNITO_JWKS_UNAVAILABLE')
    h.clock.tick(1000)
    t.equal((await h.request(token)).statusCode, 503)
    t.equal(h.server.requests, 2, 'the second fetch was really made')
    t.match(h.logged(FAILED), [{ reason: 'timed out after 200 ms' }, { reason: 'timed out after 200 ms' }])
  })

  t.test('closing the app aborts a fetch under way', async (t) => {
    const h = await harness(t, { jwksCache: { prefetch: false, timeout: 60 }, mode: 'slow' })
    await h.app.ready()
    const pending = h.request(issuer.idToken())
    await until(() => h.server.requests === 1, 'the fetch to start')
    await h.app.close()
    t.equal((await pending).statusCode, 503)
    t.same(h.logged(FAILED), [], 'closing is no failure')
    t.match(h.logged(ABORTED), [{ level: DEBUG, jwksUri: h.server.url }], 'but an abort, logged as such')
    t.equal(h.stats().failures, 0)
  })
})

t.test('observability: counters and logs', async (t) => {
  const h = await harness(t, { jwksCache: { ttl: TTL, maxStale: MAX_STALE } })
  await h.app.ready()
  const started = Date.now()
  t.same(h.app.cognitoKeyStores(), [{ jwksUri: h.server.url, keys: 1, fetches: 1, failures: 0, lastSuccess: started, lastFailure: null }])
  t.match(h.logged(FETCHED), [{ level: DEBUG, jwksUri: h.server.url, status: 200, keys: 1, skipped: 0 }])
  t.type(h.logged(FETCHED)[0].durationMs, 'number')

  await h.server.setMode('error')
  h.clock.tick(TTL * 1000)
  await h.request(issuer.idToken())
  await h.fetchesSettled()
  t.same(h.app.cognitoKeyStores(), [{ jwksUri: h.server.url, keys: 1, fetches: 2, failures: 1, lastSuccess: started, lastFailure: started + TTL * 1000 }])

  await h.server.setMode('ok')
  h.publish(both)
  h.clock.tick(1000)
  t.equal((await h.request(successor.idToken())).statusCode, 200)
  t.same(h.app.cognitoKeyStores(), [{ jwksUri: h.server.url, keys: 2, fetches: 3, failures: 1, lastSuccess: Date.now(), lastFailure: started + TTL * 1000 }])
  t.match(h.logged(ROTATED), [{ level: INFO, jwksUri: h.server.url, added: [successor.kid], removed: [] }])
  t.equal(h.logged(EXPIRED).length, 0, 'no expiry logged while keys were fresh or stale')
})

/** A key store of its own, with a `prepare` that counts its calls. */
async function keyStore (t: tap.Test, options: Partial<KeyStoreOptions<string>> = {}) {
  const clock = fakeDate(t)
  let published = current
  const server = await JwksServer.start(t, { keys: () => published })
  const { lines, logger } = captureLogs()
  const app = Fastify({ logger })
  t.teardown(() => app.close())
  const prepared: string[] = []
  const store = new KeyStore<string>({
    jwksUri: server.url,
    ttlMs: TTL * 1000,
    maxKeys: 16,
    cooldownMs: 10_000,
    timeoutMs: 5000,
    maxStaleMs: MAX_STALE * 1000,
    maxBytes: 65_536,
    log: app.log,
    prepare: (pem) => {
      prepared.push(pem)
      return `prepared #${prepared.length}`
    },
    ...options
  })
  t.teardown(() => store.close())
  return { clock, server, store, prepared, logs: lines, publish: (jwks: JsonWebKeySet) => { published = jwks } }
}

t.test('each key is converted once', async (t) => {
  const { clock, server, store, prepared, publish } = await keyStore(t)
  await store.refresh()
  const key = store.get(issuer.kid)
  t.equal(key?.value, 'prepared #1')
  for (let i = 0; i < 1000; i++) t.equal(store.get(issuer.kid), key)
  await store.refresh()
  await store.refresh()
  t.equal(prepared.length, 1, 'refreshes with the same material convert nothing')
  t.equal(store.get(issuer.kid), key)
  t.equal(key?.alive, true)

  publish(both)
  await store.refresh()
  t.equal(prepared.length, 2, 'a new key is converted once')
  t.equal(store.get(successor.kid)?.value, 'prepared #2')
  t.equal(store.get(issuer.kid), key, 'the old key is kept as it was')

  clock.tick(TTL * 1000)
  await clock.settle()
  t.equal(store.get(successor.kid)?.value, 'prepared #2', 'past the TTL')
  await until(() => store.stats().fetches === 5 && store.stats().lastSuccess === Date.now(), 'the background refresh')
  t.equal(prepared.length, 2, 'nor does a TTL refresh')
  t.equal(server.requests, 5)
})

t.test('find', async (t) => {
  t.test('a kid is found by the first fetch, then without one', async (t) => {
    const { server, store } = await keyStore(t)
    const key = await store.find(issuer.kid)
    t.equal(key?.kid, issuer.kid)
    t.equal(await store.find(issuer.kid), key)
    t.equal(server.requests, 1)
  })

  t.test('an unknown kid within the cooldown is undefined at once', async (t) => {
    const { server, store } = await keyStore(t)
    await store.refresh()
    await server.setMode('slow')
    t.equal(await store.find('nope'), undefined)
    t.equal(server.requests, 1)
    t.ok(store.get(issuer.kid))
  })

  t.test('an unknown kid while the last fetch failed is unavailable, not unknown', async (t) => {
    const { clock, server, store } = await keyStore(t)
    await store.refresh()
    clock.tick(10_000)
    await server.setMode('error')
    await t.rejects(store.find('nope'), JwksUnavailableError)
    t.equal(server.requests, 2)
    await t.rejects(store.find('nope'), JwksUnavailableError, 'also in the backoff, without a fetch')
    t.equal(server.requests, 2)
    t.ok(await store.find(issuer.kid), 'known kids are still found')
  })

  t.test('keys are refreshed when due even within the cooldown (short ttl and maxStale)', async (t) => {
    const { clock, server, store } = await keyStore(t, { ttlMs: 1000, maxStaleMs: 0 })
    await store.refresh()
    const before = store.get(issuer.kid)
    clock.tick(1000)
    await clock.settle()
    t.equal(store.get(issuer.kid), undefined, 'expired at once: maxStale is 0')
    t.equal(before?.alive, false)
    const after = await store.find(issuer.kid)
    t.equal(after?.kid, issuer.kid, 'the refresh started at expiry brings the key back')
    t.equal(server.requests, 2)
  })
})

t.test('a refresh that only removes keys logs the removal', async (t) => {
  const { store, logs, publish } = await keyStore(t)
  publish(both)
  await store.refresh()
  publish(next)
  const old = store.get(issuer.kid)
  await store.refresh()
  t.equal(store.get(issuer.kid), undefined)
  t.equal(old?.alive, false)
  t.ok(store.get(successor.kid))
  t.same(logs.filter((line) => line.msg === ROTATED).map(({ added, removed }) => ({ added, removed })), [{ added: [], removed: [issuer.kid] }], 'the first load is no rotation')
})

t.test('a closed store fetches nothing more', async (t) => {
  const { server, store } = await keyStore(t)
  store.close()
  await t.rejects(store.refresh(), { name: 'FetchAbortedError', closing: true })
  t.equal(server.requests, 0)
  t.match(store.stats(), { fetches: 0, failures: 0 }, 'neither a fetch nor a failure')
  await t.rejects(store.find('unknown'), JwksUnavailableError, 'an unknown kid cannot be checked: unavailable, not invalid')
})
