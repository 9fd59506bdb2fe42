/**
 * The testing kit, `fastify-cognito-jwt/testing`: its keys and JWKS, the tokens it mints (checked
 * claim by claim against what Cognito issues, and verified with node:crypto, not with the plugin),
 * the JWKS server, and the options it hands to the plugin, end to end through `app.inject`.
 */
import { createPublicKey, verify, type JsonWebKey as CryptoJsonWebKey } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import FakeTimers from '@sinonjs/fake-timers'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import cognitoAuth, { type CognitoAuthOptions, type JsonWebKeySet } from '../index'
import { closeOnAsyncDispose } from '../lib/async-dispose'
import { LocalIssuer } from '../testing'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
// A moment in seconds, as in the Cognito examples, to pin `Date.now()` on.
const NOW = 1_795_673_896

interface Decoded {
  header: Record<string, unknown>
  payload: Record<string, unknown>
}

function decodePart (part: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>
}

function decode (token: string): Decoded {
  const [header, payload] = token.split('.')
  return { header: decodePart(header), payload: decodePart(payload) }
}

/** Whether the RS256 signature checks out with the published key the header's `kid` names. */
function verifiesWith (token: string, jwks: JsonWebKeySet): boolean {
  const [header, payload, signature] = token.split('.')
  const jwk = jwks.keys.find((key) => key.kid === decodePart(header).kid)
  if (jwk === undefined) return false
  const key = createPublicKey({ key: jwk as CryptoJsonWebKey, format: 'jwk' })
  return verify('sha256', Buffer.from(`${header}.${payload}`), key, Buffer.from(signature, 'base64url'))
}

/** Pins `Date.now()` (and only it) for the rest of the test. */
function freezeClock (t: Test): void {
  const clock = FakeTimers.install({ now: NOW * 1000, toFake: ['Date'] })
  t.teardown(() => clock.uninstall())
}

async function listening (t: Test, issuer: LocalIssuer): Promise<string> {
  const url = await issuer.listen()
  t.teardown(() => issuer.close())
  return url
}

/** An app with the plugin and a route that echoes the verified claims. */
async function echoApp (t: Test, options: CognitoAuthOptions): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, options)
  app.get('/claims', { onRequest: app.authenticate }, async (request) => request.cognitoClaims)
  await app.ready()
  return app
}

function claimsOf (app: FastifyInstance, token: string): Promise<{ statusCode: number, body: Record<string, unknown> }> {
  return app.inject({ url: '/claims', headers: { authorization: `Bearer ${token}` } })
    .then((res) => ({ statusCode: res.statusCode, body: res.json() }))
}

t.test('the issuer', async (t) => {
  t.test('defaults to a pool in an AWS region, with Cognito\'s issuer', async (t) => {
    const issuer = new LocalIssuer()
    t.equal(issuer.userPoolId, 'eu-central-1_LocalPool')
    t.equal(issuer.region, 'eu-central-1')
    t.equal(issuer.clientId, 'local-test-client')
    t.equal(issuer.issuer, 'https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_LocalPool')
    t.equal(issuer.lifetime, 3600)
  })

  t.test('takes its pool, client, issuer and lifetime from the options', async (t) => {
    const issuer = new LocalIssuer({ userPoolId: 'us-east-1_AbCdEf123', clientId: 'web', issuer: 'http://127.0.0.1:9229/us-east-1_AbCdEf123', lifetime: 60 })
    t.equal(issuer.userPoolId, 'us-east-1_AbCdEf123')
    t.equal(issuer.region, 'us-east-1')
    t.equal(issuer.clientId, 'web')
    t.equal(issuer.issuer, 'http://127.0.0.1:9229/us-east-1_AbCdEf123')
    t.equal(issuer.lifetime, 60)
  })
})

