/**
 * The revocation list in Redis, against a real redis-server on a loopback port: the behaviour
 * every store shares, then what only Redis brings: instances that share the list, and faults
 * (Redis killed, frozen, restarted; a subscriber dropped while another instance writes).
 */
import { randomUUID } from 'node:crypto'
import { Writable } from 'node:stream'
import FakeTimers from '@sinonjs/fake-timers'
import Fastify, { type FastifyInstance } from 'fastify'
import Redis from 'ioredis'
import Valkey from 'iovalkey'
import t, { type Test } from 'tap'
import cognitoAuth, { type RedisRevocationOptions } from '../index'
import { RedisServer, redisSkip } from './helpers/redis-server'
import { buildApp, claimsOf, eventually, get, isRevokedResponse, issuer, recordEvents, revocationBehaviour } from './helpers/revocation-behaviour'

if (redisSkip !== false) {
  t.plan(0, redisSkip)
} else {
  let server: RedisServer
  t.before(async () => { server = await RedisServer.start(t) })

  /** A client of the application, disconnected at the end of the file (the plugin never closes it). */
  function client (options: { lazyConnect?: boolean, port?: number } = {}): Redis {
    const redis = new Redis({ port: options.port ?? server.port, host: '127.0.0.1', lazyConnect: options.lazyConnect })
    redis.on('error', () => {}) // reconnection errors while a test has Redis down
    t.teardown(() => redis.disconnect())
    return redis
  }

  function options (extra: Partial<RedisRevocationOptions> = {}): RedisRevocationOptions {
    return { redis: client(), keyPrefix: `test:${randomUUID()}:`, ...extra }
  }

  revocationBehaviour(t, () => options(), 'redis')

  t.test('instances share the list: a revocation on one is refused by the others, and by one started later', async (t) => {
    const shared = options()
    const one = await buildApp(t, shared)
    const two = await buildApp(t, { ...shared, redis: client() })
    const session = issuer.idToken({ sub: 'di' })
    const user = issuer.accessToken({ sub: 'ed' })
    t.equal((await get(two, session)).statusCode, 200)

    await one.cognitoRevocation.revokeSession(claimsOf(session))
    await two.cognitoRevocation.signOutUser({ iss: issuer.issuer, sub: 'ed' })
    await eventually(async () => (await get(two, session)).statusCode === 401)
    await eventually(async () => (await get(one, user)).statusCode === 401)
    isRevokedResponse(t, await get(two, session))
    isRevokedResponse(t, await get(one, user))

    const three = await buildApp(t, { ...shared, redis: client() })
    isRevokedResponse(t, await get(three, session), 'a later instance refuses from its first request')
    isRevokedResponse(t, await get(three, user))
    t.match(three.cognitoRevocation.stats(), { store: 'redis', entries: 2, sessions: 1, users: 1, inSync: true, lastError: null })
  })

  t.test('an iovalkey client works the same', async (t) => {
    const keyPrefix = `test:${randomUUID()}:`
    const valkey = (): Valkey => {
      const client = new Valkey({ port: server.port, host: '127.0.0.1' })
      t.teardown(() => client.disconnect())
      return client
    }
    const one = await buildApp(t, { redis: valkey(), keyPrefix })
    const two = await buildApp(t, { redis: valkey(), keyPrefix })
    const token = issuer.idToken()
    await one.cognitoRevocation.revokeSession(claimsOf(token))
    await eventually(async () => (await get(two, token)).statusCode === 401)
    isRevokedResponse(t, await get(two, token))
  })

  t.test('Redis holds each entry until the tokens it revokes expire', async (t) => {
    const settings = options({ maxTokenLifetime: 600 })
    const app = await buildApp(t, settings)
    await app.cognitoRevocation.revokeSession({ iss: issuer.issuer, origin_jti: 'kept' })
    const redis = settings.redis as Redis
    const key = `${settings.keyPrefix as string}entries`
    t.equal(await redis.zcard(key), 1)
    const [, score] = await redis.zrangebyscore(key, '-inf', '+inf', 'WITHSCORES')
    const lives = Number(score) - Date.now()
    t.ok(lives > 600_000 && lives <= 900_000, 'each entry is scored by its expiry: maxTokenLifetime and the 5 minutes of iat allowance')
    const ttl = await redis.pttl(key)
    t.ok(ttl >= lives && ttl <= lives + 600_000, 'the key outlives its last entry, by the trimming margin at most')
  })

  t.test('what is not an entry, in the key or on the channel, is ignored', async (t) => {
    const settings = options()
    const redis = settings.redis as Redis
    const prefix = settings.keyPrefix as string
    const future = Date.now() + 60_000
    const pool = issuer.userPoolId
    const members = ['not json', '{"an":"object"}', '["s","p",1]', '["s","","x"]', '["s","good"]', `["u","${pool}","b","c"]`, '["x"]', `["s","${pool}","good"]`]
    for (const member of members) await redis.zadd(`${prefix}entries`, future, member)
    const app = await buildApp(t, settings)
    t.equal(app.cognitoRevocation.stats().entries, 1, 'only the well-formed entry is loaded')
    for (const message of ['nonsense', `${future} ["s"`, `soon ["s","${pool}","late"]`, `${future} ["s","${pool}","published"]`]) {
      await redis.publish(`${prefix}events`, message)
    }
    await eventually(() => app.cognitoRevocation.stats().entries === 2)
    isRevokedResponse(t, await get(app, issuer.idToken({ origin_jti: 'published' })))
    t.equal((await get(app, issuer.idToken({ origin_jti: 'late' }))).statusCode, 200, 'a message without an expiry is dropped')
  })

  t.test('an instance that missed a message catches up when its subscriber reconnects', async (t) => {
    const events = recordEvents(t)
    const settings = options()
    const app = await buildApp(t, settings)
    const prefix = settings.keyPrefix as string
    const redis = client()
    const token = issuer.idToken()
    const expires = Date.now() + 60_000
    const member = JSON.stringify(['s', issuer.userPoolId, claimsOf(token).origin_jti])
    // Another instance writes just after this one's subscriber was dropped: the message is lost.
    await redis.multi()
      .call('CLIENT', 'KILL', 'TYPE', 'pubsub')
      .zadd(`${prefix}entries`, expires, member)
      .publish(`${prefix}events`, `${expires} ${member}`)
      .exec()
    await eventually(async () => (await get(app, token)).statusCode === 401)
    t.same(events.map((event) => event.event), ['synced', 'disconnected', 'reconnected', 'synced'])
    t.equal(app.cognitoRevocation.stats().inSync, true)
  })

  /**
   * An instance whose subscriber was cut off while the list's key holds something else than a
   * sorted set: every resync fails until the key is deleted.
   */
  async function failingResync (t: Test): Promise<{ app: FastifyInstance, redis: Redis, key: string }> {
    const settings = options()
    const app = await buildApp(t, settings)
    const key = `${settings.keyPrefix as string}entries`
    const redis = client()
    await redis.multi().call('CLIENT', 'KILL', 'TYPE', 'pubsub').set(key, 'not a sorted set').exec()
    await eventually(() => /WRONGTYPE/.test(app.cognitoRevocation.stats().lastError ?? ''))
    return { app, redis, key }
  }

  t.test('a resync that fails is retried', async (t) => {
    const { app, redis, key } = await failingResync(t)
    t.equal(app.cognitoRevocation.stats().inSync, false, 'out of sync while the load fails')
    await redis.del(key)
    await eventually(() => app.cognitoRevocation.stats().inSync)
  })

  t.test('closing the server stops a resync that keeps failing', async (t) => {
    const { app, redis, key } = await failingResync(t)
    await app.close()
    // A load would now succeed: none may happen after close.
    await redis.del(key)
    await new Promise((resolve) => setTimeout(resolve, 1500))
    t.equal(app.cognitoRevocation.stats().inSync, false, 'no load after close')
  })

  t.test('Redis down: known revocations hold, new ones reject, stats and the log say stale; back up: resync', async (t) => {
    const events = recordEvents(t)
    const lines: Array<{ level: number, msg: string }> = []
    const stream = new Writable({ write (chunk, _encoding, callback) { lines.push(JSON.parse(String(chunk))); callback() } })
    const app = Fastify({ logger: { level: 'info', stream } })
    t.teardown(() => app.close())
    const settings = options()
    await app.register(cognitoAuth, { ...issuer.pluginOptions(), revocation: settings })
    app.get('/me', { onRequest: app.authenticate }, async () => ({ ok: true }))
    await app.ready()
    const known = issuer.idToken()
    const later = issuer.idToken()
    await app.cognitoRevocation.revokeSession(claimsOf(known))
    t.match(events, [{ event: 'synced', entries: 0 }])

    await server.kill()
    await eventually(() => !app.cognitoRevocation.stats().inSync)
    const stale = app.cognitoRevocation.stats()
    t.match(stale, { inSync: false, entries: 1, lastError: /closed/ })
    t.ok(stale.since <= Date.now())
    isRevokedResponse(t, await get(app, known), 'a known revocation still holds')
    await t.rejects(app.cognitoRevocation.revokeSession(claimsOf(later)), { code: 'FST_COGNITO_REVOCATION_UNAVAILABLE', statusCode: 503 }, 'a new one rejects')
    await t.rejects(app.cognitoRevocation.signOutUser({ iss: issuer.issuer, sub: 'x' }), { code: 'FST_COGNITO_REVOCATION_UNAVAILABLE' })
    t.match(events, [{ event: 'synced' }, { event: 'disconnected', entries: 1, reason: /closed/ }])
    t.ok(lines.some((line) => line.level === 40 && /may be stale/.test(line.msg)), 'a warning says the list may be stale')

    await server.restart()
    await eventually(() => app.cognitoRevocation.stats().inSync)
    t.match(events.map((event) => event.event), ['synced', 'disconnected', 'reconnected', 'synced'])
    t.equal(app.cognitoRevocation.stats().entries, 3, 'the AOF kept the entry; the two refused while down are still enforced here')
    await eventually(async () => {
      try {
        await app.cognitoRevocation.revokeSession(claimsOf(later))
        return true
      } catch {
        return false // the application's client reconnects on its own schedule
      }
    })
    isRevokedResponse(t, await get(app, later))
    const fresh = await buildApp(t, { ...settings, redis: client() })
    isRevokedResponse(t, await get(fresh, known), 'an instance started after the restart loads what Redis kept')
    isRevokedResponse(t, await get(fresh, later))
  })

  t.test('maxStale: tokens are refused once the list has been out of sync that long', async (t) => {
    const app = await buildApp(t, options({ maxStale: 30 }))
    const token = issuer.idToken()
    await server.kill()
    t.teardown(async () => { if (!app.cognitoRevocation.stats().inSync) await server.restart() })
    await eventually(() => !app.cognitoRevocation.stats().inSync)
    t.equal((await get(app, token)).statusCode, 200, 'within maxStale the replica still answers')
    const clock = FakeTimers.install({ toFake: ['Date'], now: Date.now() + 31_000 })
    const res = await get(app, token)
    clock.uninstall()
    t.equal(res.statusCode, 503)
    t.equal(res.json<{ code: string }>().code, 'FST_COGNITO_REVOCATION_UNAVAILABLE')
    t.notOk(res.headers['www-authenticate'], 'no challenge: the token is not at fault')
    await server.restart()
    await eventually(() => app.cognitoRevocation.stats().inSync)
    t.equal((await get(app, token)).statusCode, 200, 'in sync again: accepted')
  })

  t.test('a write that Redis does not answer within the timeout rejects', async (t) => {
    const app = await buildApp(t, options({ timeout: 0.2 }))
    server.freeze()
    t.teardown(() => server.thaw())
    await t.rejects(app.cognitoRevocation.revokeSession({ iss: issuer.issuer, jti: 'slow' }), { code: 'FST_COGNITO_REVOCATION_UNAVAILABLE', cause: { message: /did not answer the revocation within 0.2 s/ } })
    server.thaw()
  })

  t.test('a write that Redis refuses rejects', async (t) => {
    const settings = options()
    const app = await buildApp(t, settings)
    await (settings.redis as Redis).set(`${settings.keyPrefix as string}entries`, 'not a sorted set')
    await t.rejects(app.cognitoRevocation.revokeSession({ iss: issuer.issuer, jti: 'x' }), { code: 'FST_COGNITO_REVOCATION_UNAVAILABLE', cause: { message: /WRONGTYPE/ } })
    t.match(app.cognitoRevocation.stats(), { lastError: /WRONGTYPE/ })
    isRevokedResponse(t, await get(app, issuer.idToken({ jti: 'x', origin_jti: undefined })), 'enforced here all the same')
  })

  t.test('the server does not start when the list cannot be loaded', async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    const unreachable = client({ port: 1 })
    await app.register(cognitoAuth, { ...issuer.pluginOptions(), revocation: { redis: unreachable, timeout: 0.2 } })
    await t.rejects(async () => { await app.ready() }, { message: /did not answer the subscription within 0.2 s/ })
  })

  t.test('closing the server leaves the application\'s client open', async (t) => {
    const settings = options()
    const app = await buildApp(t, settings)
    await app.close()
    const redis = settings.redis as Redis
    t.equal(redis.status, 'ready')
    t.equal(await redis.ping(), 'PONG')
  })
}
