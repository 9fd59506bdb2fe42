/**
 * Behind an Application Load Balancer: the load balancer's token (`x-amzn-oidc-data`, ES256 over
 * padded segments, its PEM key served by `kid` on 127.0.0.1) and the access token it forwards.
 * Every token is minted the way the load balancer mints it (AlbIssuer), or forged from its parts.
 */
import { createHmac, generateKeyPairSync, randomUUID, sign } from 'node:crypto'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import cognitoAuth, { channels, type CognitoAlbAuthenticatedEvent, type CognitoAuthenticatedEvent, type CognitoAuthError, type CognitoAuthOptions } from '../index'
import { AlbIssuer, LocalIssuer } from '../testing'
import { fakeClock } from './helpers/clock'

const pool = new LocalIssuer()

interface Setup {
  app: FastifyInstance
  alb: AlbIssuer
}

async function setup (t: Test, options: Record<string, unknown> = {}, albOptions: Record<string, unknown> = {}, alb = new AlbIssuer({ pool })): Promise<Setup> {
  await alb.listen()
  t.teardown(() => alb.close())
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, { ...alb.pluginOptions(), ...options, alb: { ...alb.albOptions(), ...albOptions } } as CognitoAuthOptions)
  app.get('/me', { onRequest: app.authenticate }, async (request) => ({
    sub: request.cognitoClaims?.sub ?? null,
    tokenUse: request.cognitoClaims?.token_use ?? null,
    user: (request.cognitoUser as { sub?: string } | null)?.sub ?? null,
    alb: request.cognitoAlbClaims,
    pool: request.cognitoPool?.userPoolId ?? null
  }))
  app.get('/feed', { onRequest: app.authenticateOptional }, async (request) => ({ sub: request.cognitoClaims?.sub ?? null, alb: request.cognitoAlbClaims }))
  return { app, alb }
}

/** The refusals heard on the refused channel, with their reasons, until the test ends. */
function refusals (t: Test): CognitoAuthError[] {
  const heard: CognitoAuthError[] = []
  const listener = (message: unknown): void => { heard.push((message as { error: CognitoAuthError }).error) }
  subscribe(channels.refused, listener)
  t.teardown(() => unsubscribe(channels.refused, listener))
  return heard
}

async function expectRefused (t: Test, app: FastifyInstance, headers: Record<string, string | string[]>, status: number, code: string, reason: string | RegExp): Promise<void> {
  const heard = refusals(t)
  const res = await app.inject({ url: '/me', headers })
  t.equal(res.statusCode, status, `${code}: status`)
  t.equal(res.json().code, code)
  t.match(heard.at(-1)?.reason, reason)
  if (status === 401) t.match(res.headers['www-authenticate'], /^Bearer realm="api"/)
  for (const value of Object.values(headers).flat().filter((value) => value.length > 16)) t.notOk(res.body.includes(value), 'the answer carries no token')
}

function encode (bytes: Buffer): string {
  return bytes.toString('base64').replaceAll('+', '-').replaceAll('/', '_')
}

/** A token from its parts, padded as the load balancer pads; `signature` signs the text as sent. */
function forge (header: Record<string, unknown>, payload: Record<string, unknown>, signature: (input: string) => Buffer): string {
  const input = `${encode(Buffer.from(JSON.stringify(header)))}.${encode(Buffer.from(JSON.stringify(payload)))}`
  return `${input}.${encode(signature(input))}`
}

/** The header and payload of a token the AlbIssuer minted, to forge variants of it. */
function partsOf (token: string): { header: Record<string, unknown>, payload: Record<string, unknown> } {
  const [header, payload] = token.split('.').slice(0, 2).map((segment) => JSON.parse(Buffer.from(segment, 'base64').toString('utf8')))
  return { header, payload }
}

