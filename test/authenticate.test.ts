/**
 * The verification rules, end to end: a Fastify app with the plugin, requests through
 * `app.inject`, tokens from a LocalIssuer (or signed by hand where the issuer cannot forge them).
 * Each refusal is checked on its status, its `code` and its exact `WWW-Authenticate` challenge.
 */
import { constants, createHmac, generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance, FastifyServerOptions, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { TokenInvalidError, type CognitoSinglePoolOptions, type CognitoClaims, type CognitoUser, type JsonWebKey } from '../index'
import { LocalIssuer } from '../testing'
import { bearer, buildApp } from './helpers/app'
import { fakeClock, type TestClock } from './helpers/clock'

const challenges = {
  noToken: 'Bearer realm="api"',
  badHeader: 'Bearer realm="api", error="invalid_request", error_description="Malformed Authorization header"',
  invalid: 'Bearer realm="api", error="invalid_token", error_description="The token is invalid"',
  expired: 'Bearer realm="api", error="invalid_token", error_description="The token has expired"',
  userNotFound: 'Bearer realm="api", error="invalid_token", error_description="Unknown user"'
}

function refused (t: Test, res: LightMyRequestResponse, statusCode: number, code: string, challenge: string | undefined, name = code): void {
  t.equal(res.statusCode, statusCode, `${name}: status`)
  t.equal(res.json().code, code, `${name}: code`)
  t.equal(res.headers['www-authenticate'], challenge, `${name}: challenge`)
}

function invalid (t: Test, res: LightMyRequestResponse, name?: string): void {
  refused(t, res, 401, 'FST_COGNITO_TOKEN_INVALID', challenges.invalid, name)
}

function accepted (t: Test, res: LightMyRequestResponse, name = 'accepted'): void {
  t.equal(res.statusCode, 200, name)
}

async function get (app: FastifyInstance, token: string, url = '/private'): Promise<LightMyRequestResponse> {
  await clocks.at(-1)?.settle()
  return app.inject({ url, headers: bearer(token) })
}

// Tokens signed by hand: for algorithms and shapes the LocalIssuer does not produce.
type Signer = (input: Buffer) => Buffer

interface RsaKey {
  kid: string
  privateKey: KeyObject
  jwk: JsonWebKey
  pem: string
}

function rsaKey (kid: string = randomUUID()): RsaKey {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const { n, e } = publicKey.export({ format: 'jwk' })
  const pem = publicKey.export({ type: 'spki', format: 'pem' }) as string
  return { kid, privateKey, jwk: { kty: 'RSA', kid, alg: 'RS256', use: 'sig', n, e }, pem }
}

const rs = (hash: string, key: KeyObject): Signer => (input) => sign(hash, input, key)
const ps256 = (key: KeyObject): Signer => (input) => sign('sha256', input, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })
const es256 = (key: KeyObject): Signer => (input) => sign('sha256', input, { key, dsaEncoding: 'ieee-p1363' })
const hs256 = (secret: string): Signer => (input) => createHmac('sha256', secret).update(input).digest()
const unsigned: Signer = () => Buffer.alloc(0)

/** base64url of a value's JSON, or of a string taken as the JSON text itself. */
function segment (value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
}

function compact (header: unknown, payload: unknown, signer: Signer): string {
  const input = `${segment(header)}.${segment(payload)}`
  return `${input}.${signer(Buffer.from(input)).toString('base64url')}`
}

function payloadOf (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'))
}

/** An ID token with claims of any type, even those the claim types forbid; `undefined` removes one. */
function idTokenWith (claims: Record<string, unknown>): string {
  return issuer.sign({ ...payloadOf(issuer.idToken()), ...claims })
}

/** A port nothing listens on: a server is opened there, then closed. */
async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

interface LogLine {
  level: number
  msg: string
  [field: string]: unknown
}

/** A Fastify logger at debug level whose lines are kept, raw and parsed. */
function captureLogs (): { raw: string[], lines: LogLine[], server: FastifyServerOptions } {
  const raw: string[] = []
  const lines: LogLine[] = []
  const stream = {
    write (line: string): void {
      raw.push(line)
      lines.push(JSON.parse(line))
    }
  }
  return { raw, lines, server: { logger: { level: 'debug', stream } } }
}

function refusalLogs (lines: LogLine[]): LogLine[] {
  return lines.filter((line) => line.msg === 'cognito: request refused')
}

/** The fake clocks of the running tests; requests wait until the key caches see the time. */
const clocks: TestClock[] = []

/** Fakes the time, at a whole second, for the duration of the test. */
function fakeDate (t: Test, now = 1_900_000_000_000): TestClock {
  const clock = fakeClock(t, now)
  clocks.push(clock)
  t.teardown(() => { clocks.pop() })
  return clock
}

/** The app's user type is whatever the application registers; the tests use plain objects. */
function asUser (value: object): CognitoUser {
  return value as unknown as CognitoUser
}

const issuer = new LocalIssuer()
const options: CognitoSinglePoolOptions = issuer.pluginOptions()

