/**
 * Routes that declare `config.cognito` where the plugin cannot add its hooks (declared before it
 * loaded, or outside its scope) would be public: the server refuses to start instead, whatever
 * the order of registration. Routes it can wire start and are protected.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import cognitoAuth from '../index'
import { guardRoutes } from '../lib/route-guard'
import { LocalIssuer } from '../testing'

const NO_TOKEN = 'Bearer realm="api"'

const issuer = new LocalIssuer()
const adminOnly = { config: { cognito: { groups: 'admin' } } }
const handler = async (): Promise<string> => 'reached'

function newApp (t: Test): FastifyInstance {
  const app = Fastify()
  t.teardown(() => app.close())
  return app
}

/** ready() rejects, naming the routes left unwired and what to do. */
async function refusesToStart (t: Test, app: FastifyInstance, routes: string): Promise<void> {
  await t.rejects(async () => { await app.ready() }, {
    code: 'FST_COGNITO_INVALID_OPTION',
    message: `Invalid option config.cognito: routes ${routes} declare it where fastify-cognito-jwt could not add its hooks ` +
      '(declared before the plugin loaded, or outside its scope), so they would be public: ' +
      'await app.register(cognitoAuth, options) in their scope or a parent before declaring them'
  })
}

/** Every method of the route answers 401 without a token, and the admin passes. */
async function protectedRoute (t: Test, app: FastifyInstance, url: string, methods: Array<'GET' | 'HEAD' | 'POST'> = ['GET', 'HEAD']): Promise<void> {
  const admin = { authorization: `Bearer ${issuer.idToken({ 'cognito:groups': ['admin'] })}` }
  for (const method of methods) {
    const anonymous = await app.inject({ method, url })
    t.equal(anonymous.statusCode, 401, `${method} ${url} without a token`)
    t.equal(anonymous.headers['www-authenticate'], NO_TOKEN, `${method} ${url} challenge`)
    t.equal((await app.inject({ method, url, headers: admin })).statusCode, 200, `${method} ${url} as admin`)
  }
}

t.test('a config.cognito route the plugin could not wire stops the server from starting', async (t) => {
  t.test('register not awaited, the route declared after it in the same scope', async (t) => {
    const app = newApp(t)
    app.register(cognitoAuth, issuer.pluginOptions())
    app.get('/admin', adminOnly, handler)
    await refusesToStart(t, app, 'GET /admin, HEAD /admin')
  })

  t.test('the route declared before the register', async (t) => {
    const app = newApp(t)
    app.get('/admin', adminOnly, handler)
    await app.register(cognitoAuth, issuer.pluginOptions())
    await refusesToStart(t, app, 'GET /admin, HEAD /admin')
  })

  t.test('the route in a prefixed scope registered before the plugin', async (t) => {
    const app = newApp(t)
    app.register(async (child) => {
      child.get('/admin', adminOnly, handler)
      child.register(async (grandchild) => { grandchild.post('/deep', adminOnly, handler) }, { prefix: '/nested' })
    }, { prefix: '/child' })
    app.register(cognitoAuth, issuer.pluginOptions())
    await refusesToStart(t, app, 'GET /child/admin, HEAD /child/admin, POST /child/nested/deep')
  })

  t.test('the route in a sibling of the scope the plugin is registered in', async (t) => {
    const app = newApp(t)
    await app.register(async (a) => {
      await a.register(cognitoAuth, issuer.pluginOptions())
      a.get('/admin', adminOnly, handler)
    }, { prefix: '/a' })
    await app.register(async (b) => { b.get('/admin', adminOnly, handler) }, { prefix: '/b' })
    await refusesToStart(t, app, 'GET /b/admin, HEAD /b/admin')
  })

  t.test('the route in the parent of the scope the plugin is registered in', async (t) => {
    const app = newApp(t)
    await app.register(async (child) => { await child.register(cognitoAuth, issuer.pluginOptions()) })
    app.get('/admin', adminOnly, handler)
    await refusesToStart(t, app, 'GET /admin, HEAD /admin')
  })

  t.test('app.all, an explicit HEAD route, and a route() with a list of methods, declared first', async (t) => {
    const app = newApp(t)
    app.all('/everything', adminOnly, handler)
    app.head('/head', adminOnly, handler)
    app.route({ method: ['GET', 'POST'], url: '/both', ...adminOnly, handler })
    await app.register(cognitoAuth, issuer.pluginOptions())
    await refusesToStart(t, app, 'GET,HEAD,TRACE,DELETE,OPTIONS,PATCH,PUT,POST,QUERY /everything, HEAD /head, GET,POST /both, HEAD /both')
  })

  t.test('config.cognito without the plugin anywhere, even an authenticate-only one', async (t) => {
    const app = newApp(t)
    app.get('/me', { config: { cognito: {} } }, handler)
    await refusesToStart(t, app, 'GET /me, HEAD /me')
  })

  t.test('listen refuses as ready does; injected anyway, the route answers no request', async (t) => {
    const app = newApp(t)
    let handled = 0
    app.register(cognitoAuth, issuer.pluginOptions())
    app.get('/admin', adminOnly, async () => { handled++; return 'reached' })
    await t.rejects(app.listen({ port: 0, host: '127.0.0.1' }), { code: 'FST_COGNITO_INVALID_OPTION' })
    t.notOk(app.server.listening, 'nothing listens')
    // Fastify still answers inject() after a failed start; the route refuses on its own.
    const admin = { authorization: `Bearer ${issuer.idToken({ 'cognito:groups': ['admin'] })}` }
    for (const method of ['GET', 'HEAD'] as const) {
      for (const headers of [{}, admin]) {
        const res = await app.inject({ method, url: '/admin', headers })
        t.equal(res.statusCode, 500, method)
        if (method === 'GET') t.equal(res.json<{ code: string }>().code, 'FST_COGNITO_INVALID_OPTION')
      }
    }
    t.equal(handled, 0, 'the handler never ran')
  })
})

