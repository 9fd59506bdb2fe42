/**
 * What the revocation list does whatever its store: the same tests run on the memory store
 * (test/revocation-memory.test.ts) and on Redis (test/revocation-redis.test.ts).
 */
import FakeTimers from '@sinonjs/fake-timers'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import type { Test } from 'tap'
import cognitoAuth, { type CognitoClaims, type RevocationOptions } from '../../index'
import { LocalIssuer } from '../../testing'
import { fakeClock } from './clock'

export const REVOKED_CHALLENGE = 'Bearer realm="api", error="invalid_token", error_description="The token has been revoked"'

export const issuer = new LocalIssuer()

export function bearer (token: string): { authorization: string } {
  return { authorization: `Bearer ${token}` }
}

export interface AppOptions {
  isRevoked?: (claims: CognitoClaims) => boolean
  tokenUse?: 'any'
}

/** An app with GET /me, authenticated, with this revocation option. */
export async function buildApp (t: Test, revocation: RevocationOptions, options: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, { ...issuer.pluginOptions(), tokenUse: 'any', ...options, revocation })
  app.get('/me', { onRequest: app.authenticate }, async (request) => ({ sub: request.cognitoClaims?.sub }))
  await app.ready()
  return app
}

export async function get (app: FastifyInstance, token: string): Promise<LightMyRequestResponse> {
  return await app.inject({ url: '/me', headers: bearer(token) })
}

export function isRevokedResponse (t: Test, res: LightMyRequestResponse, message?: string): void {
  t.equal(res.statusCode, 401, message ?? 'refused')
  t.equal(res.json<{ code: string }>().code, 'FST_COGNITO_TOKEN_REVOKED', 'FST_COGNITO_TOKEN_REVOKED')
  t.equal(res.headers['www-authenticate'], REVOKED_CHALLENGE, 'with its challenge')
}

/** Decodes a token's claims (the test minted it). */
export function claimsOf (token: string): CognitoClaims {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as CognitoClaims
}

