/**
 * What the plugin puts on the request: the verified claims, narrowed by `token_use`, and the user,
 * which is the claims as long as the application registers no user type (that case is in
 * `user-registry/`, compiled on its own, because the registration holds for a whole program).
 */
import fastify, { type FastifyRequest } from 'fastify'
import { describe, expect, test } from 'tstyche'
import type {
  CognitoAccessTokenClaims,
  CognitoClaimValue,
  CognitoClaims,
  CognitoIdTokenClaims,
  CognitoUser
} from '../../../index'

const app = fastify()

describe('request.cognitoClaims', () => {
  test('is the claims of either token, or null before authentication', () => {
    app.get('/', async (request) => {
      expect(request.cognitoClaims).type.toBe<CognitoClaims | null>()
      return 'ok'
    })
    expect<CognitoClaims>().type.toBe<CognitoIdTokenClaims | CognitoAccessTokenClaims>()
  })

  test('narrows to the access token on token_use', () => {
    app.get('/', { onRequest: app.authenticate }, async (request) => {
      const claims = request.cognitoClaims
      if (claims === null || claims.token_use !== 'access') return null
      expect(claims).type.toBe<CognitoAccessTokenClaims>()
      expect(claims.client_id).type.toBe<string>()
      expect(claims.scope).type.toBe<string | undefined>()
      // A resource server (or several), when the token is bound to one.
      expect(claims.aud).type.toBe<string | string[] | undefined>()
      return claims.client_id
    })
  })

  test('narrows to the ID token on token_use', () => {
    app.get('/', { onRequest: app.authenticate }, async (request) => {
      const claims = request.cognitoClaims
      if (claims === null || claims.token_use !== 'id') return null
      expect(claims).type.toBe<CognitoIdTokenClaims>()
      expect(claims.aud).type.toBe<string>()
      // Not checked by the plugin: as a trigger may write them.
      expect(claims['cognito:username']).type.toBe<CognitoClaimValue | undefined>()
      expect(claims.email).type.toBe<CognitoClaimValue | undefined>()
      expect(claims.email_verified).type.toBe<CognitoClaimValue | undefined>()
      expect(claims.identities).type.toBe<CognitoClaimValue | undefined>()
      expect(claims.scope).type.toBe<unknown>()
      return claims.aud
    })
  })

  test('a machine-to-machine access token has no username: using it unchecked does not compile', () => {
    const claims = {} as CognitoAccessTokenClaims
    expect(claims.username).type.toBe<CognitoClaimValue | undefined>()
    expect(claims.username.toLowerCase()).type.toRaiseError()
    expect(typeof claims.username === 'string' ? claims.username.toLowerCase() : null).type.toBe<string | null>()
  })

  test('informational claims a version 1 trigger writes as strings are typed so', () => {
    const claims = {} as CognitoIdTokenClaims
    expect(claims.email_verified === 'true').type.toBe<boolean>()
    expect(claims.email_verified === true).type.toBe<boolean>()
    expect(claims.email_verified).type.not.toBe<boolean | undefined>()
  })

  test('without narrowing, only the claims both tokens share are typed', () => {
    const claims = {} as CognitoClaims
    expect(claims.token_use).type.toBe<'id' | 'access'>()
    expect(claims.sub).type.toBe<string>()
    expect(claims.iss).type.toBe<string>()
    expect(claims.exp).type.toBe<number>()
    expect(claims['cognito:groups']).type.toBe<string[] | undefined>()
    expect(claims['custom:tenant']).type.toBe<unknown>()
  })
})

describe('request.cognitoUser without a registered user type', () => {
  test('is the claims, or null before authentication', () => {
    expect<CognitoUser>().type.toBe<CognitoClaims>()
    expect<FastifyRequest['cognitoUser']>().type.toBe<CognitoClaims | null>()
    app.get('/', async (request) => {
      expect(request.cognitoUser).type.toBe<CognitoClaims | null>()
      return 'ok'
    })
  })
})
