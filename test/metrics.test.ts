/**
 * The metrics recipe (examples/metrics.ts) as an application runs it: requests accepted and
 * refused, then a scrape of /metrics that reads the counts; and the README shows the same code.
 */
import diagnostics from 'node:diagnostics_channel'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import cognitoAuth, { channels, type CognitoJwksEvent } from '../index'
import { LocalIssuer } from '../testing'
import { cognitoMetrics } from '../examples/metrics'

const root = join(__dirname, '..')

/** The samples of a Prometheus text exposition, by name and labels: `name{a="b"}` -> value. */
function samples (text: string): Map<string, number> {
  const found = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const space = line.lastIndexOf(' ')
    found.set(line.slice(0, space), Number(line.slice(space + 1)))
  }
  return found
}

async function scrape (app: FastifyInstance): Promise<Map<string, number>> {
  const res = await app.inject({ url: '/metrics' })
  if (res.statusCode !== 200) throw new Error(`GET /metrics answered ${res.statusCode}`)
  return samples(res.body)
}

/** Fetches seen on the jwks channel, apart from the recipe, to compare its histogram with. */
function countFetches (t: Test): { fetched: number } {
  const seen = { fetched: 0 }
  const onJwks = (message: unknown): void => {
    const { outcome, durationMs } = message as CognitoJwksEvent
    if (outcome === 'fetched' && durationMs !== null) seen.fetched++
  }
  diagnostics.subscribe(channels.jwks, onJwks)
  t.teardown(() => diagnostics.unsubscribe(channels.jwks, onJwks))
  return seen
}

async function buildApp (t: Test, issuer: LocalIssuer): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await cognitoMetrics(app)
  await app.register(cognitoAuth, issuer.pluginOptions())
  app.get('/private', { onRequest: app.authenticate }, async () => 'ok')
  app.get('/admin', { onRequest: [app.authenticate, app.requireGroups('admin')] }, async () => 'ok')
  return app
}

t.test('the counters read the requests accepted and refused, the histogram the JWKS fetches', async (t) => {
  const issuer = new LocalIssuer()
  await issuer.listen()
  t.teardown(() => issuer.close())
  const fetches = countFetches(t)
  const app = await buildApp(t, issuer)
  await app.ready()

  const alice = { authorization: `Bearer ${issuer.idToken({ sub: 'alice' })}` }
  const admin = { authorization: `Bearer ${issuer.idToken({ sub: 'root', 'cognito:groups': ['admin'] })}` }
  const requests: Array<[string, Record<string, string>, number]> = [
    // The token cache admits a token on its second verification: the third request is a hit.
    ['/private', alice, 200], ['/private', alice, 200], ['/private', alice, 200],
    ['/admin', admin, 200],
    ['/private', {}, 401], ['/private', {}, 401],
    ['/private', { authorization: 'Bearer abc.def.ghi' }, 401],
    ['/private', { authorization: 'Bearer ' }, 400],
    // Authenticated, then refused by requireGroups: counted in both.
    ['/admin', alice, 403]
  ]
  for (const [url, headers, status] of requests) {
    const res = await app.inject({ url, headers })
    t.equal(res.statusCode, status, `${url} answered ${status}`)
  }

  const metrics = await scrape(app)
  t.equal(metrics.get('cognito_requests_accepted_total{cached="false"}'), 3, 'accepted, verified')
  t.equal(metrics.get('cognito_requests_accepted_total{cached="true"}'), 2, 'accepted from the token cache: the third and fourth of alice')
  t.equal(metrics.get('cognito_requests_refused_total{code="FST_COGNITO_NO_TOKEN"}'), 2)
  t.equal(metrics.get('cognito_requests_refused_total{code="FST_COGNITO_TOKEN_INVALID"}'), 1)
  t.equal(metrics.get('cognito_requests_refused_total{code="FST_COGNITO_BAD_AUTHORIZATION_HEADER"}'), 1)
  t.equal(metrics.get('cognito_requests_refused_total{code="FST_COGNITO_FORBIDDEN"}'), 1)
  t.equal([...metrics.keys()].filter((name) => name.startsWith('cognito_requests_refused_total')).length, 4, 'no other code')
  // As many observations as the jwks channel told of fetches (the keys were fetched from loopback).
  t.equal(metrics.get('cognito_jwks_fetch_duration_seconds_count{outcome="fetched"}') ?? 0, fetches.fetched, 'one observation per fetch')
})

t.test('the histogram: a fetch by its outcome and duration; a rotation is no fetch', async (t) => {
  const issuer = new LocalIssuer()
  const app = await buildApp(t, issuer)
  await app.ready()
  // Messages of the jwks channel's shape, as the key store publishes them.
  const jwks = diagnostics.channel(channels.jwks)
  const messages: CognitoJwksEvent[] = [
    { jwksUri: 'http://127.0.0.1:1/jwks.json', outcome: 'failed', status: 500, durationMs: 180, keys: 0, reason: 'unexpected status 500' },
    { jwksUri: 'http://127.0.0.1:1/jwks.json', outcome: 'fetched', status: 200, durationMs: 40, keys: 2 },
    { jwksUri: 'http://127.0.0.1:1/jwks.json', outcome: 'rotated', status: null, durationMs: null, keys: 2, added: ['b'], removed: ['a'] }
  ]
  for (const message of messages) jwks.publish(message)
  const metrics = await scrape(app)
  t.equal(metrics.get('cognito_jwks_fetch_duration_seconds_count{outcome="failed"}'), 1)
  t.equal(metrics.get('cognito_jwks_fetch_duration_seconds_bucket{le="0.1",outcome="failed"}'), 0)
  t.equal(metrics.get('cognito_jwks_fetch_duration_seconds_bucket{le="0.25",outcome="failed"}'), 1)
  t.equal(metrics.get('cognito_jwks_fetch_duration_seconds_sum{outcome="failed"}'), 0.18)
  t.equal(metrics.get('cognito_jwks_fetch_duration_seconds_bucket{le="0.05",outcome="fetched"}'), 1)
  t.notOk([...metrics.keys()].some((name) => name.includes('rotated')), 'a rotation is not observed')
})

t.test('closing the app lets go of the channels', async (t) => {
  const issuer = new LocalIssuer()
  const app = Fastify()
  await cognitoMetrics(app)
  await app.register(cognitoAuth, issuer.pluginOptions())
  await app.ready()
  for (const name of [channels.authenticated, channels.refused, channels.jwks]) {
    t.equal(diagnostics.channel(name).hasSubscribers, true, `${name}: the recipe listens`)
  }
  await app.close()
  for (const name of [channels.authenticated, channels.refused, channels.jwks]) {
    t.equal(diagnostics.channel(name).hasSubscribers, false, `${name}: nobody listens once closed`)
  }
})

t.test('the README shows the recipe as it runs here', async (t) => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const file = readFileSync(join(root, 'examples/metrics.ts'), 'utf8')
  // The file's own header comment and its note on the import path are the example's, not the recipe's.
  const recipe = file
    .replace(/^\/\*\*[\s\S]*?\*\/\n/, '')
    .replace("// An application imports the package: `from 'fastify-cognito-jwt'`.\n", '')
    .replace("from '../index'", "from 'fastify-cognito-jwt'")
  t.not(recipe, file, 'the example was adapted')
  t.ok(readme.includes(`<!-- snippet: module -->\n\n\`\`\`ts\n${recipe}\`\`\`\n`), 'the README has examples/metrics.ts, importing the package')
})
