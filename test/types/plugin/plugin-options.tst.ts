/**
 * The plugin's options, as `app.register` checks them. Each refusal sits next to the same call
 * with a good value, so that it fails for the option named and nothing else.
 */
import fastify, { type FastifyPluginAsync, type FastifyRequest } from 'fastify'
import type { Redis } from 'ioredis'
import type { Redis as Valkey } from 'iovalkey'
import { describe, expect, test } from 'tstyche'
import cognitoAuth, { cognitoAuth as named, type CognitoAuthOptions, type CognitoClaims, type CognitoPool } from '../../../index'

const app = fastify()
declare const redis: Redis
declare const valkey: Valkey
const pool = { userPoolId: 'eu-central-1_xYzaq', clientId: 'client' }

test('the default export and the named export are the same plugin', () => {
  expect(named).type.toBe(cognitoAuth)
  expect(cognitoAuth).type.toBeAssignableTo<FastifyPluginAsync<CognitoAuthOptions>>()
})

describe('app.register', () => {
  test('takes a pool and its app client', () => {
    expect(app.register).type.toBeCallableWith(cognitoAuth, pool)
    expect(app.register).type.toBeCallableWith(named, pool)
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, clientId: ['web', 'mobile'] })
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, clientId: null })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, clientId: 5 })
  })

  test('audience: one resource server or several, for access tokens', () => {
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, tokenUse: 'access', audience: 'orders' })
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, tokenUse: 'any', audience: ['orders', 'billing'] })
    expect(app.register).type.toBeCallableWith(cognitoAuth, { userPools: [{ ...pool, tokenUse: 'access', audience: ['orders'] }] })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, tokenUse: 'access', audience: 5 })
  })

  test('takes the register options of Fastify along', () => {
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, prefix: '/api' })
  })

  test('one pool at the top level, or several in userPools, never both', () => {
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { userPoolId: pool.userPoolId })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { clientId: pool.clientId })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, {})
    expect(app.register).type.toBeCallableWith(cognitoAuth, { userPools: [pool] })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { userPools: [pool], userPoolId: pool.userPoolId })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { userPools: [pool], clientId: pool.clientId })
    expect(app.register).type.toBeCallableWith(cognitoAuth, { userPools: [pool], clockTolerance: 5 })
  })

  test('tokenUse is id, access or any', () => {
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, tokenUse: 'id' })
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, tokenUse: 'access' })
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, tokenUse: 'any' })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, tokenUse: 'refresh' })
  })

  test('durations are numbers of seconds', () => {
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, clockTolerance: 5, revocationCacheTtl: 30 })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, clockTolerance: '5s' })
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, jwksCache: { ttl: 600, cooldown: 10, timeout: 5, maxStale: 86400, maxBytes: 65536 } })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, jwksCache: { ttl: '10m' } })
  })

  test('jwksCache.prefetch is a boolean or required', () => {
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, jwksCache: { prefetch: false } })
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, jwksCache: { prefetch: 'required' } })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, jwksCache: { prefetch: 'always' } })
  })

  test('tokenCache is options or false', () => {
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, tokenCache: false })
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, tokenCache: { max: 10 } })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, tokenCache: true })
  })

  test('issuer, jwksUri and jwks for emulators and baked-in keys', () => {
    expect(app.register).type.toBeCallableWith(cognitoAuth, {
      ...pool,
      issuer: ['http://127.0.0.1:9229/local_x', 'http://localhost:9229/local_x'],
      jwksUri: 'http://127.0.0.1:9229/local_x/.well-known/jwks.json',
      jwks: { keys: [{ kty: 'RSA', kid: 'k1', alg: 'RS256', use: 'sig', n: 'AQAB', e: 'AQAB' }] }
    })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, jwks: [{ kty: 'RSA' }] })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, jwks: { keys: [{ kid: 'k1' }] } })
  })

  test('several pools, each with its app clients', () => {
    expect(app.register).type.toBeCallableWith(cognitoAuth, {
      userPools: [pool, { userPoolId: 'us-east-1_AbCdEf123', clientId: 'other', tokenUse: 'access' }]
    })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { userPools: [{ userPoolId: 'us-east-1_AbCdEf123' }] })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { userPools: [{ ...pool, tokenUse: 'refresh' }] })
  })

  test('the hooks into the application are functions of the claims and the request', () => {
    const isRevoked = async (claims: CognitoClaims, request: FastifyRequest): Promise<boolean> => claims.jti === request.id
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, isRevoked })
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, isRevoked: (claims: CognitoClaims) => claims.sub === 'gone' })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, isRevoked: (claims: CognitoClaims) => claims.sub })

    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, extractToken: (request: FastifyRequest) => request.headers['x-token'] as string | undefined })
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, extractToken: () => null })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, extractToken: () => 42 })

    // Without a registered user type, the user is the claims themselves.
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, resolveUser: (claims: CognitoClaims) => claims })
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, resolveUser: async (claims: CognitoClaims) => claims.sub === 'gone' ? null : claims })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, resolveUser: () => 'alice' })
  })

  test('the remaining options', () => {
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, realm: 'orders', maxTokenLength: 4096 })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, realm: ['orders'] })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, maxTokenLength: '4k' })
  })
})

