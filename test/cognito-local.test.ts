/**
 * End to end against cognito-local: a real emulator process issues the tokens (through the AWS
 * SDK, as an application's sign-in would) and serves the JWKS the plugin fetches.
 */
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import { install } from '@sinonjs/fake-timers'
import cognitoAuth, { type CognitoSinglePoolOptions, type CognitoClaims, type CognitoUser } from '../index'
import { headerOf, payloadOf, startCognitoLocal, type CognitoLocal, type SignedIn, type UserPool } from './helpers/cognito-local'

// The whole file takes 3 to 5 s here (emulator start under 1 s); the margin is for a loaded CI machine.
t.setTimeout(40_000)

const PASSWORD = 'Correct-Horse-9!'
const SIGN_IN_SCOPE = 'aws.cognito.signin.user.admin'

let local: CognitoLocal
let pool: UserPool
let webClient: string
let mobileClient: string
let aliceSub: string
let bobSub: string
/** alice (group admins) and bob (no group), signed in through the web client. */
let alice: SignedIn
let bob: SignedIn
/** alice signed in through the mobile client. */
let aliceMobile: SignedIn

t.before(async () => {
  local = await startCognitoLocal()
  t.teardown(() => local.stop())
  pool = await local.createUserPool('orders')
  webClient = await local.createAppClient(pool.userPoolId, 'web')
  mobileClient = await local.createAppClient(pool.userPoolId, 'mobile')
  aliceSub = await local.createUser(pool.userPoolId, 'alice', PASSWORD, 'alice@example.com')
  bobSub = await local.createUser(pool.userPoolId, 'bob', PASSWORD, 'bob@example.com')
  await local.createGroup(pool.userPoolId, 'admins')
  await local.addUserToGroup(pool.userPoolId, 'alice', 'admins')
  alice = await local.signIn(webClient, 'alice', PASSWORD)
  bob = await local.signIn(webClient, 'bob', PASSWORD)
  aliceMobile = await local.signIn(mobileClient, 'alice', PASSWORD)
})

async function buildApp (t: Test, options: Partial<CognitoSinglePoolOptions> = {}): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(cognitoAuth, {
    userPoolId: pool.userPoolId,
    issuer: pool.issuer,
    jwksUri: pool.jwksUri,
    clientId: webClient,
    // The emulator's JWKS must be reachable: a failure here is a broken setup, not a test result.
    jwksCache: { prefetch: 'required' },
    ...options
  })
  app.get('/me', { onRequest: [app.authenticate] }, async (request) => ({
    claims: request.cognitoClaims,
    user: request.cognitoUser
  }))
  app.get('/admin', { onRequest: [app.authenticate, app.requireGroups('admins')] }, async () => ({ admin: true }))
  app.get('/account', { onRequest: [app.authenticate, app.requireScopes(SIGN_IN_SCOPE)] }, async () => ({ account: true }))
  t.teardown(() => app.close())
  await app.ready()
  return app
}

function call (app: FastifyInstance, token: string, url = '/me'): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } })
}

function claimsIn (response: LightMyRequestResponse): CognitoClaims {
  return (response.json() as { claims: CognitoClaims }).claims
}

function assertAccepted (t: Test, response: LightMyRequestResponse, tokenUse: 'id' | 'access'): void {
  t.equal(response.statusCode, 200)
  t.equal(claimsIn(response).token_use, tokenUse)
  t.equal(claimsIn(response).sub, aliceSub)
}

function assertRefused (t: Test, response: LightMyRequestResponse, status: number, code: string): void {
  t.equal(response.statusCode, status)
  t.equal((response.json() as { code: string }).code, code)
}

t.test('tokenUse "id" accepts the ID token and refuses the access token', async (t) => {
  const app = await buildApp(t, { tokenUse: 'id' })
  assertAccepted(t, await call(app, alice.idToken), 'id')
  assertRefused(t, await call(app, alice.accessToken), 401, 'FST_COGNITO_TOKEN_INVALID')
})

t.test('tokenUse "access" accepts the access token and refuses the ID token', async (t) => {
  const app = await buildApp(t, { tokenUse: 'access' })
  assertAccepted(t, await call(app, alice.accessToken), 'access')
  assertRefused(t, await call(app, alice.idToken), 401, 'FST_COGNITO_TOKEN_INVALID')
})

t.test('tokenUse "any" accepts both tokens', async (t) => {
  const app = await buildApp(t, { tokenUse: 'any' })
  assertAccepted(t, await call(app, alice.idToken), 'id')
  assertAccepted(t, await call(app, alice.accessToken), 'access')
})

t.test('the tokens of another app client of the pool are refused', async (t) => {
  const webOnly = await buildApp(t, { tokenUse: 'any' })
  assertRefused(t, await call(webOnly, aliceMobile.idToken), 401, 'FST_COGNITO_TOKEN_INVALID')
  assertRefused(t, await call(webOnly, aliceMobile.accessToken), 401, 'FST_COGNITO_TOKEN_INVALID')

  // The same tokens pass once that client is allowed: the client id was the only reason.
  const both = await buildApp(t, { tokenUse: 'any', clientId: [webClient, mobileClient] })
  assertAccepted(t, await call(both, aliceMobile.idToken), 'id')
  assertAccepted(t, await call(both, aliceMobile.accessToken), 'access')
})

