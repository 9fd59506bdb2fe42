/**
 * The decorators the plugin adds to the Fastify instance, where routes use them, and what routes
 * may declare in `config.cognito`.
 */
import fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { describe, expect, test } from 'tstyche'
import { isCognitoAuthError, type CognitoAuthError, type CognitoHook, type CognitoWatch, type CognitoWatchEndReason, type CognitoWatchEvent, type KeyStoreStats } from '../../../index'

const app = fastify()
const handler = async (): Promise<string> => 'ok'

describe('app.authenticate', () => {
  test('is a route hook, in onRequest and in preHandler, alone or in a list', () => {
    expect(app.get).type.toBeCallableWith('/', { onRequest: app.authenticate }, handler)
    expect(app.get).type.toBeCallableWith('/', { onRequest: [app.authenticate] }, handler)
    expect(app.get).type.toBeCallableWith('/', { preHandler: [app.authenticate, app.requireGroups('admin')] }, handler)
    expect(app.route).type.toBeCallableWith({ method: 'GET', url: '/', onRequest: [app.authenticateOptional], handler })
  })

  test('is an application hook', () => {
    expect(app.addHook).type.toBeCallableWith('onRequest', app.authenticate)
    expect(app.addHook).type.toBeCallableWith('preHandler', app.authenticate)
    expect(app.addHook).type.toBeCallableWith('preHandler', app.requireScopes('orders/read'))
  })

  test('awaited by hand, it returns Promise<void>', () => {
    app.get('/', async (request, reply) => {
      expect(app.authenticate(request, reply)).type.toBe<Promise<void>>()
      expect(app.authenticateOptional(request, reply)).type.toBe<Promise<void>>()
      expect(app.requireGroups('admin')(request, reply)).type.toBe<Promise<void>>()
      await app.authenticate(request, reply)
      return 'ok'
    })
    expect(app.authenticate).type.not.toBeCallableWith('not a request')
  })

  test('is a CognitoHook', () => {
    expect(app.authenticate).type.toBe<CognitoHook>()
    expect(app.authenticateOptional).type.toBe<CognitoHook>()
    expect<CognitoHook>().type.toBeAssignableTo<(request: FastifyRequest, reply: FastifyReply) => Promise<void>>()
  })
})

describe('app.requireGroups and app.requireScopes', () => {
  test('take one name or a list, and return a hook', () => {
    expect(app.requireGroups('admin')).type.toBe<CognitoHook>()
    expect(app.requireGroups(['admin', 'editors'])).type.toBe<CognitoHook>()
    expect(app.requireGroups(['admin', 'editors'] as const)).type.toBe<CognitoHook>()
    expect(app.requireScopes('orders/read')).type.toBe<CognitoHook>()
    expect(app.requireScopes(['orders/read', 'orders/write'])).type.toBe<CognitoHook>()
    expect(app.requireGroups).type.not.toBeCallableWith(5)
    expect(app.requireGroups).type.not.toBeCallableWith()
    expect(app.requireScopes).type.not.toBeCallableWith([1, 2])
  })

  test('match any (the default) or all, and nothing else', () => {
    expect(app.requireGroups).type.toBeCallableWith(['a', 'b'], { match: 'all' })
    expect(app.requireGroups).type.toBeCallableWith(['a', 'b'], { match: 'any' })
    expect(app.requireScopes).type.toBeCallableWith(['a', 'b'], { match: 'all' })
    expect(app.requireGroups).type.not.toBeCallableWith(['a', 'b'], { match: 'some' })
    expect(app.requireScopes).type.not.toBeCallableWith(['a', 'b'], { match: 'some' })
    expect(app.requireGroups).type.not.toBeCallableWith(['a', 'b'], 'all')
  })
})

test('app.cognitoKeyStores reports each pool\'s key store', () => {
  expect(app.cognitoKeyStores()).type.toBe<KeyStoreStats[]>()
  expect<KeyStoreStats>().type.toBe<{
    jwksUri: string | null
    keys: number
    fetches: number
    failures: number
    lastSuccess: number | null
    lastFailure: number | null
  }>()
})

