/**
 * An application registers the claims its `claims` schemas check, by augmenting
 * `CognitoClaimsRegistry`: they are merged into the claims types everywhere (the request, the
 * hooks, the events), and `register` then requires the schema of each kind registered, for every
 * pool that accepts such tokens. (This folder is a program of its own: the augmentation holds for
 * a whole program.)
 */
import fastify from 'fastify'
import { expect, test } from 'tstyche'
import cognitoAuth, {
  type CognitoAccessTokenClaims,
  type CognitoAuthenticatedEvent,
  type CognitoClaimsSchema,
  type CognitoIdTokenClaims,
  type CognitoPoolAnswer,
  type RedeclaredDecisionClaims
} from '../../../index'
import { LocalIssuer } from '../../../testing'

declare module '../../../index' {
  interface CognitoClaimsRegistry {
    id: { email: string, email_verified: boolean, 'custom:tenant': string, 'cognito:groups'?: Array<'admin' | 'users'> }
  }
}

const app = fastify()
const pool = { userPoolId: 'eu-central-1_xYzaq', clientId: 'client' }
const idSchema: CognitoClaimsSchema = { type: 'object', required: ['email', 'email_verified', 'custom:tenant'] }

test('the registered claims are merged into the ID token\'s claims, and narrow Cognito\'s', () => {
  expect<CognitoIdTokenClaims['email']>().type.toBe<string>()
  expect<CognitoIdTokenClaims['email_verified']>().type.toBe<boolean>()
  expect<CognitoIdTokenClaims['custom:tenant']>().type.toBe<string>()
  expect<CognitoIdTokenClaims['cognito:groups']>().type.toBe<Array<'admin' | 'users'> | undefined>()
  expect<CognitoIdTokenClaims['sub']>().type.toBe<string>()
  // Access tokens have no registered claims: their informational claims stay unchecked.
  expect<CognitoAccessTokenClaims['email']>().type.toBe<unknown>()
  // A narrower type of a decision claim is no conflict.
  expect<RedeclaredDecisionClaims<'id'>>().type.toBe<never>()
})

test('request.cognitoClaims, narrowed on token_use, has them', () => {
  app.get('/me', { onRequest: app.authenticate }, async (request) => {
    const claims = request.cognitoClaims
    if (claims?.token_use !== 'id') return null
    expect(claims.email).type.toBe<string>()
    expect(claims['custom:tenant']).type.toBe<string>()
    return claims.email.toLowerCase()
  })
})

test('resolveUser and the authenticated event receive them', () => {
  app.register(cognitoAuth, {
    ...pool,
    claims: { id: idSchema },
    resolveUser: (claims) => {
      expect(claims.email_verified).type.toBe<boolean>()
      return claims
    }
  })
  expect<CognitoAuthenticatedEvent['claims']>().type.toBe<CognitoIdTokenClaims | CognitoAccessTokenClaims>()
})

test('the schema of each registered kind is required by every pool that accepts that kind', () => {
  expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, claims: { id: idSchema } })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, pool)
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, claims: {} })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, tokenUse: 'any', claims: {} })
  expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, tokenUse: 'any', claims: { id: idSchema, access: {} } })
  // An access-only pool has no ID tokens: nothing registered applies, and an ID schema is refused.
  expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, tokenUse: 'access' })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, tokenUse: 'access', claims: { id: idSchema } })
  // Each entry of several pools, and each answer of a resolver.
  expect(app.register).type.toBeCallableWith(cognitoAuth, { userPools: [{ ...pool, claims: { id: idSchema } }, { ...pool, tokenUse: 'access' }] })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { userPools: [{ ...pool, claims: { id: idSchema } }, pool] })
  expect<CognitoPoolAnswer>().type.toBeAssignableFrom({ ...pool, claims: { id: idSchema } })
  expect<CognitoPoolAnswer>().type.not.toBeAssignableFrom(pool)
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { userPools: () => pool })
  expect(app.register).type.toBeCallableWith(cognitoAuth, { userPools: async () => ({ ...pool, claims: { id: idSchema } }) })
})

test('the testing kit mints tokens with the registered claims, and its options take the schema', () => {
  const issuer = new LocalIssuer()
  expect(issuer.idToken).type.toBeCallableWith({ 'custom:tenant': 'acme', email_verified: true })
  expect(app.register).type.toBeCallableWith(cognitoAuth, { ...issuer.pluginOptions(), claims: { id: idSchema } })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, issuer.pluginOptions())
})