t.test('the Authorization header', async (t) => {
  const app = await buildApp(t, options)
  const token = issuer.idToken()

  t.test('no header, another scheme or a longer scheme name: 401 without an error code', async (t) => {
    refused(t, await app.inject({ url: '/private' }), 401, 'FST_COGNITO_NO_TOKEN', challenges.noToken, 'no header')
    for (const authorization of [`Basic ${token}`, `Bearerx ${token}`, 'Basic dXNlcjpwYXNz']) {
      refused(t, await app.inject({ url: '/private', headers: { authorization } }), 401, 'FST_COGNITO_NO_TOKEN', challenges.noToken, authorization.slice(0, 8))
    }
  })

  t.test('the scheme in any case', async (t) => {
    for (const scheme of ['bearer', 'BEARER', 'Bearer']) {
      const res = await app.inject({ url: '/private', headers: { authorization: `${scheme} ${token}` } })
      accepted(t, res, scheme)
      t.equal(res.json().claims.sub, payloadOf(token).sub)
    }
  })

  t.test('spaces around the token are tolerated', async (t) => {
    accepted(t, await app.inject({ url: '/private', headers: { authorization: `Bearer    ${token}   ` } }))
  })

  t.test('"Bearer" without exactly one token: 400 invalid_request', async (t) => {
    for (const authorization of ['Bearer', 'Bearer   ', 'Bearer a b', `Bearer ${token} ${token}`]) {
      const res = await app.inject({ url: '/private', headers: { authorization } })
      refused(t, res, 400, 'FST_COGNITO_BAD_AUTHORIZATION_HEADER', challenges.badHeader, JSON.stringify(authorization.slice(0, 12)))
    }
  })
})

t.test('the token length is capped before anything is decoded', async (t) => {
  const token = issuer.idToken({ padding: 'x'.repeat(9000) })
  t.ok(token.length > 8192)

  const logs = captureLogs()
  const capped = await buildApp(t, options, logs.server)
  invalid(t, await get(capped, token), 'signed token over the default 8192')
  // Garbage of the same length is refused for its length, not for its content.
  invalid(t, await get(capped, '!'.repeat(9000)), 'garbage over 8192')
  t.same(refusalLogs(logs.lines).map((line) => line.reason), ['token longer than maxTokenLength', 'token longer than maxTokenLength'])

  const exact = await buildApp(t, { ...options, maxTokenLength: token.length })
  accepted(t, await get(exact, token), 'maxTokenLength equal to the token length')
  const short = await buildApp(t, { ...options, maxTokenLength: token.length - 1 })
  invalid(t, await get(short, token), 'one character over maxTokenLength')
})

t.test('the algorithm is RS256, whatever the token says', async (t) => {
  const own = rsaKey()
  const app = await buildApp(t, { ...options, jwks: { keys: [own.jwk] } })
  const claims = payloadOf(issuer.idToken())
  const header = { alg: 'RS256', kid: own.kid }

  accepted(t, await get(app, compact(header, claims, rs('sha256', own.privateKey))), 'RS256 with the configured key')

  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
  const forgeries: Array<[string, string]> = [
    ['alg none, empty signature', compact({ alg: 'none', kid: own.kid }, claims, unsigned)],
    ['alg none, RS256 signature', compact({ alg: 'none', kid: own.kid }, claims, rs('sha256', own.privateKey))],
    ['HS256 keyed with the public key PEM', compact({ alg: 'HS256', kid: own.kid }, claims, hs256(own.pem))],
    ['ES256', compact({ alg: 'ES256', kid: own.kid }, claims, es256(ec))],
    ['PS256 with the configured key', compact({ alg: 'PS256', kid: own.kid }, claims, ps256(own.privateKey))],
    ['RS512 with the configured key', compact({ alg: 'RS512', kid: own.kid }, claims, rs('sha512', own.privateKey))],
    ['alg missing', compact({ kid: own.kid }, claims, rs('sha256', own.privateKey))],
    ['alg in lower case', compact({ alg: 'rs256', kid: own.kid }, claims, rs('sha256', own.privateKey))]
  ]
  for (const [name, token] of forgeries) invalid(t, await get(app, token), name)
})

t.test('keys named in the token (jwk, jku, x5u) are ignored', async (t) => {
  // A server the token points at: it must never be asked.
  let asked = 0
  const foreign = rsaKey(issuer.kid)
  const elsewhere = createServer((_request, response) => {
    asked++
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [foreign.jwk] }))
  })
  await new Promise<void>((resolve) => elsewhere.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => elsewhere.close(() => resolve())))
  const url = `http://127.0.0.1:${(elsewhere.address() as AddressInfo).port}/jwks.json`
  const pointers = { jwk: foreign.jwk, jku: url, x5u: url }

  const app = await buildApp(t, options)
  const forged = issuer.idToken({}, { header: pointers, signingKey: foreign.privateKey })
  invalid(t, await get(app, forged), 'signed by the key the token carries')
  accepted(t, await get(app, issuer.idToken({}, { header: pointers })), 'signed by the pool, pointers ignored')
  t.equal(asked, 0, 'the URLs in the token were never fetched')
})

