/**
 * An application registers its user type once, by augmenting `CognitoUserRegistry` through the
 * module that re-exports it; `request.cognitoUser` then has that type everywhere, with no casts,
 * and `resolveUser` must produce it. (This file has a program of its own: see tsconfig.json.)
 */
import fastify, { type FastifyRequest } from 'fastify'
import { expect, test } from 'tstyche'
import cognitoAuth, { type CognitoAccessTokenClaims, type CognitoClaims, type CognitoIdTokenClaims, type CognitoUser } from '../../../index'

declare module '../../../index' {
  interface CognitoUserRegistry {
    user: { id: number, email: string }
  }
}

interface AppUser { id: number, email: string }

const app = fastify()
const pool = { userPoolId: 'eu-central-1_xYzaq', clientId: 'client' }

test('request.cognitoUser is the registered type, or null before authentication', () => {
  expect<CognitoUser>().type.toBe<AppUser>()
  expect<FastifyRequest['cognitoUser']>().type.toBe<AppUser | null>()
  app.get('/me', { onRequest: app.authenticate }, async (request) => {
    expect(request.cognitoUser).type.toBe<{ id: number, email: string } | null>()
    expect(request.cognitoUser?.id).type.toBe<number | undefined>()
    return request.cognitoUser?.email
  })
})

test('request.cognitoClaims stays the claims', () => {
  app.get('/claims', async (request) => {
    expect(request.cognitoClaims).type.toBe<CognitoClaims | null>()
    return 'ok'
  })
})

test('resolveUser must return the registered type (or null when there is no such user)', () => {
  const user: AppUser = { id: 1, email: 'alice@example.com' }
  expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, resolveUser: (claims: CognitoClaims) => ({ id: 1, email: String(claims.email) }) })
  expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, resolveUser: async () => user })
  expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, resolveUser: async () => null })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, resolveUser: (claims: CognitoClaims) => claims })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, resolveUser: async (claims: CognitoClaims) => claims })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, resolveUser: () => ({ id: '1', email: 'alice@example.com' }) })
  // With a user type registered, leaving resolveUser out would make the claims pass for the user.
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, pool)
})

test('resolveUser stays required, and typed by tokenUse, for every kind of pool', () => {
  app.register(cognitoAuth, {
    ...pool,
    resolveUser: (claims) => {
      expect(claims).type.toBe<CognitoIdTokenClaims>()
      return { id: 1, email: typeof claims.email === 'string' ? claims.email : '' }
    }
  })
  app.register(cognitoAuth, {
    ...pool,
    tokenUse: 'access',
    resolveUser: async (claims) => {
      expect(claims).type.toBe<CognitoAccessTokenClaims>()
      return { id: 2, email: claims.client_id }
    }
  })
  app.register(cognitoAuth, {
    userPools: [pool, { ...pool, userPoolId: 'eu-west-1_Staff', tokenUse: 'access' }],
    resolveUser: (claims) => {
      expect(claims).type.toBe<CognitoIdTokenClaims | CognitoAccessTokenClaims>()
      return null
    }
  })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, tokenUse: 'access' })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, tokenUse: 'any', isRevoked: () => false })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { userPools: [pool] })
})
