/**
 * `authenticateOptional`: a request without a token goes on anonymously; a token that is there
 * must still be valid, and a malformed header is still a bad request.
 */
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import t, { type Test } from 'tap'
import cognitoAuth, { type CognitoSinglePoolOptions } from '../index'
import { LocalIssuer } from '../testing'

const issuer = new LocalIssuer()

/** The `sub` of the user; read through `unknown` since an application may register its own user type. */
function subOf (user: unknown): string | null {
  return (user as { sub?: string } | null)?.sub ?? null
}

function echo (request: FastifyRequest): { claims: string | null, user: string | null } {
  return { claims: request.cognitoClaims?.sub ?? null, user: subOf(request.cognitoUser) }
}

async function buildApp (t: Test, options: Partial<CognitoSinglePoolOptions> = {}): Promise<{ app: FastifyInstance, handled: () => number }> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, { ...issuer.pluginOptions(), ...options })
  let count = 0
  app.get('/feed', { onRequest: app.authenticateOptional }, async (request) => {
    count++
    return echo(request)
  })
  return { app, handled: () => count }
}

t.test('no token: the handler runs with a null user and null claims', async (t) => {
  const { app, handled } = await buildApp(t)
  for (const headers of [{}, { authorization: 'Basic dXNlcjpwYXNz' }, { authorization: '' }]) {
    const res = await app.inject({ url: '/feed', headers })
    t.equal(res.statusCode, 200)
    t.same(res.json(), { claims: null, user: null })
    t.equal(res.headers['www-authenticate'], undefined, 'an anonymous request is not challenged')
  }
  t.equal(handled(), 3)
})

t.test('a valid token: claims and user are set', async (t) => {
  const { app } = await buildApp(t)
  const res = await app.inject({ url: '/feed', headers: { authorization: `Bearer ${issuer.idToken({ sub: 'alice' })}` } })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { claims: 'alice', user: 'alice' })
})

t.test('a token that is there but invalid is still refused', async (t) => {
  const { app, handled } = await buildApp(t)
  const invalid = 'Bearer realm="api", error="invalid_token", error_description="The token is invalid"'
  const expired = 'Bearer realm="api", error="invalid_token", error_description="The token has expired"'
  const cases: Array<[string, string, string, string]> = [
    ['garbage', 'abc.def.ghi', 'FST_COGNITO_TOKEN_INVALID', invalid],
    ['foreign signature', issuer.idToken({}, { signingKey: LocalIssuer.foreignKey() }), 'FST_COGNITO_TOKEN_INVALID', invalid],
    ['another app client', issuer.idToken({ aud: 'someone-else' }), 'FST_COGNITO_TOKEN_INVALID', invalid],
    ['expired', issuer.idToken({ exp: Math.floor(Date.now() / 1000) - 60 }), 'FST_COGNITO_TOKEN_EXPIRED', expired]
  ]
  for (const [name, token, code, challenge] of cases) {
    const res = await app.inject({ url: '/feed', headers: { authorization: `Bearer ${token}` } })
    t.equal(res.statusCode, 401, name)
    t.equal(res.json<{ code: string }>().code, code, name)
    t.equal(res.headers['www-authenticate'], challenge, name)
  }
  t.equal(handled(), 0, 'the handler never ran')
})

t.test('a malformed Authorization header is still a bad request', async (t) => {
  const { app, handled } = await buildApp(t)
  for (const authorization of ['Bearer', 'Bearer    ', 'Bearer two tokens']) {
    const res = await app.inject({ url: '/feed', headers: { authorization } })
    t.equal(res.statusCode, 400, authorization)
    t.equal(res.json<{ code: string }>().code, 'FST_COGNITO_BAD_AUTHORIZATION_HEADER')
    t.equal(res.headers['www-authenticate'], 'Bearer realm="api", error="invalid_request", error_description="Malformed Authorization header"')
  }
  t.equal(handled(), 0)
})

t.test('with resolveUser and isRevoked, an anonymous request asks neither', async (t) => {
  let asked = 0
  const { app } = await buildApp(t, {
    resolveUser: async (claims) => { asked++; return claims as never },
    isRevoked: () => { asked++; return false }
  })
  const res = await app.inject({ url: '/feed' })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { claims: null, user: null })
  t.equal(asked, 0)

  const signedIn = await app.inject({ url: '/feed', headers: { authorization: `Bearer ${issuer.idToken({ sub: 'bob' })}` } })
  t.same(signedIn.json(), { claims: 'bob', user: 'bob' })
  t.equal(asked, 2, 'a token present is checked for revocation and resolved')
})

t.test('with a custom extractor, finding nothing is anonymous', async (t) => {
  const { app } = await buildApp(t, { extractToken: (request) => request.headers['x-session'] as string | undefined })
  const anonymous = await app.inject({ url: '/feed' })
  t.equal(anonymous.statusCode, 200)
  t.same(anonymous.json(), { claims: null, user: null })
  const signedIn = await app.inject({ url: '/feed', headers: { 'x-session': issuer.idToken({ sub: 'carol' }) } })
  t.same(signedIn.json(), { claims: 'carol', user: 'carol' })
  t.equal((await app.inject({ url: '/feed', headers: { 'x-session': 'garbage' } })).statusCode, 401)
})
