/**
 * Several user pools in one plugin instance (`userPools`): the unverified `iss` only picks the
 * pool, whose own keys and rules then decide. Whatever a token claims, the answer is a 401, never
 * a 500 or a configuration error.
 */
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import cognitoAuth, { type CognitoUserPoolOptions } from '../index'
import { LocalIssuer } from '../testing'

const INVALID = 'Bearer realm="api", error="invalid_token", error_description="The token is invalid"'

const poolA = new LocalIssuer({ userPoolId: 'eu-central-1_PoolA', clientId: 'client-a' })
const poolB = new LocalIssuer({ userPoolId: 'us-east-1_PoolB', clientId: 'client-b' })

async function buildApp (t: Test, userPools: CognitoUserPoolOptions[]): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, { userPools })
  app.get('/me', { onRequest: app.authenticate }, async (request) => ({
    sub: request.cognitoClaims?.sub,
    iss: request.cognitoClaims?.iss
  }))
  return app
}

function me (app: FastifyInstance, token: string): Promise<LightMyRequestResponse> {
  return app.inject({ url: '/me', headers: { authorization: `Bearer ${token}` } })
}

function invalid (t: Test, res: LightMyRequestResponse, name: string): void {
  t.equal(res.statusCode, 401, `${name}: status`)
  t.equal(res.json<{ code: string }>().code, 'FST_COGNITO_TOKEN_INVALID', `${name}: code`)
  t.equal(res.headers['www-authenticate'], INVALID, `${name}: WWW-Authenticate`)
}

t.test('keys given up front', async (t) => {
  const app = await buildApp(t, [poolA.pluginOptions(), { ...poolB.pluginOptions(), tokenUse: 'access' }])

  t.test('each pool\'s tokens are accepted', async (t) => {
    const a = await me(app, poolA.idToken({ sub: 'from-a' }))
    t.equal(a.statusCode, 200)
    t.same(a.json(), { sub: 'from-a', iss: poolA.issuer })
    const b = await me(app, poolB.accessToken({ sub: 'from-b' }))
    t.equal(b.statusCode, 200)
    t.same(b.json(), { sub: 'from-b', iss: poolB.issuer })
  })

  t.test('the second Cognito issuer form of a pool is accepted too', async (t) => {
    const iss = `https://issuer-cognito-idp.eu-central-1.amazonaws.com/${poolA.userPoolId}`
    const res = await me(app, poolA.idToken({ sub: 'alt', iss }))
    t.equal(res.statusCode, 200)
    t.same(res.json(), { sub: 'alt', iss })
  })

  t.test('each pool keeps its own token use and app clients', async (t) => {
    invalid(t, await me(app, poolA.accessToken()), 'access token for the ID-token pool')
    invalid(t, await me(app, poolB.idToken()), 'ID token for the access-token pool')
    invalid(t, await me(app, poolA.idToken({ aud: poolB.clientId })), 'pool A token for pool B\'s client')
    invalid(t, await me(app, poolB.accessToken({ client_id: poolA.clientId })), 'pool B token for pool A\'s client')
  })

  t.test('a token of pool A signed with pool B\'s key is refused', async (t) => {
    invalid(t, await me(app, poolB.sign(claimsOf(poolA.idToken()), { header: { kid: poolA.kid } })), 'A\'s kid, B\'s signature')
    invalid(t, await me(app, poolA.idToken({}, { signingKey: LocalIssuer.foreignKey() })), 'A\'s kid, a stranger\'s signature')
    // B's kid in a token of pool A needs a JWKS lookup: see the test with local JWKS servers.
  })

  t.test('an issuer that is no configured pool is refused', async (t) => {
    const stranger = new LocalIssuer({ userPoolId: 'eu-west-1_Stranger', clientId: 'client-a' })
    invalid(t, await me(app, stranger.idToken()), 'another pool')
    invalid(t, await me(app, poolA.idToken({ iss: `${poolA.issuer}/` })), 'trailing slash')
    invalid(t, await me(app, poolA.idToken({ iss: poolA.issuer.replace('https:', 'http:') })), 'http')
    invalid(t, await me(app, poolA.idToken({ iss: poolA.issuer.toUpperCase() })), 'upper case')
  })

  t.test('a token without a string iss is refused', async (t) => {
    invalid(t, await me(app, poolA.idToken({ iss: undefined })), 'no iss')
    for (const iss of [42, null, true, [poolA.issuer], { href: poolA.issuer }]) {
      invalid(t, await me(app, poolA.idToken({ iss: iss as unknown as string })), `iss ${JSON.stringify(iss)}`)
    }
  })

  t.test('a payload that is not a JSON object is refused', async (t) => {
    const header = Buffer.from(JSON.stringify({ kid: poolA.kid, alg: 'RS256' })).toString('base64url')
    for (const payload of ['bm90IGpzb24', Buffer.from('[1,2]').toString('base64url'), '']) {
      invalid(t, await me(app, `${header}.${payload}.c2ln`), `payload ${JSON.stringify(payload)}`)
    }
    invalid(t, await me(app, `${header}.onlytwo`), 'no third part')
  })

  t.test('each pool has its own key store', async (t) => {
    const stores = app.cognitoKeyStores()
    t.equal(stores.length, 2)
    t.match(stores, [
      { jwksUri: null, keys: 1, fetches: 0 },
      { jwksUri: null, keys: 1, fetches: 0 }
    ])
  })
})

