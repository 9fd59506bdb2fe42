/**
 * The revocation list in memory (`revocation: { store: 'memory' }`), its options, and the
 * decorator of an instance without the option. The same behaviour runs on Redis in
 * test/revocation-redis.test.ts.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import Fastify from 'fastify'
import t from 'tap'
import cognitoAuth, { channels, type CognitoRevocationEvent, type RevocationOptions } from '../index'
import { RevocationList, type RevocationEntry } from '../lib/revocation/list'
import { buildApp, get, issuer, revocationBehaviour } from './helpers/revocation-behaviour'

revocationBehaviour(t, () => ({ store: 'memory' }), 'memory')

t.test('without the option, app.cognitoRevocation says how to set it', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, issuer.pluginOptions())
  await t.rejects(app.cognitoRevocation.revokeSession({ iss: issuer.issuer, jti: 'x' }), { code: 'FST_COGNITO_INVALID_OPTION', message: /revocation: is not set/ })
  await t.rejects(app.cognitoRevocation.signOutUser({ iss: issuer.issuer, sub: 'x' }), { code: 'FST_COGNITO_INVALID_OPTION' })
  t.throws(() => app.cognitoRevocation.stats(), { code: 'FST_COGNITO_INVALID_OPTION' })
})

t.test('the memory store is in sync from the start, and each instance has its own', async (t) => {
  const one = await buildApp(t, { store: 'memory' })
  const two = await buildApp(t, { store: 'memory' })
  const token = issuer.idToken()
  await one.cognitoRevocation.revokeSession({ iss: issuer.issuer, origin_jti: JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).origin_jti })
  t.equal((await get(one, token)).statusCode, 401)
  t.equal((await get(two, token)).statusCode, 200, 'a memory list is one process\'s own')
  const stats = one.cognitoRevocation.stats()
  t.match(stats, { store: 'memory', inSync: true, lastError: null })
  t.type(stats.lastSync, 'number')
})

t.test('a misspelt revocation option refuses register instead of turning the list off', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(cognitoAuth, { ...issuer.pluginOptions(), revocaton: { store: 'memory' } } as never)
  await t.rejects(async () => { await app.ready() }, { code: 'FST_COGNITO_INVALID_OPTION', message: 'Invalid option revocaton: is not an option; did you mean revocation?' })
})

t.test('the memory list reports its one sync, at start, on the revocation channel', async (t) => {
  const events: CognitoRevocationEvent[] = []
  const listener = (message: unknown): void => { events.push(message as CognitoRevocationEvent) }
  subscribe(channels.revocation, listener)
  t.teardown(() => { unsubscribe(channels.revocation, listener) })
  const app = await buildApp(t, { store: 'memory' })
  await app.cognitoRevocation.revokeSession({ iss: issuer.issuer, jti: 'after' })
  t.same(events, [{ event: 'synced', entries: 0, durationMs: 0 }])
})

t.test('revocation options are checked at register', async (t) => {
  const client = { duplicate () {}, eval () {}, zscan () {}, subscribe () {}, on () {} }
  const cases: Array<[unknown, RegExp]> = [
    [null, /Invalid option revocation: must be \{ redis: <client> \} or \{ store: 'memory' \}/],
    ['memory', /Invalid option revocation: must be/],
    [[], /Invalid option revocation: must be/],
    [{}, /Invalid option revocation: needs redis .* or store: 'memory'/],
    [{ redis: client, store: 'memory' }, /takes either redis or store, not both/],
    [{ redis: undefined }, /Invalid option revocation.redis: must be a Redis client/],
    [{ redis: 'redis://localhost' }, /revocation.redis: must be a Redis client/],
    [{ redis: { ...client, duplicate: undefined } }, /revocation.redis: must be a Redis client with ioredis' API; it has no duplicate\(\)/],
    [{ store: undefined }, /revocation.store: must be 'memory'/],
    [{ store: 'redis' }, /revocation.store: must be 'memory'/],
    [{ store: 'memory', keyPrefix: 'x' }, /revocation.keyPrefix: is not an option; expected one of store, maxTokenLifetime/],
    [{ store: 'memory', maxTokenLifetme: 60 }, /revocation.maxTokenLifetme: is not an option; did you mean maxTokenLifetime\?/],
    [{ redis: client, keyprefix: 'x' }, /revocation.keyprefix: is not an option; did you mean keyPrefix\?/],
    [{ redis: client, keyPrefix: '' }, /revocation.keyPrefix: must be a non-empty string/],
    [{ redis: client, keyPrefix: 7 }, /revocation.keyPrefix: must be a non-empty string/],
    [{ store: 'memory', maxTokenLifetime: 0 }, /revocation.maxTokenLifetime: must be a positive number of seconds/],
    [{ redis: client, maxStale: -1 }, /revocation.maxStale: must be a positive number of seconds/],
    [{ redis: client, maxStale: null }, /revocation.maxStale: must be a positive number of seconds/],
    [{ redis: client, timeout: Infinity }, /revocation.timeout: must be a positive number of seconds/]
  ]
  for (const [revocation, message] of cases) {
    const app = Fastify()
    app.register(cognitoAuth, { ...issuer.pluginOptions(), revocation: revocation as RevocationOptions })
    await t.rejects(async () => { await app.ready() }, { code: 'FST_COGNITO_INVALID_OPTION', message }, JSON.stringify(revocation))
    await app.close()
  }
})

t.test('a listener of the replica is told of each entry it applies, with its pool, until it stops listening', async (t) => {
  const settings = { store: 'memory' as const, keyPrefix: '', maxTokenLifetimeMs: 3_600_000, maxStaleMs: Infinity, timeoutMs: 5000, replicas: 0, clockToleranceMs: 0 }
  const list = new RevocationList(settings, () => ({ settings: { userPoolId: issuer.userPoolId } }), Fastify().log)
  const heard: RevocationEntry[] = []
  const stop = list.listen((entry) => heard.push(entry))
  await list.api.revokeSession({ iss: issuer.issuer, origin_jti: 'heard' })
  await list.api.signOutUser({ iss: issuer.issuer, sub: 'heard-user' })
  stop()
  await list.api.revokeSession({ iss: issuer.issuer, jti: 'not heard' })
  t.match(heard, [
    { kind: 'session', pool: issuer.userPoolId, id: 'heard', expires: Number },
    { kind: 'user', pool: issuer.userPoolId, sub: 'heard-user', mark: Number, expires: Number }
  ])
  t.equal(heard.length, 2)
  await list.close()
})

t.test('a revocation before the server is ready is enforced once it is', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, { ...issuer.pluginOptions(), revocation: { store: 'memory' } })
  app.get('/me', { onRequest: app.authenticate }, async () => ({ ok: true }))
  await app.cognitoRevocation.revokeSession({ iss: issuer.issuer, jti: 'early' })
  await app.ready()
  t.equal((await get(app, issuer.idToken({ jti: 'early', origin_jti: undefined }))).statusCode, 401)
})