t.test('a padded token from the load balancer, with its access token: both claims on the request', async (t) => {
  const { app, alb } = await setup(t)
  // Claims whose base64 differs from base64url: the token must carry - or _ and = padding.
  const headers = alb.headers({ name: '???>>>~~~', given_name: 'Ægir' })
  const [header, payload, signature] = headers['x-amzn-oidc-data'].split('.')
  t.match(payload, /[-_]/, 'the payload has characters of the url alphabet')
  t.ok([header, payload, signature].some((segment) => segment.endsWith('=')), 'segments are padded')
  const res = await app.inject({ url: '/me', headers })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.equal(body.sub, headers['x-amzn-oidc-identity'])
  t.equal(body.tokenUse, 'access', 'cognitoClaims is the access token')
  t.equal(body.user, body.sub)
  t.equal(body.pool, pool.userPoolId)
  t.equal(body.alb.sub, body.sub)
  t.equal(body.alb.email_verified, 'true', 'userInfo claims as strings')
  t.equal(body.alb.name, '???>>>~~~')
  t.equal(body.alb.given_name, 'Ægir')
  t.equal(alb.keyRequests, 1, 'the key was fetched once')
  const again = await app.inject({ url: '/me', headers: alb.headers() })
  t.equal(again.statusCode, 200)
  t.equal(alb.keyRequests, 1, 'a known kid is not fetched again')
  t.match(app.cognitoKeyStores().at(-1), { jwksUri: alb.keysUri, keys: 1, fetches: 1, failures: 0 })
})

t.test('segments in the standard base64 alphabet, or without padding, verify as sent', async (t) => {
  const { app, alb } = await setup(t)
  const standard = alb.headers({ name: '???>>>~~~' }, { alphabet: 'base64' })
  t.match(standard['x-amzn-oidc-data'].split('.')[1], /[+/]/, 'the payload has characters of the standard alphabet')
  t.equal((await app.inject({ url: '/me', headers: standard })).statusCode, 200)
  const unpadded = alb.headers({}, { padding: false })
  t.notOk(unpadded['x-amzn-oidc-data'].includes('='))
  t.equal((await app.inject({ url: '/me', headers: unpadded })).statusCode, 200)
})

t.test('the header names another load balancer, client or pool', async (t) => {
  const { app, alb } = await setup(t)
  const otherArn = 'arn:aws:elasticloadbalancing:eu-central-1:123456789012:loadbalancer/app/other-alb/0123456789abcdee'
  await expectRefused(t, app, alb.headers({}, { header: { signer: otherArn } }), 401, 'FST_COGNITO_TOKEN_INVALID', 'signer header is not an accepted load balancer')
  await expectRefused(t, app, alb.headers({}, { header: { client: 'another-client' } }), 401, 'FST_COGNITO_TOKEN_INVALID', 'client header is not an allowed app client')
  const otherIssuer = 'https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_Other'
  await expectRefused(t, app, alb.headers({}, { header: { iss: otherIssuer } }), 401, 'FST_COGNITO_TOKEN_INVALID', 'iss header is not a configured pool')
  for (const missing of ['signer', 'client', 'iss']) {
    await expectRefused(t, app, alb.headers({}, { header: { [missing]: undefined } }), 401, 'FST_COGNITO_TOKEN_INVALID', `${missing} header missing`)
  }
  await expectRefused(t, app, alb.headers({}, { header: { exp: '2099-01-01' } }), 401, 'FST_COGNITO_TOKEN_INVALID', 'exp header missing or not a number')
  await expectRefused(t, app, alb.headers({}, { header: { crit: ['b64'] } }), 401, 'FST_COGNITO_TOKEN_INVALID', 'a crit header is not supported')
  t.equal(alb.keyRequests, 0, 'no refused header cost a key fetch')
  // The payload is read once the signature has passed: its issuer costs the (one) key fetch.
  await expectRefused(t, app, alb.headers({ iss: otherIssuer }), 401, 'FST_COGNITO_TOKEN_INVALID', 'iss claim is not the pool\'s issuer')
  t.equal(alb.keyRequests, 1)
})

t.test('the other issuer form of the pool is accepted in the header and the payload', async (t) => {
  const { app, alb } = await setup(t)
  const other = `https://issuer-cognito-idp.${pool.region}.amazonaws.com/${pool.userPoolId}`
  t.equal((await app.inject({ url: '/me', headers: alb.headers({ iss: other }, { header: { iss: other } }) })).statusCode, 200)
})

t.test('expiry: the header exp and the payload exp, each on its own, with the clock tolerance', async (t) => {
  const clock = fakeClock(t)
  const { app, alb } = await setup(t, { clockTolerance: 5 })
  const now = Math.floor(clock.now / 1000)
  const headerSoon = alb.headers({ exp: now + 600 }, { header: { exp: now + 60 } })
  const payloadSoon = alb.headers({ exp: now + 60 }, { header: { exp: now + 600 } })
  t.equal((await app.inject({ url: '/me', headers: headerSoon })).statusCode, 200)
  t.equal((await app.inject({ url: '/me', headers: payloadSoon })).statusCode, 200)
  clock.tick(63_000)
  t.equal((await app.inject({ url: '/me', headers: headerSoon })).statusCode, 200, 'within the tolerance')
  clock.tick(2000)
  await expectRefused(t, app, headerSoon, 401, 'FST_COGNITO_TOKEN_EXPIRED', 'the token has expired (header exp reached)')
  await expectRefused(t, app, payloadSoon, 401, 'FST_COGNITO_TOKEN_EXPIRED', 'the token has expired (exp reached)')
})

