/**
 * A recipe for documenting protected routes with @fastify/swagger (OpenAPI 3): a bearer security
 * scheme, `security` on each protected route, and the plugin's error body as the 401/403 schema.
 * The test checks that the document says so and that the routes really are protected.
 */
import swagger from '@fastify/swagger'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import cognitoAuth from '../index'
import { LocalIssuer } from '../testing'

const issuer = new LocalIssuer()

/** The body the plugin answers refusals with, so that response serialization keeps `code`. */
const errorBody = {
  type: 'object',
  properties: {
    statusCode: { type: 'integer' },
    code: { type: 'string' },
    error: { type: 'string' },
    message: { type: 'string' }
  }
} as const

const cognitoSecurity = [{ cognito: [] }]

async function buildApp (): Promise<FastifyInstance> {
  const app = Fastify()
  // Registered before the routes, so that it sees them.
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'Orders', version: '1.0.0' },
      components: {
        securitySchemes: {
          cognito: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'An Amazon Cognito ID token' }
        }
      }
    }
  })
  await app.register(cognitoAuth, issuer.pluginOptions())

  app.get('/orders', {
    schema: {
      security: cognitoSecurity,
      response: { 200: { type: 'array', items: { type: 'string' } }, 401: errorBody, 403: errorBody }
    },
    config: { cognito: { groups: 'buyers' } }
  }, async () => ['order-1'])

  app.get('/profile', {
    schema: { security: cognitoSecurity, response: { 401: errorBody } },
    onRequest: app.authenticate
  }, async (request) => ({ sub: request.cognitoClaims?.sub }))

  app.get('/health', async () => ({ ok: true }))
  await app.ready()
  return app
}

t.test('the document declares the scheme and which routes need it', async (t) => {
  const app = await buildApp()
  t.teardown(() => app.close())
  const document = app.swagger() as {
    components: { securitySchemes: Record<string, unknown> }
    paths: Record<string, { get: { security?: unknown, responses: Record<string, unknown> } }>
  }
  t.same(document.components.securitySchemes.cognito, {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: 'An Amazon Cognito ID token'
  })
  t.same(document.paths['/orders'].get.security, [{ cognito: [] }])
  t.same(document.paths['/profile'].get.security, [{ cognito: [] }])
  t.equal(document.paths['/health'].get.security, undefined, 'a public route needs nothing')
  t.ok(document.paths['/orders'].get.responses['401'], '401 documented')
  t.ok(document.paths['/orders'].get.responses['403'], '403 documented')
})

t.test('the documented routes are protected, and the error schema keeps the plugin\'s code', async (t) => {
  const app = await buildApp()
  t.teardown(() => app.close())

  const anonymous = await app.inject({ url: '/orders' })
  t.equal(anonymous.statusCode, 401)
  t.same(anonymous.json(), { statusCode: 401, code: 'FST_COGNITO_NO_TOKEN', error: 'Unauthorized', message: 'Authentication required' })
  t.equal(anonymous.headers['www-authenticate'], 'Bearer realm="api"')

  const outsider = await app.inject({ url: '/orders', headers: { authorization: `Bearer ${issuer.idToken()}` } })
  t.equal(outsider.statusCode, 403)
  t.equal(outsider.json<{ code: string }>().code, 'FST_COGNITO_FORBIDDEN')

  const buyer = await app.inject({ url: '/orders', headers: { authorization: `Bearer ${issuer.idToken({ 'cognito:groups': ['buyers'] })}` } })
  t.equal(buyer.statusCode, 200)
  t.same(buyer.json(), ['order-1'])

  t.equal((await app.inject({ url: '/profile' })).json<{ code: string }>().code, 'FST_COGNITO_NO_TOKEN')
  t.equal((await app.inject({ url: '/health' })).statusCode, 200)
})
