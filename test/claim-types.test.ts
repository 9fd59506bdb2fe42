/**
 * Claims whose types never lie: a token signed by the pool is refused when a claim the plugin
 * decides with has another type than the exported claim types name; informational claims, which
 * a trigger may write as it likes, pass as they are and are typed so. Every refusal by fast-jwt
 * maps onto the plugin's own codes, with a reason that names no claim value.
 */
import { generateKeyPairSync, sign } from 'node:crypto'
import { TokenError } from 'fast-jwt'
import type { LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import type { JsonWebKey } from '../index'
import { fromTokenError } from '../lib/verify'
import { LocalIssuer } from '../testing'
import { bearer, buildApp } from './helpers/app'

const issuer = new LocalIssuer()
const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
const kid = 'hand-signed'
const jwk = { kty: 'RSA', kid, alg: 'RS256', use: 'sig', ...publicKey.export({ format: 'jwk' }) } as JsonWebKey

/** A token signed by the pool's key around a payload given as JSON text, so that `1e400` stays as written. */
function signedJson (json: string): string {
  const input = `${Buffer.from(JSON.stringify({ alg: 'RS256', kid })).toString('base64url')}.${Buffer.from(json).toString('base64url')}`
  return `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`
}

/** The claims of a valid ID token (or access token), as JSON text with `extra` members spliced in. */
function claimsJson (kind: 'id' | 'access', extra: string): string {
  const token = kind === 'id' ? issuer.idToken() : issuer.accessToken()
  const json = Buffer.from(token.split('.')[1], 'base64url').toString('utf8')
  return `${json.slice(0, -1)},${extra}}`
}

function expectInvalid (t: Test, response: LightMyRequestResponse, name: string): void {
  t.equal(response.statusCode, 401, `${name}: status`)
  t.equal(response.json().code, 'FST_COGNITO_TOKEN_INVALID', `${name}: code`)
}

t.test('a date claim that is not a finite number is refused', async (t) => {
  const app = await buildApp(t, { ...issuer.pluginOptions(), tokenUse: 'any', jwks: { keys: [jwk] } })
  const get = (token: string): Promise<LightMyRequestResponse> => app.inject({ url: '/private', headers: bearer(token) })
  t.equal((await get(signedJson(claimsJson('id', '"auth_time":1')))).statusCode, 200, 'the hand-signed token passes as it is')
  for (const claim of ['exp', 'nbf', 'iat', 'auth_time']) {
    // JSON parses 1e400 to Infinity: an `exp` of Infinity would never expire nor leave the cache.
    expectInvalid(t, await get(signedJson(claimsJson('id', `"${claim}":1e400`))), `${claim} 1e400`)
    expectInvalid(t, await get(signedJson(claimsJson('id', `"${claim}":-1e400`))), `${claim} -1e400`)
    expectInvalid(t, await get(signedJson(claimsJson('id', `"${claim}":"1"`))), `${claim} a string`)
  }
})

t.test('a claim the plugin decides with, of the wrong type, is refused', async (t) => {
  const app = await buildApp(t, { ...issuer.pluginOptions(), tokenUse: 'any' })
  const get = (token: string): Promise<LightMyRequestResponse> => app.inject({ url: '/private', headers: bearer(token) })
  for (const claim of ['sub', 'jti', 'origin_jti', 'scope', 'token_use']) {
    for (const value of [42, true, null, ['a'], { a: 1 }]) {
      expectInvalid(t, await get(issuer.idToken({ [claim]: value })), `ID token, ${claim} ${JSON.stringify(value)}`)
      expectInvalid(t, await get(issuer.accessToken({ [claim]: value })), `access token, ${claim} ${JSON.stringify(value)}`)
    }
  }
  for (const value of [42, null, ['https://elsewhere'], { a: 1 }]) {
    expectInvalid(t, await get(issuer.idToken({ iss: value })), `iss ${JSON.stringify(value)}`)
  }
  for (const value of [42, null, [issuer.clientId], { id: issuer.clientId }]) {
    expectInvalid(t, await get(issuer.accessToken({ client_id: value })), `access token, client_id ${JSON.stringify(value)}`)
    expectInvalid(t, await get(issuer.idToken({ aud: value })), `ID token, aud ${JSON.stringify(value)}`)
  }
  for (const value of [42, null, [1], ['api', null], { a: 1 }]) {
    expectInvalid(t, await get(issuer.accessToken({ aud: value })), `access token, aud ${JSON.stringify(value)}`)
  }
  for (const value of ['admin', ['admin', 1], [null], { 0: 'admin' }, [['admin']]]) {
    expectInvalid(t, await get(issuer.idToken({ 'cognito:groups': value })), `cognito:groups ${JSON.stringify(value)}`)
  }
})

t.test('informational claims pass whatever a trigger wrote in them', async (t) => {
  const app = await buildApp(t, { ...issuer.pluginOptions(), tokenUse: 'any' })
  const get = (token: string): Promise<LightMyRequestResponse> => app.inject({ url: '/private', headers: bearer(token) })
  // A version 1 pre-token-generation trigger writes strings; versions 2 and 3 any JSON value.
  const written = { email_verified: 'true', phone_number_verified: 'false', email: 42, name: { given: 'Alice' }, 'cognito:roles': 'arn:aws:iam::1:role/r', 'cognito:preferred_role': ['r'], identities: '[{"userId":"u1"}]', event_id: 7, 'cognito:username': 12, nonce: false, at_hash: null }
  const id = await get(issuer.idToken(written))
  t.equal(id.statusCode, 200, 'an ID token with trigger-written claims')
  t.match(id.json().claims, { email_verified: 'true', email: 42, 'cognito:username': 12 }, 'handed over as written')
  const access = await get(issuer.accessToken({ version: '2', username: 7, event_id: null }))
  t.equal(access.statusCode, 200, 'an access token with trigger-written claims')
})

t.test('aud must be a string also when every app client is accepted', async (t) => {
  const app = await buildApp(t, { ...issuer.pluginOptions(), clientId: null })
  const get = (token: string): Promise<LightMyRequestResponse> => app.inject({ url: '/private', headers: bearer(token) })
  t.equal((await get(issuer.idToken({ aud: 'any-client' }))).statusCode, 200)
  expectInvalid(t, await get(issuer.idToken({ aud: ['any-client'] })), 'an array')
  expectInvalid(t, await get(issuer.idToken({ aud: 7 })), 'a number')
})

t.test('what handlers receive has the types the claim types name', async (t) => {
  const app = await buildApp(t, { ...issuer.pluginOptions(), tokenUse: 'any' })
  const token = issuer.idToken({ 'cognito:groups': ['a', 'b'], email_verified: true, auth_time: 1_700_000_000 })
  const { claims } = (await app.inject({ url: '/private', headers: bearer(token) })).json()
  t.match(claims, { sub: String, iss: String, aud: String, exp: Number, iat: Number, auth_time: Number, 'cognito:username': String, token_use: 'id', email_verified: true, 'cognito:groups': ['a', 'b'] })
})

t.test("fast-jwt's refusals map onto the plugin's codes", async (t) => {
  const cases: Array<[string, string, number]> = [
    [TokenError.codes.expired, 'FST_COGNITO_TOKEN_EXPIRED', 401],
    [TokenError.codes.inactive, 'FST_COGNITO_TOKEN_INVALID', 401],
    [TokenError.codes.invalidSignature, 'FST_COGNITO_TOKEN_INVALID', 401],
    [TokenError.codes.invalidAlgorithm, 'FST_COGNITO_TOKEN_INVALID', 401],
    [TokenError.codes.malformed, 'FST_COGNITO_TOKEN_INVALID', 401],
    [TokenError.codes.invalidClaimValue, 'FST_COGNITO_TOKEN_INVALID', 401],
    [TokenError.codes.missingRequiredClaim, 'FST_COGNITO_TOKEN_INVALID', 401],
    [TokenError.codes.invalidCritHeader, 'FST_COGNITO_TOKEN_INVALID', 401],
    [TokenError.codes.invalidKey, 'FST_COGNITO_JWKS_UNAVAILABLE', 503],
    [TokenError.codes.missingKey, 'FST_COGNITO_JWKS_UNAVAILABLE', 503],
    [TokenError.codes.keyFetchingError, 'FST_COGNITO_JWKS_UNAVAILABLE', 503]
  ]
  for (const [from, code, status] of cases) {
    const error = fromTokenError(new TokenError(from as never, 'The token has expired at 2026-11-29T00:00:00.000Z for alice@example.com'))
    t.match(error, { code, statusCode: status }, from)
    // fast-jwt's messages may carry claim values: the reason is a fixed text.
    t.match(error.reason, new RegExp(`^${from}: [a-z]`), `${from}: reason`)
    t.notMatch(error.reason, /2026|alice/, `${from}: the reason names no claim value`)
  }
  const other = fromTokenError(new RangeError('anything else, alice@example.com'))
  t.match(other, { code: 'FST_COGNITO_TOKEN_INVALID', reason: 'the verifier refused the token' }, 'any other error refuses the token')
  t.match(fromTokenError(new TokenError('FAST_JWT_SOMETHING_NEW' as never, 'alice')), { reason: 'the verifier refused the token' }, 'an unknown code')
})
