/**
 * Tokens real Cognito issues, accepted: access tokens bound to a resource server (`aud`), a
 * fresh token issued a little ahead of the server's clock, machine-to-machine access tokens. And
 * the edges that stay refused: `exp` itself, `iat` far in the future, an access token for another
 * resource server when the pool names its audience.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import Fastify, { type LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import cognitoAuth, { channels, type CognitoAuthOptions, type CognitoRefusedEvent } from '../index'
import { LocalIssuer } from '../testing'
import { bearer, buildApp } from './helpers/app'
import { fakeClock } from './helpers/clock'

const issuer = new LocalIssuer()

function status (t: Test, response: LightMyRequestResponse, expected: number, code: string | undefined, name: string): void {
  t.equal(response.statusCode, expected, `${name}: status`)
  if (code !== undefined) t.equal(response.json<{ code: string }>().code, code, `${name}: code`)
}

t.test('an access token with an aud is bound to its app client by client_id', async (t) => {
  const app = await buildApp(t, { ...issuer.pluginOptions(), tokenUse: 'any' })
  const get = (token: string): Promise<LightMyRequestResponse> => app.inject({ url: '/private', headers: bearer(token) })
  status(t, await get(issuer.accessToken({ aud: 'https://api.example.com' })), 200, undefined, 'a resource server in aud')
  status(t, await get(issuer.accessToken({ aud: ['https://api.example.com', 'orders'] })), 200, undefined, 'a list of resource servers')
  status(t, await get(issuer.accessToken({ aud: issuer.clientId, client_id: 'another-client' })), 401, 'FST_COGNITO_TOKEN_INVALID', 'the client in aud does not stand for client_id')
  status(t, await get(issuer.accessToken({ aud: 'https://api.example.com', client_id: undefined })), 401, 'FST_COGNITO_TOKEN_INVALID', 'no client_id')
  // ID tokens are still bound by aud.
  status(t, await get(issuer.idToken({ aud: 'another-client' })), 401, 'FST_COGNITO_TOKEN_INVALID', 'an ID token for another client')
  status(t, await get(issuer.idToken({ aud: undefined })), 401, 'FST_COGNITO_TOKEN_INVALID', 'an ID token without aud')
  status(t, await get(issuer.idToken({ aud: [issuer.clientId] })), 401, 'FST_COGNITO_TOKEN_INVALID', 'an ID token with a list in aud')
})

t.test('audience: access tokens must name one of the pool\'s resource servers', async (t) => {
  const app = await buildApp(t, { ...issuer.pluginOptions(), tokenUse: 'any', audience: ['https://api.example.com', 'orders'] })
  const get = (token: string): Promise<LightMyRequestResponse> => app.inject({ url: '/private', headers: bearer(token) })
  status(t, await get(issuer.accessToken({ aud: 'https://api.example.com' })), 200, undefined, 'one of them')
  status(t, await get(issuer.accessToken({ aud: ['elsewhere', 'orders'] })), 200, undefined, 'a list that holds one of them')
  status(t, await get(issuer.accessToken({ aud: 'https://elsewhere.example.com' })), 401, 'FST_COGNITO_TOKEN_INVALID', 'another resource server')
  status(t, await get(issuer.accessToken({ aud: ['a', 'b'] })), 401, 'FST_COGNITO_TOKEN_INVALID', 'a list without one of them')
  status(t, await get(issuer.accessToken({ aud: [] })), 401, 'FST_COGNITO_TOKEN_INVALID', 'an empty list')
  status(t, await get(issuer.accessToken()), 401, 'FST_COGNITO_TOKEN_INVALID', 'no aud')
  status(t, await get(issuer.idToken()), 200, undefined, 'ID tokens are not concerned')

  const single = await buildApp(t, { ...issuer.pluginOptions(), tokenUse: 'access', audience: 'orders', clientId: null })
  status(t, await single.inject({ url: '/private', headers: bearer(issuer.accessToken({ aud: 'orders' })) }), 200, undefined, 'a single audience')
  status(t, await single.inject({ url: '/private', headers: bearer(issuer.accessToken({ aud: 'billing' })) }), 401, 'FST_COGNITO_TOKEN_INVALID', 'a single audience, another one')
})

t.test('audience is refused where it cannot apply, and must name resource servers', async (t) => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['tokenUse left at id', { ...issuer.pluginOptions(), audience: 'orders' }, 'Invalid option audience: applies to access tokens only'],
    ['tokenUse id in a pool', { userPools: [{ ...issuer.pluginOptions(), tokenUse: 'id', audience: ['orders'] }] }, 'Invalid option userPools[0].audience: applies to access tokens only'],
    ['an empty list', { ...issuer.pluginOptions(), tokenUse: 'access', audience: [] }, 'Invalid option audience: must be a non-empty string'],
    ['a number', { ...issuer.pluginOptions(), tokenUse: 'access', audience: 42 }, 'Invalid option audience: must be a non-empty string']
  ]
  for (const [name, options, message] of cases) {
    const app = Fastify()
    t.teardown(() => app.close())
    app.register(cognitoAuth, options as unknown as CognitoAuthOptions)
    await t.rejects(async () => { await app.ready() }, { code: 'FST_COGNITO_INVALID_OPTION', message: new RegExp(`^${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`) }, name)
  }
})

t.test('iat a little ahead of the server clock passes; far ahead is refused', async (t) => {
  const clock = fakeClock(t, Date.UTC(2026, 10, 29, 1, 0, 0))
  const app = await buildApp(t, { ...issuer.pluginOptions(), tokenCache: false })
  const nowS = clock.now / 1000
  const get = (iat: number): Promise<LightMyRequestResponse> => app.inject({ url: '/private', headers: bearer(issuer.idToken({ iat, exp: iat + 3600 })) })
  status(t, await get(nowS + 1), 200, undefined, '1 s ahead')
  status(t, await get(nowS + 300), 200, undefined, '5 minutes ahead')
  status(t, await get(nowS + 301), 401, 'FST_COGNITO_TOKEN_INVALID', 'more than 5 minutes ahead')

  const tolerant = await buildApp(t, { ...issuer.pluginOptions(), tokenCache: false, clockTolerance: 30 })
  const tolerantGet = (iat: number): Promise<LightMyRequestResponse> => tolerant.inject({ url: '/private', headers: bearer(issuer.idToken({ iat, exp: iat + 3600 })) })
  status(t, await tolerantGet(nowS + 330), 200, undefined, 'clockTolerance adds to the bound')
  status(t, await tolerantGet(nowS + 331), 401, 'FST_COGNITO_TOKEN_INVALID', 'and no more')
})

t.test('exp is exclusive: a token is expired at exp itself, to the millisecond', async (t) => {
  const clock = fakeClock(t, Date.UTC(2026, 10, 29, 1, 0, 0) - 1)
  const app = await buildApp(t, issuer.pluginOptions())
  const exp = Date.UTC(2026, 10, 29, 1, 0, 0) / 1000
  const token = issuer.idToken({ iat: exp - 3600, exp })
  const get = (): Promise<LightMyRequestResponse> => app.inject({ url: '/private', headers: bearer(token) })
  status(t, await get(), 200, undefined, '1 ms before exp')
  clock.tick(1)
  status(t, await get(), 401, 'FST_COGNITO_TOKEN_EXPIRED', 'at exp, from the cache')

  const fresh = await buildApp(t, issuer.pluginOptions())
  status(t, await fresh.inject({ url: '/private', headers: bearer(token) }), 401, 'FST_COGNITO_TOKEN_EXPIRED', 'at exp, verified')
  const response = await fresh.inject({ url: '/private', headers: bearer(token) })
  t.match(response.headers['www-authenticate'], /error="invalid_token", error_description="The token has expired"/)

  const tolerant = await buildApp(t, { ...issuer.pluginOptions(), clockTolerance: 5 })
  status(t, await tolerant.inject({ url: '/private', headers: bearer(token) }), 200, undefined, 'within clockTolerance')
  clock.tick(5000)
  status(t, await tolerant.inject({ url: '/private', headers: bearer(token) }), 401, 'FST_COGNITO_TOKEN_EXPIRED', 'at exp + clockTolerance')
})

t.test('a machine-to-machine access token, end to end with requireScopes', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, { ...issuer.pluginOptions(), tokenUse: 'access' })
  app.get('/orders', { onRequest: [app.authenticate, app.requireScopes('orders/read')] }, async (request) => {
    const claims = request.cognitoClaims
    return { client: claims?.token_use === 'access' ? claims.client_id : null, username: claims?.username ?? null }
  })
  app.get('/config', { config: { cognito: { scopes: ['orders/write', 'orders/read'], match: 'all' } } }, async () => 'written')
  // The client-credentials grant: sub is the client id; no username, groups, origin_jti or event_id.
  const m2m = (scope: string): string => issuer.accessToken({
    sub: issuer.clientId,
    scope,
    username: undefined,
    'cognito:groups': undefined,
    origin_jti: undefined,
    event_id: undefined,
    auth_time: undefined
  })
  const read = await app.inject({ url: '/orders', headers: bearer(m2m('orders/read')) })
  t.equal(read.statusCode, 200)
  t.same(read.json(), { client: issuer.clientId, username: null })
  const denied = await app.inject({ url: '/orders', headers: bearer(m2m('orders/write')) })
  status(t, denied, 403, 'FST_COGNITO_FORBIDDEN', 'another scope')
  t.equal(denied.headers['www-authenticate'], 'Bearer realm="api", error="insufficient_scope", error_description="Insufficient permissions", scope="orders/read"')
  t.equal((await app.inject({ url: '/config', headers: bearer(m2m('orders/read orders/write')) })).body, 'written', 'config.cognito scopes')
  status(t, await app.inject({ url: '/config', headers: bearer(m2m('orders/read')) }), 403, 'FST_COGNITO_FORBIDDEN', 'config.cognito, a scope missing')
})

t.test('the reason on the refused event names no claim value', async (t) => {
  const reasons: string[] = []
  const listener = (message: unknown): void => { reasons.push(String((message as CognitoRefusedEvent).error.reason)) }
  subscribe(channels.refused, listener)
  t.teardown(() => unsubscribe(channels.refused, listener))
  const app = await buildApp(t, issuer.pluginOptions())
  const secret = 'secret.person@example.com'
  const expiredAt = Math.floor(Date.now() / 1000) - 60
  const tokens = [
    issuer.idToken({ email: secret, exp: expiredAt }),
    issuer.idToken({ email: secret, iss: 'https://attacker.example.com/pool' }),
    issuer.idToken({ email: secret, aud: secret })
  ]
  for (const token of tokens) t.equal((await app.inject({ url: '/private', headers: bearer(token) })).statusCode, 401)
  t.same(reasons, [
    'FAST_JWT_EXPIRED: the token has expired',
    'FAST_JWT_INVALID_CLAIM_VALUE: a claim value is not allowed',
    'aud claim is not an allowed app client'
  ])
  t.notOk(reasons.some((reason) => reason.includes(secret) || reason.includes(String(expiredAt)) || /\d{4}-\d\d-\d\d/.test(reason)))
})
