/**
 * What the revocation list does whatever its store: the same tests run on the memory store
 * (test/revocation-memory.test.ts) and on Redis (test/revocation-redis.test.ts).
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import FakeTimers from '@sinonjs/fake-timers'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import type { Test } from 'tap'
import cognitoAuth, { channels, type CognitoAuthOptions, type CognitoClaims, type CognitoRevocationEvent, type CognitoUser, type RevocationOptions } from '../../index'
import { LocalIssuer } from '../../testing'
import { fakeClock } from './clock'

export const REVOKED_CHALLENGE = 'Bearer realm="api", error="invalid_token", error_description="The token has been revoked"'

export const issuer = new LocalIssuer()

export function bearer (token: string): { authorization: string } {
  return { authorization: `Bearer ${token}` }
}

export interface AppOptions {
  isRevoked?: (claims: CognitoClaims) => boolean
  resolveUser?: (claims: CognitoClaims) => Promise<CognitoUser>
  tokenUse?: 'any'
  clockTolerance?: number
}

/** An app with GET /me, authenticated, with this revocation option. */
export async function buildApp (t: Test, revocation: RevocationOptions, options: AppOptions = {}): Promise<FastifyInstance> {
  return await buildWith(t, { ...issuer.pluginOptions(), tokenUse: 'any', ...options, revocation } as CognitoAuthOptions)
}