t.test('a token verified before is served from the cache until its earlier exp, then refused', async (t) => {
  const clock = fakeClock(t)
  const { app, alb } = await setup(t)
  const now = Math.floor(clock.now / 1000)
  const headers = alb.headers({ exp: now + 600 }, { header: { exp: now + 30 } })
  const heard: Array<CognitoAuthenticatedEvent | CognitoAlbAuthenticatedEvent> = []
  const listener = (message: unknown): void => { heard.push(message as CognitoAuthenticatedEvent) }
  subscribe(channels.authenticated, listener)
  t.teardown(() => unsubscribe(channels.authenticated, listener))
  for (let i = 0; i < 3; i++) t.equal((await app.inject({ url: '/me', headers })).statusCode, 200)
  t.same(heard.map((message) => message.cached), [false, false, true], 'the third request is a cache hit for both tokens')
  t.equal(heard[2].albClaims?.sub, headers['x-amzn-oidc-identity'], 'the event carries the load balancer\'s claims')
  t.ok(Object.isFrozen(heard[2].albClaims), 'the claims a cached token hands out are frozen')
  clock.tick(30_000)
  await expectRefused(t, app, headers, 401, 'FST_COGNITO_TOKEN_EXPIRED', 'header exp reached')
})

t.test('algorithms other than ES256: none, HS256 with the PEM as secret, RS256', async (t) => {
  const { app, alb } = await setup(t)
  const { header, payload } = partsOf(alb.dataToken())
  const access = pool.accessToken({ sub: payload.sub as string })
  const send = (data: string): Record<string, string> => ({ 'x-amzn-oidc-data': data, 'x-amzn-oidc-accesstoken': access })
  const none = forge({ ...header, alg: 'none' }, payload, () => Buffer.alloc(0))
  await expectRefused(t, app, send(none), 401, 'FST_COGNITO_TOKEN_INVALID', 'algorithm is not ES256')
  const pem = alb.pem() as string
  const hs256 = forge({ ...header, alg: 'HS256' }, payload, (input) => createHmac('sha256', pem).update(input).digest())
  await expectRefused(t, app, send(hs256), 401, 'FST_COGNITO_TOKEN_INVALID', 'algorithm is not ES256')
  // The same HMAC, 32 bytes, under an ES256 header: still not a signature of the key.
  const hsAsEs = forge(header, payload, (input) => Buffer.concat([createHmac('sha256', pem).update(input).digest(), Buffer.alloc(32)]))
  await expectRefused(t, app, send(hsAsEs), 401, 'FST_COGNITO_TOKEN_INVALID', 'the signature is invalid')
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const rs256 = forge({ ...header, alg: 'RS256' }, payload, (input) => sign('sha256', Buffer.from(input), privateKey))
  await expectRefused(t, app, send(rs256), 401, 'FST_COGNITO_TOKEN_INVALID', 'algorithm is not ES256')
  await expectRefused(t, app, send(forge({ ...header, alg: undefined }, payload, () => Buffer.alloc(64))), 401, 'FST_COGNITO_TOKEN_INVALID', 'algorithm is not ES256')
})

t.test('signatures: over the unpadded text, DER-encoded, by another key, over another payload', async (t) => {
  const { app, alb } = await setup(t)
  t.equal((await app.inject({ url: '/me', headers: alb.headers() })).statusCode, 200, 'the key is known')
  await expectRefused(t, app, alb.headers({}, { signUnpadded: true }), 401, 'FST_COGNITO_TOKEN_INVALID', 'the signature is invalid')
  await expectRefused(t, app, alb.headers({}, { dsaEncoding: 'der' }), 401, 'FST_COGNITO_TOKEN_INVALID', 'signature is not 64 bytes of r||s')
  await expectRefused(t, app, alb.headers({}, { signingKey: AlbIssuer.foreignKey() }), 401, 'FST_COGNITO_TOKEN_INVALID', 'the signature is invalid')
  const headers = alb.headers()
  const [header, , signature] = headers['x-amzn-oidc-data'].split('.')
  const { payload } = partsOf(headers['x-amzn-oidc-data'])
  const tampered = `${header}.${encode(Buffer.from(JSON.stringify({ ...payload, email: 'admin@example.com' })))}.${signature}`
  await expectRefused(t, app, { ...headers, 'x-amzn-oidc-data': tampered }, 401, 'FST_COGNITO_TOKEN_INVALID', 'the signature is invalid')
})

