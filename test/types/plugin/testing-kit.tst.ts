/**
 * The testing kit (`fastify-cognito-jwt/testing`): any claim and any header member can be
 * overridden with any value, because tests of refusals need tokens Cognito would never issue.
 */
import type { KeyObject } from 'node:crypto'
import fastify from 'fastify'
import { describe, expect, test } from 'tstyche'
import cognitoAuth, { type JsonWebKeySet } from '../../../index'
import { LocalIssuer, type ClaimOverrides } from '../../../testing'

const issuer = new LocalIssuer()

describe('LocalIssuer', () => {
  test('is built with optional settings', () => {
    expect(LocalIssuer).type.toBeConstructableWith()
    expect(LocalIssuer).type.toBeConstructableWith({ userPoolId: 'local_x', clientId: 'web', issuer: 'http://127.0.0.1:9229/local_x', lifetime: 60 })
    expect(LocalIssuer).type.not.toBeConstructableWith({ lifetime: '1h' })
    expect(LocalIssuer).type.not.toBeConstructableWith({ clientId: ['a', 'b'] })
  })

  test('mints tokens as strings', () => {
    expect(issuer.idToken()).type.toBe<string>()
    expect(issuer.idToken({ 'cognito:groups': ['x'] })).type.toBe<string>()
    expect(issuer.accessToken({ scope: 'orders/read' })).type.toBe<string>()
    expect(issuer.sign({ any: 'payload' })).type.toBe<string>()
  })

  test('lets a test override any claim with any value, or remove it', () => {
    expect(issuer.accessToken).type.toBeCallableWith({ token_use: 'id' })
    expect(issuer.idToken).type.toBeCallableWith({ token_use: 'refresh', exp: 'soon', aud: ['a', 'b'] })
    expect(issuer.idToken).type.toBeCallableWith({ sub: undefined, 'cognito:groups': undefined })
    expect(issuer.idToken).type.toBeCallableWith({ 'custom:tenant': 'acme', nbf: 0 })
    expect<ClaimOverrides<{ sub: string }>>().type.toBeAssignableFrom({ sub: 5, other: null })
    expect(issuer.idToken).type.not.toBeCallableWith('sub')
  })

  test('lets a test override header members, and sign with another key', () => {
    expect(issuer.idToken).type.toBeCallableWith({}, { header: { kid: undefined, alg: 'none', typ: 'JWT' } })
    expect(issuer.accessToken).type.toBeCallableWith({}, { signingKey: LocalIssuer.foreignKey() })
    expect(issuer.sign).type.toBeCallableWith({}, { header: { jku: 'https://example.com' }, signingKey: LocalIssuer.foreignKey() })
    expect(issuer.idToken).type.not.toBeCallableWith({}, { signingKey: '-----BEGIN PRIVATE KEY-----' })
    expect(issuer.idToken).type.not.toBeCallableWith({}, { header: 'none' })
    expect(LocalIssuer.foreignKey()).type.toBe<KeyObject>()
  })

  test('publishes its keys and serves them', () => {
    expect(issuer.jwks).type.toBe<JsonWebKeySet>()
    expect(issuer.kid).type.toBe<string>()
    expect(issuer.jwksUri).type.toBe<string>()
    expect(issuer.listen()).type.toBe<Promise<string>>()
    expect(issuer.listen).type.toBeCallableWith(8080)
    expect(issuer.close()).type.toBe<Promise<void>>()
    expect(issuer[Symbol.asyncDispose]()).type.toBe<Promise<void>>()
    expect<AsyncDisposable>().type.toBeAssignableFrom(issuer)
    expect(issuer.rotate()).type.toBe<string>()
    expect(issuer.rotate).type.toBeCallableWith({ keepOld: false })
    expect(issuer.rotate).type.not.toBeCallableWith({ keepOld: 'no' })
  })

  test('gives options the plugin takes as they are, or with more', () => {
    const app = fastify()
    expect(app.register).type.toBeCallableWith(cognitoAuth, issuer.pluginOptions())
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...issuer.pluginOptions(), tokenUse: 'access', jwksCache: { cooldown: 0 } })
    expect(app.register).type.toBeCallableWith(cognitoAuth, { userPools: [issuer.pluginOptions(), new LocalIssuer().pluginOptions()] })
  })
})
