/**
 * An instance created before the package is loaded was not watched from its creation: the plugin
 * cannot vouch for the routes declared so far, so it checks each request's route instead. Such a
 * route answers no request; the routes it wired work as anywhere else.
 */
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import t from 'tap'
import { LocalIssuer } from '../testing'

const issuer = new LocalIssuer()

/** Warnings a Fastify logger writes, by message. */
function warnings (): { stream: Writable, messages: string[] } {
  const messages: string[] = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      const line = JSON.parse(chunk.toString()) as { level: number, msg: string }
      if (line.level === 40) messages.push(line.msg)
      callback()
    }
  })
  return { stream, messages }
}

// Created before the package is loaded, as fastify-cli or @fastify/autoload would.
const logged = warnings()
const scoped = Fastify({ logger: { level: 'warn', stream: logged.stream } })

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

t.test('registered late in an encapsulated scope, config.cognito routes of every other scope are refused too', async (t) => {
  t.teardown(() => scoped.close())
  const adminOnly = { config: { cognito: { groups: 'admin' } } }
  scoped.register(async (before) => { before.get('/before', adminOnly, async () => 'reached') })
  const { cognitoAuth } = await import('../index')
  await scoped.register(async (auth) => {
    await auth.register(cognitoAuth, issuer.pluginOptions())
    auth.get('/wired', adminOnly, async () => 'reached')
  }, { prefix: '/auth' })
  await scoped.register(async (sibling) => {
    sibling.get('/after', adminOnly, async () => 'reached')
    sibling.register(async (nested) => { nested.get('/nested', { config: { cognito: {} } }, async () => 'reached') })
  }, { prefix: '/sibling' })
  // A second registration in another scope adds no second check.
  await scoped.register(async (other) => { await other.register(cognitoAuth, issuer.pluginOptions()) })
  scoped.get('/root', adminOnly, async () => 'reached')
  await scoped.ready()

  const admin = { authorization: `Bearer ${issuer.idToken({ 'cognito:groups': ['admin'] })}` }
  for (const url of ['/before', '/sibling/after', '/sibling/nested', '/root']) {
    for (const headers of [{}, admin]) {
      const response = await scoped.inject({ url, headers })
      t.equal(response.statusCode, 500, `${url}: refused, never public`)
      t.equal(response.json<{ code: string }>().code, 'FST_COGNITO_INVALID_OPTION', `${url}: code`)
    }
  }
  t.equal((await scoped.inject({ url: '/auth/wired' })).statusCode, 401, 'the route the plugin wired asks for a token')
  t.equal((await scoped.inject({ url: '/auth/wired', headers: admin })).body, 'reached')
  t.equal(logged.messages.length, 2, 'each registration warns')
  t.match(logged.messages[0], /created before fastify-cognito-jwt was loaded.*-r fastify-cognito-jwt/)
})
