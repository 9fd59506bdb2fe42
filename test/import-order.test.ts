/**
 * An instance created before the package is loaded was not watched from its creation: the
 * plugin cannot vouch for the routes declared so far, so registering it fails. Instances created
 * after the import are watched.
 */
import Fastify from 'fastify'
import t from 'tap'
import { LocalIssuer } from '../testing'

const issuer = new LocalIssuer()

t.test('registered in an instance created before the package was imported, the plugin refuses', async (t) => {
  const early = Fastify()
  t.teardown(() => early.close())
  early.get('/admin', { config: { cognito: { groups: 'admin' } } }, async () => 'reached')

  const { cognitoAuth } = await import('../index')
  await t.rejects(async () => { await early.register(cognitoAuth, issuer.pluginOptions()) }, {
    code: 'FST_COGNITO_INVALID_OPTION',
    message: 'Invalid option register: fastify-cognito-jwt must be imported before the Fastify instance is created, ' +
      'so that no route declaring config.cognito escapes it: import it in the module that calls Fastify()'
  })

  const late = Fastify()
  t.teardown(() => late.close())
  await late.register(cognitoAuth, issuer.pluginOptions())
  late.get('/admin', { config: { cognito: { groups: 'admin' } } }, async () => 'reached')
  t.equal((await late.inject({ url: '/admin' })).statusCode, 401, 'an instance created after the import works')
})