/** Polls until `check` holds, for what travels between instances; fails after `ms`. */
export async function eventually (check: () => Promise<boolean> | boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`not within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** The behaviour tests, for a store given by `revocation()` (a fresh list each call). */
export function revocationBehaviour (t: Test, revocation: () => RevocationOptions, store: 'memory' | 'redis'): void {
  t.test('revokeSession refuses every token of the sign-in, cached ones too, and no other', async (t) => {
    const app = await buildApp(t, revocation())
    const origin = 'sign-in-1'
    const id = issuer.idToken({ sub: 'ana', origin_jti: origin })
    const access = issuer.accessToken({ sub: 'ana', origin_jti: origin })
    const refreshed = issuer.idToken({ sub: 'ana', origin_jti: origin })
    const otherSession = issuer.idToken({ sub: 'ana' })
    // Verified twice: the token cache now holds it.
    for (let i = 0; i < 2; i++) t.equal((await get(app, id)).statusCode, 200, 'accepted before')

    await app.cognitoRevocation.revokeSession(claimsOf(id))
    isRevokedResponse(t, await get(app, id), 'the cached ID token is refused at once')
    isRevokedResponse(t, await get(app, access), 'the access token of the sign-in is refused')
    isRevokedResponse(t, await get(app, refreshed), 'a token refreshed from the sign-in is refused')
    t.equal((await get(app, otherSession)).statusCode, 200, 'another sign-in of the same user passes')
    t.match(app.cognitoRevocation.stats(), { store, entries: 1, sessions: 1, users: 0, inSync: true })
  })

  t.test('a token without origin_jti is revoked by its jti alone', async (t) => {
    const app = await buildApp(t, revocation())
    const token = issuer.idToken({ origin_jti: undefined, jti: 'lonely' })
    const sibling = issuer.idToken({ origin_jti: undefined })
    const anonymous = issuer.idToken({ origin_jti: undefined, jti: undefined })
    await app.cognitoRevocation.revokeSession(claimsOf(token))
    isRevokedResponse(t, await get(app, token))
    t.equal((await get(app, sibling)).statusCode, 200, 'another token passes')
    t.equal((await get(app, anonymous)).statusCode, 200, 'a token with no id at all is not matched')
  })

  t.test('claims with neither origin_jti nor jti cannot be revoked', async (t) => {
    const app = await buildApp(t, revocation())
    await t.rejects(app.cognitoRevocation.revokeSession({}), { code: 'FST_COGNITO_TOKEN_NOT_REVOCABLE', message: /enable token revocation on the app client/ })
    await t.rejects(app.cognitoRevocation.revokeSession({ origin_jti: '', jti: '' }), { code: 'FST_COGNITO_TOKEN_NOT_REVOCABLE' })
    await t.rejects(app.cognitoRevocation.revokeSession(null as never), { code: 'FST_COGNITO_TOKEN_NOT_REVOCABLE' })
    t.equal(app.cognitoRevocation.stats().entries, 0)
  })

  t.test('signOutUser refuses the tokens of sign-ins up to now, by auth_time, else iat', async (t) => {
    const clock = fakeClock(t)
    const app = await buildApp(t, revocation())
    const signedIn = Math.floor(clock.now / 1000) - 600
    const earlier = issuer.idToken({ sub: 'bo', auth_time: signedIn })
    const noAuthTimeOld = issuer.idToken({ sub: 'bo', auth_time: undefined })
    const otherUser = issuer.idToken({ sub: 'cy', auth_time: signedIn })

    await app.cognitoRevocation.signOutUser({ iss: issuer.issuer, sub: 'bo' })
    await app.cognitoRevocation.signOutUser({ iss: issuer.issuer, sub: 'bo' })
    clock.tick(2000)
    await clock.settle()
    const refreshedLater = issuer.accessToken({ sub: 'bo', auth_time: signedIn })
    const laterSignIn = issuer.idToken({ sub: 'bo' })
    const noAuthTimeNew = issuer.idToken({ sub: 'bo', auth_time: undefined })
    isRevokedResponse(t, await get(app, earlier), 'a token of an earlier sign-in is refused')
    isRevokedResponse(t, await get(app, refreshedLater), 'a token refreshed since, from that sign-in, is refused')
    isRevokedResponse(t, await get(app, noAuthTimeOld), 'no auth_time: an iat up to the sign-out is refused')
    t.equal((await get(app, laterSignIn)).statusCode, 200, 'a later sign-in passes')
    t.equal((await get(app, noAuthTimeNew)).statusCode, 200, 'no auth_time: a later iat passes')
    t.equal((await get(app, otherUser)).statusCode, 200, 'another user passes')

    // A second sign-out moves the mark on.
    await app.cognitoRevocation.signOutUser({ iss: issuer.issuer, sub: 'bo' })
    isRevokedResponse(t, await get(app, laterSignIn), 'the later sign-in, once signed out too')
    t.match(app.cognitoRevocation.stats(), { entries: 1, users: 1, sessions: 0 })
  })

  t.test('signOutUser refuses what would revoke nothing', async (t) => {
    const app = await buildApp(t, revocation())
    await t.rejects(app.cognitoRevocation.signOutUser({ iss: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other', sub: 'bo' }), /not an issuer of the user pools/)
    await t.rejects(app.cognitoRevocation.signOutUser({ iss: issuer.issuer, sub: '' }), /non-empty strings/)
    await t.rejects(app.cognitoRevocation.signOutUser(undefined as never), /non-empty strings/)
    t.equal(app.cognitoRevocation.stats().entries, 0)
  })

  t.test('the replica checks before isRevoked, which still runs for the other tokens', async (t) => {
    const asked: string[] = []
    const app = await buildApp(t, revocation(), { isRevoked: (claims) => { asked.push(claims.sub); return claims.sub === 'hooked' } })
    const listed = issuer.idToken({ sub: 'listed' })
    await app.cognitoRevocation.revokeSession(claimsOf(listed))
    isRevokedResponse(t, await get(app, listed))
    isRevokedResponse(t, await get(app, issuer.idToken({ sub: 'hooked' })))
    t.equal((await get(app, issuer.idToken({ sub: 'free' }))).statusCode, 200)
    t.same(asked, ['hooked', 'free'], 'isRevoked is not asked about a token the list refused')
  })

  t.test('entries expire with the tokens they revoke, in the replica too', async (t) => {
    const clock = FakeTimers.install({ toFake: ['Date', 'setInterval', 'clearInterval'], now: Date.now() })
    t.teardown(() => clock.uninstall())
    const app = await buildApp(t, { ...revocation(), maxTokenLifetime: 3600 })
    await app.cognitoRevocation.revokeSession({ origin_jti: 'old' })
    await app.cognitoRevocation.revokeSession({ origin_jti: 'again' })
    await app.cognitoRevocation.revokeSession({ origin_jti: 'again' })
    await app.cognitoRevocation.signOutUser({ iss: issuer.issuer, sub: 'old-user' })
    clock.tick(1800_000)
    await app.cognitoRevocation.revokeSession({ origin_jti: 'newer' })
    await app.cognitoRevocation.revokeSession({ origin_jti: 'again' })
    await app.cognitoRevocation.signOutUser({ iss: issuer.issuer, sub: 'newer-user' })
    t.equal(app.cognitoRevocation.stats().entries, 5)
    clock.tick(1800_000)
    t.match(app.cognitoRevocation.stats(), { entries: 3, sessions: 2, users: 1 }, 'the first ones expired after maxTokenLifetime')
    isRevokedResponse(t, await get(app, issuer.idToken({ origin_jti: 'newer' })), 'the newer one still holds')
    isRevokedResponse(t, await get(app, issuer.idToken({ origin_jti: 'again' })), 'a session revoked again lives from the last time')
    clock.tick(1800_000)
    t.equal(app.cognitoRevocation.stats().entries, 0)
  })
}
