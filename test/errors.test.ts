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
  HookFailedError,
  InvalidOptionError,
  isCognitoAuthError,
  JwksUnavailableError,
  NoTokenError,
  PoolUnavailableError,
  RevocationUnavailableError,
  TokenExpiredError,
  TokenInvalidError,
  TokenNotRevocableError,
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
    [JwksUnavailableError, 'FST_COGNITO_JWKS_UNAVAILABLE', 503],
    [PoolUnavailableError, 'FST_COGNITO_POOL_UNAVAILABLE', 503],
    [RevocationUnavailableError, 'FST_COGNITO_REVOCATION_UNAVAILABLE', 503],
    [TokenNotRevocableError, 'FST_COGNITO_TOKEN_NOT_REVOCABLE', 500]
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
  const hookFailed = new HookFailedError('isRevoked', 'rejected without an Error')
  t.equal(hookFailed.code, 'FST_COGNITO_HOOK_FAILED')
  t.equal(hookFailed.statusCode, 500)
  t.equal(hookFailed.message, 'isRevoked rejected without an Error')
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

t.test('the challenge travels on error.headers: a new error per refusal, in its own realm', async (t) => {
  const issuer = new LocalIssuer()
  const app = Fastify()
  t.teardown(() => app.close())
  const seen: Array<Error & { statusCode?: number, headers?: Record<string, string> }> = []
  // A handler of the application's own: Fastify does not apply error.headers for it, so it does.
  app.setErrorHandler((error: Error & { statusCode?: number, headers?: Record<string, string> }, _request, reply) => {
    seen.push(error)
    return reply.status(error.statusCode ?? 500).headers(error.headers ?? {}).send({ custom: true })
  })
  for (const realm of ['alpha', 'beta']) {
    await app.register(async (scope) => {
      await scope.register(cognitoAuth, { ...issuer.pluginOptions(), realm })
      scope.get('/me', { onRequest: scope.authenticate }, async () => 'ok')
      scope.get('/admin', { config: { cognito: { groups: 'admin' } } }, async () => 'ok')
    }, { prefix: `/${realm}` })
  }
  const user = { authorization: `Bearer ${issuer.idToken()}` }
  const cases: Array<[string, Record<string, string>, number, string]> = [
    ['/alpha/me', {}, 401, 'Bearer realm="alpha"'],
    ['/beta/me', {}, 401, 'Bearer realm="beta"'],
    ['/alpha/me', {}, 401, 'Bearer realm="alpha"'],
    ['/beta/admin', user, 403, 'Bearer realm="beta", error="insufficient_scope", error_description="Insufficient permissions"'],
    ['/alpha/admin', { authorization: 'Bearer a.b.c' }, 401, 'Bearer realm="alpha", error="invalid_token", error_description="The token is invalid"']
  ]
  for (const [url, headers, status, challenge] of cases) {
    const res = await app.inject({ url, headers })
    t.equal(res.statusCode, status, url)
    t.same(res.json(), { custom: true }, `${url}: the application's handler answered`)
    t.equal(res.headers['www-authenticate'], challenge, `${url}: the challenge reached it on error.headers`)
  }
  t.equal(new Set(seen).size, cases.length, 'every refusal is its own error object')
  t.same(seen.map((error) => error.headers), cases.map(([, , , challenge]) => ({ 'www-authenticate': challenge })), 'no headers leaked between refusals')
})

t.test('an error handler that neither applies error.headers nor hands the error on sends no challenge', async (t) => {
  const issuer = new LocalIssuer()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, issuer.pluginOptions())
  app.register(async (scope) => {
    scope.setErrorHandler((error: Error & { statusCode?: number }, _request, reply) => reply.status(error.statusCode ?? 500).send({ custom: true }))
    scope.get('/own', { onRequest: scope.authenticate }, async () => 'ok')
  })
  app.register(async (scope) => {
    // reply.send(error) hands it to the parent's handler, Fastify's default, which applies them.
    scope.setErrorHandler((error, _request, reply) => { reply.send(error) })
    scope.get('/handed-on', { onRequest: scope.authenticate }, async () => 'ok')
  })
  const own = await app.inject({ url: '/own' })
  t.equal(own.statusCode, 401)
  t.equal(own.headers['www-authenticate'], undefined)
  const handedOn = await app.inject({ url: '/handed-on' })
  t.equal(handedOn.statusCode, 401)
  t.equal(handedOn.headers['www-authenticate'], 'Bearer realm="api"')
})

t.test('isCognitoAuthError narrows the errors the plugin made, for a handler of your own', async (t) => {
  const issuer = new LocalIssuer()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, issuer.pluginOptions())
  app.setErrorHandler((error, _request, reply) => {
    if (isCognitoAuthError(error)) return reply.code(error.statusCode).headers(error.headers ?? {}).send({ refused: error.code })
    return reply.code(500).send({ other: error instanceof Error ? error.message : String(error) })
  })
  app.get('/me', { onRequest: app.authenticate }, async () => 'ok')
  app.get('/boom', async () => { throw new Error('boom') })
  const anonymous = await app.inject({ url: '/me' })
  t.same(anonymous.json(), { refused: 'FST_COGNITO_NO_TOKEN' })
  t.equal(anonymous.headers['www-authenticate'], 'Bearer realm="api"')
  t.same((await app.inject({ url: '/boom' })).json(), { other: 'boom' })

  t.ok(isCognitoAuthError(new JwksUnavailableError()))
  t.ok(isCognitoAuthError(new InvalidOptionError('realm', 'is bad')))
  t.notOk(isCognitoAuthError(Object.assign(new Error('x'), { code: 'FST_ERR_VALIDATION', statusCode: 400 })), "another plugin's error")
  t.notOk(isCognitoAuthError(Object.assign(new Error('x'), { code: 'FST_COGNITO_NO_TOKEN' })), 'no status')
  t.notOk(isCognitoAuthError({ code: 'FST_COGNITO_NO_TOKEN', statusCode: 401 }), 'not an Error')
  t.notOk(isCognitoAuthError(null))
})
