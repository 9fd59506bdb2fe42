/**
 * An instance created before the package is loaded was not watched from its creation: the plugin
 * cannot vouch for the routes declared so far, so it checks each request's route instead. Such a
 * route answers no request; the routes it wired work as anywhere else.
 */
import Fastify from 'fastify'
import t from 'tap'
import { LocalIssuer } from '../testing'

const issuer = new LocalIssuer()

t.test('registered in an instance created before the package was imported, the plugin fails closed', async (t) => {
  const early = Fastify()
  t.teardown(() => early.close())
  early.get('/early', { config: { cognito: { groups: 'admin' } } }, async () => 'reached')
  early.register(async (scope) => {
    scope.get('/sibling', { config: { cognito: {} } }, async () => 'reached')
  })
  early.get('/public', async () => 'public')

  const { cognitoAuth } = await import('../index')
  await early.register(cognitoAuth, issuer.pluginOptions())
  early.get('/wired', { config: { cognito: { groups: 'admin' } } }, async () => 'reached')
  early.get('/explicit', { onRequest: early.authenticate }, async () => 'reached')
  await early.ready()

  const admin = { authorization: `Bearer ${issuer.idToken({ 'cognito:groups': ['admin'] })}` }
  for (const url of ['/early', '/sibling']) {
    for (const method of ['GET', 'HEAD'] as const) {
      const response = await early.inject({ method, url, headers: admin })
      t.equal(response.statusCode, 500, `${method} ${url}: declared before the plugin, refused even with a good token`)
      t.notOk(response.body.includes('reached'), `${method} ${url}: the handler never ran`)
    }
  }
  t.equal((await early.inject({ url: '/public' })).body, 'public', 'routes without config.cognito are untouched')
  t.equal((await early.inject({ url: '/wired' })).statusCode, 401, 'a route the plugin wired asks for a token')
  t.equal((await early.inject({ url: '/wired', headers: admin })).body, 'reached', 'and lets a good one through')
  t.equal((await early.inject({ url: '/explicit', headers: admin })).body, 'reached')

  const late = Fastify()
  t.teardown(() => late.close())
  await late.register(cognitoAuth, issuer.pluginOptions())
  late.get('/admin', { config: { cognito: { groups: 'admin' } } }, async () => 'reached')
  t.equal((await late.inject({ url: '/admin' })).statusCode, 401, 'an instance created after the import is watched from its creation')
})