t.test('config.cognito routes the plugin sees start, and are protected', async (t) => {
  t.test('register not awaited, routes in a scope registered after it', async (t) => {
    const app = newApp(t)
    app.register(cognitoAuth, issuer.pluginOptions())
    app.register(async (routes) => {
      routes.get('/admin', adminOnly, handler)
      routes.register(async (nested) => { nested.all('/all', adminOnly, handler) }, { prefix: '/nested' })
    }, { prefix: '/api' })
    await app.ready()
    await protectedRoute(t, app, '/api/admin')
    await protectedRoute(t, app, '/api/nested/all', ['GET', 'HEAD', 'POST'])
  })

  t.test('routes declared in after(), once the plugin loaded', async (t) => {
    const app = newApp(t)
    app.register(cognitoAuth, issuer.pluginOptions()).after(() => {
      app.get('/admin', adminOnly, handler)
    })
    await app.ready()
    await protectedRoute(t, app, '/admin')
  })

  t.test('routes without config.cognito declared first stay public and do not stop the start', async (t) => {
    const app = newApp(t)
    app.get('/health', handler)
    app.register(async (early) => { early.get('/early', { config: { other: true } as object }, handler) })
    await app.register(cognitoAuth, issuer.pluginOptions())
    app.get('/admin', adminOnly, handler)
    await app.ready()
    t.equal((await app.inject({ url: '/health' })).statusCode, 200)
    t.equal((await app.inject({ url: '/early' })).statusCode, 200)
    await protectedRoute(t, app, '/admin')
  })
})

t.test('an instance already watched is not watched twice', async (t) => {
  const app = newApp(t)
  guardRoutes(app) // as a second copy of the package in the process would
  app.get('/admin', adminOnly, handler)
  await refusesToStart(t, app, 'GET /admin, HEAD /admin')
})

t.test("a plugin whose onRoute wraps the route's hooks first (as @fastify/otel does): the wired route works", async (t) => {
  const app = newApp(t)
  let wrapped = 0
  app.addHook('onRoute', (route) => {
    const hooks = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest]
    route.onRequest = hooks.map((hook) => function wrapper (this: unknown, ...args: unknown[]) {
      wrapped++
      return (hook as (...args: unknown[]) => unknown).apply(this, args)
    }) as typeof route.onRequest
  })
  await app.register(cognitoAuth, issuer.pluginOptions())
  app.get('/admin', adminOnly, handler)
  await app.ready()
  await protectedRoute(t, app, '/admin')
  t.ok(wrapped > 0, 'the guard hook was wrapped, and still let the wired route through')
})