t.test('kid', async (t) => {
  t.test('missing, empty or not a string: 401', async (t) => {
    const app = await buildApp(t, options)
    for (const kid of [undefined, '', 42, null]) {
      invalid(t, await get(app, issuer.idToken({}, { header: { kid } })), `kid ${JSON.stringify(kid)}`)
    }
  })

  t.test('not in the JWKS: the JWKS is fetched again, then 401', async (t) => {
    const rotating = new LocalIssuer()
    const jwks = rotating.jwks
    const jwksUri = await rotating.listen()
    t.teardown(() => rotating.close())
    const app = await buildApp(t, {
      userPoolId: rotating.userPoolId,
      clientId: rotating.clientId,
      jwks,
      jwksUri,
      jwksCache: { cooldown: 0 }
    })

    invalid(t, await get(app, rotating.idToken({}, { header: { kid: 'not-a-key-of-the-pool' } })), 'unknown kid')
    t.equal(app.cognitoKeyStores()[0].fetches, 1, 'the unknown kid fetched the JWKS')

    // The same path finds a key that was added since the keys were given.
    rotating.rotate()
    accepted(t, await get(app, rotating.idToken()), 'kid published after start')
    t.equal(app.cognitoKeyStores()[0].fetches, 2)
  })
})

t.test('the signature', async (t) => {
  const app = await buildApp(t, options)
  const token = issuer.idToken()
  accepted(t, await get(app, token), 'untouched')

  const [header, payload, signature] = token.split('.')
  const tampered = segment({ ...payloadOf(token), sub: randomUUID() })
  const flipped = (signature[10] === 'A' ? 'B' : 'A')
  const cases: Array<[string, string]> = [
    ['signed by a foreign key with the pool kid', issuer.idToken({}, { signingKey: LocalIssuer.foreignKey() })],
    ['payload changed after signing', `${header}.${tampered}.${signature}`],
    ['signature altered', `${header}.${payload}.${signature.slice(0, 10)}${flipped}${signature.slice(11)}`],
    ['signature truncated', `${header}.${payload}.${signature.slice(0, -4)}`],
    ['signature removed', `${header}.${payload}.`]
  ]
  for (const [name, forged] of cases) invalid(t, await get(app, forged), name)
})

t.test('iss', async (t) => {
  const app = await buildApp(t, options)
  const pool = issuer.userPoolId
  const wrong: Array<[string, unknown]> = [
    ['another pool', 'https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_Other'],
    ['another region', `https://cognito-idp.us-east-1.amazonaws.com/${pool}`],
    ['trailing slash', `${issuer.issuer}/`],
    ['http', issuer.issuer.replace('https:', 'http:')],
    ['upper case', issuer.issuer.toUpperCase()],
    ['an array', [issuer.issuer]],
    ['missing', undefined]
  ]
  for (const [name, iss] of wrong) invalid(t, await get(app, idTokenWith({ iss })), name)

  for (const iss of [`https://cognito-idp.eu-central-1.amazonaws.com/${pool}`, `https://issuer-cognito-idp.eu-central-1.amazonaws.com/${pool}`]) {
    accepted(t, await get(app, issuer.idToken({ iss })), iss)
  }

  t.test('an issuer override is matched exactly, and replaces the Cognito issuers', async (t) => {
    const emulator = new LocalIssuer({ userPoolId: 'local_4GYoIvBY', issuer: 'http://127.0.0.1:9229/local_4GYoIvBY' })
    await emulator.listen()
    t.teardown(() => emulator.close())
    const app = await buildApp(t, emulator.pluginOptions())
    accepted(t, await get(app, emulator.idToken()), 'the configured issuer')
    invalid(t, await get(app, emulator.idToken({ iss: `${emulator.issuer}/` })), 'trailing slash')
    invalid(t, await get(app, emulator.idToken({ iss: 'https://cognito-idp.local.amazonaws.com/local_4GYoIvBY' })), 'Cognito form')
  })
})

t.test('exp, nbf and iat', async (t) => {
  t.test('exp missing or not a number: 401 invalid', async (t) => {
    const app = await buildApp(t, options)
    invalid(t, await get(app, issuer.idToken({ exp: undefined })), 'missing')
    invalid(t, await get(app, idTokenWith({ exp: String(Math.floor(Date.now() / 1000) + 3600) })), 'a string')
  })

  t.test('exp past: 401 expired', async (t) => {
    const clock = fakeDate(t)
    const app = await buildApp(t, options)
    const now = clock.now / 1000
    refused(t, await get(app, issuer.idToken({ exp: now - 1 })), 401, 'FST_COGNITO_TOKEN_EXPIRED', challenges.expired)
  })

  t.test('clockTolerance accepts a token expired by less than the tolerance, not more', async (t) => {
    const clock = fakeDate(t)
    const app = await buildApp(t, { ...options, clockTolerance: 10 })
    const token = issuer.idToken({ exp: clock.now / 1000 + 60 })
    clock.tick(65_000)
    accepted(t, await get(app, token), '5 s past exp')
    clock.tick(6_000)
    refused(t, await get(app, token), 401, 'FST_COGNITO_TOKEN_EXPIRED', challenges.expired, '11 s past exp')
  })

  t.test('nbf in the future: 401; within the tolerance: accepted; iat up to 5 minutes ahead passes', async (t) => {
    const clock = fakeDate(t)
    const future = clock.now / 1000 + 30
    const strict = await buildApp(t, options)
    const lenient = await buildApp(t, { ...options, clockTolerance: 60 })
    const notYet = issuer.idToken({ nbf: future })
    const issuedLater = issuer.idToken({ iat: future })
    invalid(t, await get(strict, notYet), 'nbf in 30 s')
    accepted(t, await get(strict, issuedLater), 'iat in 30 s: clocks drift')
    accepted(t, await get(lenient, notYet), 'nbf in 30 s, 60 s tolerance')
    accepted(t, await get(lenient, issuedLater), 'iat in 30 s, 60 s tolerance')
    const farFuture = clock.now / 1000 + 120
    invalid(t, await get(lenient, issuer.idToken({ nbf: farFuture })), 'nbf in 120 s, 60 s tolerance')
    invalid(t, await get(strict, issuer.idToken({ iat: clock.now / 1000 + 301 })), 'iat more than 5 minutes ahead')
    invalid(t, await get(lenient, issuer.idToken({ iat: clock.now / 1000 + 361 })), 'iat more than 5 minutes ahead, 60 s tolerance')
  })

  t.test('iat and sub are required', async (t) => {
    const app = await buildApp(t, options)
    invalid(t, await get(app, issuer.idToken({ iat: undefined })), 'iat missing')
    invalid(t, await get(app, idTokenWith({ iat: '1700000000' })), 'iat a string')
    invalid(t, await get(app, idTokenWith({ sub: 42 })), 'sub not a string')
    invalid(t, await get(app, idTokenWith({ sub: undefined })), 'sub missing')
  })
})

