/**
 * The key store at the edges of HTTP: a server that compresses although asked not to, a
 * connection that never comes up (the deadline covers it; a shutdown aborts it quietly), a
 * required warm start that cannot reach the endpoint, and when get-jwks' cache is read.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import cognitoAuth, { type JsonWebKeySet, type KeyStoreStats } from '../index'
import { KeyStore, type KeyStoreOptions } from '../lib/keys/store'
import { JwksFetcher, type Remote } from '../lib/keys/fetch'
import { LocalIssuer } from '../testing'
import { fakeClock } from './helpers/clock'
import { captureJwksEvents, hangingEndpoint, testKeyStore } from './helpers/jwks-edges'
import { JwksServer, type JwksServerMode } from './helpers/jwks-server'

interface LogLine {
  level: number
  msg: string
  [field: string]: unknown
}

const issuer = new LocalIssuer()
const keys: JsonWebKeySet = issuer.jwks
const FAILED = 'cognito: JWKS fetch failed'
const ABORTED = 'cognito: JWKS fetch aborted: the server is closing'

/** A Fastify app whose logs are kept, to hand a store its logger. */
function loggedApp (t: tap.Test): { app: FastifyInstance, lines: LogLine[] } {
  const lines: LogLine[] = []
  const app = Fastify({ logger: { level: 'debug', stream: { write: (line: string) => { lines.push(JSON.parse(line) as LogLine) } } } })
  t.teardown(() => app.close())
  return { app, lines }
}

function keyStore (t: tap.Test, jwksUri: string, options: Partial<KeyStoreOptions<string>> = {}): { store: KeyStore<string>, lines: LogLine[] } {
  const { app, lines } = loggedApp(t)
  return { store: testKeyStore(t, jwksUri, app.log, options), lines }
}

t.test('a body compressed although identity was asked for is decoded, as fetch would', async (t) => {
  const modes: JwksServerMode[] = ['gzip', 'deflate', 'deflate-raw', 'br', 'gzip-deflate']
  for (const mode of modes) {
    t.test(mode, async (t) => {
      const server = await JwksServer.start(t, { keys: () => keys })
      await server.setMode(mode)
      const { store } = keyStore(t, server.url)
      await store.refresh()
      t.equal(store.get(issuer.kid)?.kid, issuer.kid, 'the key is read from the decoded body')
      t.match(store.stats(), { keys: 1, fetches: 1, failures: 0 })
    })
  }

  t.test('end to end: a request is authenticated with keys served gzipped', async (t) => {
    const server = await JwksServer.start(t, { keys: () => keys })
    await server.setMode('gzip')
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(cognitoAuth, { userPoolId: issuer.userPoolId, clientId: issuer.clientId, jwksUri: server.url })
    app.get('/', { onRequest: app.authenticate }, async (request) => ({ sub: request.cognitoClaims?.sub }))
    const response = await app.inject({ url: '/', headers: { authorization: `Bearer ${issuer.idToken({ sub: 'alice' })}` } })
    t.equal(response.statusCode, 200)
    t.same(response.json(), { sub: 'alice' })
  })

  const refused: Array<[JwksServerMode, string]> = [
    ['gzip-oversize', 'the body is over 65536 bytes'],
    ['gzip-corrupt', 'the body is not valid gzip'],
    ['compress', 'unsupported content-encoding compress']
  ]
  for (const [mode, reason] of refused) {
    t.test(`${mode}: refused, with its reason`, async (t) => {
      const server = await JwksServer.start(t, { keys: () => keys })
      await server.setMode(mode)
      const { store, lines } = keyStore(t, server.url)
      await t.rejects(store.refresh(), { message: reason })
      t.match(lines.filter((line) => line.msg === FAILED), [{ status: 200, reason }])
      t.match(store.stats(), { keys: 0, failures: 1 })
    })
  }
})

