/**
 * An application behind a load balancer registers the user claims its `claims.alb` schema checks
 * (`CognitoClaimsRegistry['alb']`): they are merged into `CognitoAlbClaims`, and so into
 * `request.cognitoAlbClaims` and the events; `register` then requires the `alb` option and the
 * schema for every pool. (This folder is a program of its own: the augmentation holds for a whole
 * program.)
 */
import fastify from 'fastify'
import { expect, test } from 'tstyche'
import cognitoAuth, {
  type CognitoAccessTokenClaims,
  type CognitoAlbAuthenticatedEvent,
  type CognitoAlbClaims,
  type CognitoClaimValue,
  type CognitoClaimsSchema,
  type CognitoIdTokenClaims,
  type RedeclaredDecisionClaims
} from '../../../index'
import { AlbIssuer } from '../../../testing'

declare module '../../../index' {
  interface CognitoClaimsRegistry {
    alb: { email: string, email_verified: 'true' | 'false', 'custom:tenant': string, sub: `${string}-${string}` }
  }
}

const app = fastify()
const pool = { userPoolId: 'eu-west-1_abc', clientId: 'alb-client', tokenUse: 'access' as const }
const loadBalancerArn = 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/my-alb/50dc6c495c0c9188'
const albSchema: CognitoClaimsSchema = { type: 'object', required: ['email', 'email_verified', 'custom:tenant'] }

test('the registered claims are merged into the load balancer\'s user claims, and narrow them', () => {
  expect<CognitoAlbClaims['email']>().type.toBe<string>()
  expect<CognitoAlbClaims['email_verified']>().type.toBe<'true' | 'false'>()
  expect<CognitoAlbClaims['custom:tenant']>().type.toBe<string>()
  // A narrower type of a decision claim is no conflict; the others keep the plugin's types.
  expect<CognitoAlbClaims['sub']>().type.toBe<`${string}-${string}`>()
  expect<CognitoAlbClaims['exp']>().type.toBe<number>()
  expect<CognitoAlbClaims['username']>().type.toBe<CognitoClaimValue | undefined>()
  expect<RedeclaredDecisionClaims<'alb'>>().type.toBe<never>()
  // The tokens' claims are untouched.
  expect<CognitoAccessTokenClaims['email']>().type.toBe<unknown>()
  expect<CognitoIdTokenClaims['custom:tenant']>().type.toBe<unknown>()
})

test('request.cognitoAlbClaims and the authenticated event have them', () => {
  app.get('/me', { onRequest: app.authenticate }, async (request) => {
    const claims = request.cognitoAlbClaims
    if (claims === null) return null
    expect(claims['custom:tenant']).type.toBe<string>()
    return claims.email.toLowerCase()
  })
  expect<CognitoAlbAuthenticatedEvent['albClaims']['email']>().type.toBe<string>()
})

test('register requires the alb option and the schema, for every pool', () => {
  expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, alb: { loadBalancerArn }, claims: { alb: albSchema } })
  expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, alb: { loadBalancerArn }, claims: { alb: albSchema, access: {} } })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, alb: { loadBalancerArn } })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, alb: { loadBalancerArn }, claims: { access: {} } })
  // Without the load balancer there are no such claims to check.
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, claims: { alb: albSchema } })
  expect(app.register).type.toBeCallableWith(cognitoAuth, { userPools: [{ ...pool, claims: { alb: albSchema } }], alb: { loadBalancerArn } })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { userPools: [{ ...pool, claims: { alb: albSchema } }, pool], alb: { loadBalancerArn } })
  // A resolver cannot stand behind the load balancer.
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { userPools: () => ({ ...pool, claims: { alb: albSchema } }) })
})

test('the testing kit mints user claims of the registered shape, and its options take the schema', () => {
  const alb = new AlbIssuer()
  expect(alb.headers).type.toBeCallableWith({ 'custom:tenant': 'acme', email_verified: 'true' })
  expect(app.register).type.toBeCallableWith(cognitoAuth, { ...alb.pluginOptions(), claims: { alb: albSchema } })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, alb.pluginOptions())
})
