/**
 * Behind an Application Load Balancer: the `alb` option as `app.register` checks it, the user
 * claims on the request and on the `authenticated` event, and the testing kit's AlbIssuer.
 */
import fastify, { type FastifyRequest } from 'fastify'
import { describe, expect, test } from 'tstyche'
import cognitoAuth, {
  type CognitoAlbAuthenticatedEvent,
  type CognitoAlbClaims,
  type CognitoAlbOptions,
  type CognitoAuthenticatedEvent,
  type CognitoClaimValue
} from '../../../index'
import { AlbIssuer, type AlbHeaders, LocalIssuer } from '../../../testing'

const app = fastify()
const pool = { userPoolId: 'eu-west-1_abc', clientId: 'alb-client' }
const loadBalancerArn = 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/my-alb/50dc6c495c0c9188'

describe('the alb option', () => {
  test('takes one load balancer or several, a keys URI and the access token switch', () => {
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, tokenUse: 'access', alb: { loadBalancerArn } })
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, alb: { loadBalancerArn: [loadBalancerArn], keysUri: 'https://keys.example.com', accessToken: false } })
    expect(app.register).type.toBeCallableWith(cognitoAuth, { userPools: [{ ...pool, tokenUse: 'access' }], alb: { loadBalancerArn } })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, alb: {} })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, alb: { loadBalancerArn: 5 } })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, alb: { loadBalancerArn, accessToken: 'yes' } })
  })

  test('is not for a userPools resolver', () => {
    expect(app.register).type.toBeCallableWith(cognitoAuth, { userPools: () => null })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { userPools: () => null, alb: { loadBalancerArn } })
  })

  test('is exported as CognitoAlbOptions', () => {
    expect<CognitoAlbOptions>().type.toHaveProperty('loadBalancerArn')
  })
})

describe('the load balancer\'s claims', () => {
  test('are on the request, typed, null until authenticated', () => {
    app.get('/me', async (request) => {
      expect(request.cognitoAlbClaims).type.toBe<CognitoAlbClaims | null>()
      const claims = request.cognitoAlbClaims!
      expect(claims.sub).type.toBe<string>()
      expect(claims.exp).type.toBe<number>()
      expect(claims.email_verified).type.toBe<CognitoClaimValue | undefined>()
      return null
    })
  })

  test('are on the authenticated event, with the claims null without the access token', () => {
    expect<CognitoAuthenticatedEvent['albClaims']>().type.toBe<CognitoAlbClaims | undefined>()
    expect<CognitoAlbAuthenticatedEvent['claims']>().type.toBe<null>()
    expect<CognitoAlbAuthenticatedEvent['albClaims']>().type.toBe<CognitoAlbClaims>()
    expect<CognitoAlbAuthenticatedEvent['request']>().type.toBe<FastifyRequest>()
  })
})

describe('AlbIssuer', () => {
  test('mints headers and tokens, and gives the plugin its options', () => {
    const alb = new AlbIssuer({ pool: new LocalIssuer() })
    expect(alb.headers()).type.toBe<AlbHeaders>()
    expect(alb.dataToken({ sub: 'u', email: 'e' }, { alphabet: 'base64', padding: false })).type.toBe<string>()
    expect(alb.dataToken).type.not.toBeCallableWith({}, { alphabet: 'hex' })
    expect(app.register).type.toBeCallableWith(cognitoAuth, alb.pluginOptions())
    expect(app.inject).type.toBeCallableWith({ url: '/me', headers: alb.headers() })
  })
})
