/**
 * The `authenticate` hook end to end: where the token comes from (`extractToken`, a cookie), who
 * the user is (`resolveUser`), and the ways the hook can be called (by Fastify with `done`,
 * awaited by hand, detached from the instance, on a key that is known or must be fetched).
 */
import cookie from '@fastify/cookie'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import cognitoAuth, { type CognitoAuthOptions, type CognitoSinglePoolOptions, type CognitoClaims } from '../index'
import { awaitable } from '../lib/authenticate'
import { LocalIssuer } from '../testing'

const NO_TOKEN = 'Bearer realm="api"'
const INVALID = 'Bearer realm="api", error="invalid_token", error_description="The token is invalid"'
const UNKNOWN_USER = 'Bearer realm="api", error="invalid_token", error_description="Unknown user"'

const issuer = new LocalIssuer()

function bearer (token: string): { authorization: string } {
  return { authorization: `Bearer ${token}` }
}

function refused (t: Test, res: LightMyRequestResponse, status: number, code: string, challenge: string | undefined): void {
  t.equal(res.statusCode, status, 'status')
  t.equal(res.json<{ code: string }>().code, code, 'code')
  t.equal(res.headers['www-authenticate'], challenge, 'WWW-Authenticate')
}

/** An app with the plugin and a `/me` route behind `authenticate`; closed when `t` ends. */
async function buildApp (t: Test, options: Partial<CognitoSinglePoolOptions> = {}, before?: (app: FastifyInstance) => Promise<void>): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  if (before !== undefined) await before(app)
  await app.register(cognitoAuth, { ...issuer.pluginOptions(), ...options } as CognitoAuthOptions)
  app.get('/me', { onRequest: app.authenticate }, async (request) => ({
    sub: request.cognitoClaims?.sub,
    user: request.cognitoUser
  }))
  return app
}

t.test('token sources', async (t) => {
  t.test('the default is the Authorization Bearer header, and only it', async (t) => {
    const app = await buildApp(t)
    const token = issuer.idToken({ sub: 'header-user' })
    const res = await app.inject({ url: '/me', headers: bearer(token) })
    t.equal(res.statusCode, 200)
    t.equal(res.json<{ sub: string }>().sub, 'header-user')
    refused(t, await app.inject({ url: '/me', headers: { 'x-id-token': token } }), 401, 'FST_COGNITO_NO_TOKEN', NO_TOKEN)
    refused(t, await app.inject({ url: '/me', headers: { authorization: token } }), 401, 'FST_COGNITO_NO_TOKEN', NO_TOKEN)
  })

  t.test('extractToken reading another header replaces the default', async (t) => {
    const app = await buildApp(t, { extractToken: (request) => request.headers['x-id-token'] as string | undefined })
    const token = issuer.idToken({ sub: 'custom-header-user' })
    const res = await app.inject({ url: '/me', headers: { 'x-id-token': token } })
    t.equal(res.statusCode, 200)
    t.equal(res.json<{ sub: string }>().sub, 'custom-header-user')
    refused(t, await app.inject({ url: '/me', headers: bearer(token) }), 401, 'FST_COGNITO_NO_TOKEN', NO_TOKEN)
    refused(t, await app.inject({ url: '/me', headers: { 'x-id-token': 'garbage' } }), 401, 'FST_COGNITO_TOKEN_INVALID', INVALID)
    // Whatever the extractor returns is the token: no "Bearer" parsing, no malformed-header 400.
    refused(t, await app.inject({ url: '/me', headers: { 'x-id-token': `Bearer ${token}` } }), 401, 'FST_COGNITO_TOKEN_INVALID', INVALID)
  })

  t.test('an extractor that finds nothing means no token', async (t) => {
    const found: Record<string, unknown> = {
      undefined,
      null: null,
      empty: '',
      // A repeated header arrives as a list; that is not a token either.
      list: [issuer.idToken()],
      number: 42
    }
    const app = await buildApp(t, { extractToken: (request) => found[request.headers['x-case'] as string] as string })
    for (const name of Object.keys(found)) {
      t.test(name, async (t) => {
        refused(t, await app.inject({ url: '/me', headers: { 'x-case': name } }), 401, 'FST_COGNITO_NO_TOKEN', NO_TOKEN)
      })
    }
  })

  t.test('an extractor that throws is the application\'s error', async (t) => {
    const app = await buildApp(t, { extractToken: () => { throw Object.assign(new Error('session store down'), { statusCode: 503 }) } })
    const res = await app.inject({ url: '/me' })
    t.equal(res.statusCode, 503)
    t.equal(res.json<{ message: string }>().message, 'session store down')
    t.equal(res.headers['www-authenticate'], undefined)
  })

  t.test('a cookie, read through @fastify/cookie registered before', async (t) => {
    const app = await buildApp(t, { extractToken: (request) => request.cookies.session }, async (app) => {
      await app.register(cookie)
    })
    const token = issuer.idToken({ sub: 'cookie-user' })
    const res = await app.inject({ url: '/me', cookies: { session: token } })
    t.equal(res.statusCode, 200)
    t.equal(res.json<{ sub: string }>().sub, 'cookie-user')
    refused(t, await app.inject({ url: '/me' }), 401, 'FST_COGNITO_NO_TOKEN', NO_TOKEN)
    refused(t, await app.inject({ url: '/me', cookies: { other: token } }), 401, 'FST_COGNITO_NO_TOKEN', NO_TOKEN)
    refused(t, await app.inject({ url: '/me', cookies: { session: '' } }), 401, 'FST_COGNITO_NO_TOKEN', NO_TOKEN)
    refused(t, await app.inject({ url: '/me', cookies: { session: 'not-a-jwt' } }), 401, 'FST_COGNITO_TOKEN_INVALID', INVALID)
    refused(t, await app.inject({ url: '/me', headers: bearer(token) }), 401, 'FST_COGNITO_NO_TOKEN', NO_TOKEN)
  })
})

