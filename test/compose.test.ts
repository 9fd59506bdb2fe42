/**
 * The plugin among others: `authenticate` as one strategy of @fastify/auth, and instances of the
 * plugin encapsulated in sibling scopes, each with its own pool.
 */
import fastifyAuth from '@fastify/auth'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import cognitoAuth from '../index'
import { LocalIssuer } from '../testing'

const NO_TOKEN = 'Bearer realm="api"'
const INVALID = 'Bearer realm="api", error="invalid_token", error_description="The token is invalid"'

function bearer (token: string): { authorization: string } {
  return { authorization: `Bearer ${token}` }
}

t.test('@fastify/auth: authenticate as one strategy among others', async (t) => {
  const issuer = new LocalIssuer()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, issuer.pluginOptions())
  await app.register(fastifyAuth)

  let apiKeyChecks = 0
  class ApiKeyError extends Error {
    readonly code = 'APP_BAD_API_KEY'
    readonly statusCode = 401
  }
  // Another strategy, in Fastify's callback style.
  function apiKey (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void): void {
    apiKeyChecks++
    if (request.headers['x-api-key'] === 'secret') done()
    else done(new ApiKeyError('API key missing or wrong'))
  }
  const whoAmI = async (request: FastifyRequest): Promise<{ sub: string | null }> => ({ sub: request.cognitoClaims?.sub ?? null })

  app.get('/token-or-key', { onRequest: app.auth([app.authenticate, apiKey]) }, whoAmI)
  app.get('/key-or-token', { onRequest: app.auth([apiKey, app.authenticate]) }, whoAmI)
  app.get('/token-and-key', { onRequest: app.auth([app.authenticate, apiKey], { relation: 'and' }) }, whoAmI)
  app.get('/admin-token-or-key', {
    onRequest: app.auth([[app.authenticate, app.requireGroups('admin')], apiKey])
  }, whoAmI)

  const token = issuer.idToken({ sub: 'quinn' })
  const admin = issuer.idToken({ sub: 'root', 'cognito:groups': ['admin'] })

  function answered (t: Test, res: LightMyRequestResponse, status: number, code: string): void {
    t.equal(res.statusCode, status, 'status')
    t.equal(res.json<{ code: string }>().code, code, 'code')
  }

  t.test('or: a valid token passes without asking the other strategy', async (t) => {
    apiKeyChecks = 0
    const res = await app.inject({ url: '/token-or-key', headers: bearer(token) })
    t.equal(res.statusCode, 200)
    t.same(res.json(), { sub: 'quinn' })
    t.equal(apiKeyChecks, 0)
  })

  t.test('or: no token, but the other strategy passes, and no challenge goes with the 200', async (t) => {
    for (const url of ['/token-or-key', '/key-or-token']) {
      const res = await app.inject({ url, headers: { 'x-api-key': 'secret' } })
      t.equal(res.statusCode, 200, url)
      t.same(res.json(), { sub: null }, `${url}: anonymous for the plugin`)
      t.equal(res.headers['www-authenticate'], undefined, `${url}: no challenge`)
    }
  })

  t.test('or: an invalid token, but the other strategy passes, and no challenge goes with the 200', async (t) => {
    const res = await app.inject({ url: '/token-or-key', headers: { ...bearer('a.b.c'), 'x-api-key': 'secret' } })
    t.equal(res.statusCode, 200)
    t.same(res.json(), { sub: null })
    t.equal(res.headers['www-authenticate'], undefined)
  })

  t.test('or: a group requirement that fails, but the other strategy passes: no challenge', async (t) => {
    const res = await app.inject({ url: '/admin-token-or-key', headers: { ...bearer(token), 'x-api-key': 'secret' } })
    t.equal(res.statusCode, 200)
    t.equal(res.headers['www-authenticate'], undefined)
  })

  t.test('or: both fail, the last strategy\'s error is the answer', async (t) => {
    const keyLast = await app.inject({ url: '/token-or-key' })
    answered(t, keyLast, 401, 'APP_BAD_API_KEY')
    // The plugin's challenge travels with its own error, which is not the answer here.
    t.equal(keyLast.headers['www-authenticate'], undefined)

    answered(t, await app.inject({ url: '/key-or-token' }), 401, 'FST_COGNITO_NO_TOKEN')
    const invalid = await app.inject({ url: '/key-or-token', headers: bearer('a.b.c') })
    answered(t, invalid, 401, 'FST_COGNITO_TOKEN_INVALID')
    t.equal(invalid.headers['www-authenticate'], INVALID)
  })

  t.test('and: both are required', async (t) => {
    const both = await app.inject({ url: '/token-and-key', headers: { ...bearer(token), 'x-api-key': 'secret' } })
    t.equal(both.statusCode, 200)
    t.same(both.json(), { sub: 'quinn' })

    answered(t, await app.inject({ url: '/token-and-key', headers: bearer(token) }), 401, 'APP_BAD_API_KEY')
    apiKeyChecks = 0
    const noToken = await app.inject({ url: '/token-and-key', headers: { 'x-api-key': 'secret' } })
    answered(t, noToken, 401, 'FST_COGNITO_NO_TOKEN')
    t.equal(noToken.headers['www-authenticate'], NO_TOKEN)
    t.equal(apiKeyChecks, 0, 'the first failure ends the chain')
  })

  t.test('a group requirement inside a strategy group', async (t) => {
    t.same((await app.inject({ url: '/admin-token-or-key', headers: bearer(admin) })).json(), { sub: 'root' })
    t.equal((await app.inject({ url: '/admin-token-or-key', headers: { ...bearer(token), 'x-api-key': 'secret' } })).statusCode, 200)
    const forbidden = await app.inject({ url: '/admin-token-or-key', headers: bearer(token) })
    answered(t, forbidden, 401, 'APP_BAD_API_KEY')
  })
})