t.test('keys', async (t) => {
  t.test('the JWKS publishes one 2048-bit RSA signing key, public members only', async (t) => {
    const issuer = new LocalIssuer()
    const { keys } = issuer.jwks
    t.equal(keys.length, 1)
    const [jwk] = keys
    t.same(Object.keys(jwk).sort(), ['alg', 'e', 'kid', 'kty', 'n', 'use'])
    t.match(jwk, { kty: 'RSA', kid: issuer.kid, alg: 'RS256', use: 'sig', e: 'AQAB' })
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi']) t.notOk(member in jwk, `no private member ${member}`)
    const key = createPublicKey({ key: jwk as CryptoJsonWebKey, format: 'jwk' })
    t.equal(key.asymmetricKeyType, 'rsa')
    t.equal(key.asymmetricKeyDetails?.modulusLength, 2048)
  })

  t.test('each issuer has its own key', async (t) => {
    const a = new LocalIssuer()
    const b = new LocalIssuer()
    t.not(a.kid, b.kid)
    t.not(a.jwks.keys[0].n, b.jwks.keys[0].n)
  })

  t.test('the JWKS is a copy: changing it changes nothing published', async (t) => {
    const issuer = new LocalIssuer()
    const jwks = issuer.jwks
    jwks.keys[0].kid = 'tampered'
    jwks.keys.push({ kty: 'RSA', kid: 'added' })
    t.same(issuer.jwks.keys.map((key) => key.kid), [issuer.kid])
  })

  t.test('foreignKey() is a 2048-bit RSA private key outside any JWKS', async (t) => {
    const issuer = new LocalIssuer()
    const foreign = LocalIssuer.foreignKey()
    t.equal(foreign.type, 'private')
    t.equal(foreign.asymmetricKeyType, 'rsa')
    t.equal(foreign.asymmetricKeyDetails?.modulusLength, 2048)
    t.not(createPublicKey(foreign).export({ format: 'jwk' }).n, issuer.jwks.keys[0].n)
  })
})

t.test('idToken() carries the claims of a Cognito ID token', async (t) => {
  freezeClock(t)
  const issuer = new LocalIssuer()
  const token = issuer.idToken()
  t.equal(token.split('.').length, 3)
  const { header, payload } = decode(token)
  t.same(header, { kid: issuer.kid, alg: 'RS256' })
  t.same(Object.keys(payload).sort(), [
    'aud', 'auth_time', 'cognito:groups', 'cognito:username', 'email', 'email_verified', 'event_id',
    'exp', 'iat', 'iss', 'jti', 'origin_jti', 'sub', 'token_use'
  ])
  const sub = payload.sub as string
  t.match(sub, UUID)
  t.match(payload, {
    token_use: 'id',
    iss: issuer.issuer,
    aud: issuer.clientId,
    'cognito:username': sub,
    'cognito:groups': ['users'],
    email: `${sub}@example.com`,
    email_verified: true,
    iat: NOW,
    auth_time: NOW,
    exp: NOW + 3600
  })
  for (const id of ['jti', 'origin_jti', 'event_id']) t.match(payload[id], UUID, `${id} is a UUID`)
  t.equal(new Set([payload.jti, payload.origin_jti, payload.event_id]).size, 3, 'the ids differ')
  t.ok(verifiesWith(token, issuer.jwks), 'signed with the published key')

  const other = decode(issuer.idToken()).payload
  t.not(other.sub, sub, 'a fresh user for each token')
  t.not(other.jti, payload.jti, 'a fresh token id for each token')
})

t.test('accessToken() carries the claims of a Cognito access token', async (t) => {
  freezeClock(t)
  const issuer = new LocalIssuer()
  const token = issuer.accessToken()
  const { header, payload } = decode(token)
  t.same(header, { kid: issuer.kid, alg: 'RS256' })
  t.same(Object.keys(payload).sort(), [
    'auth_time', 'client_id', 'cognito:groups', 'event_id', 'exp', 'iat', 'iss', 'jti',
    'origin_jti', 'scope', 'sub', 'token_use', 'username', 'version'
  ])
  const sub = payload.sub as string
  t.match(sub, UUID)
  t.match(payload, {
    token_use: 'access',
    iss: issuer.issuer,
    client_id: issuer.clientId,
    username: sub,
    'cognito:groups': ['users'],
    scope: 'aws.cognito.signin.user.admin',
    version: 2,
    iat: NOW,
    auth_time: NOW,
    exp: NOW + 3600
  })
  for (const id of ['jti', 'origin_jti', 'event_id']) t.match(payload[id], UUID, `${id} is a UUID`)
  t.ok(verifiesWith(token, issuer.jwks), 'signed with the published key')
})

t.test('tokens live for the issuer\'s lifetime', async (t) => {
  freezeClock(t)
  const issuer = new LocalIssuer({ lifetime: 60 })
  for (const token of [issuer.idToken(), issuer.accessToken()]) {
    const { payload } = decode(token)
    t.equal(payload.exp, (payload.iat as number) + 60)
  }
  t.equal(decode(new LocalIssuer({ lifetime: -1 }).idToken()).payload.exp, NOW - 1, 'a negative lifetime mints expired tokens')
})

