/**
 * The revocation list on Redis Cluster (three primaries, `redis-cli --cluster create`d), with the
 * application's ioredis `Cluster` client: the sorted set is one key, so one slot on one node, and
 * the channel reaches the subscribers whichever node each one is connected to.
 */
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import Redis, { type Cluster } from 'ioredis'
import t from 'tap'
import type { RedisRevocationOptions } from '../index'
import { encode } from '../lib/revocation/redis'
import { clusterSkip, command, RedisCluster } from './helpers/redis-server'
import { buildApp, claimsOf, eventually, get, isRevokedResponse, issuer } from './helpers/revocation-behaviour'

if (clusterSkip !== false) {
  t.plan(0, clusterSkip)
} else {
  let cluster: RedisCluster
  t.before(async () => { cluster = await RedisCluster.start(t) })

  function client (): Cluster {
    const redis = new Redis.Cluster(cluster.startupNodes)
    redis.on('error', () => {})
    t.teardown(() => redis.disconnect())
    return redis
  }

  t.test('sign-out reaches every instance through the cluster; a later instance loads the list', async (t) => {
    const keyPrefix = `cluster:${randomUUID()}:`
    const options = (): RedisRevocationOptions => ({ redis: client(), keyPrefix })
    const apps = [await buildApp(t, options()), await buildApp(t, options()), await buildApp(t, options())]
    const session = issuer.idToken({ sub: 'dee' })
    const user = issuer.accessToken({ sub: 'eli' })
    for (const app of apps) t.equal((await get(app, session)).statusCode, 200, 'accepted before the sign-out')

    await apps[0].cognitoRevocation.revokeSession(claimsOf(session))
    await apps[1].cognitoRevocation.signOutUser({ iss: issuer.issuer, sub: 'eli' })
    for (const app of apps) {
      await eventually(async () => (await get(app, session)).statusCode === 401 && (await get(app, user)).statusCode === 401)
      isRevokedResponse(t, await get(app, session), 'the revoked session is refused by every instance')
      isRevokedResponse(t, await get(app, user), 'and the signed-out user')
    }

    const reader = client()
    t.equal(await reader.zcard(`${keyPrefix}entries`), 2, 'the cluster holds both entries in the sorted set')

    const late = await buildApp(t, options())
    isRevokedResponse(t, await get(late, session), 'a later instance refuses from its first request')
    isRevokedResponse(t, await get(late, user))
    t.match(late.cognitoRevocation.stats(), { store: 'redis', entries: 2, sessions: 1, users: 1, inSync: true, lastError: null })
  })

  t.test('the channel reaches a subscriber on every node, not only the one that holds the key', async (t) => {
    // The client picks the node each subscriber connects to: instances are added until every node
    // has one (PUBSUB NUMSUB counts a node's own subscribers), the publishing node included.
    const keyPrefix = `cluster:${randomUUID()}:`
    const writer = await buildApp(t, { redis: client(), keyPrefix })
    const readers: FastifyInstance[] = []
    const everyNode = async (): Promise<boolean> => {
      for (const { port } of cluster.nodes) {
        const [, count] = await command(port, 'PUBSUB', 'NUMSUB', `${keyPrefix}events`) as [string, number]
        if (count === 0) return false
      }
      return true
    }
    while (!await everyNode()) {
      if (readers.length === 20) throw new Error('20 instances and still a node without a subscriber')
      readers.push(await buildApp(t, { redis: client(), keyPrefix }))
    }
    t.pass(`every node has a subscriber (${readers.length + 1} instances)`)
    const token = issuer.idToken({ sub: 'fay' })
    await writer.cognitoRevocation.revokeSession(claimsOf(token))
    for (const reader of readers) await eventually(async () => (await get(reader, token)).statusCode === 401)
    t.pass('every instance refuses the revoked session')
  })

  // What the count finds, without failing a node: entries written to Redis by hand, their messages
  // never published, as when a subscription moved while they were.
  const pool = issuer.issuer.slice(issuer.issuer.lastIndexOf('/') + 1)
  async function lostWrite (redis: Cluster, keyPrefix: string, seqKey: string, token: string): Promise<void> {
    const member = encode({ kind: 'session', pool, id: claimsOf(token).origin_jti as string, expires: Date.now() + 3_600_000 })
    await redis.multi().zadd(`${keyPrefix}entries`, Date.now() + 3_600_000, member).incr(seqKey).exec()
  }

  t.test('a revocation whose message never arrived is found by the count, a later message arriving or not', async (t) => {
    // A hash-tagged prefix: the count's key is then `<prefix>seq`, in the same slot.
    const keyPrefix = `{cluster:${randomUUID()}}:`
    const seqKey = `${keyPrefix}seq`
    const redis = client()
    const app = await buildApp(t, { redis: client(), keyPrefix })
    const other = await buildApp(t, { redis: client(), keyPrefix })
    const first = issuer.idToken({ sub: 'hal' })
    await lostWrite(redis, keyPrefix, seqKey, first)
    await eventually(async () => (await get(app, first)).statusCode === 401)
    isRevokedResponse(t, await get(app, first), 'found with no message after it')

    const second = issuer.idToken({ sub: 'ivy' })
    const third = issuer.idToken({ sub: 'jo' })
    await lostWrite(redis, keyPrefix, seqKey, second)
    await other.cognitoRevocation.revokeSession(claimsOf(third))
    t.equal(await redis.get(seqKey), '3', 'Redis counted the three entries')
    await eventually(async () => (await get(app, second)).statusCode === 401)
    isRevokedResponse(t, await get(app, second), 'found though a later message arrived')
    isRevokedResponse(t, await get(app, third), 'and the later one is enforced')
    t.match(app.cognitoRevocation.stats(), { inSync: true, entries: 3 })
  })

  t.test('a count that went back (the cluster lost the list) makes every instance load and write back', async (t) => {
    const keyPrefix = `cluster:${randomUUID()}:`
    const seqKey = `{${keyPrefix}entries}seq`
    const redis = client()
    const app = await buildApp(t, { redis: client(), keyPrefix })
    const token = issuer.idToken({ sub: 'kit' })
    await app.cognitoRevocation.revokeSession(claimsOf(token))
    t.equal(await redis.get(seqKey), '1', 'the count is kept in the slot of the sorted set')
    await redis.del(`${keyPrefix}entries`, seqKey)
    await eventually(async () => await redis.zcard(`${keyPrefix}entries`) === 1)
    t.pass('the instance wrote its entry back')
    const late = await buildApp(t, { redis: client(), keyPrefix })
    isRevokedResponse(t, await get(late, token), 'a later instance loads it')
  })

  t.test('a count Redis cannot give is reported', async (t) => {
    const keyPrefix = `cluster:${randomUUID()}:`
    const seqKey = `{${keyPrefix}entries}seq`
    const redis = client()
    const app = await buildApp(t, { redis: client(), keyPrefix })
    await redis.hset(seqKey, 'not', 'a count')
    await eventually(() => /WRONGTYPE/.test(String(app.cognitoRevocation.stats().lastError)))
    t.pass('stats() says why')
  })

  t.test('while the list cannot be loaded the instance stays out of sync, then catches up', async (t) => {
    const keyPrefix = `cluster:${randomUUID()}:`
    const redis = client()
    const app = await buildApp(t, { redis: client(), keyPrefix })
    await redis.set(`${keyPrefix}entries`, 'not a sorted set')
    await redis.incr(`{${keyPrefix}entries}seq`)
    await eventually(() => !app.cognitoRevocation.stats().inSync && /WRONGTYPE/.test(String(app.cognitoRevocation.stats().lastError)))
    t.pass('the count found a missing message; the load fails')
    // A few checks run while it is out of sync: they leave the resync alone.
    await sleep(2500)
    t.match(app.cognitoRevocation.stats(), { inSync: false })
    await redis.del(`${keyPrefix}entries`)
    await eventually(() => app.cognitoRevocation.stats().inSync)
    t.pass('in sync once the list loads')
  })

  t.test('a keyPrefix holding a "}" but no hash tag is refused on a Cluster', async (t) => {
    await t.rejects(buildApp(t, { redis: client(), keyPrefix: 'a}b:' }), /hash tag/)
  })

  // The last test: it fails a node of the cluster. ioredis moves a Cluster's subscription to
  // another node, without an event, when its node fails; what was published in between never
  // reaches the instance by its channel: the count of published entries shows it missing.
  t.test('a node that held subscriptions fails: the instances subscribed there catch up', async (t) => {
    const keyPrefix = `cluster:${randomUUID()}:`
    const slot = await command(cluster.nodes[0].port, 'CLUSTER', 'KEYSLOT', `${keyPrefix}entries`) as number
    const slots = await command(cluster.nodes[0].port, 'CLUSTER', 'SLOTS') as Array<[number, number, [string, number]]>
    const keyNode = (slots.find(([first, last]) => slot >= first && slot <= last) as [number, number, [string, number]])[2][1]
    // A node other than the key's, so that writes go on while it is down.
    const node = cluster.nodes.find(({ port }) => port !== keyNode) as (typeof cluster.nodes)[number]
    const subscribed = async (): Promise<number> => (await command(node.port, 'PUBSUB', 'NUMSUB', `${keyPrefix}events`) as [string, number])[1]
    const apps: FastifyInstance[] = []
    while (await subscribed() === 0) {
      if (apps.length === 20) throw new Error('20 instances and none subscribed on the node')
      apps.push(await buildApp(t, { redis: client(), keyPrefix }))
    }
    const writer = await buildApp(t, { redis: client(), keyPrefix })
    // Frozen, the node delivers nothing; killed, its subscribers move to the other nodes.
    node.freeze()
    const token = issuer.idToken({ sub: 'gus' })
    await writer.cognitoRevocation.revokeSession(claimsOf(token))
    await node.kill()
    await node.restart()
    const refusing = async (): Promise<boolean> => {
      for (const app of apps) if ((await get(app, token)).statusCode !== 401) return false
      return true
    }
    const caughtUp = await eventually(refusing, 10_000).then(() => true, () => false)
    t.ok(caughtUp, 'every instance refuses the session revoked while its subscription node was failing')
  })
}
