/**
 * fastify-cognito-jwt: authenticates Fastify requests that carry AWS Cognito JWTs.
 *
 * A request's path through the plugin:
 *   lib/extract.ts            the token, from `Authorization: Bearer` (or the app's `extractToken`)
 *   lib/verify.ts             verified claims: cache, header, pool, key, then fast-jwt's verifier of the key
 *     lib/token-cache.ts      tokens already verified
 *     lib/pools/directory.ts  which pool an issuer is: the configured map, or the application's
 *                             resolver (`userPools` as a function), asked with bounds, answers cached
 *                             and refreshed in the background
 *     lib/pools/pool.ts       a pool: its key store, a fast-jwt verifier per key (lib/fast-jwt.ts loads it)
 *     lib/keys/store.ts       the pool's keys, retrieved by get-jwks through lib/keys/fetch.ts's
 *                             bounded dispatcher (both loaded by the first fetch), checked by lib/keys/jwk.ts
 *     lib/claims.ts           what fast-jwt has no option for: claim types, `iat`, `exp` itself,
 *                             `token_use`, the app client (`aud` or `client_id`), `audience`
 *     lib/claims-schema.ts    the application's `claims` schemas (ajv, loaded by the first one), last
 *   lib/alb/verify.ts         behind an Application Load Balancer (the `alb` option), instead of
 *                             lib/extract.ts and lib/verify.ts: its token (lib/alb/token.ts, lib/alb/claims.ts), verified
 *                             with node:crypto and its PEM keys (lib/alb/keys.ts), then the access
 *                             token it forwards, through lib/verify.ts
 *   lib/authenticate.ts       revocation, `isRevoked`, `resolveUser`, then `request.cognitoClaims`,
 *                             `cognitoUser` and `cognitoPool`
 *     lib/revocation/list.ts  the revocation list's in-process replica and `app.cognitoRevocation`;
 *                             its store in lib/revocation/memory.ts or lib/revocation/redis.ts
 *   lib/connections/         `app.cognitoWatch`: long-lived connections end with their token (api.ts),
 *                             one timer and indexes for all of them (watches.ts)
 *   lib/authorize.ts          `requireGroups`, `requireScopes`
 *   lib/errors.ts             codes, statuses and `WWW-Authenticate` challenges
 *   lib/events.ts             what happened, on diagnostics_channel, for whoever subscribes
 * Options are checked once, in lib/options.ts (unknown keys refused by lib/option-keys.ts);
 * lib/route-guard.ts refuses to start a server with a `config.cognito` route the plugin could not
 * wire (or, in an instance created before this module loaded, refuses its requests).
 */
