/**
 * The error classes the package exports: each carries its stable code and status, and a refusal
 * answered by the plugin is an instance of it, so that an application's error handler can tell
 * them apart with `instanceof`.
 */
import Fastify from 'fastify'
import t from 'tap'
import cognitoAuth, {
  BadAuthorizationHeaderError,
  ForbiddenError,
  InvalidOptionError,
  JwksUnavailableError,
  NoTokenError,
  TokenExpiredError,
  TokenInvalidError,
  TokenRevokedError,
  UserNotFoundError
} from '../index'
import { LocalIssuer } from '../testing'

t.test('each exported error has its code and status', async (t) => {
  const table: Array<[new () => Error & { code: string, statusCode?: number }, string, number]> = [
    [NoTokenError, 'FST_COGNITO_NO_TOKEN', 401],
    [BadAuthorizationHeaderError, 'FST_COGNITO_BAD_AUTHORIZATION_HEADER', 400],
    [TokenExpiredError, 'FST_COGNITO_TOKEN_EXPIRED', 401],
    [TokenInvalidError, 'FST_COGNITO_TOKEN_INVALID', 401],
    [TokenRevokedError, 'FST_COGNITO_TOKEN_REVOKED', 401],
    [UserNotFoundError, 'FST_COGNITO_USER_NOT_FOUND', 401],
    [ForbiddenError, 'FST_COGNITO_FORBIDDEN', 403],
    [JwksUnavailableError, 'FST_COGNITO_JWKS_UNAVAILABLE', 503]
  ]
  for (const [ErrorClass, code, statusCode] of table) {
    const error = new ErrorClass()
    t.equal(error.code, code)
    t.equal(error.statusCode, statusCode, `${code} status`)
    t.notMatch(error.message, /%s/, `${code} has a complete message`)
  }
  const invalidOption = new InvalidOptionError('clientId', 'is required')
  t.equal(invalidOption.code, 'FST_COGNITO_INVALID_OPTION')
  t.equal(invalidOption.message, 'Invalid option clientId: is required')
})

t.test('an error handler can tell the refusals apart with instanceof', async (t) => {
  const issuer = new LocalIssuer()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, issuer.pluginOptions())
  app.setErrorHandler((error: Error & { statusCode?: number }, _request, reply) => {
    const kind = error instanceof TokenExpiredError
      ? 'expired'
      : error instanceof TokenInvalidError ? 'invalid' : error instanceof NoTokenError ? 'anonymous' : 'other'
    return reply.status(error.statusCode ?? 500).send({ kind })
  })
  app.get('/me', { onRequest: [app.authenticate] }, async () => ({ kind: 'ok' }))
  const expired = issuer.idToken({ exp: Math.floor(Date.now() / 1000) - 60 })
  const cases: Array<[Record<string, string>, number, string]> = [
    [{}, 401, 'anonymous'],
    [{ authorization: `Bearer ${expired}` }, 401, 'expired'],
    [{ authorization: 'Bearer not.a.token' }, 401, 'invalid'],
    [{ authorization: `Bearer ${issuer.idToken()}` }, 200, 'ok']
  ]
  for (const [headers, status, kind] of cases) {
    const res = await app.inject({ url: '/me', headers })
    t.equal(res.statusCode, status)
    t.same(res.json(), { kind })
  }
})