t.test('token_use', async (t) => {
  const idOnly = await buildApp(t, { ...options, tokenUse: 'id' })
  const accessOnly = await buildApp(t, { ...options, tokenUse: 'access' })
  const both = await buildApp(t, { ...options, tokenUse: 'any' })

  for (const [name, app] of [['id', idOnly], ['access', accessOnly], ['any', both]] as const) {
    invalid(t, await get(app, issuer.idToken({ token_use: undefined })), `${name}: token_use missing`)
    invalid(t, await get(app, idTokenWith({ token_use: 'refresh' })), `${name}: refresh`)
  }
  invalid(t, await get(idOnly, issuer.accessToken()), 'access token where id is required')
  invalid(t, await get(accessOnly, issuer.idToken()), 'id token where access is required')
  accepted(t, await get(idOnly, issuer.idToken()), 'id under id')
  accepted(t, await get(accessOnly, issuer.accessToken()), 'access under access')
  accepted(t, await get(both, issuer.idToken()), 'id under any')
  accepted(t, await get(both, issuer.accessToken()), 'access under any')
})

t.test('the app client: aud for ID tokens, client_id for access tokens', async (t) => {
  t.test('one client id', async (t) => {
    const app = await buildApp(t, { ...options, tokenUse: 'any' })
    const mine = issuer.clientId
    invalid(t, await get(app, issuer.idToken({ aud: 'another-client' })), 'ID token, aud of another client')
    invalid(t, await get(app, issuer.idToken({ aud: undefined })), 'ID token, aud missing')
    invalid(t, await get(app, idTokenWith({ aud: [mine] })), 'ID token, aud an array')
    invalid(t, await get(app, issuer.idToken({ aud: 'another-client', client_id: mine })), 'ID token, client_id is not its claim')
    invalid(t, await get(app, issuer.accessToken({ client_id: 'another-client' })), 'access token, client_id of another client')
    invalid(t, await get(app, issuer.accessToken({ client_id: undefined })), 'access token, client_id missing')
    invalid(t, await get(app, issuer.accessToken({ client_id: undefined, aud: mine })), 'access token, aud is not its claim')
  })

  t.test('several client ids', async (t) => {
    const app = await buildApp(t, { ...options, clientId: ['web', 'mobile'], tokenUse: 'any' })
    accepted(t, await get(app, issuer.idToken({ aud: 'web' })), 'ID token for web')
    accepted(t, await get(app, issuer.accessToken({ client_id: 'mobile' })), 'access token for mobile')
    invalid(t, await get(app, issuer.idToken({ aud: 'desktop' })), 'ID token for desktop')
    invalid(t, await get(app, issuer.accessToken({ client_id: 'desktop' })), 'access token for desktop')
  })

  t.test('clientId null accepts every app client of the pool, and nothing else', async (t) => {
    const idOnly = await buildApp(t, { ...options, clientId: null })
    accepted(t, await get(idOnly, issuer.idToken({ aud: 'any-client-of-the-pool' })), 'ID token of another client')
    // The client check is skipped, not the others: the signature and iss still prove the pool,
    // so an ID token without aud passes as well, as in AWS's own verifier.
    accepted(t, await get(idOnly, issuer.idToken({ aud: undefined })), 'ID token without aud')
    invalid(t, await get(idOnly, issuer.accessToken()), 'an access token (no aud) under tokenUse id')
    invalid(t, await get(idOnly, issuer.idToken({ aud: 'any', iss: 'https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_Other' })), 'another pool')

    const any = await buildApp(t, { ...options, clientId: null, tokenUse: 'any' })
    accepted(t, await get(any, issuer.accessToken({ client_id: 'any-client-of-the-pool' })), 'access token of another client')
  })
})