t.test('resolveUser', async (t) => {
  t.test('sync or async, its value becomes cognitoUser and the claims stay in cognitoClaims', async (t) => {
    for (const resolveUser of [
      (claims: CognitoClaims) => ({ id: `user:${claims.sub}` }),
      async (claims: CognitoClaims) => ({ id: `user:${claims.sub}` })
    ]) {
      const app = await buildApp(t, { resolveUser: resolveUser as unknown as CognitoAuthOptions['resolveUser'] })
      const res = await app.inject({ url: '/me', headers: bearer(issuer.idToken({ sub: 'dave' })) })
      t.equal(res.statusCode, 200)
      t.same(res.json(), { sub: 'dave', user: { id: 'user:dave' } })
    }
  })

  t.test('it receives the claims and the request', async (t) => {
    const seen: Array<{ sub: string, url: string }> = []
    const app = await buildApp(t, {
      resolveUser: (claims, request) => {
        seen.push({ sub: claims.sub, url: request.url })
        return claims as never
      }
    })
    await app.inject({ url: '/me?x=1', headers: bearer(issuer.idToken({ sub: 'erin' })) })
    t.same(seen, [{ sub: 'erin', url: '/me?x=1' }])
  })

  t.test('null or undefined: 401 USER_NOT_FOUND, and the request keeps no claims', async (t) => {
    for (const missing of [null, undefined]) {
      let claimsAfter: unknown = 'unset'
      const app = await buildApp(t, { resolveUser: async () => missing })
      app.addHook('onResponse', async (request) => { claimsAfter = request.cognitoClaims })
      refused(t, await app.inject({ url: '/me', headers: bearer(issuer.idToken()) }), 401, 'FST_COGNITO_USER_NOT_FOUND', UNKNOWN_USER)
      t.equal(claimsAfter, null, 'cognitoClaims stays null')
    }
  })

  t.test('any falsy value is no user: 401 USER_NOT_FOUND', async (t) => {
    for (const missing of [false, 0, '', Number.NaN, 0n]) {
      let handled = 0
      const app = await buildApp(t, { resolveUser: (async () => missing) as unknown as CognitoAuthOptions['resolveUser'] })
      app.get('/config', { config: { cognito: {} } }, async () => { handled++; return 'reached' })
      for (const url of ['/me', '/config']) {
        refused(t, await app.inject({ url, headers: bearer(issuer.idToken()) }), 401, 'FST_COGNITO_USER_NOT_FOUND', UNKNOWN_USER)
      }
      t.equal(handled, 0, `${String(missing)}: no handler ran`)
    }
  })

  t.test('a resolveUser that rejects or throws without an Error stops the request', async (t) => {
    const failing: Array<() => unknown> = [
      () => Promise.reject(),
      async () => { throw null },
      () => { throw 'user store down' }
    ]
    for (const resolveUser of failing) {
      let handled = 0
      const app = await buildApp(t, { resolveUser: resolveUser as CognitoAuthOptions['resolveUser'] })
      app.get('/by-hand', async (request, reply) => {
        await app.authenticate(request, reply)
        handled++
        return 'reached'
      })
      for (const url of ['/me', '/by-hand']) {
        const res = await app.inject({ url, headers: bearer(issuer.idToken()) })
        t.equal(res.statusCode, 500)
        t.same(res.json(), { statusCode: 500, code: 'FST_COGNITO_HOOK_FAILED', error: 'Internal Server Error', message: 'resolveUser rejected without an Error' })
        t.equal(res.headers['www-authenticate'], undefined)
      }
      t.equal(handled, 0, 'the hand-awaited hook rejected')
    }
  })

  t.test('a throwing resolveUser is the application\'s error, as thrown', async (t) => {
    const failing = [
      () => { throw new Error('database down') },
      async () => { throw Object.assign(new Error('database down'), { statusCode: 503 }) }
    ]
    const statuses: number[] = []
    for (const resolveUser of failing) {
      const app = await buildApp(t, { resolveUser })
      const res = await app.inject({ url: '/me', headers: bearer(issuer.idToken()) })
      statuses.push(res.statusCode)
      t.equal(res.json<{ message: string }>().message, 'database down')
      t.equal(res.headers['www-authenticate'], undefined, 'not a challenge: the token was fine')
    }
    t.same(statuses, [500, 503])
  })

  t.test('a slow resolveUser for one request does not affect another', async (t) => {
    let release: () => void = () => {}
    const gate = new Promise<void>((resolve) => { release = resolve })
    let started: () => void = () => {}
    const slowStarted = new Promise<void>((resolve) => { started = resolve })
    const app = await buildApp(t, {
      resolveUser: async (claims) => {
        if (claims.sub === 'slow') {
          started()
          await gate
        }
        return { name: claims.sub } as never
      }
    })
    const slow = app.inject({ url: '/me', headers: bearer(issuer.idToken({ sub: 'slow' })) })
    await slowStarted
    const fast = await app.inject({ url: '/me', headers: bearer(issuer.idToken({ sub: 'fast' })) })
    t.same(fast.json(), { sub: 'fast', user: { name: 'fast' } }, 'the fast request answered while the slow one waits')
    release()
    t.same((await slow).json(), { sub: 'slow', user: { name: 'slow' } }, 'the slow request got its own user')
  })
})