t.test('malformed tokens and kids are refused before any key fetch', async (t) => {
  const { app, alb } = await setup(t)
  const good = alb.headers()
  const data = good['x-amzn-oidc-data']
  const [header, payload, signature] = data.split('.')
  const cases: Array<[string, string | RegExp]> = [
    ['', 'not three parts'],
    ['abc', 'not three parts'],
    [`${header}.${payload}`, 'not three parts'],
    [`${data}.${signature}`, 'not three parts'],
    [`.${payload}.${signature}`, 'not three parts'],
    [`${header}*.${payload}.${signature}`, 'malformed token header'],
    [`${header}A.${payload}.${signature}`, 'malformed token header'],
    [`${encode(Buffer.from('[1]'))}.${payload}.${signature}`, 'malformed token header'],
    [`${encode(Buffer.from('{"alg":'))}.${payload}.${signature}`, 'malformed token header'],
    [`${header}.${payload}.${signature.replace(/=+$/, '')}x`, 'signature is not 64 bytes of r||s'],
    [`${header}.${payload}.`, 'signature is not 64 bytes of r||s'],
    ['x'.repeat(9000), 'token longer than maxTokenLength']
  ]
  for (const [value, reason] of cases) {
    await expectRefused(t, app, { ...good, 'x-amzn-oidc-data': value }, 401, 'FST_COGNITO_TOKEN_INVALID', reason)
  }
  for (const kid of ['not-a-uuid', '../../admin', `${randomUUID()}/x`, 42]) {
    await expectRefused(t, app, alb.headers({}, { header: { kid } }), 401, 'FST_COGNITO_TOKEN_INVALID', 'kid header is not a UUID')
  }
  await expectRefused(t, app, { ...good, 'x-amzn-oidc-data': [data, data] }, 401, 'FST_COGNITO_TOKEN_INVALID', 'not three parts')
  t.equal(alb.keyRequests, 0, 'none of them fetched a key')
})

t.test('payloads the signature covers but the claim rules refuse', async (t) => {
  const { app, alb } = await setup(t)
  const now = Math.floor(Date.now() / 1000)
  await expectRefused(t, app, alb.headers({ sub: '' }), 401, 'FST_COGNITO_TOKEN_INVALID', 'sub claim missing or not a string')
  const noSub = alb.headers()
  noSub['x-amzn-oidc-data'] = alb.dataToken({ sub: undefined })
  await expectRefused(t, app, noSub, 401, 'FST_COGNITO_TOKEN_INVALID', 'sub claim missing or not a string')
  await expectRefused(t, app, alb.headers({ exp: 'later' }, { header: { exp: now + 60 } }), 401, 'FST_COGNITO_TOKEN_INVALID', 'exp claim missing or not a number')
  await expectRefused(t, app, alb.headers({ nbf: 'now' }), 401, 'FST_COGNITO_TOKEN_INVALID', 'nbf claim has the wrong type')
  await expectRefused(t, app, alb.headers({ nbf: now + 600 }), 401, 'FST_COGNITO_TOKEN_INVALID', 'the token is not active yet (nbf)')
  t.equal((await app.inject({ url: '/me', headers: alb.headers({ nbf: now - 1 }) })).statusCode, 200, 'an nbf passed is accepted')
  const notObject = alb.headers()
  const exp = now + 60
  notObject['x-amzn-oidc-data'] = alb.sign([1, 2], { header: { exp } })
  await expectRefused(t, app, notObject, 401, 'FST_COGNITO_TOKEN_INVALID', 'the payload is not a JSON object')
  notObject['x-amzn-oidc-data'] = alb.sign('{"sub":', { header: { exp } })
  await expectRefused(t, app, notObject, 401, 'FST_COGNITO_TOKEN_INVALID', 'the payload is not a JSON object')
})