t.test('a token is refused as expired once the clock passes its exp', async (t) => {
  // The token and its exp come from the emulator; only the plugin's clock moves, so the test
  // neither waits nor depends on how long the emulator takes.
  const exp = payloadOf(alice.idToken).exp as number
  const clock = install({ now: (exp - 1) * 1000, toFake: ['Date'] })
  t.teardown(() => clock.uninstall())
  const app = await buildApp(t, { tokenUse: 'any' })
  assertAccepted(t, await call(app, alice.idToken), 'id')

  clock.setSystemTime((exp + 1) * 1000)
  const response = await call(app, alice.idToken)
  assertRefused(t, response, 401, 'FST_COGNITO_TOKEN_EXPIRED')
  t.match(response.headers['www-authenticate'], /^Bearer realm="api", error="invalid_token"/)
})

t.test('the refresh token is refused as a Bearer token', async (t) => {
  for (const tokenUse of ['id', 'access', 'any'] as const) {
    const app = await buildApp(t, { tokenUse })
    assertRefused(t, await call(app, alice.refreshToken), 401, 'FST_COGNITO_TOKEN_INVALID')
  }
})

t.test('an issuer that differs only in host name is refused', async (t) => {
  // What the emulator would issue with its default HOST: matching is exact, not by meaning.
  const app = await buildApp(t, { tokenUse: 'any', issuer: pool.issuer.replace('127.0.0.1', 'localhost') })
  assertRefused(t, await call(app, alice.idToken), 401, 'FST_COGNITO_TOKEN_INVALID')
})

t.test('cognito:groups reaches request.cognitoClaims', async (t) => {
  const app = await buildApp(t, { tokenUse: 'any' })
  t.same(claimsIn(await call(app, alice.idToken))['cognito:groups'], ['admins'])
  t.same(claimsIn(await call(app, alice.accessToken))['cognito:groups'], ['admins'])
  const bobClaims = claimsIn(await call(app, bob.idToken))
  t.equal(bobClaims.sub, bobSub)
  t.notOk('cognito:groups' in bobClaims, 'a user in no group has no cognito:groups claim')
})

t.test('resolveUser receives the claims and its result becomes request.cognitoUser', async (t) => {
  const received: CognitoClaims[] = []
  const app = await buildApp(t, {
    tokenUse: 'any',
    resolveUser: (claims) => {
      received.push(claims)
      // The user type is whatever the program registers in CognitoUserRegistry; this test's user
      // is its own, so it is handed over as the registered type.
      return { account: `account-of-${claims.sub}` } as unknown as CognitoUser
    }
  })

  const byId = (await call(app, alice.idToken)).json() as { user: { account: string } }
  const byAccess = (await call(app, alice.accessToken)).json() as { user: { account: string } }
  t.equal(byId.user.account, `account-of-${aliceSub}`)
  t.equal(byAccess.user.account, `account-of-${aliceSub}`)

  t.equal(received.length, 2)
  const [fromId, fromAccess] = received
  t.equal(fromId.sub, aliceSub)
  t.equal(fromId.token_use === 'id' ? fromId['cognito:username'] : undefined, 'alice')
  t.equal(fromAccess.sub, aliceSub)
  t.equal(fromAccess.token_use === 'access' ? fromAccess.username : undefined, 'alice')
})

t.test('requireGroups("admins") lets the group member through and forbids another user', async (t) => {
  const app = await buildApp(t, { tokenUse: 'any' })
  for (const token of [alice.idToken, alice.accessToken]) {
    const response = await call(app, token, '/admin')
    t.equal(response.statusCode, 200)
    t.same(response.json(), { admin: true })
  }
  for (const token of [bob.idToken, bob.accessToken]) {
    assertRefused(t, await call(app, token, '/admin'), 403, 'FST_COGNITO_FORBIDDEN')
  }
})

t.test('requireScopes reads the scope of the emulator\'s access token', async (t) => {
  const app = await buildApp(t, { tokenUse: 'any' })
  const response = await call(app, alice.accessToken, '/account')
  t.equal(response.statusCode, 200)
  // An ID token carries no scope, whoever it belongs to.
  assertRefused(t, await call(app, alice.idToken, '/account'), 403, 'FST_COGNITO_FORBIDDEN')
})

t.test('the emulator issues tokens shaped as the verifier expects', async (t) => {
  // Checked here so that a change in the emulator shows up as what it is, not as a refusal above.
  for (const token of [alice.idToken, alice.accessToken]) {
    t.match(headerOf(token), { alg: 'RS256', kid: String })
    const claims = payloadOf(token)
    t.match(claims, { sub: aliceSub, iss: pool.issuer, iat: Number, exp: Number, auth_time: Number, jti: String, event_id: String })
  }
  t.match(payloadOf(alice.idToken), { token_use: 'id', aud: webClient, 'cognito:username': 'alice', email: 'alice@example.com', email_verified: true })
  t.match(payloadOf(alice.accessToken), { token_use: 'access', client_id: webClient, username: 'alice', scope: SIGN_IN_SCOPE })
  t.notOk('aud' in payloadOf(alice.accessToken), 'an access token has no aud')
  // The refresh token is a JWT here (opaque in Cognito) but has neither kid nor token_use.
  t.notOk('kid' in headerOf(alice.refreshToken))
  t.notOk('token_use' in payloadOf(alice.refreshToken))
})