t.test('claim overrides', async (t) => {
  const issuer = new LocalIssuer()

  t.test('replace claims and add new ones', async (t) => {
    const { payload } = decode(issuer.idToken({
      email: 'alice@example.com',
      'cognito:groups': ['admin', 'editors'],
      'custom:tenant': 'acme'
    }))
    t.equal(payload.email, 'alice@example.com')
    t.same(payload['cognito:groups'], ['admin', 'editors'])
    t.equal(payload['custom:tenant'], 'acme')
  })

  t.test('a given sub is also the default username and email', async (t) => {
    const id = decode(issuer.idToken({ sub: 'alice-sub' })).payload
    t.match(id, { sub: 'alice-sub', 'cognito:username': 'alice-sub', email: 'alice-sub@example.com' })
    const access = decode(issuer.accessToken({ sub: 'bob-sub' })).payload
    t.match(access, { sub: 'bob-sub', username: 'bob-sub' })
  })

  t.test('undefined removes a claim', async (t) => {
    const id = decode(issuer.idToken({ sub: undefined, 'cognito:groups': undefined, auth_time: undefined })).payload
    for (const claim of ['sub', 'cognito:groups', 'auth_time']) t.notOk(claim in id, `no ${claim}`)
    t.match(id['cognito:username'], UUID, 'the username is still made up')
    const access = decode(issuer.accessToken({ scope: undefined, exp: undefined })).payload
    for (const claim of ['scope', 'exp']) t.notOk(claim in access, `no ${claim}`)
  })

  t.test('claims may take values Cognito never issues, for tokens that must be refused', async (t) => {
    t.match(decode(issuer.accessToken({ token_use: 'id' })).payload, { token_use: 'id', client_id: issuer.clientId })
    t.match(decode(issuer.idToken({ token_use: 'refresh', exp: 'soon', aud: ['a', 'b'] })).payload, {
      token_use: 'refresh',
      exp: 'soon',
      aud: ['a', 'b']
    })
  })
})

t.test('header overrides', async (t) => {
  const issuer = new LocalIssuer()
  t.same(decode(issuer.idToken({}, { header: { typ: 'JWT' } })).header, { kid: issuer.kid, alg: 'RS256', typ: 'JWT' }, 'added')
  t.same(decode(issuer.idToken({}, { header: { kid: 'other', alg: 'none' } })).header, { kid: 'other', alg: 'none' }, 'replaced')
  t.same(decode(issuer.accessToken({}, { header: { kid: undefined } })).header, { alg: 'RS256' }, 'kid removed')
})

t.test('signatures', async (t) => {
  const issuer = new LocalIssuer()

  t.test('verify with node:crypto against the published JWKS', async (t) => {
    t.ok(verifiesWith(issuer.idToken(), issuer.jwks), 'ID token')
    t.ok(verifiesWith(issuer.accessToken(), issuer.jwks), 'access token')
    t.ok(verifiesWith(issuer.sign({ anything: true }), issuer.jwks), 'any payload')
  })

  t.test('cover header and payload', async (t) => {
    const [header, payload, signature] = issuer.idToken().split('.')
    const forgedPayload = Buffer.from(JSON.stringify({ ...decodePart(payload), 'cognito:groups': ['admin'] })).toString('base64url')
    t.notOk(verifiesWith(`${header}.${forgedPayload}.${signature}`, issuer.jwks), 'payload changed')
    const forgedHeader = Buffer.from(JSON.stringify({ ...decodePart(header), typ: 'JWT' })).toString('base64url')
    t.notOk(verifiesWith(`${forgedHeader}.${payload}.${signature}`, issuer.jwks), 'header changed')
  })

  t.test('signingKey signs with another key, under the issuer\'s kid', async (t) => {
    const forged = issuer.idToken({}, { signingKey: LocalIssuer.foreignKey() })
    t.equal(decode(forged).header.kid, issuer.kid)
    t.notOk(verifiesWith(forged, issuer.jwks))
  })

  t.test('sign() takes any payload and drops undefined members', async (t) => {
    const token = issuer.sign({ a: 1, b: undefined, c: null })
    t.same(decode(token), { header: { kid: issuer.kid, alg: 'RS256' }, payload: { a: 1, c: null } })
    t.same(decode(issuer.sign({}, { header: { kid: undefined, jku: 'https://attacker.example/jwks' } })).header, {
      alg: 'RS256',
      jku: 'https://attacker.example/jwks'
    })
  })
})