t.test('the access token: missing, of another user, client or kind, expired, invalid', async (t) => {
  const clock = fakeClock(t)
  const { app, alb } = await setup(t, { clientId: [pool.clientId, 'second-client'] })
  const headers = alb.headers()
  const sub = headers['x-amzn-oidc-identity']
  const { 'x-amzn-oidc-accesstoken': _, ...withoutAccess } = headers
  await expectRefused(t, app, withoutAccess, 401, 'FST_COGNITO_TOKEN_INVALID', 'no x-amzn-oidc-accesstoken header')
  await expectRefused(t, app, { ...headers, 'x-amzn-oidc-accesstoken': '' }, 401, 'FST_COGNITO_TOKEN_INVALID', 'no x-amzn-oidc-accesstoken header')
  await expectRefused(t, app, { ...headers, 'x-amzn-oidc-accesstoken': pool.accessToken() }, 401, 'FST_COGNITO_TOKEN_INVALID', 'the access token is of another user')
  await expectRefused(t, app, { ...headers, 'x-amzn-oidc-accesstoken': pool.accessToken({ sub, client_id: 'second-client' }) }, 401, 'FST_COGNITO_TOKEN_INVALID', 'the access token is of another app client')
  await expectRefused(t, app, { ...headers, 'x-amzn-oidc-accesstoken': pool.idToken({ sub }) }, 401, 'FST_COGNITO_TOKEN_INVALID', 'id token where access tokens are required')
  await expectRefused(t, app, { ...headers, 'x-amzn-oidc-accesstoken': 'garbage' }, 401, 'FST_COGNITO_TOKEN_INVALID', /not three parts|malformed/)
  const shortLived = pool.accessToken({ sub, exp: Math.floor(clock.now / 1000) + 10 })
  t.equal((await app.inject({ url: '/me', headers: { ...headers, 'x-amzn-oidc-accesstoken': shortLived } })).statusCode, 200)
  clock.tick(11_000)
  await expectRefused(t, app, { ...headers, 'x-amzn-oidc-accesstoken': shortLived }, 401, 'FST_COGNITO_TOKEN_EXPIRED', /expired/)
})

t.test('spoofed headers sent straight to the application are refused', async (t) => {
  const { app, alb } = await setup(t)
  const user = alb.headers()
  t.equal((await app.inject({ url: '/me', headers: user })).statusCode, 200, 'the real key is known')
  // A Bearer token alone: the load balancer's header is the only source.
  await expectRefused(t, app, { authorization: `Bearer ${pool.accessToken()}` }, 401, 'FST_COGNITO_NO_TOKEN', 'no x-amzn-oidc-data header')
  // The unsigned identity header names someone else: it is never read.
  const res = await app.inject({ url: '/me', headers: { ...user, 'x-amzn-oidc-identity': 'admin' } })
  t.equal(res.json().sub, user['x-amzn-oidc-identity'])
  // A token minted by an attacker's own "load balancer": same ARN and claims, its own key.
  const attacker = new AlbIssuer({ pool })
  const sub = randomUUID()
  const forged = { 'x-amzn-oidc-data': attacker.dataToken({ sub }), 'x-amzn-oidc-accesstoken': pool.accessToken({ sub }) }
  await expectRefused(t, app, forged, 401, 'FST_COGNITO_TOKEN_INVALID', 'kid is not a key of the load balancer')
  const withRealKid = { ...forged, 'x-amzn-oidc-data': attacker.dataToken({ sub }, { header: { kid: alb.kid } }) }
  await expectRefused(t, app, withRealKid, 401, 'FST_COGNITO_TOKEN_INVALID', 'the signature is invalid')
})

t.test('authenticateOptional: no load balancer header goes on anonymously, a bad one is refused', async (t) => {
  const { app, alb } = await setup(t)
  const anonymous = await app.inject({ url: '/feed', headers: { authorization: `Bearer ${pool.accessToken()}` } })
  t.equal(anonymous.statusCode, 200)
  t.same(anonymous.json(), { sub: null, alb: null }, 'a Bearer token is not read')
  const headers = alb.headers()
  const res = await app.inject({ url: '/feed', headers })
  t.equal(res.json().alb.sub, headers['x-amzn-oidc-identity'])
  const bad = await app.inject({ url: '/feed', headers: { 'x-amzn-oidc-data': 'a.b.c' } })
  t.equal(bad.statusCode, 401)
})

