/**
 * A registry that gives a claim the plugin decides with another type than the plugin checks
 * (`exp` as a string, `token_use` of the other kind) cannot be used: `register` is a type error
 * that names the claims. (This folder is a program of its own: the augmentation holds for a whole
 * program.)
 */
import fastify from 'fastify'
import { expect, test } from 'tstyche'
import cognitoAuth, { type RedeclaredDecisionClaims } from '../../../index'

declare module '../../../index' {
  interface CognitoClaimsRegistry {
    id: { exp: string, email: string }
    access: { token_use: 'id', scope: string }
  }
}

const app = fastify()
const pool = { userPoolId: 'eu-central-1_xYzaq', clientId: 'client' }

test('the redeclared decision claims are named, by kind', () => {
  expect<RedeclaredDecisionClaims<'id'>>().type.toBe<'exp'>()
  // `scope: string` is the plugin's own type: no conflict.
  expect<RedeclaredDecisionClaims<'access'>>().type.toBe<'token_use'>()
})

test('no options satisfy register', () => {
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, claims: { id: {} } })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, tokenUse: 'access', claims: { access: {} } })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { userPools: [{ ...pool, claims: { id: {} } }] })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { userPools: () => ({ ...pool, claims: { id: {} } }) })
})