t.test('the deadline covers connecting', async (t) => {
  const endpoint = await hangingEndpoint(t)
  const { store, lines } = keyStore(t, endpoint.url, { timeoutMs: 200 })
  const events = captureJwksEvents(t)
  // The TLS handshake never ends: undici's connect timeout would be the only bound without it.
  await t.rejects(store.refresh(), { message: 'timed out after 200 ms' })
  t.equal(endpoint.connections, 1)
  t.match(lines.filter((line) => line.msg === FAILED), [{ reason: 'timed out after 200 ms', status: undefined }])
  t.match(store.stats(), { fetches: 1, failures: 1 })
  t.match(events, [{ outcome: 'failed', status: null, reason: 'timed out after 200 ms', keys: 0 }])
})

t.test('a connection that comes up after the deadline is dropped, unused', async (t) => {
  const server = await JwksServer.start(t, { keys: () => keys })
  const fetcher = new JwksFetcher({ timeoutMs: 10, maxBytes: 65_536 })
  t.teardown(() => fetcher.close())
  const calls: string[] = []
  const { origin, pathname } = new URL(server.url)
  // Dispatched from the check phase, with the event loop then held past the deadline: the next
  // turn runs its timers (the deadline) before it polls the sockets (the connection coming up).
  const failed = new Promise<Error>((resolve) => setImmediate(() => {
    fetcher.fetchOptions.dispatcher.dispatch({ origin, path: pathname, method: 'GET' }, {
      onConnect: () => { calls.push('connect') },
      onHeaders: () => { calls.push('headers'); return true },
      onData: () => true,
      onComplete: () => { calls.push('complete') },
      onError: (err) => { calls.push('error'); resolve(err) }
    })
    const start = Date.now()
    while (Date.now() - start < 30) { /* holding the event loop past the deadline */ }
  }))
  t.match(await failed, { name: 'FetchAbortedError', message: 'timed out after 10 ms', closing: false })
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.same(calls, ['error'], 'the handler heard of the timeout only')
  t.equal(server.requests, 0, 'the connection, once up, carried no request')
})

t.test('closing while a fetch is still connecting is the shutdown, not a failure', async (t) => {
  t.test('the store', async (t) => {
    const endpoint = await hangingEndpoint(t)
    const { store, lines } = keyStore(t, endpoint.url, { timeoutMs: 60_000 })
    const events = captureJwksEvents(t)
    const fetching = store.refresh()
    await endpoint.connected(1)
    store.close()
    await t.rejects(fetching, { name: 'FetchAbortedError', closing: true })
    t.same(lines.filter((line) => line.msg === FAILED), [], 'no warning')
    t.equal(lines.filter((line) => line.msg === ABORTED).length, 1, 'an abort, at debug level')
    t.match(store.stats(), { fetches: 1, failures: 0, lastFailure: null })
    t.equal(events.length, 1)
    t.match(events[0], { outcome: 'aborted', status: null, reason: 'aborted: the server is closing', keys: 0 })
    t.type(events[0].durationMs, 'number')
  })

  t.test('app.close() with a request waiting on the fetch', async (t) => {
    const endpoint = await hangingEndpoint(t)
    const { app, lines } = loggedApp(t)
    const events = captureJwksEvents(t)
    await app.register(cognitoAuth, { userPoolId: issuer.userPoolId, clientId: issuer.clientId, jwksUri: endpoint.url, jwksCache: { prefetch: false, timeout: 60 } })
    app.get('/', { onRequest: app.authenticate }, async () => 'ok')
    await app.ready()
    const pending = app.inject({ url: '/', headers: { authorization: `Bearer ${issuer.idToken()}` } })
    await endpoint.connected(1)
    await app.close()
    t.equal((await pending).statusCode, 503)
    t.same(lines.filter((line) => line.msg === FAILED), [], 'no warning')
    t.equal(lines.filter((line) => line.msg === ABORTED).length, 1)
    t.match((app.cognitoKeyStores() as KeyStoreStats[])[0], { fetches: 1, failures: 0 })
    t.same(events.map((event) => event.outcome), ['aborted'])
  })
})