t.test('several pools: the issuer picks the pool, the pool\'s own key verifies', async (t) => {
  const a = new LocalIssuer({ userPoolId: 'eu-central-1_PoolA', clientId: 'client-a' })
  const b = new LocalIssuer({ userPoolId: 'us-east-1_PoolB', clientId: 'client-b' })
  const app = await buildApp(t, { userPools: [a.pluginOptions(), b.pluginOptions()] })
  accepted(t, await get(app, a.idToken()), 'pool A')
  accepted(t, await get(app, b.idToken()), 'pool B')
  invalid(t, await get(app, a.idToken({ iss: 'https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_PoolC' })), 'a pool not configured')
  invalid(t, await get(app, a.idToken({ iss: undefined })), 'no iss')
  invalid(t, await get(app, a.idToken({ iss: b.issuer }, { header: { kid: b.kid } })), 'signed by A, claiming to be B')
  invalid(t, await get(app, a.idToken({ aud: 'client-b' })), 'pool A token for a client of pool B')
  invalid(t, await get(app, `${segment({ alg: 'RS256', kid: a.kid })}.not-json.sig`), 'payload not JSON')
})

t.test('claims parsing', async (t) => {
  t.test('__proto__ and constructor claims stay plain data', async (t) => {
    const own = rsaKey()
    const app = await buildApp(t, { ...options, jwks: { keys: [own.jwk] } })
    app.get('/prototype', { onRequest: app.authenticate }, async (request) => ({
      plain: Object.getPrototypeOf(request.cognitoClaims) === Object.prototype,
      polluted: ({} as Record<string, unknown>).polluted ?? null
    }))
    const claims = JSON.stringify(payloadOf(issuer.idToken())).slice(0, -1)
    const payload = `${claims},"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}`
    const token = compact({ alg: 'RS256', kid: own.kid }, payload, rs('sha256', own.privateKey))

    const res = await get(app, token, '/prototype')
    accepted(t, res)
    t.same(res.json(), { plain: true, polluted: null })
    t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched')
    const echoed = await get(app, token)
    t.same(echoed.json().claims.constructor, { prototype: { polluted: true } }, 'the claims are returned as data')
  })

  t.test('garbage is refused with 401, never 500', async (t) => {
    const app = await buildApp(t, { ...options, maxTokenLength: 1_000_000 })
    const [header, payload, signature] = issuer.idToken().split('.')
    const kidHeader = { alg: 'RS256', kid: issuer.kid }
    const deep = 100_000
    const garbage: Array<[string, string]> = [
      ['one segment', 'abc'],
      ['dots only', '..'],
      ['a dot', '.'],
      ['two parts', `${header}.${payload}`],
      ['four parts', `${header}.${payload}.${signature}.${signature}`],
      ['empty header', `.${payload}.${signature}`],
      ['header not JSON', `${segment('{"alg":')}.${payload}.${signature}`],
      ['header an array', `${segment([kidHeader])}.${payload}.${signature}`],
      ['header null', `${segment('null')}.${payload}.${signature}`],
      ['header a string', `${segment('"RS256"')}.${payload}.${signature}`],
      ['payload not JSON', `${header}.${segment('{"sub":')}.${signature}`],
      ['payload an array', `${header}.${segment([payloadOf(issuer.idToken())])}.${signature}`],
      ['payload null', `${header}.${segment('null')}.${signature}`],
      ['non-base64url characters in the payload', `${header}.${payload.slice(0, 5)}!*${payload.slice(5)}.${signature}`],
      ['base64 padding', `${header}.${payload}==.${signature}`],
      ['deep header', `${segment('['.repeat(deep) + ']'.repeat(deep))}.${payload}.${signature}`],
      ['deep payload', `${header}.${segment(`{"a":${'['.repeat(deep)}${']'.repeat(deep)}}`)}.${signature}`]
    ]
    for (const [name, token] of garbage) invalid(t, await get(app, token), name)

    // Printable noise from a fixed seed: the same run every time.
    let seed = 42
    const noise = (length: number): string => Array.from({ length }, () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31
      return String.fromCharCode(0x21 + (seed % 94))
    }).join('')
    for (let i = 0; i < 20; i++) invalid(t, await get(app, noise(20 + i * 37)), `noise ${i}`)
  })
})

