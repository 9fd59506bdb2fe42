/**
 * A misspelt option fails `register`, at every level, naming the key and the known key it most
 * likely meant: JavaScript callers have no compiler to catch `isrevoked`, which would otherwise
 * turn revocation off without a word. Fastify's own register options still pass.
 */
import Fastify from 'fastify'
import t from 'tap'
import cognitoAuth, { type CognitoAuthOptions } from '../index'
import { LocalIssuer } from '../testing'

const issuer = new LocalIssuer()
const pool = issuer.pluginOptions()
const noop = (): boolean => false

function escapeRegExp (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** [the options, the key the message names, the key it suggests] */
const typos: Array<[Record<string, unknown>, string, string]> = [
  [{ ...pool, isrevoked: noop }, 'isrevoked', 'isRevoked'],
  [{ ...pool, resolveuser: noop }, 'resolveuser', 'resolveUser'],
  [{ ...pool, tokenuse: 'access' }, 'tokenuse', 'tokenUse'],
  [{ ...pool, clockTolerence: 5 }, 'clockTolerence', 'clockTolerance'],
  [{ ...pool, jwksCache: { tll: 5 } }, 'jwksCache.tll', 'ttl'],
  [{ ...pool, tokenCache: { maxx: 5 } }, 'tokenCache.maxx', 'max'],
  [{ userPools: [{ ...pool, tokenuse: 'access' }] }, 'userPools[0].tokenuse', 'tokenUse'],
  [{ userPools: [pool, { ...pool, userPoolId: 'eu-central-1_Other', clientid: 'x' }] }, 'userPools[1].clientid', 'clientId']
]

t.test('every misspelt key fails register, naming the key and the closest known one', async (t) => {
  for (const [options, key, closest] of typos) {
    const app = Fastify()
    t.teardown(() => app.close())
    app.register(cognitoAuth, options as unknown as CognitoAuthOptions)
    await t.rejects(async () => { await app.ready() }, {
      code: 'FST_COGNITO_INVALID_OPTION',
      message: `Invalid option ${key}: is not an option; did you mean ${closest}?`
    }, key)
  }
})

t.test('a key close to none lists the known keys', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(cognitoAuth, { ...pool, jwksCache: { refreshEvery: 5 } } as unknown as CognitoAuthOptions)
  await t.rejects(async () => { await app.ready() }, {
    code: 'FST_COGNITO_INVALID_OPTION',
    message: new RegExp(`^${escapeRegExp('Invalid option jwksCache.refreshEvery: is not an option; expected one of ttl, maxKeys, cooldown')}`)
  })
})

t.test("Fastify's own register options pass", async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, { ...pool, prefix: '/api', logLevel: 'warn', logSerializers: { user: (user: unknown) => String(user) } })
  app.get('/private', { onRequest: app.authenticate }, async () => 'reached')
  await app.ready()
  t.equal((await app.inject({ url: '/private' })).statusCode, 401, 'the plugin works')
  t.equal((await app.inject({ url: '/private', headers: { authorization: `Bearer ${issuer.idToken()}` } })).body, 'reached')
})