t.test('groups, scopes and sign-out work on the access token behind the load balancer', async (t) => {
  const { app, alb } = await setup(t, { revocation: { store: 'memory' } })
  app.get('/admin', { config: { cognito: { groups: 'admin' } } }, async () => ({ ok: true }))
  const sub = randomUUID()
  const admin = { 'x-amzn-oidc-data': alb.dataToken({ sub }), 'x-amzn-oidc-accesstoken': pool.accessToken({ sub, 'cognito:groups': ['admin'] }) }
  t.equal((await app.inject({ url: '/admin', headers: admin })).statusCode, 200)
  t.equal((await app.inject({ url: '/admin', headers: alb.headers() })).statusCode, 403)
  await app.cognitoRevocation.signOutUser({ iss: pool.issuer, sub })
  const res = await app.inject({ url: '/admin', headers: admin })
  t.equal(res.json().code, 'FST_COGNITO_TOKEN_REVOKED')
})

t.test('resolveUser and isRevoked see the access token\'s claims; the load balancer\'s are on the request', async (t) => {
  const seen: string[] = []
  const { app, alb } = await setup(t, {
    isRevoked: async (claims: { token_use: string }) => { seen.push(`isRevoked ${claims.token_use}`); return false },
    resolveUser: async (claims: { sub: string }) => ({ sub: claims.sub, from: 'db' })
  })
  const headers = alb.headers()
  const res = await app.inject({ url: '/me', headers })
  t.equal(res.statusCode, 200)
  t.equal(res.json().user, headers['x-amzn-oidc-identity'])
  t.equal(res.json().alb.sub, headers['x-amzn-oidc-identity'])
  t.same(seen, ['isRevoked access'])
})

t.test('accessToken: false verifies the load balancer\'s token alone', async (t) => {
  const { app, alb } = await setup(t, { tokenUse: 'id' }, { accessToken: false })
  const heard: CognitoAlbAuthenticatedEvent[] = []
  const listener = (message: unknown): void => { heard.push(message as CognitoAlbAuthenticatedEvent) }
  subscribe(channels.authenticated, listener)
  t.teardown(() => unsubscribe(channels.authenticated, listener))
  const data = alb.dataToken()
  const res = await app.inject({ url: '/me', headers: { 'x-amzn-oidc-data': data } })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.equal(body.sub, null, 'no token claims')
  t.equal(body.user, null)
  t.equal(body.pool, pool.userPoolId)
  t.equal(body.alb.sub, partsOf(data).payload.sub)
  t.equal(heard.length, 1)
  t.equal(heard[0].claims, null)
  t.equal(heard[0].albClaims.sub, body.alb.sub)
  t.equal(heard[0].cached, false)
})

t.test('several pools behind the load balancer: the header picks the pool, the access token must be of it', async (t) => {
  const second = new LocalIssuer({ userPoolId: 'eu-central-1_Second', clientId: 'second-client' })
  const alb = new AlbIssuer({ pool: second })
  await alb.listen()
  t.teardown(() => alb.close())
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, {
    userPools: [{ ...pool.pluginOptions(), tokenUse: 'access' }, { ...second.pluginOptions(), tokenUse: 'access' }],
    alb: alb.albOptions()
  })
  app.get('/me', { onRequest: app.authenticate }, async (request) => ({ pool: request.cognitoPool?.userPoolId }))
  const headers = alb.headers()
  const res = await app.inject({ url: '/me', headers })
  t.equal(res.json().pool, second.userPoolId)
  const sub = headers['x-amzn-oidc-identity']
  const crossed = await app.inject({ url: '/me', headers: { ...headers, 'x-amzn-oidc-accesstoken': pool.accessToken({ sub }) } })
  t.equal(crossed.statusCode, 401)
})

t.test('an access token whose key is not known yet waits for the pool\'s JWKS', async (t) => {
  const served = new LocalIssuer({ userPoolId: 'eu-central-1_Served' })
  await served.listen()
  t.teardown(() => served.close())
  const { app, alb } = await setup(t, { jwksCache: { prefetch: false } }, {}, new AlbIssuer({ pool: served }))
  t.equal((await app.inject({ url: '/me', headers: alb.headers() })).statusCode, 200)
  t.equal(app.cognitoKeyStores()[0].fetches, 1, 'the JWKS was fetched for the access token')
})

t.test('without the token cache, every request verifies both tokens', async (t) => {
  const { app, alb } = await setup(t, { tokenCache: false })
  const headers = alb.headers()
  for (let i = 0; i < 3; i++) t.equal((await app.inject({ url: '/me', headers })).statusCode, 200)
})