describe('config.cognito on a route', () => {
  test('declares groups, scopes, match and optional', () => {
    expect(app.get).type.toBeCallableWith('/', { config: { cognito: { groups: ['admin'] } } }, handler)
    expect(app.get).type.toBeCallableWith('/', { config: { cognito: { groups: 'admin', match: 'all' } } }, handler)
    expect(app.get).type.toBeCallableWith('/', { config: { cognito: { scopes: ['orders/read'], optional: true } } }, handler)
    expect(app.get).type.toBeCallableWith('/', { config: { cognito: {} } }, handler)
    expect(app.route).type.toBeCallableWith({ method: 'GET', url: '/', config: { cognito: { groups: ['admin'] } }, handler })
  })

  test('refuses values of the wrong type', () => {
    expect(app.get).type.not.toBeCallableWith('/', { config: { cognito: { groups: 5 } } }, handler)
    expect(app.get).type.not.toBeCallableWith('/', { config: { cognito: { scopes: [5] } } }, handler)
    expect(app.get).type.not.toBeCallableWith('/', { config: { cognito: { groups: ['admin'], match: 'some' } } }, handler)
    expect(app.get).type.not.toBeCallableWith('/', { config: { cognito: { optional: 'yes' } } }, handler)
    expect(app.route).type.not.toBeCallableWith({ method: 'GET', url: '/', config: { cognito: { groups: 5 } }, handler })
  })

  test('is readable in hooks, as the plugin reads it', () => {
    app.addHook('onRoute', (route) => {
      expect(route.config?.cognito?.groups).type.toBe<string | readonly string[] | undefined>()
      expect(route.config?.cognito?.match).type.toBe<'any' | 'all' | undefined>()
    })
  })
})

describe('isCognitoAuthError', () => {
  test('narrows an error handler\'s error to CognitoAuthError, whose headers carry the challenge', () => {
    app.setErrorHandler((error, _request, reply) => {
      if (!isCognitoAuthError(error)) return reply.send(error)
      expect(error).type.toBeAssignableTo<CognitoAuthError>()
      expect(error.headers).type.toBe<Record<string, string> | undefined>()
      return reply.code(error.statusCode).headers(error.headers ?? {}).send({ code: error.code })
    })
  })
})

describe('app.cognitoRevocation', () => {
  test('revokes by the claims of a request, signs a user out, reports its state', () => {
    expect(app.cognitoRevocation.revokeSession).type.toBeCallableWith({ iss: 'https://issuer', origin_jti: 'a', jti: 'b' })
    expect(app.cognitoRevocation.revokeSession).type.not.toBeCallableWith({ iss: 'https://issuer', origin_jti: 5 })
    expect(app.cognitoRevocation.revokeSession).type.not.toBeCallableWith({ origin_jti: 'a' })
    expect(app.cognitoRevocation.signOutUser({ iss: 'https://issuer', sub: 'user' })).type.toBe<Promise<void>>()
    expect(app.cognitoRevocation.signOutUser).type.not.toBeCallableWith({ sub: 'user' })
    expect(app.cognitoRevocation.stats().inSync).type.toBe<boolean>()
    expect(app.cognitoRevocation.stats().pending).type.toBe<number>()
    expect(app.cognitoRevocation.stats().store).type.toBe<'redis' | 'memory'>()
  })
})

declare const request: FastifyRequest

describe('app.cognitoWatch', () => {
  test('watches a request, with an ending that gets the reason', () => {
    expect(app.cognitoWatch).type.toBeCallableWith(request)
    expect(app.cognitoWatch).type.toBeCallableWith(request, (reason: CognitoWatchEndReason) => { void reason })
    expect(app.cognitoWatch).type.not.toBeCallableWith(request, 'close')
    expect(app.cognitoWatch(request)).type.toBe<CognitoWatch>()
    expect(app.cognitoWatch(request).renew('token')).type.toBe<Promise<void>>()
    expect(app.cognitoWatch(request).deadline).type.toBe<number>()
    expect<CognitoWatchEndReason>().type.toBe<'expired' | 'revoked' | 'signed-out' | 'pool-removed'>()
    expect<CognitoWatchEvent['reason']>().type.toBe<CognitoWatchEndReason>()
  })
})
