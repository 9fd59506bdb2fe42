/**
 * The revocation list in Redis under races, against a real redis-server: the subscriber lost
 * while the list loads (at start, and during a resync, with Redis at `maxclients` so that it
 * cannot come back), a writer whose clock runs ahead, and a close after a start that never was.
 * Each race is made deterministic: the test drives the subscriber's connection (CLIENT KILL,
 * CONFIG SET maxclients) at the moment the list is read.
 */
import { once } from 'node:events'
import { randomUUID } from 'node:crypto'
import FakeTimers from '@sinonjs/fake-timers'
import Fastify from 'fastify'
import Redis from 'ioredis'
import t, { type Test } from 'tap'
import cognitoAuth, { type RedisRevocationOptions } from '../index'
import { RedisServer, redisSkip } from './helpers/redis-server'
import { buildApp, claimsOf, eventually, get, isRevokedResponse, issuer } from './helpers/revocation-behaviour'

if (redisSkip !== false) {
  t.plan(0, redisSkip)
} else {
  let server: RedisServer
  t.before(async () => { server = await RedisServer.start(t) })

  /** A client of the application, disconnected at the end of the file (the plugin never closes it). */
  function client (): Redis {
    const redis = new Redis({ port: server.port, host: '127.0.0.1' })
    redis.on('error', () => {}) // reconnection errors while a test has Redis refuse connections
    t.teardown(() => redis.disconnect())
    return redis
  }

  function options (extra: Partial<RedisRevocationOptions> = {}): RedisRevocationOptions {
    return { redis: client(), keyPrefix: `test:${randomUUID()}:`, ...extra }
  }

  /**
   * Watches an application's client: `subscriber()` is the connection the plugin subscribes on
   * (its `duplicate()`), and `onRead(n, fn)` runs `fn` when the n-th read of the list has its
   * answer, before the plugin sees it (whichever command reads the list).
   */
  function watch (redis: Redis): { subscriber: () => Redis, onRead: (n: number, fn: () => Promise<void>) => void } {
    let subscriber: Redis | undefined
    const duplicate = redis.duplicate.bind(redis)
    redis.duplicate = (...args: Parameters<Redis['duplicate']>) => {
      subscriber = duplicate(...args)
      return subscriber
    }
    let reads = 0
    const hooks = new Map<number, () => Promise<void>>()
    for (const name of ['zscan', 'zrangebyscore'] as const) {
      const read = (redis[name] as (...args: unknown[]) => Promise<unknown>).bind(redis)
      ;(redis as unknown as Record<string, unknown>)[name] = async (...args: unknown[]) => {
        const answer = await read(...args)
        await hooks.get(++reads)?.()
        return answer
      }
    }
    return { subscriber: () => subscriber as Redis, onRead: (n, fn) => hooks.set(n, fn) }
  }

  /** Cuts the subscriber off and keeps it off: Redis refuses every new connection until `allow()`. */
  async function cutOff (t: Test, admin: Redis, subscriber: Redis): Promise<{ allow: () => Promise<void> }> {
    const closed = once(subscriber, 'close')
    await admin.config('SET', 'maxclients', '1')
    let allowed = false
    const allow = async (): Promise<void> => {
      if (allowed) return
      allowed = true
      await admin.config('SET', 'maxclients', '10000')
    }
    t.teardown(allow)
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
    await closed
    return { allow }
  }

  t.test('the subscriber lost while the list first loads: the start loads again once it is back', async (t) => {
    const shared = options()
    const admin = client()
    const other = await buildApp(t, { ...shared, redis: client() })
    const settings = { ...shared, redis: client() }
    const watched = watch(settings.redis as Redis)
    const token = issuer.idToken({ sub: 'missed-at-start' })
    let allow!: () => Promise<void>
    watched.onRead(1, async () => {
      ;({ allow } = await cutOff(t, admin, watched.subscriber()))
      // Another instance revokes after this one read the list, while its subscriber is away.
      await other.cognitoRevocation.revokeSession(claimsOf(token))
    })
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(cognitoAuth, { ...issuer.pluginOptions(), revocation: settings })
    app.get('/me', { onRequest: app.authenticate }, async () => ({ ok: true }))
    let ready = false
    const starting = app.ready().then(() => { ready = true })
    await eventually(() => allow !== undefined)
    await new Promise((resolve) => setTimeout(resolve, 200))
    t.equal(ready, false, 'not ready while the subscription it loaded under is gone')
    await allow()
    await starting
    isRevokedResponse(t, await get(app, token), 'the revocation made meanwhile is known from the first request')
    t.match(app.cognitoRevocation.stats(), { inSync: true, sessions: 1 })
  })

  t.test('the start fails when the subscriber keeps closing while the list loads', async (t) => {
    const settings = options()
    const admin = client()
    const watched = watch(settings.redis as Redis)
    for (const n of [1, 2, 3]) {
      watched.onRead(n, async () => {
        const closed = once(watched.subscriber(), 'close')
        await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
        await closed
      })
    }
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(cognitoAuth, { ...issuer.pluginOptions(), revocation: settings })
    await t.rejects(async () => { await app.ready() }, { message: /kept closing while the list loaded/ })
  })

  t.test('the subscriber lost again while a resync loads, and kept away: out of sync, not "in sync"', async (t) => {
    const shared = options()
    const admin = client()
    const other = await buildApp(t, { ...shared, redis: client() })
    const settings = { ...shared, redis: client(), maxStale: 30 }
    const watched = watch(settings.redis as Redis)
    const app = await buildApp(t, settings)
    const token = issuer.idToken({ sub: 'missed-in-resync' })
    let allow!: () => Promise<void>
    let loaded = false
    watched.onRead(2, async () => {
      ;({ allow } = await cutOff(t, admin, watched.subscriber()))
      await other.cognitoRevocation.revokeSession(claimsOf(token))
      setImmediate(() => { loaded = true })
    })
    // The first cut: the subscriber comes back and resyncs; the second read is the resync's.
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
    await eventually(() => loaded)
    t.match(app.cognitoRevocation.stats(), { inSync: false, sessions: 0 }, 'a load under a lost subscription does not count')
    t.equal((await get(app, token)).statusCode, 200, 'within maxStale the replica still answers')
    const clock = FakeTimers.install({ toFake: ['Date'], now: Date.now() + 31_000 })
    const stale = await get(app, token)
    clock.uninstall()
    t.equal(stale.json<{ code: string }>().code, 'FST_COGNITO_REVOCATION_UNAVAILABLE', 'maxStale refuses: the outage is seen')
    await allow()
    await eventually(async () => (await get(app, token)).statusCode === 401)
    t.match(app.cognitoRevocation.stats(), { inSync: true, sessions: 1 })
  })

  t.test('the subscriber lost and back while a resync loads: it loads once more', async (t) => {
    const shared = options()
    const admin = client()
    const other = await buildApp(t, { ...shared, redis: client() })
    const settings = { ...shared, redis: client() }
    const watched = watch(settings.redis as Redis)
    const app = await buildApp(t, settings)
    const token = issuer.idToken({ sub: 'missed-in-resync' })
    watched.onRead(2, async () => {
      const { allow } = await cutOff(t, admin, watched.subscriber())
      await other.cognitoRevocation.revokeSession(claimsOf(token))
      const back = once(watched.subscriber(), 'ready')
      await allow()
      await back
    })
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
    await eventually(async () => (await get(app, token)).statusCode === 401)
    t.match(app.cognitoRevocation.stats(), { inSync: true, sessions: 1 })
  })

  t.test('a writer whose clock runs ahead trims no entry another instance still needs', async (t) => {
    const shared = options({ maxTokenLifetime: 3600 })
    const one = await buildApp(t, shared)
    const ahead = await buildApp(t, { ...shared, redis: client() })
    const token = issuer.idToken()
    await one.cognitoRevocation.revokeSession(claimsOf(token))
    const clock = FakeTimers.install({ toFake: ['Date'], now: Date.now() + 2 * 86_400_000 })
    try {
      await ahead.cognitoRevocation.revokeSession({ iss: issuer.issuer, jti: 'from-the-future' })
    } finally {
      clock.uninstall()
    }
    const later = await buildApp(t, { ...shared, redis: client() })
    isRevokedResponse(t, await get(later, token), 'an instance started later still learns it')
    t.equal(later.cognitoRevocation.stats().sessions, 2)
  })

  t.test('a write trims only what expired a margin ago by Redis\' clock, and a bounded number of them', async (t) => {
    const settings = options()
    const redis = settings.redis as Redis
    const key = `${settings.keyPrefix as string}entries`
    const [seconds] = await redis.time()
    const redisNow = Number(seconds) * 1000
    const pool = issuer.userPoolId
    const long: Array<string | number> = []
    for (let i = 0; i < 250; i++) long.push(redisNow - 3_600_000, JSON.stringify(['s', pool, `long-gone-${i}`]))
    await redis.zadd(key, ...long)
    await redis.zadd(key, redisNow - 60_000, JSON.stringify(['s', pool, 'just-expired']))
    const app = await buildApp(t, settings)
    await app.cognitoRevocation.revokeSession({ iss: issuer.issuer, jti: 'one' })
    t.equal(await redis.zcard(key), 250 - 100 + 1 + 1, 'one write dropped 100 of the 250 long expired entries')
    t.not(await redis.zscore(key, JSON.stringify(['s', pool, 'just-expired'])), null, 'an entry expired a minute ago by Redis\' clock stays')
    await app.cognitoRevocation.revokeSession({ iss: issuer.issuer, jti: 'two' })
    await app.cognitoRevocation.revokeSession({ iss: issuer.issuer, jti: 'three' })
    t.equal(await redis.zcard(key), 4, 'later writes drop the rest')
  })

  t.test('close succeeds when the list never started (ready() failed before it)', async (t) => {
    const app = Fastify()
    await app.register(cognitoAuth, {
      ...issuer.pluginOptions(),
      jwks: undefined,
      jwksUri: 'http://127.0.0.1:1/eu-central-1_LocalPool/.well-known/jwks.json',
      jwksCache: { prefetch: 'required', timeout: 0.2 },
      revocation: options()
    })
    await t.rejects(async () => { await app.ready() }, { code: 'FST_COGNITO_JWKS_UNAVAILABLE' })
    await t.resolves(app.close())
  })
}