t.test('rotate()', async (t) => {
  t.test('a new key signs, the old one stays published', async (t) => {
    const issuer = new LocalIssuer()
    const first = issuer.kid
    const before = issuer.idToken()
    const second = issuer.rotate()
    t.not(second, first)
    t.equal(issuer.kid, second, 'the new key is the current one')
    t.same(issuer.jwks.keys.map((key) => key.kid), [second, first])
    const after = issuer.idToken()
    t.equal(decode(after).header.kid, second)
    t.ok(verifiesWith(after, issuer.jwks), 'a new token verifies')
    t.ok(verifiesWith(before, issuer.jwks), 'a token of the old key still verifies')
    const third = issuer.rotate({})
    t.same(issuer.jwks.keys.map((key) => key.kid), [third, second, first], 'keepOld is the default')
  })

  t.test('keepOld: false drops the old keys', async (t) => {
    const issuer = new LocalIssuer()
    const before = issuer.idToken()
    issuer.rotate()
    const current = issuer.rotate({ keepOld: false })
    t.same(issuer.jwks.keys.map((key) => key.kid), [current])
    t.notOk(verifiesWith(before, issuer.jwks), 'a token of a dropped key no longer verifies')
    t.ok(verifiesWith(issuer.idToken(), issuer.jwks))
  })
})

t.test('the JWKS server', async (t) => {
  t.test('serves the JWKS on 127.0.0.1 at /<poolId>/.well-known/jwks.json, 404 elsewhere', async (t) => {
    const issuer = new LocalIssuer()
    t.throws(() => issuer.jwksUri, /call listen\(\) before reading jwksUri/, 'no jwksUri before listen')
    const url = await listening(t, issuer)
    t.match(url, /^http:\/\/127\.0\.0\.1:\d+\/eu-central-1_LocalPool\/\.well-known\/jwks\.json$/)
    t.equal(issuer.jwksUri, url)

    const res = await fetch(url)
    t.equal(res.status, 200)
    t.equal(res.headers.get('content-type'), 'application/json')
    t.same(await res.json(), issuer.jwks)

    issuer.rotate()
    t.same((await (await fetch(url)).json() as JsonWebKeySet).keys.length, 2, 'a rotation shows at once')

    for (const path of ['/', '/.well-known/jwks.json', '/other-pool/.well-known/jwks.json', '/eu-central-1_LocalPool/.well-known/jwks.json/']) {
      const other = await fetch(new URL(path, url))
      t.equal(other.status, 404, path)
      await other.body?.cancel()
    }
  })

  t.test('listens on the port given: one in use rejects, and the issuer can listen elsewhere', async (t) => {
    const blocker = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())))
    const issuer = new LocalIssuer()
    await t.rejects(issuer.listen((blocker.address() as AddressInfo).port), { code: 'EADDRINUSE' })
    t.throws(() => issuer.jwksUri, /call listen\(\)/, 'not listening')
    t.match(await listening(t, issuer), /^http:\/\/127\.0\.0\.1:/)
  })

  t.test('a second listen() rejects instead of starting a server close() would not stop', async (t) => {
    const issuer = new LocalIssuer()
    const url = await listening(t, issuer)
    await t.rejects(issuer.listen(), { message: `LocalIssuer: already listening at ${url}` })
    t.equal(issuer.jwksUri, url)
  })

  t.test('close() stops the server, and is harmless before listen and twice', async (t) => {
    const issuer = new LocalIssuer()
    await issuer.close()
    const url = await issuer.listen()
    const res = await fetch(url)
    t.equal(res.status, 200)
    await res.body?.cancel()
    await issuer.close()
    await issuer.close()
    t.throws(() => issuer.jwksUri, /call listen\(\)/, 'no jwksUri once closed')
    await t.rejects(fetch(url), TypeError, 'nothing listens any more')
  })
})

t.test('await using', async (t) => {
  t.test('closes the issuer at the end of the scope', async (t) => {
    let url: string
    {
      await using issuer = new LocalIssuer()
      url = await issuer.listen()
      const res = await fetch(url)
      t.equal(res.status, 200, 'served within the scope')
      await res.body?.cancel()
    }
    await t.rejects(fetch(url), TypeError, 'nothing listens after it')
  })

  t.test('is close() under Symbol.asyncDispose', async (t) => {
    const issuer = new LocalIssuer()
    await issuer.listen()
    await issuer[Symbol.asyncDispose]()
    t.throws(() => issuer.jwksUri, /call listen\(\)/, 'closed')
    await issuer[Symbol.asyncDispose]()
    t.pass('disposing twice is harmless, as closing twice is')
  })

  t.test('a runtime without Symbol.asyncDispose gets no such method, and close() still works', async (t) => {
    let closed = 0
    const prototype = { close: async () => { closed++ } }
    closeOnAsyncDispose(prototype, undefined)
    t.same(Object.getOwnPropertySymbols(prototype), [])
    const key = Symbol('asyncDispose')
    closeOnAsyncDispose(prototype, key)
    await (prototype as unknown as Record<symbol, () => Promise<void>>)[key]()
    t.equal(closed, 1, 'with a key, the method calls close()')
  })
})