t.test('resolveUser and the request decorators', async (t) => {
  t.test('without resolveUser the user is the claims; both are null where authenticate is not used', async (t) => {
    const app = await buildApp(t, options)
    const token = issuer.idToken()
    const res = await get(app, token)
    t.same(res.json().claims, payloadOf(token))
    t.same(res.json().user, payloadOf(token))
    t.same((await get(app, token, '/public')).json(), { claims: null, user: null })
  })

  t.test('the user it returns, sync or async, is request.cognitoUser', async (t) => {
    const seen: Array<{ sub: string, url: string }> = []
    const resolveUser = async (claims: CognitoClaims, request: { url: string }): Promise<CognitoUser> => {
      seen.push({ sub: claims.sub, url: request.url })
      return asUser({ id: 7, name: 'Alice' })
    }
    const app = await buildApp(t, { ...options, resolveUser })
    const token = issuer.idToken()
    const res = await get(app, token)
    accepted(t, res)
    t.same(res.json(), { claims: payloadOf(token), user: { id: 7, name: 'Alice' } })
    t.same(seen, [{ sub: payloadOf(token).sub, url: '/private' }])

    const sync = await buildApp(t, { ...options, resolveUser: (claims) => asUser({ of: claims.sub }) })
    t.same((await get(sync, token)).json().user, { of: payloadOf(token).sub })
  })

  t.test('null or undefined: 401 user not found', async (t) => {
    for (const none of [null, undefined]) {
      const app = await buildApp(t, { ...options, resolveUser: async () => none })
      const res = await get(app, issuer.idToken())
      refused(t, res, 401, 'FST_COGNITO_USER_NOT_FOUND', challenges.userNotFound, String(none))
    }
  })

  t.test('an error it throws is the app\'s own, answered as the app set it', async (t) => {
    const plain = await buildApp(t, { ...options, resolveUser: async () => { throw new Error('users table unavailable') } })
    const res = await get(plain, issuer.idToken())
    t.equal(res.statusCode, 500)
    t.equal(res.json().message, 'users table unavailable')
    t.equal(res.headers['www-authenticate'], undefined)

    const withStatus = await buildApp(t, {
      ...options,
      resolveUser: () => { throw Object.assign(new Error('suspended'), { statusCode: 423 }) }
    })
    const locked = await get(withStatus, issuer.idToken())
    t.equal(locked.statusCode, 423)
    t.equal(locked.json().message, 'suspended')
    t.equal(locked.headers['www-authenticate'], undefined)
  })
})

t.test('JWKS unavailable: 503 without a challenge', async (t) => {
  const jwksUri = `http://127.0.0.1:${await closedPort()}/${issuer.userPoolId}/.well-known/jwks.json`
  for (const prefetch of [true, false]) {
    const app = await buildApp(t, { userPoolId: issuer.userPoolId, clientId: issuer.clientId, jwksUri, jwksCache: { prefetch } })
    const res = await get(app, issuer.idToken())
    refused(t, res, 503, 'FST_COGNITO_JWKS_UNAVAILABLE', undefined, `prefetch ${prefetch}`)
    t.ok(app.cognitoKeyStores()[0].failures >= 1, 'the fetch was tried')
  }
})

t.test('refusals reveal neither the token nor its claims', async (t) => {
  const logs = captureLogs()
  const app = await buildApp(t, { ...options, resolveUser: (claims) => claims.sub === 'ghost-sub' ? null : asUser(claims) }, logs.server)
  const secret = { sub: 'a1b2c3d4-secret-sub', email: 'secret.person@example.com' }
  const cases: Array<[string, string, string]> = [
    ['expired', issuer.idToken({ ...secret, exp: Math.floor(Date.now() / 1000) - 60 }), 'FST_COGNITO_TOKEN_EXPIRED'],
    ['another client', issuer.idToken({ ...secret, aud: 'other-client' }), 'FST_COGNITO_TOKEN_INVALID'],
    ['access token', issuer.accessToken({ sub: secret.sub, username: secret.email }), 'FST_COGNITO_TOKEN_INVALID'],
    ['foreign key', issuer.idToken(secret, { signingKey: LocalIssuer.foreignKey() }), 'FST_COGNITO_TOKEN_INVALID'],
    ['unknown user', issuer.idToken({ sub: 'ghost-sub', email: secret.email }), 'FST_COGNITO_USER_NOT_FOUND']
  ]
  for (const [name, token, code] of cases) {
    const res = await get(app, token)
    t.equal(res.json().code, code, name)
    const visible = res.body + String(res.headers['www-authenticate'])
    for (const value of [token, token.split('.')[2], secret.sub, secret.email]) {
      t.notOk(visible.includes(value), `${name}: the response does not contain ${value.slice(0, 12)}`)
    }
  }

  const refusals = refusalLogs(logs.lines)
  t.same(refusals.map((line) => [line.level, line.code]), cases.map(([, , code]) => [20, code]), 'one debug line per refusal, with its code')
  t.match(refusals[0].reason, /expired/, 'the reason is logged')
    t.equal(refusals[1].reason, 'aud claim is not an allowed app client')
  for (const [name, token] of cases) {
    t.notOk(logs.raw.some((line) => line.includes(token) || line.includes(token.split('.')[2])), `${name}: no log line holds the token`)
  }
  t.notOk(logs.raw.some((line) => line.includes(secret.sub) || line.includes(secret.email)), 'no log line holds a claim value')
})

t.test('the hook as a preHandler, and awaited by hand', async (t) => {
  const app = await buildApp(t, options)
  app.get('/pre-handler', { preHandler: app.authenticate }, async (request) => ({ sub: request.cognitoClaims?.sub }))
  app.get('/by-hand', {
    preHandler: async (request, reply) => {
      await app.authenticate(request, reply)
    }
  }, async (request) => ({ sub: request.cognitoClaims?.sub }))
  app.get('/caught', {
    preHandler: async (request, reply) => {
      const outcome = await app.authenticate(request, reply).then(() => 'resolved', (err: unknown) => err)
      if (outcome !== 'resolved') {
        const error = outcome as InstanceType<typeof TokenInvalidError>
        return reply.code(418).send({ code: error.code, statusCode: error.statusCode, coded: error instanceof TokenInvalidError })
      }
    }
  }, async () => ({ outcome: 'resolved' }))

  const token = issuer.idToken()
  const { sub } = payloadOf(token)
  for (const url of ['/pre-handler', '/by-hand']) {
    t.same((await get(app, token, url)).json(), { sub }, `${url}: accepted`)
    invalid(t, await get(app, issuer.idToken({ aud: 'other' }), url), `${url}: refused`)
    refused(t, await app.inject({ url }), 401, 'FST_COGNITO_NO_TOKEN', challenges.noToken, `${url}: no token`)
  }
  t.same((await get(app, token, '/caught')).json(), { outcome: 'resolved' }, 'the promise resolves')
  const caught = await get(app, issuer.idToken({ aud: 'other' }), '/caught')
  t.equal(caught.statusCode, 418)
  t.same(caught.json(), { code: 'FST_COGNITO_TOKEN_INVALID', statusCode: 401, coded: true }, 'the promise rejects with the coded error')
})

