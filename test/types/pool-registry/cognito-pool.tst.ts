/**
 * An application registers its tenant type once, by augmenting `CognitoPoolRegistry`: the
 * resolver must then answer it in `tenant`, and `request.cognitoPool.tenant` has it. (This folder
 * is a program of its own: the augmentation holds for a whole program.)
 */
import fastify, { type FastifyRequest } from 'fastify'
import { expect, test } from 'tstyche'
import cognitoAuth, { type CognitoPool, type CognitoPoolAnswer, type CognitoTenant } from '../../../index'

interface Tenant { id: number, name: string }

declare module '../../../index' {
  interface CognitoPoolRegistry {
    tenant: { id: number, name: string }
  }
}

const app = fastify()
const tenant: Tenant = { id: 1, name: 'acme' }
const pool = { userPoolId: 'eu-central-1_xYzaq', clientId: 'client' }

test('the tenant type is the registered one', () => {
  expect<CognitoTenant>().type.toBe<Tenant>()
  expect<CognitoPool['tenant']>().type.toBe<Tenant | undefined>()
  expect<FastifyRequest['cognitoPool']>().type.toBe<CognitoPool | null>()
  app.get('/orders', { onRequest: app.authenticate }, async (request) => {
    expect(request.cognitoPool?.tenant).type.toBe<Tenant | undefined>()
    return request.cognitoPool?.tenant?.name
  })
})

test('the resolver must answer the registered tenant', () => {
  expect(app.register).type.toBeCallableWith(cognitoAuth, { userPools: async () => ({ ...pool, tenant }) })
  expect(app.register).type.toBeCallableWith(cognitoAuth, { userPools: () => null })
  // Plain `known.has(issuer) && { ... }`: false is "not a tenant" too.
  expect(app.register).type.toBeCallableWith(cognitoAuth, { userPools: async (issuer: string) => issuer !== '' && { ...pool, tenant } })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { userPools: () => true })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { userPools: async () => pool })
  expect(app.register).type.not.toBeCallableWith(cognitoAuth, { userPools: async () => ({ ...pool, tenant: { id: '1' } }) })
  expect<CognitoPoolAnswer>().type.toBeAssignableFrom({ ...pool, tenant })
})
