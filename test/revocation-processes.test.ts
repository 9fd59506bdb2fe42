/**
 * Sign-out across processes: three instances of an application on one redis-server. A sign-out
 * on one is refused by the others; with Redis down, known revocations hold and new ones fail; once
 * it is back, the instances resync, and a fourth instance started afterwards refuses the revoked
 * tokens from its first request.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import t from 'tap'
import type { RevocationStats } from '../index'
import { RedisServer, redisSkip } from './helpers/redis-server'
import { bearer, eventually, issuer } from './helpers/revocation-behaviour'

interface Instance {
  url: string
  child: ChildProcess
}

if (redisSkip !== false) {
  t.plan(0, redisSkip)
} else {
  t.test('three instances, one Redis: sign-out everywhere, through a Redis outage, and for a late instance', async (t) => {
    const redis = await RedisServer.start(t)
    const env = {
      ...process.env,
      REVOCATION_POOL: JSON.stringify(issuer.pluginOptions()),
      REVOCATION_ISSUER: issuer.issuer,
      REVOCATION_REDIS_PORT: String(redis.port),
      REVOCATION_PREFIX: `e2e:${randomUUID()}:`
    }

    async function start (): Promise<Instance> {
      // This test's own loader, so that the coverage the child records lines up with this process's.
      const child = fork(join(__dirname, 'helpers/revocation-server.ts'), [], { env, execArgv: process.execArgv, stdio: ['ignore', 'pipe', 'inherit', 'ipc'] })
      t.teardown(async () => {
        if (child.exitCode !== null || child.signalCode !== null) return
        child.kill('SIGTERM')
        await once(child, 'exit')
      })
      const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
      const [line] = await once(lines, 'line') as [string]
      return { url: `http://127.0.0.1:${(JSON.parse(line) as { port: number }).port}`, child }
    }

    async function status (instance: Instance, token: string): Promise<number> {
      return (await fetch(`${instance.url}/me`, { headers: bearer(token) })).status
    }
    async function stats (instance: Instance): Promise<RevocationStats> {
      return await (await fetch(`${instance.url}/revocation`)).json() as RevocationStats
    }
    async function post (instance: Instance, path: string, token?: string): Promise<number> {
      return (await fetch(`${instance.url}${path}`, { method: 'POST', headers: token === undefined ? {} : bearer(token) })).status
    }

    const instances = await Promise.all([start(), start(), start()])
    const [one, two, three] = instances
    const session = issuer.idToken({ sub: 'ivy' })
    const sameSignIn = issuer.accessToken({ sub: 'ivy', origin_jti: JSON.parse(Buffer.from(session.split('.')[1], 'base64url').toString()).origin_jti })
    for (const instance of instances) t.equal(await status(instance, session), 200, 'accepted before the sign-out')

    t.equal(await post(one, '/logout', session), 204, 'signed out on the first instance')
    for (const instance of [two, three]) {
      await eventually(async () => await status(instance, session) === 401, 1000)
      t.equal(await status(instance, sameSignIn), 401, 'the others refuse the sign-in\'s tokens within a second')
    }

    // Redis down.
    const duringOutage = issuer.idToken({ sub: 'jo' })
    await redis.kill()
    for (const instance of instances) await eventually(async () => !(await stats(instance)).inSync)
    for (const instance of instances) t.equal(await status(instance, session), 401, 'known revocations hold')
    t.equal(await post(two, '/logout', duringOutage), 503, 'a sign-out fails (503) while Redis is down')
    t.equal(await status(three, duringOutage), 200, 'and did not reach the others')

    // Redis back.
    await redis.restart()
    for (const instance of instances) await eventually(async () => (await stats(instance)).inSync)
    await eventually(async () => await post(three, '/sign-out/jo') === 204)
    for (const instance of instances) await eventually(async () => await status(instance, duringOutage) === 401)
    t.pass('after the resync, a sign-out reaches every instance again')

    const four = await start()
    t.equal(await status(four, session), 401, 'a late instance refuses a revoked session from its first request')
    t.equal(await status(four, duringOutage), 401, 'and a signed-out user')
    t.equal(await status(four, issuer.idToken({ sub: 'kim' })), 200, 'and accepts the others')
  })
}
