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
    alb: { exp: string, email: string }
  }
}

const app = fastify()
const pool = { userPoolId: 'eu-central-1_xYzaq', clientId: 'client' }
const loadBalancerArn = 'arn:aws:elasticloadbalancing:eu-central-1:123456789012:loadbalancer/app/my-alb/50dc6c495c0c9188'

test('the redeclared decision claims are named, by kind', () => {
  expect<RedeclaredDecisionClaims<'id'>>().type.toBe<'exp'>()
  // `scope: string` is the plugin's own type: no conflict.
  expect<RedeclaredDecisionClaims<'access'>>().type.toBe<'token_use'>()
  // The load balancer's user claims: `iss`, `exp`, `sub` and `nbf` are the plugin's.
  expect<RedeclaredDecisionClaims<'alb'>>().type.toBe<'exp'>()
})

test('no options satisfy register', () => {
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, claims: { id: {} } })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, tokenUse: 'access', claims: { access: {} } })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { userPools: [{ ...pool, claims: { id: {} } }] })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { userPools: () => ({ ...pool, claims: { id: {} } }) })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, tokenUse: 'access', alb: { loadBalancerArn }, claims: { access: {}, alb: {} } })
})