import type { FastifyInstance, onRequestHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import type { CognitoAuthOptions, CognitoAuthPlugin, CognitoHook } from './types'
import { AlbVerifier } from './lib/alb/verify'
import { createAuthenticate } from './lib/authenticate'
import { checkRouteNeeds, createRequirements } from './lib/authorize'
import { InvalidOptionError } from './lib/errors'
import { parseOptions } from './lib/options'
import { guardLateInstance, kRouteGuard, LATE_IMPORT_WARNING, wireRoute } from './lib/route-guard'
import { RevocationList, revocationNotConfigured } from './lib/revocation/list'
import { CognitoVerifier } from './lib/verify'
import { kWatchSizes, Watching } from './lib/connections/api'
import { learnWebSockets } from './lib/connections/ending'
import { kReply, kVerifiedToken } from './lib/connections/source'

async function cognitoAuthPlugin (fastify: FastifyInstance, options: CognitoAuthOptions): Promise<void> {
  if (fastify.hasRequestDecorator('cognitoClaims')) {
    throw new InvalidOptionError('register', 'fastify-cognito-jwt is already registered in this scope or a parent; list several pools in userPools')
  }
  if (!fastify.hasDecorator(kRouteGuard)) {
    // The instance was created before this module loaded (e.g. by fastify-cli, or with a plugin
    // file that @fastify/autoload imports later): nothing watched the routes declared so far.
    guardLateInstance(fastify)
    fastify.log.warn(LATE_IMPORT_WARNING)
  }
  const settings = parseOptions(options)
  const verifier = new CognitoVerifier({ ...settings, log: fastify.log })
  const revocation = settings.revocation === undefined
    ? undefined
    : new RevocationList(settings.revocation, (iss) => verifier.directory.lookup(iss), fastify.log)
  const alb = settings.alb === undefined
    ? undefined
    : new AlbVerifier({ ...settings, alb: settings.alb, verifier, log: fastify.log })
  const context = { settings, verifier, revocation, alb }
  const authenticate = createAuthenticate(context, false)
  const authenticateOptional = createAuthenticate(context, true)
  const { requireGroups, requireScopes } = createRequirements(settings.realm)
  const watching = new Watching({ ...context, log: fastify.log })

  fastify.decorateRequest('cognitoClaims', null)
  fastify.decorateRequest('cognitoUser', null)
  fastify.decorateRequest('cognitoPool', null)
  fastify.decorateRequest('cognitoAlbClaims', null)
  fastify.decorateRequest(kVerifiedToken, null)
  fastify.decorateRequest(kReply, null)
  fastify.decorate('authenticate', authenticate)
  fastify.decorate('authenticateOptional', authenticateOptional)
  fastify.decorate('requireGroups', requireGroups)
  fastify.decorate('requireScopes', requireScopes)
  fastify.decorate('cognitoKeyStores', () => {
    const stats = verifier.pools.map((pool) => pool.store.stats())
    if (alb !== undefined) stats.push(alb.store.stats())
    return stats
  })
  fastify.decorate('cognitoRevocation', revocation?.api ?? revocationNotConfigured)
  fastify.decorate('cognitoWatch', watching.watch)
  fastify.decorate(kWatchSizes, () => watching.watches.sizes())

  // Routes may declare their needs in `config.cognito` instead of listing hooks. onRoute sees the
  // routes declared once the plugin has loaded; lib/route-guard.ts refuses to start with any other.
  fastify.addHook('onRoute', (route) => {
    const needs = route.config?.cognito
    if (needs === undefined) return
    checkRouteNeeds(needs)
    const hooks: CognitoHook[] = [needs.optional === true ? authenticateOptional : authenticate]
    const match = needs.match === undefined ? undefined : { match: needs.match }
    // A key that is present counts, whatever its value: `groups: process.env.UNSET` is refused
    // by the requirement, not read as "no groups".
    if ('groups' in needs) hooks.push(requireGroups(needs.groups as string | readonly string[], match))
    if ('scopes' in needs) hooks.push(requireScopes(needs.scopes as string | readonly string[], match))
    wireRoute(route, hooks as onRequestHookHandler[])
  })
  // Warm start: fetch the keys before the first request needs them.
  const { prefetch } = settings.jwks
  fastify.addHook('onReady', async () => {
    if (prefetch === false) return
    await Promise.all(verifier.pools.map(async ({ settings: pool, store }) => {
      if (pool.keys !== undefined) return
      try {
        await store.prefetch()
      } catch (err) {
        if (prefetch === 'required') throw err
        // The failure itself was logged by the key store; requests retry with backoff.
      }
    }))
  })
  // The whole revocation list is loaded before the server is ready: its first request knows it.
  if (revocation !== undefined) fastify.addHook('onReady', async () => await revocation.start())
  // @fastify/websocket, if registered, says which WebSocket each upgraded request became.
  fastify.addHook('onReady', async () => learnWebSockets(fastify))
  fastify.addHook('onClose', async () => {
    watching.close()
    verifier.close()
    alb?.close()
    await revocation?.close()
  })
}

export const cognitoAuth = fp(cognitoAuthPlugin, { fastify: '5.x', name: 'fastify-cognito-jwt' }) as CognitoAuthPlugin
export default cognitoAuth

export * from './types'
export { channels } from './lib/events'
export {
  BadAuthorizationHeaderError,
  ForbiddenError,
  HookFailedError,
  InvalidOptionError,
  isCognitoAuthError,
  JwksUnavailableError,
  NoTokenError,
  PoolUnavailableError,
  RevocationUnavailableError,
  TokenExpiredError,
  TokenInvalidError,
  TokenNotRevocableError,
  TokenRevokedError,
  UserNotFoundError
} from './lib/errors'
