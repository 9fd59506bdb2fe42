/**
 * The revocation list on Redis behind Sentinel, against real processes: a primary, a replica and
 * three sentinels. The application's ioredis client is given the sentinels, not the primary; after
 * a failover (the primary killed, or a planned one with both servers up) it follows the new
 * primary, each instance's subscriber reconnects and resyncs, and sign-out keeps reaching every
 * instance.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { randomUUID } from 'node:crypto'
import Redis from 'ioredis'
import t, { type Test } from 'tap'
import { channels, type CognitoRevocationEvent, type RedisRevocationOptions } from '../index'
import { command, RedisSentinel, redisSkip } from './helpers/redis-server'
import { buildApp, claimsOf, eventually, get, isRevokedResponse, issuer } from './helpers/revocation-behaviour'

if (redisSkip !== false) {
  t.plan(0, redisSkip)
} else {
  const failovers: Array<[string, (sentinel: RedisSentinel) => Promise<void>]> = [
    ['the primary killed, the replica promoted (SENTINEL FAILOVER)', async (sentinel) => await sentinel.failover()],
    ['a planned failover, both servers up (the old primary becomes the replica)', async (sentinel) => await sentinel.switchOver()]
  ]
  for (const [name, failover] of failovers) {
    t.test(`behind Sentinel: sign-out reaches every instance, before and after a failover: ${name}`, async (t: Test) => {
      const sentinel = await RedisSentinel.start(t)
      const keyPrefix = `sentinel:${randomUUID()}:`
      function options (): RedisRevocationOptions {
        const redis = new Redis({ ...sentinel.clientOptions })
        redis.on('error', () => {}) // while the primary is down
        t.teardown(() => redis.disconnect())
        return { redis, keyPrefix, timeout: 2 }
      }
      const events: CognitoRevocationEvent[] = []
      const listener = (message: unknown): void => { events.push(message as CognitoRevocationEvent) }
      subscribe(channels.revocation, listener)
      t.teardown(() => { unsubscribe(channels.revocation, listener) })

      const one = await buildApp(t, options())
      const two = await buildApp(t, options())
      const before = issuer.idToken({ sub: 'ann' })
      t.equal((await get(two, before)).statusCode, 200, 'accepted before the sign-out')
      await one.cognitoRevocation.revokeSession(claimsOf(before))
      await eventually(async () => (await get(two, before)).statusCode === 401)
      isRevokedResponse(t, await get(two, before), 'a sign-out on one instance is refused by the other')
      // Replication is asynchronous: the replica is waited for, so that the failover keeps the entry.
      t.equal(await command(sentinel.primary.port, 'WAIT', 1, 5000), 1, 'the replica has it')

      const oldPrimary = sentinel.primary.port
      events.length = 0
      await failover(sentinel)
      t.not(sentinel.primary.port, oldPrimary, 'the replica was promoted')
      for (const app of [one, two]) await eventually(async () => app.cognitoRevocation.stats().inSync, 20_000)
      const count = (kind: string): number => events.filter((event) => event.event === kind).length
      t.ok(count('disconnected') >= 2 && count('reconnected') >= 2, 'both subscribers lost the old primary and reached the new one')
      t.ok(count('synced') >= 2, 'and both resynced')

      const after = issuer.accessToken({ sub: 'bo' })
      await eventually(async () => {
        try {
          await two.cognitoRevocation.signOutUser({ iss: issuer.issuer, sub: 'bo' })
          return true
        } catch {
          return false // until the client has found the new primary
        }
      }, 20_000)
      await eventually(async () => (await get(one, after)).statusCode === 401)
      isRevokedResponse(t, await get(one, after), 'a sign-out after the failover reaches the other instance')
      isRevokedResponse(t, await get(two, before), 'the revocation from before the failover holds')

      const late = await buildApp(t, options())
      isRevokedResponse(t, await get(late, before), 'an instance started after the failover loads the entries from the new primary')
      isRevokedResponse(t, await get(late, after))
      t.equal((await get(late, issuer.idToken({ sub: 'cy' }))).statusCode, 200, 'and accepts other tokens')
    })
  }
}