t.test('how the hook can be called', async (t) => {
  t.test('with done, on a known key: done is called before the hook returns, and no promise', async (t) => {
    const app = await buildApp(t)
    const calls: Array<{ returned: unknown, doneBeforeReturn: boolean, error: unknown }> = []
    app.get('/by-hand', async (request, reply) => {
      let doneWith: unknown = 'not called'
      const returned = app.authenticate(request, reply, (err?: Error) => { doneWith = err })
      calls.push({ returned, doneBeforeReturn: doneWith !== 'not called', error: doneWith })
      return { sub: request.cognitoClaims?.sub ?? null }
    })
    const ok = await app.inject({ url: '/by-hand', headers: bearer(issuer.idToken({ sub: 'frank' })) })
    t.same(ok.json(), { sub: 'frank' })
    await app.inject({ url: '/by-hand' })
    t.equal(calls.length, 2)
    t.same(calls[0], { returned: undefined, doneBeforeReturn: true, error: undefined })
    t.equal(calls[1].returned, undefined)
    t.ok(calls[1].doneBeforeReturn)
    t.match(calls[1].error, { code: 'FST_COGNITO_NO_TOKEN' })
  })

  t.test('awaited without done, detached from the instance', async (t) => {
    const app = await buildApp(t)
    const { authenticate, authenticateOptional } = app
    app.get('/awaited', async (request, reply) => {
      await authenticate.call(undefined, request, reply)
      return { sub: request.cognitoClaims?.sub }
    })
    app.get('/awaited-optional', async (request: FastifyRequest, reply: FastifyReply) => {
      const result = authenticateOptional(request, reply)
      t.ok(result instanceof Promise, 'without done, a promise')
      await result
      return { sub: request.cognitoClaims?.sub ?? null }
    })
    app.addHook('onRequest', async (request, reply) => {
      if (request.url === '/in-async-hook') await app.authenticate(request, reply)
    })
    app.get('/in-async-hook', async (request) => ({ sub: request.cognitoClaims?.sub }))

    for (const url of ['/awaited', '/in-async-hook']) {
      const ok = await app.inject({ url, headers: bearer(issuer.idToken({ sub: 'gina' })) })
      t.equal(ok.statusCode, 200, url)
      t.same(ok.json(), { sub: 'gina' }, url)
      refused(t, await app.inject({ url }), 401, 'FST_COGNITO_NO_TOKEN', NO_TOKEN)
      refused(t, await app.inject({ url, headers: bearer('a.b.c') }), 401, 'FST_COGNITO_TOKEN_INVALID', INVALID)
    }
    t.same((await app.inject({ url: '/awaited-optional' })).json(), { sub: null })
    t.same((await app.inject({ url: '/awaited-optional', headers: bearer(issuer.idToken({ sub: 'hal' })) })).json(), { sub: 'hal' })
  })

  t.test('awaited, the hook rejects whatever value done is given, falsy ones too', async (t) => {
    const request = {} as FastifyRequest
    const reply = {} as FastifyReply
    for (const value of [null, false, 0, '', new Error('refused')]) {
      const hook = awaitable((_request, _reply, done) => done(value as Error))
      await t.rejects(hook(request, reply), value as Error, String(value))
    }
    await t.resolves(awaitable((_request, _reply, done) => done())(request, reply), 'done() resolves')
  })

  t.test('as used by Fastify, bound to another instance', async (t) => {
    const app = await buildApp(t)
    await app.register(async (scope) => {
      scope.get('/child', { onRequest: app.authenticate }, async (request) => ({ sub: request.cognitoClaims?.sub }))
    })
    const ok = await app.inject({ url: '/child', headers: bearer(issuer.idToken({ sub: 'ida' })) })
    t.same(ok.json(), { sub: 'ida' })
  })

  t.test('on a key that must be fetched first: the promise path', async (t) => {
    const remote = new LocalIssuer({ userPoolId: 'eu-central-1_Remote', clientId: 'remote-client' })
    await remote.listen()
    t.teardown(() => remote.close())
    let resolved = 0
    const app = await buildApp(t, {
      ...remote.pluginOptions(),
      jwksCache: { prefetch: false, cooldown: 0 },
      resolveUser: async (claims) => { resolved++; return claims as never }
    })
    app.get('/optional', { onRequest: app.authenticateOptional }, async (request) => ({ sub: request.cognitoClaims?.sub ?? null }))

    const first = await app.inject({ url: '/me', headers: bearer(remote.idToken({ sub: 'jack' })) })
    t.equal(first.statusCode, 200)
    t.equal(first.json<{ sub: string }>().sub, 'jack')
    t.equal(resolved, 1, 'resolveUser ran after the fetched key verified the token')
    t.equal(app.cognitoKeyStores()[0].fetches, 1)

    remote.rotate()
    const rotated = await app.inject({ url: '/optional', headers: bearer(remote.idToken({ sub: 'kim' })) })
    t.same(rotated.json(), { sub: 'kim' }, 'a new kid is fetched, then verifies')
    t.equal(app.cognitoKeyStores()[0].fetches, 2)

    const foreignKid = remote.idToken({}, { header: { kid: 'not-in-the-jwks' } })
    refused(t, await app.inject({ url: '/me', headers: bearer(foreignKid) }), 401, 'FST_COGNITO_TOKEN_INVALID', INVALID)
    refused(t, await app.inject({ url: '/optional', headers: bearer(foreignKid) }), 401, 'FST_COGNITO_TOKEN_INVALID', INVALID)
  })

  t.test('keys that cannot be fetched: 503 without a challenge', async (t) => {
    const gone = new LocalIssuer({ userPoolId: 'eu-central-1_Gone', clientId: 'gone-client' })
    await gone.listen()
    const options = gone.pluginOptions()
    await gone.close() // nothing listens on the port any more
    const app = await buildApp(t, { ...options, jwksCache: { prefetch: false } })
    refused(t, await app.inject({ url: '/me', headers: bearer(gone.idToken()) }), 503, 'FST_COGNITO_JWKS_UNAVAILABLE', undefined)
  })
})