t.test('the token cache', async (t) => {
  /** An app whose route keeps each request's claims object, to tell a cache hit by identity. */
  async function recordingApp (t: Test, extra: Partial<CognitoSinglePoolOptions> = {}): Promise<{ app: FastifyInstance, seen: unknown[] }> {
    const seen: unknown[] = []
    const app = await buildApp(t, { ...options, ...extra })
    app.get('/seen', { onRequest: app.authenticate }, async (request) => {
      seen.push(request.cognitoClaims)
      return {}
    })
    return { app, seen }
  }

  t.test('a token is kept on its second verification, then served from the cache', async (t) => {
    const { app, seen } = await recordingApp(t)
    const token = issuer.idToken()
    for (let i = 0; i < 4; i++) accepted(t, await get(app, token, '/seen'))
    t.not(seen[1], seen[0], 'the second request verified the token again')
    t.equal(seen[2], seen[1], 'the third got the claims of the second verification')
    t.equal(seen[3], seen[1])
  })

  t.test('tokens that come once do not push out the tokens that come back', async (t) => {
    const { app, seen } = await recordingApp(t, { tokenCache: { max: 2 } })
    const regular = issuer.idToken()
    accepted(t, await get(app, regular, '/seen'))
    accepted(t, await get(app, regular, '/seen'))
    for (let i = 0; i < 5; i++) accepted(t, await get(app, issuer.idToken(), '/seen'))
    accepted(t, await get(app, regular, '/seen'))
    t.equal(seen[7], seen[1], 'still cached')
  })

  t.test('the claims are frozen, so that a handler cannot change what the next request sees', async (t) => {
    const app = await buildApp(t, options)
    app.get('/mutate', { onRequest: app.authenticate }, async (request) => {
      const claims = request.cognitoClaims as Record<string, unknown>
      t.throws(() => { claims.sub = 'someone-else' }, TypeError)
      t.throws(() => { (claims['cognito:groups'] as string[]).push('admin') }, TypeError)
      const [identity] = claims.identities as Array<Record<string, unknown>>
      t.throws(() => { identity.providerName = 'Forged' }, TypeError, 'all the way down')
      return claims
    })
    const identities = [{ userId: 'u1', providerName: 'Google', providerType: 'Google', issuer: null, primary: 'true', dateCreated: '1642699117273' }]
    const token = issuer.idToken({ sub: 'frozen-user', 'cognito:groups': ['users'], identities })
    for (let i = 0; i < 2; i++) {
      const res = await get(app, token, '/mutate')
      accepted(t, res)
      t.equal(res.json().sub, 'frozen-user')
      t.same(res.json()['cognito:groups'], ['users'])
      t.equal(res.json().identities[0].providerName, 'Google', 'the next request sees the claims as signed')
    }
  })

  t.test('a token sharing a cached token\'s signature, with another payload, is not a hit', async (t) => {
    const app = await buildApp(t, options)
    const token = issuer.idToken({ sub: 'the-real-user' })
    accepted(t, await get(app, token))
    const [header, payload, signature] = token.split('.')
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
    const forged = `${header}.${Buffer.from(JSON.stringify({ ...claims, sub: 'someone-else' })).toString('base64url')}.${signature}`
    invalid(t, await get(app, forged), 'same signature, other payload')
    const again = await get(app, token)
    accepted(t, again)
    t.equal(again.json().claims.sub, 'the-real-user', 'the cached token is still served')
  })

  t.test('tokenCache false verifies every time', async (t) => {
    const { app, seen } = await recordingApp(t, { tokenCache: false })
    const token = issuer.idToken()
    accepted(t, await get(app, token, '/seen'))
    accepted(t, await get(app, token, '/seen'))
    t.not(seen[0], seen[1])
    t.same(seen[0], seen[1])
  })

  t.test('tokenCache max evicts the oldest', async (t) => {
    const { app, seen } = await recordingApp(t, { tokenCache: { max: 2 } })
    const [a, b, c] = [issuer.idToken(), issuer.idToken(), issuer.idToken()]
    for (const token of [a, a, b, b, c, c, c, b, a]) accepted(t, await get(app, token, '/seen'))
    t.equal(seen[6], seen[5], 'c still cached')
    t.equal(seen[7], seen[3], 'b still cached')
    t.not(seen[8], seen[1], 'a was evicted')
  })

  t.test('a cached token still expires at exp', async (t) => {
    const clock = fakeDate(t)
    const { app, seen } = await recordingApp(t)
    const exp = clock.now / 1000 + 60
    const token = issuer.idToken({ exp })
    accepted(t, await get(app, token, '/seen'))
    accepted(t, await get(app, token, '/seen'))
    clock.setSystemTime(exp * 1000 - 1)
    accepted(t, await get(app, token, '/seen'), 'one millisecond before exp')
    t.equal(seen[2], seen[1], 'served from the cache')
    clock.setSystemTime(exp * 1000 + 1)
    refused(t, await get(app, token, '/seen'), 401, 'FST_COGNITO_TOKEN_EXPIRED', challenges.expired, 'just after exp')
  })

  t.test('a refused token is not remembered', async (t) => {
    const clock = fakeDate(t)
    const { app } = await recordingApp(t)
    const soon = clock.now / 1000 + 30
    const notYet = issuer.idToken({ nbf: soon })
    const issuedLater = issuer.idToken({ iat: soon + 300 })
    invalid(t, await get(app, notYet, '/seen'), 'nbf ahead')
    invalid(t, await get(app, issuedLater, '/seen'), 'iat more than 5 minutes ahead')
    clock.tick(31_000)
    accepted(t, await get(app, notYet, '/seen'), 'nbf reached')
    accepted(t, await get(app, issuedLater, '/seen'), 'iat reached')
  })

  t.test('a cached token dies with the key that verified it', async (t) => {
    const clock = fakeDate(t)
    const rotating = new LocalIssuer()
    await rotating.listen()
    t.teardown(() => rotating.close())
    const app = await buildApp(t, { ...rotating.pluginOptions(), jwksCache: { ttl: 1, cooldown: 0, prefetch: false } })
    const old = rotating.idToken()
    accepted(t, await get(app, old), 'verified and cached')

    accepted(t, await get(app, old), 'served from the cache')
    t.equal(app.cognitoKeyStores()[0].fetches, 1)

    rotating.rotate({ keepOld: false })
    clock.tick(2000)
    // Past the TTL, a cache hit starts the refresh as any key lookup does; until it ends, the
    // keys of the moment still hold.
    accepted(t, await get(app, old), 'served while the refresh runs')
    t.equal(app.cognitoKeyStores()[0].fetches, 2, 'the cache hit started a refresh')
    // A token of the new key waits for that refresh, which takes the old key away.
    accepted(t, await get(app, rotating.idToken()), 'the new key')
    invalid(t, await get(app, old), 'the cached token of the removed key')
  })

  t.test('a cached token is refused once the keys are too stale to serve', async (t) => {
    const clock = fakeDate(t)
    const pool = new LocalIssuer()
    await pool.listen()
    t.teardown(() => pool.close())
    const app = await buildApp(t, { ...pool.pluginOptions(), jwksCache: { ttl: 1, maxStale: 1, prefetch: false } })
    const token = pool.idToken()
    accepted(t, await get(app, token), 'verified and cached')

    await pool.close()
    clock.tick(3000)
    refused(t, await get(app, token), 503, 'FST_COGNITO_JWKS_UNAVAILABLE', undefined, 'past ttl + maxStale, endpoint down')
  })
})