t.test('encapsulation: two instances with different pools in sibling scopes', async (t) => {
  const poolA = new LocalIssuer({ userPoolId: 'eu-central-1_ScopeA', clientId: 'client-a' })
  const poolB = new LocalIssuer({ userPoolId: 'us-west-2_ScopeB', clientId: 'client-b' })
  // The keys are given up front; the JWKS is also served on 127.0.0.1 because the other pool's
  // token carries a kid this scope does not know, which makes it look the kid up.
  for (const pool of [poolA, poolB]) {
    await pool.listen()
    t.teardown(() => pool.close())
  }
  const app = Fastify()
  t.teardown(() => app.close())
  const scopes: Record<string, FastifyInstance> = {}
  for (const [name, pool] of [['a', poolA], ['b', poolB]] as const) {
    await app.register(async (scope) => {
      await scope.register(cognitoAuth, { ...pool.pluginOptions(), jwks: pool.jwks })
      scope.get('/me', { onRequest: scope.authenticate }, async (request) => ({ scope: name, sub: request.cognitoClaims?.sub }))
      scope.get('/admin', { config: { cognito: { groups: 'admin' } } }, async () => ({ scope: name }))
      scopes[name] = scope
    }, { prefix: `/${name}` })
  }
  await app.ready()

  t.test('each scope accepts only its own pool\'s tokens', async (t) => {
    const fromA = poolA.idToken({ sub: 'user-a', 'cognito:groups': ['admin'] })
    const fromB = poolB.idToken({ sub: 'user-b', 'cognito:groups': ['admin'] })
    t.same((await app.inject({ url: '/a/me', headers: bearer(fromA) })).json(), { scope: 'a', sub: 'user-a' })
    t.same((await app.inject({ url: '/b/me', headers: bearer(fromB) })).json(), { scope: 'b', sub: 'user-b' })
    t.same((await app.inject({ url: '/a/admin', headers: bearer(fromA) })).json(), { scope: 'a' })
    for (const [url, token] of [['/a/me', fromB], ['/b/me', fromA], ['/a/admin', fromB], ['/b/admin', fromA]]) {
      const res = await app.inject({ url, headers: bearer(token) })
      t.equal(res.statusCode, 401, url)
      t.equal(res.json<{ code: string }>().code, 'FST_COGNITO_TOKEN_INVALID', url)
      t.equal(res.headers['www-authenticate'], INVALID, url)
    }
  })

  t.test('decorators stay in their scope', async (t) => {
    t.notOk(app.hasDecorator('authenticate'), 'not on the parent')
    t.notOk(app.hasDecorator('cognitoKeyStores'), 'not on the parent')
    t.notOk(app.hasRequestDecorator('cognitoClaims'), 'not on the parent\'s requests')
    t.ok(scopes.a.hasDecorator('authenticate'))
    t.ok(scopes.b.hasDecorator('authenticate'))
    t.not(scopes.a.authenticate, scopes.b.authenticate, 'each scope has its own hook')
    t.not(scopes.a.requireGroups, scopes.b.requireGroups)
  })

  t.test('each scope has its own key store', async (t) => {
    t.match(scopes.a.cognitoKeyStores(), [{ jwksUri: poolA.jwksUri, keys: 1 }])
    t.match(scopes.b.cognitoKeyStores(), [{ jwksUri: poolB.jwksUri, keys: 1 }])
    t.not(poolA.jwksUri, poolB.jwksUri)
    t.equal(scopes.a.cognitoKeyStores().length, 1)
    t.equal(scopes.b.cognitoKeyStores().length, 1)
  })
})

t.test('registering the plugin twice in one scope fails at startup', async (t) => {
  const issuer = new LocalIssuer()
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(cognitoAuth, issuer.pluginOptions())
  app.register(cognitoAuth, issuer.pluginOptions())
  await t.rejects(async () => { await app.ready() }, { code: 'FST_COGNITO_INVALID_OPTION', message: /Invalid option register: .*already registered.*userPools/ })
})

t.test('registering the plugin again in a child scope fails at startup too', async (t) => {
  const issuer = new LocalIssuer()
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(cognitoAuth, issuer.pluginOptions())
  app.register(async (child) => {
    await child.register(cognitoAuth, new LocalIssuer({ userPoolId: 'eu-west-1_Child' }).pluginOptions())
  })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_COGNITO_INVALID_OPTION', message: /Invalid option register: .*already registered.*userPools/ })
})
