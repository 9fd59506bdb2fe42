/** This plugin with its default options; keys fetched from the pool's JWKS URI (served on loopback). */
import type { CognitoUser } from '../../index'
import cognitoAuth from '../../index'
import { CLIENT_ID, USER_POOL_ID } from '../config'
import { findUser, type SetupVariant } from './common'

export const setupPlugin: SetupVariant = async (app, { jwksUri, resolveUser }) => {
  await app.register(cognitoAuth, {
    userPoolId: USER_POOL_ID,
    clientId: CLIENT_ID,
    jwksUri,
    // The bench does not register its user type in CognitoUserRegistry: that would retype
    // `request.cognitoUser` for the whole project, so the lookup's result is cast here.
    ...(resolveUser ? { resolveUser: async (claims) => await findUser(claims.sub) as CognitoUser | undefined } : {})
  })
  return {
    hook: app.authenticate,
    subject: (request) => request.cognitoClaims?.sub ?? ''
  }
}