t.test('a token of pool A with pool B\'s kid: pool A\'s JWKS is asked, then 401', async (t) => {
  // Each pool's JWKS is served on 127.0.0.1, so that the unknown kid can be looked up.
  const a = new LocalIssuer({ userPoolId: 'eu-central-1_PoolA', clientId: 'client-a' })
  const b = new LocalIssuer({ userPoolId: 'us-east-1_PoolB', clientId: 'client-b' })
  await a.listen()
  await b.listen()
  t.teardown(() => a.close())
  t.teardown(() => b.close())
  const app = await buildApp(t, [{ ...a.pluginOptions(), jwks: a.jwks }, { ...b.pluginOptions(), jwks: b.jwks }])

  const forged = b.sign(claimsOf(a.idToken({ sub: 'forged' })))
  invalid(t, await me(app, forged), 'A\'s claims, B\'s kid and signature')
  const [storeA, storeB] = app.cognitoKeyStores()
  t.match(storeA, { jwksUri: a.jwksUri, fetches: 1, failures: 0, keys: 1 }, 'pool A looked the kid up in its own JWKS')
  t.match(storeB, { jwksUri: b.jwksUri, fetches: 0 }, 'pool B was not asked')

  const crossed = a.sign(claimsOf(b.idToken()))
  invalid(t, await me(app, crossed), 'B\'s claims, A\'s kid and signature')
  t.match(app.cognitoKeyStores()[1], { fetches: 1, failures: 0, keys: 1 }, 'pool B looked A\'s kid up in its own JWKS')

  t.equal((await me(app, a.idToken())).statusCode, 200, 'pool A still works')
  t.equal((await me(app, b.idToken())).statusCode, 200, 'pool B still works')
})

/** The claims of a token minted by a LocalIssuer (tests only; no verification). */
function claimsOf (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8')) as Record<string, unknown>
}

t.test('one pool: a token of another issuer with an unknown kid causes no key fetch', async (t) => {
  const issuer = new LocalIssuer()
  await issuer.listen()
  const options = { ...issuer.pluginOptions(), jwks: issuer.jwks }
  await issuer.close() // the JWKS endpoint is down: a fetch would turn the answer into a 503
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, options)
  app.get('/me', { onRequest: app.authenticate }, async () => 'ok')
  const stranger = new LocalIssuer({ userPoolId: 'eu-west-1_Stranger', clientId: issuer.clientId })
  invalid(t, await me(app, stranger.idToken()), 'stranger')
  t.equal(app.cognitoKeyStores()[0].fetches, 0, 'no fetch')
  t.equal((await me(app, issuer.idToken())).statusCode, 200, 'the pool\'s own tokens still pass')
})
