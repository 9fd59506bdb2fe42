/** This plugin with its default options; keys fetched from the pool's JWKS URI (served on loopback). */
import Redis from 'ioredis'
import type { CognitoClaimsOptions, CognitoUser } from '../../index'
import cognitoAuth from '../../index'
import { CLIENT_ID, REVOKE_ROUTE, USER_POOL_ID } from '../config'
import { findUser, type SetupVariant } from './common'

/** The plugin, with options added to the pool (e.g. `claims` schemas). */
export const setupPluginWith = (pool: { claims?: CognitoClaimsOptions }): SetupVariant => async (app, { jwksUri, resolveUser, revocation }) => {
  if (revocation !== undefined) {
    const redis = new Redis({ host: '127.0.0.1', port: revocation.redisPort })
    app.addHook('onClose', async () => { redis.disconnect() })
    app.post<{ Body: { iss: string, origin_jti: string } }>(REVOKE_ROUTE, async (request, reply) => {
      await app.cognitoRevocation.revokeSession({ iss: request.body.iss, origin_jti: request.body.origin_jti })
      return reply.code(204).send()
    })
    await app.register(cognitoAuth, { userPoolId: USER_POOL_ID, clientId: CLIENT_ID, jwksUri, revocation: { redis, keyPrefix: revocation.keyPrefix } })
    return { hook: app.authenticate, subject: (request) => request.cognitoClaims?.sub ?? '' }
  }
  await app.register(cognitoAuth, {
    userPoolId: USER_POOL_ID,
    clientId: CLIENT_ID,
    jwksUri,
    ...pool,
    // The bench does not register its user type in CognitoUserRegistry: that would retype
    // `request.cognitoUser` for the whole project, so the lookup's result is cast here.
    ...(resolveUser ? { resolveUser: async (claims) => await findUser(claims.sub) as CognitoUser | undefined } : {})
  })
  return {
    hook: app.authenticate,
    subject: (request) => request.cognitoClaims?.sub ?? ''
  }
}

export const setupPlugin: SetupVariant = setupPluginWith({})