/** An app with GET /me, authenticated, with these options. */
export async function buildWith (t: Test, options: CognitoAuthOptions): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, options)
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
    await t.rejects(app.cognitoRevocation.revokeSession({ iss: issuer.issuer }), { code: 'FST_COGNITO_TOKEN_NOT_REVOCABLE', message: /enable token revocation on the app client/ })
    await t.rejects(app.cognitoRevocation.revokeSession({ iss: issuer.issuer, origin_jti: '', jti: '' }), { code: 'FST_COGNITO_TOKEN_NOT_REVOCABLE' })
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

  t.test('entries expire with the tokens they revoke, allowances included, in the replica too', async (t) => {
    const clock = FakeTimers.install({ toFake: ['Date', 'setInterval', 'clearInterval'], now: Date.now() })
    t.teardown(() => clock.uninstall())
    const app = await buildApp(t, { ...revocation(), maxTokenLifetime: 3600 })
    const { iss } = { iss: issuer.issuer }
    await app.cognitoRevocation.revokeSession({ iss, origin_jti: 'old' })
    await app.cognitoRevocation.revokeSession({ iss, origin_jti: 'again' })
    await app.cognitoRevocation.revokeSession({ iss, origin_jti: 'again' })
    await app.cognitoRevocation.signOutUser({ iss, sub: 'old-user' })
    clock.tick(1800_000)
    await app.cognitoRevocation.revokeSession({ iss, origin_jti: 'newer' })
    await app.cognitoRevocation.revokeSession({ iss, origin_jti: 'again' })
    await app.cognitoRevocation.signOutUser({ iss, sub: 'newer-user' })
    t.equal(app.cognitoRevocation.stats().entries, 5)
    // maxTokenLifetime, then the 5 minutes a token's iat may be ahead of this clock.
    clock.tick(1800_000 + 240_000)
    t.equal(app.cognitoRevocation.stats().entries, 5, 'kept past maxTokenLifetime: a token issued "in the future" lives longer')
    clock.tick(60_000)
    t.match(app.cognitoRevocation.stats(), { entries: 3, sessions: 2, users: 1 }, 'the first ones expired after maxTokenLifetime and the iat allowance')
    isRevokedResponse(t, await get(app, issuer.idToken({ origin_jti: 'newer' })), 'the newer one still holds')
    isRevokedResponse(t, await get(app, issuer.idToken({ origin_jti: 'again' })), 'a session revoked again lives from the last time')
    clock.tick(1800_000)
    t.equal(app.cognitoRevocation.stats().entries, 0)
  })

  t.test('a token revoked just after it was issued is refused to the end of its life, clock tolerance and iat allowance included', async (t) => {
    const clock = FakeTimers.install({ toFake: ['Date', 'setInterval', 'clearInterval'], now: Date.now() })
    t.teardown(() => clock.uninstall())
    const app = await buildApp(t, { ...revocation(), maxTokenLifetime: 3600 }, { clockTolerance: 60 })
    // Issued by a Cognito whose clock runs two minutes ahead of this server's.
    const iat = Math.floor(clock.now / 1000) + 120
    // Refreshed from a sign-in before the sign-out.
    const token = issuer.idToken({ sub: 'early', iat, auth_time: iat - 130, exp: iat + 3600 })
    const session = issuer.idToken({ sub: 'early-session', iat, auth_time: iat, exp: iat + 3600 })
    t.equal((await get(app, token)).statusCode, 200)
    await app.cognitoRevocation.revokeSession(claimsOf(session))
    await app.cognitoRevocation.signOutUser({ iss: issuer.issuer, sub: 'early' })
    // 30 s past exp: still within clockTolerance, so the token verifies.
    clock.tick((3600 + 120 + 30) * 1000)
    isRevokedResponse(t, await get(app, token), 'the signed-out user\'s token, within the tolerance past exp')
    isRevokedResponse(t, await get(app, session), 'the revoked session, within the tolerance past exp')
    clock.tick(60_000)
    t.equal((await get(app, token)).json<{ code: string }>().code, 'FST_COGNITO_TOKEN_EXPIRED', 'then the token is expired anyway')
  })

  t.test('the sign-out mark covers clockTolerance: a sign-in within it is refused, a later one passes', async (t) => {
    const clock = fakeClock(t)
    const app = await buildApp(t, revocation(), { clockTolerance: 5 })
    const now = Math.floor(clock.now / 1000)
    // Cognito's clock 2 s ahead: this sign-in happened before the sign-out, whatever its auth_time says.
    const ahead = issuer.idToken({ sub: 'fay', auth_time: now + 2, iat: now + 2 })
    const atTolerance = issuer.idToken({ sub: 'fay', auth_time: now + 5, iat: now + 5 })
    const after = issuer.idToken({ sub: 'fay', auth_time: now + 6, iat: now + 6 })
    t.equal((await get(app, ahead)).statusCode, 200)
    await app.cognitoRevocation.signOutUser({ iss: issuer.issuer, sub: 'fay' })
    isRevokedResponse(t, await get(app, ahead), 'a sign-in 2 s "after" the call')
    isRevokedResponse(t, await get(app, atTolerance), 'a sign-in clockTolerance after the call')
    t.equal((await get(app, after)).statusCode, 200, 'a sign-in after the tolerance passes')
  })

  t.test('signOutUser covers both issuers of the pool, whichever the call or the token names', async (t) => {
    const clock = fakeClock(t)
    const pool = new LocalIssuer({ userPoolId: 'eu-west-1_TwoForms' })
    const original = `https://cognito-idp.eu-west-1.amazonaws.com/${pool.userPoolId}`
    const updated = `https://issuer-cognito-idp.eu-west-1.amazonaws.com/${pool.userPoolId}`
    const app = await buildWith(t, { ...pool.pluginOptions(), tokenUse: 'any', revocation: revocation() } as CognitoAuthOptions)
    const signedIn = Math.floor(clock.now / 1000) - 60
    const byOriginal = pool.idToken({ sub: 'gus', iss: original, auth_time: signedIn })
    const byUpdated = pool.accessToken({ sub: 'gus', iss: updated, auth_time: signedIn })
    const other = pool.idToken({ sub: 'hal', iss: updated, auth_time: signedIn })
    t.equal((await get(app, byUpdated)).statusCode, 200, 'the pool accepts its updated issuer')
    await app.cognitoRevocation.signOutUser({ iss: original, sub: 'gus' })
    isRevokedResponse(t, await get(app, byOriginal))
    isRevokedResponse(t, await get(app, byUpdated), 'a token of the other issuer form is refused too')
    await app.cognitoRevocation.signOutUser({ iss: updated, sub: 'hal' })
    isRevokedResponse(t, await get(app, pool.idToken({ sub: 'hal', iss: original, auth_time: signedIn })), 'and the other way round')
    t.equal((await get(app, other)).statusCode, 401)
    t.match(app.cognitoRevocation.stats(), { users: 2 })
  })

  t.test('a session belongs to its pool: another pool\'s token with the same origin_jti revokes nothing of it', async (t) => {
    const tenant = new LocalIssuer({ userPoolId: 'eu-west-1_Tenant' })
    const attacker = new LocalIssuer({ userPoolId: 'eu-west-1_Attacker' })
    const app = await buildWith(t, {
      userPools: [{ ...tenant.pluginOptions(), tokenUse: 'any' }, { ...attacker.pluginOptions(), tokenUse: 'any' }],
      revocation: revocation()
    } as CognitoAuthOptions)
    const victim = tenant.idToken({ sub: 'ida', origin_jti: 'shared-id' })
    const forged = attacker.idToken({ sub: 'ida', origin_jti: 'shared-id' })
    await app.cognitoRevocation.revokeSession(claimsOf(forged))
    isRevokedResponse(t, await get(app, forged), 'the attacker\'s own session is revoked')
    t.equal((await get(app, victim)).statusCode, 200, 'the tenant\'s session of the same id is not')
    await app.cognitoRevocation.signOutUser({ iss: attacker.issuer, sub: 'ida' })
    t.equal((await get(app, tenant.idToken({ sub: 'ida', auth_time: Math.floor(Date.now() / 1000) - 60 }))).statusCode, 200, 'nor is the tenant\'s user of the same sub')
    await app.cognitoRevocation.revokeSession(claimsOf(victim))
    isRevokedResponse(t, await get(app, victim))
    t.match(app.cognitoRevocation.stats(), { sessions: 2, users: 1 })
  })

  t.test('a revocation made while resolveUser runs stops that request', async (t) => {
    let release!: () => void
    const asked = new Promise<void>((resolve) => { release = resolve })
    let resolving!: () => void
    const started = new Promise<void>((resolve) => { resolving = resolve })
    const app = await buildApp(t, revocation(), {
      resolveUser: async (claims) => {
        resolving()
        await asked
        return claims as unknown as CognitoUser
      }
    })
    const token = issuer.idToken({ sub: 'jan' })
    const response = get(app, token)
    await started
    await app.cognitoRevocation.revokeSession(claimsOf(token))
    release()
    isRevokedResponse(t, await response, 'refused once resolveUser answered')
  })

  t.test('a revocation made while isRevoked runs stops that request', async (t) => {
    let release!: () => void
    const asked = new Promise<void>((resolve) => { release = resolve })
    let asking!: () => void
    const started = new Promise<void>((resolve) => { asking = resolve })
    const app = await buildWith(t, {
      ...issuer.pluginOptions(),
      revocation: revocation(),
      isRevoked: async () => {
        asking()
        await asked
        return false
      }
    } as CognitoAuthOptions)
    const token = issuer.idToken({ sub: 'kai' })
    const response = get(app, token)
    await started
    await app.cognitoRevocation.signOutUser({ iss: issuer.issuer, sub: 'kai' })
    release()
    isRevokedResponse(t, await response, 'refused once isRevoked answered')
  })

  t.test('with a resolver, signOutUser and revokeSession ask it as a token would', async (t) => {
    const pool = new LocalIssuer({ userPoolId: 'eu-west-1_Resolved' })
    let failing = false
    const app = await buildWith(t, {
      userPools: async (iss: string) => {
        if (failing) throw new Error('tenant store down')
        return iss === pool.issuer ? { ...pool.pluginOptions(), tokenUse: 'any' } : null
      },
      revocation: revocation()
    } as CognitoAuthOptions)
    const typo = 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Resolvde'
    await t.rejects(app.cognitoRevocation.signOutUser({ iss: typo, sub: 'lu' }), { name: 'TypeError', message: /not an issuer of the user pools/ }, 'a mistyped pool id')
    await t.rejects(app.cognitoRevocation.revokeSession({ iss: typo, jti: 'x' }), { name: 'TypeError', message: /revokeSession: iss is not an issuer/ })
    await t.rejects(app.cognitoRevocation.revokeSession({ jti: 'x' } as never), { name: 'TypeError', message: /needs the claims' iss/ })
    t.equal(app.cognitoRevocation.stats().entries, 0, 'nothing revoked')
    const token = pool.idToken({ sub: 'lu', auth_time: Math.floor(Date.now() / 1000) - 60 })
    await app.cognitoRevocation.signOutUser({ iss: pool.issuer, sub: 'lu' })
    isRevokedResponse(t, await get(app, token))
    failing = true
    await t.rejects(app.cognitoRevocation.signOutUser({ iss: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other', sub: 'lu' }),
      { code: 'FST_COGNITO_POOL_UNAVAILABLE' }, 'a resolver that fails: rejected, nothing revoked')
    t.equal(app.cognitoRevocation.stats().entries, 1)
  })
}

/** Records the revocation events while the test runs. */
export function recordEvents (t: Test): CognitoRevocationEvent[] {
  const events: CognitoRevocationEvent[] = []
  const listener = (message: unknown): void => { events.push(message as CognitoRevocationEvent) }
  subscribe(channels.revocation, listener)
  t.teardown(() => { unsubscribe(channels.revocation, listener) })
  return events
}
