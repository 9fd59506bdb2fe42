/**
 * Connections end on one instance when another revokes, through a real redis-server: the
 * revocation list's replica tells the watches of each entry it applies.
 */
import { randomUUID } from 'node:crypto'
import Fastify from 'fastify'
import Redis from 'ioredis'
import t from 'tap'
import cognitoAuth from '../index'
import { claimsOf } from './helpers/revocation-behaviour'
import { closed, echoes, echoRoute, issuer, openSocket, openStream, serve, sizes, streamRoute } from './helpers/connections'
import { RedisServer, redisSkip } from './helpers/redis-server'

if (redisSkip !== false) {
  t.plan(0, redisSkip)
} else {
  let server: RedisServer
  t.before(async () => { server = await RedisServer.start(t) })

  function client (): Redis {
    const redis = new Redis({ port: server.port, host: '127.0.0.1' })
    redis.on('error', () => {})
    t.teardown(() => redis.disconnect())
    return redis
  }

  t.test('revokeSession and signOutUser on another instance close this one\'s connections, and no other', async (t) => {
    const keyPrefix = `test:${randomUUID()}:`
    const served = await serve(t, { revocation: { redis: client(), keyPrefix } }, (s) => { echoRoute(s, '/live'); streamRoute(s, '/events') })
    const other = Fastify()
    t.teardown(() => other.close())
    await other.register(cognitoAuth, { ...issuer.pluginOptions(), tokenUse: 'any', revocation: { redis: client(), keyPrefix } })
    await other.ready()

    const session = issuer.idToken({ sub: 'ana' })
    const sessionSocket = await openSocket(t, `${served.url}/live`, session)
    const sessionStream = await openStream(t, `${served.url}/events`, session)
    const anaSockets = await Promise.all([1, 2].map(async () => await openSocket(t, `${served.url}/live`, issuer.accessToken({ sub: 'ana' }))))
    const bob = await openSocket(t, `${served.url}/live`, issuer.idToken({ sub: 'bob' }))

    const sessionEnded = closed(sessionSocket)
    await other.cognitoRevocation.revokeSession(claimsOf(session))
    t.same(await sessionEnded, { code: 4401, reason: 'revoked' })
    await sessionStream.ended
    for (const socket of anaSockets) t.ok(await echoes(socket), 'the user\'s other sign-ins stay')

    const endings = anaSockets.map(closed)
    await other.cognitoRevocation.signOutUser({ iss: issuer.issuer, sub: 'ana' })
    for (const ending of await Promise.all(endings)) t.same(ending, { code: 4401, reason: 'signed-out' })
    t.ok(await echoes(bob), 'another user stays')
    t.equal(sizes(served.app).watches, 1)
  })
}
