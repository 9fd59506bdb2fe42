/**
 * `isRevoked`: asked after the token verified and before `resolveUser`; a revoked token is a 401
 * with `invalid_token`. With `revocationCacheTtl` a "not revoked" answer is reused for the same
 * token until the TTL passes; a "revoked" answer never is.
 */
import FakeTimers from '@sinonjs/fake-timers'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import cognitoAuth, { type CognitoAuthOptions, type CognitoSinglePoolOptions } from '../index'
import { LocalIssuer } from '../testing'

const REVOKED = 'Bearer realm="api", error="invalid_token", error_description="The token has been revoked"'

const issuer = new LocalIssuer()

function bearer (token: string): { authorization: string } {
  return { authorization: `Bearer ${token}` }
}

async function buildApp (t: Test, options: Partial<CognitoSinglePoolOptions>): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, { ...issuer.pluginOptions(), ...options })
  app.get('/me', { onRequest: app.authenticate }, async (request) => ({ sub: request.cognitoClaims?.sub }))
  return app
}

function revoked (t: Test, res: LightMyRequestResponse): void {
  t.equal(res.statusCode, 401, 'status')
  t.equal(res.json<{ code: string }>().code, 'FST_COGNITO_TOKEN_REVOKED', 'code')
  t.equal(res.headers['www-authenticate'], REVOKED, 'WWW-Authenticate')
}

/** A revocation list the test edits, with a count of the questions asked. */
function revocationList (): { revoked: Set<string>, asked: () => number, sync: CognitoAuthOptions['isRevoked'], async: CognitoAuthOptions['isRevoked'] } {
  const revoked = new Set<string>()
  let count = 0
  return {
    revoked,
    asked: () => count,
    sync: (claims) => { count++; return revoked.has(claims.sub) },
    async: async (claims) => { count++; return revoked.has(claims.sub) }
  }
}

for (const style of ['sync', 'async'] as const) {
  t.test(`a ${style} isRevoked`, async (t) => {
    const list = revocationList()
    const app = await buildApp(t, { isRevoked: list[style] })
    const token = issuer.idToken({ sub: 'lena' })

    t.equal((await app.inject({ url: '/me', headers: bearer(token) })).statusCode, 200, 'not revoked: accepted')
    list.revoked.add('lena')
    revoked(t, await app.inject({ url: '/me', headers: bearer(token) }))
    t.equal((await app.inject({ url: '/me', headers: bearer(issuer.idToken({ sub: 'mia' })) })).statusCode, 200, 'another user is unaffected')
    t.equal(list.asked(), 3)
  })
}

t.test('isRevoked receives the verified claims and the request', async (t) => {
  const seen: Array<{ sub: string, jti: unknown, url: string }> = []
  const app = await buildApp(t, {
    isRevoked: (claims, request) => {
      seen.push({ sub: claims.sub, jti: claims.jti, url: request.url })
      return false
    }
  })
  await app.inject({ url: '/me?from=test', headers: bearer(issuer.idToken({ sub: 'nora', jti: 'token-1' })) })
  t.same(seen, [{ sub: 'nora', jti: 'token-1', url: '/me?from=test' }])
})

t.test('a token that fails verification is not asked about', async (t) => {
  const list = revocationList()
  const app = await buildApp(t, { isRevoked: list.sync })
  await app.inject({ url: '/me', headers: bearer(issuer.idToken({}, { signingKey: LocalIssuer.foreignKey() })) })
  await app.inject({ url: '/me' })
  t.equal(list.asked(), 0)
})

t.test('a revoked token never reaches resolveUser', async (t) => {
  let resolved = 0
  const app = await buildApp(t, {
    isRevoked: () => true,
    resolveUser: (claims) => { resolved++; return claims as never }
  })
  revoked(t, await app.inject({ url: '/me', headers: bearer(issuer.idToken()) }))
  t.equal(resolved, 0)
})

t.test('by default the question is asked on every request', async (t) => {
  const list = revocationList()
  const app = await buildApp(t, { isRevoked: list.async })
  const token = issuer.idToken()
  for (let i = 0; i < 3; i++) t.equal((await app.inject({ url: '/me', headers: bearer(token) })).statusCode, 200)
  t.equal(list.asked(), 3, 'the cached token is still asked about each time')
})

t.test('revocationCacheTtl reuses "not revoked" for the same token within the TTL', async (t) => {
  const clock = FakeTimers.install({ now: Date.now(), toFake: ['Date'] })
  t.teardown(() => clock.uninstall())
  const list = revocationList()
  const app = await buildApp(t, { isRevoked: list.sync, revocationCacheTtl: 30 })
  const token = issuer.idToken({ sub: 'olga' })
  const ask = async (): Promise<number> => (await app.inject({ url: '/me', headers: bearer(token) })).statusCode

  t.equal(await ask(), 200)
  t.equal(list.asked(), 1)
  t.equal(await ask(), 200)
  t.equal(list.asked(), 2, 'the answer lives in the token cache, which keeps a token from its second verification')
  clock.tick(29_999)
  t.equal(await ask(), 200)
  t.equal(list.asked(), 2, 'reused just before the TTL ends')

  t.equal((await app.inject({ url: '/me', headers: bearer(issuer.idToken({ sub: 'olga' })) })).statusCode, 200)
  t.equal(list.asked(), 3, 'another token of the same user is asked about on its own')

  clock.tick(1)
  list.revoked.add('olga')
  revoked(t, await app.inject({ url: '/me', headers: bearer(token) }))
  t.equal(list.asked(), 4, 'asked again once the TTL has passed')
})