t.test("prefetch 'required' with an unreachable endpoint names the URI and the cause", async (t) => {
  const server = await JwksServer.start(t, { keys: () => keys })
  await server.setMode('refused')
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, { userPoolId: issuer.userPoolId, clientId: issuer.clientId, jwksUri: server.url, jwksCache: { prefetch: 'required' } })
  const err = await app.ready().then(() => undefined, (err: unknown) => err as Error & { code: string, cause: Error & { code: string } })
  t.ok(err, 'the server does not start')
  t.equal(err?.code, 'FST_COGNITO_JWKS_UNAVAILABLE')
  t.match(err?.message, new RegExp(`^The signing keys cannot be retrieved from ${server.url.replace(/\./g, '\\.')}: connect ECONNREFUSED 127\\.0\\.0\\.1:\\d+$`))
  t.equal(err?.cause.code, 'ECONNREFUSED', 'the cause is kept')
})

/** Counts the reads of get-jwks' cache of a store that has fetched once. */
function countCacheReads (store: KeyStore<string>): { count: number } {
  const { getJwks } = (store as unknown as { remote: Remote }).remote
  const read = getJwks.cache.get.bind(getJwks.cache)
  const reads = { count: 0 }
  getJwks.cache.get = (key) => {
    reads.count++
    return read(key)
  }
  return reads
}

t.test("get-jwks' cache is read when the keys are due, not per lookup", async (t) => {
  const clock = fakeClock(t)
  const server = await JwksServer.start(t, { keys: () => keys })
  const { store } = keyStore(t, server.url, { ttlMs: 60_000 })
  await store.refresh()
  const reads = countCacheReads(store)
  for (let i = 0; i < 1000; i++) t.ok(store.get(issuer.kid))
  clock.tick(59_999)
  await clock.settle()
  for (let i = 0; i < 1000; i++) t.ok(store.get(issuer.kid))
  t.equal(reads.count, 0, 'within the TTL, no lookup reads the cache')
  t.equal(server.requests, 1)

  clock.tick(1)
  await clock.settle()
  t.ok(store.get(issuer.kid), 'due: served while refreshed')
  t.equal(reads.count, 2, 'at the TTL: read once by the store, once by get-jwks as the refresh starts')
  await store.refresh()
  t.equal(server.requests, 2, 'and the refresh happened')
  reads.count = 0
  for (let i = 0; i < 1000; i++) t.ok(store.get(issuer.kid))
  t.equal(reads.count, 0, 'after the refresh, none again')
})

t.test("get-jwks' cache has the last word: keys it still holds are not refreshed", async (t) => {
  // `Date` jumps a TTL ahead while the monotonic clock of get-jwks' cache does not move.
  const server = await JwksServer.start(t, { keys: () => keys })
  const { store } = keyStore(t, server.url, { ttlMs: 60_000 })
  await store.refresh()
  const clock = fakeClock(t)
  performance.now = (): number => 0 // the fake clock made it follow Date; stopped here, restored at teardown
  const reads = countCacheReads(store)
  clock.tick(60_000)
  t.ok(store.get(issuer.kid))
  t.equal(reads.count, 1, 'the store asked the cache')
  t.equal(server.requests, 1, 'which still held the key: no refresh')
  t.ok(store.get(issuer.kid))
  t.equal(reads.count, 1, 'and asks again only a little later')
  clock.tick(1000)
  t.ok(store.get(issuer.kid))
  t.equal(reads.count, 2)
})

t.test('keys given up front with a URI are due at their TTL, before anything was fetched', async (t) => {
  const clock = fakeClock(t)
  const server = await JwksServer.start(t, { keys: () => keys })
  const { parseJwks } = await import('../lib/keys/jwk')
  const { store } = keyStore(t, server.url, { ttlMs: 60_000, keys: parseJwks(keys, 16) })
  t.ok(store.get(issuer.kid))
  clock.tick(60_000)
  t.ok(store.get(issuer.kid), 'served while refreshed')
  await store.refresh()
  t.equal(server.requests, 1, 'the TTL started the first fetch')
  t.equal(store.stats().lastSuccess, Date.now())
})