t.test('pluginOptions()', async (t) => {
  t.test('hand over the keys before listen, the JWKS URI after', async (t) => {
    const issuer = new LocalIssuer()
    t.same(issuer.pluginOptions(), { userPoolId: issuer.userPoolId, clientId: issuer.clientId, jwks: issuer.jwks, jwksUri: false }, 'the keys, and nothing to fetch')
    const url = await issuer.listen()
    t.same(issuer.pluginOptions(), { userPoolId: issuer.userPoolId, clientId: issuer.clientId, jwksUri: url })
    await issuer.close()
    t.same(issuer.pluginOptions(), { userPoolId: issuer.userPoolId, clientId: issuer.clientId, jwks: issuer.jwks, jwksUri: false }, 'keys again once closed')
  })

  t.test('pass on an issuer the plugin cannot derive, in memory or served', async (t) => {
    const emulators = [
      new LocalIssuer({ userPoolId: 'eu-central-1_Custom', issuer: 'http://127.0.0.1:9229/eu-central-1_Custom' }),
      new LocalIssuer({ userPoolId: 'local_4GYoIvBY' })
    ]
    for (const issuer of emulators) {
      t.same(issuer.pluginOptions(), { userPoolId: issuer.userPoolId, clientId: issuer.clientId, issuer: issuer.issuer, jwks: issuer.jwks, jwksUri: false }, `${issuer.userPoolId} before listen`)
      const app = Fastify()
      t.teardown(() => app.close())
      await app.register(cognitoAuth, issuer.pluginOptions())
      app.get('/', { onRequest: app.authenticate }, async () => 'ok')
      t.equal((await app.inject({ url: '/', headers: { authorization: `Bearer ${issuer.idToken()}` } })).statusCode, 200, `${issuer.userPoolId} in memory`)
      const url = await listening(t, issuer)
      t.same(issuer.pluginOptions(), { userPoolId: issuer.userPoolId, clientId: issuer.clientId, issuer: issuer.issuer, jwksUri: url })
    }
    t.equal(emulators[1].issuer, 'https://cognito-idp.local.amazonaws.com/local_4GYoIvBY')
  })
})

t.test('the plugin accepts the tokens of pluginOptions()', async (t) => {
  t.test('with the keys handed over', async (t) => {
    const issuer = new LocalIssuer()
    const app = await echoApp(t, issuer.pluginOptions())
    const res = await claimsOf(app, issuer.idToken({ sub: 'alice' }))
    t.equal(res.statusCode, 200)
    t.match(res.body, { sub: 'alice', token_use: 'id', aud: issuer.clientId, iss: issuer.issuer })
    t.equal((await claimsOf(app, issuer.idToken({}, { signingKey: LocalIssuer.foreignKey() }))).statusCode, 401, 'a forged signature is refused')
    t.equal(app.cognitoKeyStores()[0].fetches, 0, 'no fetch at all')
  })

  t.test('with the keys served, across a rotation', async (t) => {
    const issuer = new LocalIssuer()
    const url = await listening(t, issuer)
    const app = await echoApp(t, { ...issuer.pluginOptions(), tokenUse: 'access', jwksCache: { cooldown: 0 } })
    const oldKeyToken = issuer.accessToken({ sub: 'before' })
    t.match(await claimsOf(app, issuer.accessToken({ sub: 'bob' })), { statusCode: 200, body: { sub: 'bob', token_use: 'access' } })
    issuer.rotate()
    t.match(await claimsOf(app, issuer.accessToken({ sub: 'carol' })), { statusCode: 200, body: { sub: 'carol' } }, 'the new key')
    t.match(await claimsOf(app, oldKeyToken), { statusCode: 200, body: { sub: 'before' } }, 'the old key, still published')
    const [stats] = app.cognitoKeyStores()
    t.equal(stats.jwksUri, url)
    t.equal(stats.keys, 2, 'both keys were fetched from the issuer')
  })

  t.test('with an emulator\'s issuer', async (t) => {
    const issuer = new LocalIssuer({ userPoolId: 'local_4GYoIvBY', clientId: 'web', issuer: 'http://127.0.0.1:9229/local_4GYoIvBY' })
    await listening(t, issuer)
    const app = await echoApp(t, issuer.pluginOptions())
    t.match(await claimsOf(app, issuer.idToken({ sub: 'dave' })), { statusCode: 200, body: { sub: 'dave', iss: issuer.issuer, aud: 'web' } })
  })
})