t.test('a "revoked" answer is never cached', async (t) => {
  const clock = FakeTimers.install({ now: Date.now(), toFake: ['Date'] })
  t.teardown(() => clock.uninstall())
  const list = revocationList()
  const app = await buildApp(t, { isRevoked: list.async, revocationCacheTtl: 300 })
  const token = issuer.idToken({ sub: 'pia' })

  list.revoked.add('pia')
  revoked(t, await app.inject({ url: '/me', headers: bearer(token) }))
  revoked(t, await app.inject({ url: '/me', headers: bearer(token) }))
  t.equal(list.asked(), 2, 'asked on each request while revoked')

  // An answer can change back (a mistaken revocation undone): the next request sees it at once.
  list.revoked.delete('pia')
  t.equal((await app.inject({ url: '/me', headers: bearer(token) })).statusCode, 200)
  t.equal(list.asked(), 3)
  clock.tick(1000)
  t.equal((await app.inject({ url: '/me', headers: bearer(token) })).statusCode, 200)
  t.equal(list.asked(), 3, 'from then on, "not revoked" is reused')
})

t.test('a throwing isRevoked is the application\'s error, as thrown', async (t) => {
  const failing: Array<CognitoAuthOptions['isRevoked']> = [
    () => { throw new Error('revocation store down') },
    async () => { throw Object.assign(new Error('revocation store down'), { statusCode: 503 }) }
  ]
  const statuses: number[] = []
  for (const isRevoked of failing) {
    const app = await buildApp(t, { isRevoked })
    const res = await app.inject({ url: '/me', headers: bearer(issuer.idToken()) })
    statuses.push(res.statusCode)
    t.equal(res.json<{ message: string, code?: string }>().message, 'revocation store down')
    t.equal(res.json<{ code?: string }>().code, undefined, 'not one of the plugin\'s codes')
    t.equal(res.headers['www-authenticate'], undefined, 'no challenge')
  }
  t.same(statuses, [500, 503])
})

t.test('a failed isRevoked is not remembered as "not revoked"', async (t) => {
  const clock = FakeTimers.install({ now: Date.now(), toFake: ['Date'] })
  t.teardown(() => clock.uninstall())
  let calls = 0
  const app = await buildApp(t, {
    revocationCacheTtl: 60,
    isRevoked: async () => {
      calls++
      if (calls === 1) throw new Error('revocation store down')
      return calls === 2
    }
  })
  const token = issuer.idToken()
  t.equal((await app.inject({ url: '/me', headers: bearer(token) })).statusCode, 500)
  revoked(t, await app.inject({ url: '/me', headers: bearer(token) }))
  t.equal(calls, 2)
})

/** The answer to an application hook that failed without an Error to answer with. */
function hookFailed (t: Test, res: LightMyRequestResponse, message: string): void {
  t.equal(res.statusCode, 500, 'status')
  t.same(res.json(), { statusCode: 500, code: 'FST_COGNITO_HOOK_FAILED', error: 'Internal Server Error', message }, 'body')
  t.equal(res.headers['www-authenticate'], undefined, 'no challenge: the client is not at fault')
}

t.test('an isRevoked that rejects or throws without an Error stops the request', async (t) => {
  const failing: Record<string, CognitoAuthOptions['isRevoked']> = {
    'rejects with nothing': () => Promise.reject(),
    'rejects with null': async () => { throw null },
    'throws a string': () => { throw 'revocation store down' },
    'rejects with a plain object': async () => { throw { statusCode: 200 } }
  }
  for (const [name, isRevoked] of Object.entries(failing)) {
    t.test(name, async (t) => {
      let handled = 0
      const app = await buildApp(t, { isRevoked })
      app.get('/by-hand', async (request, reply) => {
        await app.authenticate(request, reply)
        handled++
        return { sub: request.cognitoClaims?.sub ?? null }
      })
      app.get('/config', { config: { cognito: {} } }, async () => { handled++; return 'reached' })
      for (const url of ['/me', '/by-hand', '/config']) {
        hookFailed(t, await app.inject({ url, headers: bearer(issuer.idToken()) }), 'isRevoked rejected without an Error')
      }
      t.equal(handled, 0, 'no handler ran')
    })
  }
})

t.test('only false means "not revoked"', async (t) => {
  const answers: unknown[] = [undefined, null, 1, 0, 'no', 'false', {}, Promise.resolve(undefined)]
  for (const answer of answers) {
    let calls = 0
    const app = await buildApp(t, { revocationCacheTtl: 60, isRevoked: (() => { calls++; return answer }) as unknown as CognitoAuthOptions['isRevoked'] })
    const token = issuer.idToken()
    hookFailed(t, await app.inject({ url: '/me', headers: bearer(token) }), 'isRevoked must return true or false')
    hookFailed(t, await app.inject({ url: '/me', headers: bearer(token) }), 'isRevoked must return true or false')
    t.equal(calls, 2, 'a non-boolean answer is not remembered')
  }
  const app = await buildApp(t, { isRevoked: (claims) => claims.sub === 'revoked' })
  revoked(t, await app.inject({ url: '/me', headers: bearer(issuer.idToken({ sub: 'revoked' })) }))
  t.equal((await app.inject({ url: '/me', headers: bearer(issuer.idToken({ sub: 'kept' })) })).statusCode, 200, 'false passes')
})
