/**
 * Sign-out that is never lost, against real redis-servers: a revocation Redis did not take is kept
 * pending and written once Redis answers again; after every load, what the replica holds and
 * Redis lacks is written back (Redis restarted empty); `replicas` waits for Redis replicas to
 * acknowledge (a primary and its replica); a large list loads in pages.
 */
import { randomUUID } from 'node:crypto'
import Fastify from 'fastify'
import Redis from 'ioredis'
import t from 'tap'
import cognitoAuth, { type RedisRevocationOptions, type RevocationOptions } from '../index'
import { RedisServer, redisSkip } from './helpers/redis-server'
import { buildApp, claimsOf, eventually, get, isRevokedResponse, issuer, recordEvents } from './helpers/revocation-behaviour'

if (redisSkip !== false) {
  t.plan(0, redisSkip)
} else {
  let server: RedisServer
  t.before(async () => { server = await RedisServer.start(t) })

  /** A client of the application, disconnected at the end of the file (the plugin never closes it). */
  function client (port = server.port): Redis {
    const redis = new Redis({ port, host: '127.0.0.1' })
    redis.on('error', () => {}) // reconnection errors while a test has Redis down
    t.teardown(() => redis.disconnect())
    return redis
  }

  function options (extra: Partial<RedisRevocationOptions> = {}): RedisRevocationOptions {
    return { redis: client(), keyPrefix: `test:${randomUUID()}:`, ...extra }
  }

  t.test('a revocation made while Redis is down is enforced, kept pending, and written once Redis is back', async (t) => {
    const events = recordEvents(t)
    const shared = options()
    const app = await buildApp(t, shared)
    const token = issuer.idToken({ sub: 'outbox' })
    await server.kill()
    t.teardown(async () => { if (app.cognitoRevocation.stats().pending > 0) await server.restart() })
    await t.rejects(app.cognitoRevocation.revokeSession(claimsOf(token)), {
      code: 'FST_COGNITO_REVOCATION_UNAVAILABLE',
      statusCode: 503,
      message: /enforced on this instance and will be written to Redis once it is back/
    }, 'the caller learns that the fleet does not have it yet')
    await t.rejects(app.cognitoRevocation.signOutUser({ iss: issuer.issuer, sub: 'outbox-user' }), { code: 'FST_COGNITO_REVOCATION_UNAVAILABLE' })
    t.match(app.cognitoRevocation.stats(), { pending: 2, entries: 2 })
    isRevokedResponse(t, await get(app, token), 'enforced here meanwhile')

    await server.restart()
    await eventually(() => app.cognitoRevocation.stats().pending === 0)
    const written = events.filter((event) => event.event === 'written')
    t.ok(written.reduce((sum, event) => sum + (event.written as number), 0) >= 2, 'the revocation channel says they were written')
    t.equal(written.at(-1)?.pending, 0, 'with none left pending')
    const later = await buildApp(t, { ...shared, redis: client() })
    isRevokedResponse(t, await get(later, token), 'an instance started afterwards refuses the session')
    isRevokedResponse(t, await get(later, issuer.idToken({ sub: 'outbox-user', auth_time: Math.floor(Date.now() / 1000) - 60 })), 'and the user')
  })

  t.test('a pending revocation is written by the plugin when Redis answers again, with no reconnection', async (t) => {
    const events = recordEvents(t)
    const shared = options({ timeout: 1 })
    const app = await buildApp(t, shared)
    server.freeze()
    t.teardown(() => server.thaw())
    await t.rejects(app.cognitoRevocation.revokeSession({ iss: issuer.issuer, jti: 'frozen' }), { code: 'FST_COGNITO_REVOCATION_UNAVAILABLE' })
    t.equal(app.cognitoRevocation.stats().pending, 1)
    server.thaw()
    await eventually(() => app.cognitoRevocation.stats().pending === 0)
    t.ok(events.some((event) => event.event === 'written' && event.written === 1))
    const key = `${shared.keyPrefix as string}entries`
    t.equal(await (shared.redis as Redis).zcard(key), 1, 'Redis has it')
  })

  t.test('Redis restarted empty: the running instances write back what they hold, for the instances started afterwards', async (t) => {
    const events = recordEvents(t)
    const shared = options()
    const one = await buildApp(t, shared)
    const two = await buildApp(t, { ...shared, redis: client() })
    const session = issuer.idToken({ sub: 'kept-by-the-fleet' })
    const signedIn = Math.floor(Date.now() / 1000) - 60
    await one.cognitoRevocation.revokeSession(claimsOf(session))
    await two.cognitoRevocation.signOutUser({ iss: issuer.issuer, sub: 'also-kept' })
    await eventually(() => one.cognitoRevocation.stats().entries === 2 && two.cognitoRevocation.stats().entries === 2)

    await server.kill()
    server.wipe()
    await server.restart()
    for (const app of [one, two]) await eventually(() => app.cognitoRevocation.stats().inSync)
    await eventually(() => events.some((event) => event.event === 'written'))
    t.pass('the write-back is reported')
    t.equal(await (shared.redis as Redis).zcard(`${shared.keyPrefix as string}entries`), 2, 'Redis has the list again')
    const later = await buildApp(t, { ...shared, redis: client() })
    isRevokedResponse(t, await get(later, session))
    isRevokedResponse(t, await get(later, issuer.idToken({ sub: 'also-kept', auth_time: signedIn })))
    t.match(later.cognitoRevocation.stats(), { entries: 2, pending: 0 })
  })

  t.test('a large list loads in pages, and a list Redis holds whole is not written back', async (t) => {
    const events = recordEvents(t)
    const shared = options()
    const redis = shared.redis as Redis
    const expires = Date.now() + 3_600_000
    const count = 30_000
    for (let done = 0; done < count; done += 5000) {
      const batch: Array<string | number> = []
      for (let i = done; i < done + 5000; i++) batch.push(expires, JSON.stringify(['s', issuer.userPoolId, `bulk-${i}`]))
      await redis.zadd(`${shared.keyPrefix as string}entries`, ...batch)
    }
    const app = await buildApp(t, shared)
    t.match(app.cognitoRevocation.stats(), { sessions: count, inSync: true, pending: 0 })
    isRevokedResponse(t, await get(app, issuer.idToken({ origin_jti: 'bulk-29999' })))
    t.notOk(events.some((event) => event.event === 'written'), 'nothing to write back')

    // The key evicted, then a resync: the whole list is written back, in batches.
    await redis.multi().del(`${shared.keyPrefix as string}entries`).call('CLIENT', 'KILL', 'TYPE', 'pubsub').exec()
    await eventually(() => events.some((event) => event.event === 'written'), 20_000)
    t.match(events.filter((event) => event.event === 'written'), [{ written: count, pending: 0 }])
    t.equal(await redis.zcard(`${shared.keyPrefix as string}entries`), count)
  })

  t.test('replicas: a revocation resolves once Redis replicas acknowledged it, and says so when they do not', async (t) => {
    const replica = await RedisServer.start(t, ['--replicaof', '127.0.0.1', String(server.port)])
    const onReplica = client(replica.port)
    await eventually(async () => /master_link_status:up/.test(await onReplica.info('replication')), 10_000)
    const shared = options({ replicas: 1, timeout: 1 })
    const app = await buildApp(t, shared)
    const token = issuer.idToken()
    await app.cognitoRevocation.revokeSession(claimsOf(token))
    const member = JSON.stringify(['s', issuer.userPoolId, claimsOf(token).origin_jti])
    t.not(await onReplica.zscore(`${shared.keyPrefix as string}entries`, member), null, 'the replica has it once the call resolved')

    replica.freeze()
    t.teardown(() => replica.thaw())
    const unacknowledged = issuer.idToken()
    await t.rejects(app.cognitoRevocation.revokeSession(claimsOf(unacknowledged)), {
      code: 'FST_COGNITO_REVOCATION_UNAVAILABLE',
      message: /not enough replicas acknowledged it in time/,
      cause: { message: '0 of 1 Redis replicas acknowledged the revocation within 1 s' }
    })
    t.match(app.cognitoRevocation.stats(), { pending: 0, lastError: /0 of 1/ }, 'not pending: the primary has it')
    isRevokedResponse(t, await get(app, unacknowledged), 'enforced here')
    replica.thaw()
  })

  t.test('replicas with no replica at all: every revocation rejects after the timeout', async (t) => {
    const app = await buildApp(t, options({ replicas: 1, timeout: 1 }))
    await t.rejects(app.cognitoRevocation.signOutUser({ iss: issuer.issuer, sub: 'alone' }), { code: 'FST_COGNITO_REVOCATION_UNAVAILABLE', cause: { message: /^0 of 1/ } })
  })

  t.test('a writer connection that does not answer within twice the timeout rejects and keeps the entry pending', async (t) => {
    const app = await buildApp(t, options({ replicas: 1, timeout: 1 }))
    server.freeze()
    t.teardown(() => server.thaw())
    await t.rejects(app.cognitoRevocation.revokeSession({ iss: issuer.issuer, jti: 'slow' }), { code: 'FST_COGNITO_REVOCATION_UNAVAILABLE', cause: { message: /within 2 s/ } })
    t.equal(app.cognitoRevocation.stats().pending, 1)
    server.thaw()
    await eventually(() => app.cognitoRevocation.stats().pending === 0)
  })

  t.test('a script error on the writer connection rejects', async (t) => {
    const shared = options({ replicas: 1, timeout: 1 })
    const app = await buildApp(t, shared)
    await (shared.redis as Redis).set(`${shared.keyPrefix as string}entries`, 'not a sorted set')
    await t.rejects(app.cognitoRevocation.revokeSession({ iss: issuer.issuer, jti: 'x' }), { code: 'FST_COGNITO_REVOCATION_UNAVAILABLE', cause: { message: /WRONGTYPE/ } })
    await (shared.redis as Redis).del(`${shared.keyPrefix as string}entries`)
  })

  t.test('replicas is checked at register', async (t) => {
    const cases: Array<[unknown, RegExp]> = [
      [-1, /revocation.replicas: must be a whole number of Redis replicas/],
      [1.5, /revocation.replicas: must be a whole number/],
      ['1', /revocation.replicas: must be a whole number/]
    ]
    for (const [replicas, message] of cases) {
      const app = Fastify()
      app.register(cognitoAuth, { ...issuer.pluginOptions(), revocation: { redis: client(), replicas } as RevocationOptions })
      await t.rejects(async () => { await app.ready() }, { code: 'FST_COGNITO_INVALID_OPTION', message })
      await app.close()
    }
    const noPipeline = { duplicate () {}, eval () {}, zscan () {}, subscribe () {}, on () {} }
    const app = Fastify()
    app.register(cognitoAuth, { ...issuer.pluginOptions(), revocation: { redis: noPipeline, replicas: 1 } })
    await t.rejects(async () => { await app.ready() }, { message: /revocation.redis: must be a Redis client with pipeline\(\) to wait for replicas/ })
    await app.close()
  })
}