describe('userPools as a resolver', () => {
  test('takes a function of the issuer that answers a pool, null or undefined, or a promise of one', () => {
    expect(app.register).type.toBeCallableWith(cognitoAuth, { userPools: (issuer: string) => issuer === '' ? null : pool })
    expect(app.register).type.toBeCallableWith(cognitoAuth, { userPools: async () => undefined })
    expect(app.register).type.toBeCallableWith(cognitoAuth, { userPools: async () => ({ ...pool, tokenUse: 'access' as const, tenant: { id: 7 } }) })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { userPools: async () => ({ userPoolId: pool.userPoolId }) })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { userPools: async () => 'eu-central-1_xYzaq' })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { userPools: (issuer: number) => issuer > 0 ? pool : null })
  })

  test('poolCache and resolverIssuerPrefixes go with it, and with nothing else', () => {
    const userPools = async (): Promise<null> => null
    expect(app.register).type.toBeCallableWith(cognitoAuth, { userPools, poolCache: { max: 100, ttl: 60, unknownTtl: 10 } })
    expect(app.register).type.toBeCallableWith(cognitoAuth, { userPools, resolverIssuerPrefixes: ['http://127.0.0.1:'] })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { userPools, poolCache: { ttl: '1m' } })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { userPools, userPoolId: pool.userPoolId })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, poolCache: { max: 1 } })
  })

  test('the hooks receive the claims of either token', () => {
    app.register(cognitoAuth, {
      userPools: async () => pool,
      isRevoked: (claims) => {
        expect(claims).type.toBe<CognitoClaims>()
        return false
      }
    })
  })

  test('request.cognitoPool is the pool\'s entry, with an unknown tenant when none is registered', () => {
    app.get('/tenant', { onRequest: app.authenticate }, async (request) => {
      expect(request.cognitoPool).type.toBe<CognitoPool | null>()
      expect(request.cognitoPool?.tenant).type.toBe<unknown>()
      expect(request.cognitoPool?.userPoolId).type.toBe<string | undefined>()
      return 'ok'
    })
  })
})

describe('revocation', () => {
  test('takes a Redis client of ioredis\' API, or the memory store', () => {
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, revocation: { redis, keyPrefix: 'app:', maxTokenLifetime: 3600, maxStale: 30, timeout: 2 } })
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, revocation: { redis: valkey } })
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, revocation: { store: 'memory' } })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, revocation: { store: 'redis' } })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, revocation: { redis: 'redis://localhost' } })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, revocation: {} })
  })
})