t.test('the compact serialization is held to the letter', async (t) => {
  t.test('a crit header is refused: no extension is understood', async (t) => {
    const app = await buildApp(t, options)
    invalid(t, await get(app, issuer.idToken({}, { header: { crit: ['exp'], exp: 1 } })))
  })

  t.test('a signature with characters outside base64url is refused, though its bytes verify', async (t) => {
    const app = await buildApp(t, options)
    const token = issuer.idToken()
    for (const suffix of ['=', '==', '*', '+']) invalid(t, await get(app, `${token}${suffix}`), `signature + ${suffix}`)
    accepted(t, await get(app, token), 'the canonical token passes')
  })

  t.test('nbf, when present, is a number', async (t) => {
    const app = await buildApp(t, options)
    invalid(t, await get(app, issuer.idToken({ nbf: 'yesterday' })))
  })

  t.test('any number of distinct headers, past what is remembered', async (t) => {
    const app = await buildApp(t, options)
    for (let i = 0; i < 70; i++) {
      const res = await get(app, issuer.idToken({}, { header: { typ: `JWT-${i}` } }))
      if (res.statusCode !== 200) t.fail(`header ${i}: ${res.statusCode}`)
    }
    invalid(t, await get(app, issuer.idToken({}, { header: { typ: 'JWT-70', alg: 'HS256' } })), 'a bad header is still refused')
    accepted(t, await get(app, issuer.idToken({}, { header: { typ: 'JWT-0' } })), 'a remembered header still passes')
  })
})

t.test('a signed payload that is not a JSON object is refused', async (t) => {
  const key = rsaKey()
  const app = await buildApp(t, { ...options, jwks: { keys: [key.jwk] } })
  const header = segment({ alg: 'RS256', kid: key.kid })
  for (const body of ['[1,2]', 'null', '"text"', 'not json']) {
    const input = `${header}.${Buffer.from(body).toString('base64url')}`
    invalid(t, await get(app, `${input}.${sign('sha256', Buffer.from(input), key.privateKey).toString('base64url')}`), body)
  }
})
