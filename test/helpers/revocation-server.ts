/**
 * One instance of an application that signs users out, for the multi-process test
 * (test/revocation-processes.test.ts): the plugin with its revocation list in Redis, GET /me,
 * POST /logout (the caller's session), POST /sign-out/:sub and GET /revocation (stats()).
 * Settings come from the environment (`REVOCATION_SENTINELS`: Redis behind Sentinel, the client's
 * `{ sentinels, name }` as JSON, instead of `REVOCATION_REDIS_PORT`); it prints `{"port":N}` once listening and exits on SIGTERM
 * or when its parent goes away.
 */
import Fastify from 'fastify'
import Redis from 'ioredis'
import cognitoAuth, { type CognitoSinglePoolOptions } from '../../index'

async function main (): Promise<void> {
  const pool = JSON.parse(process.env.REVOCATION_POOL as string) as CognitoSinglePoolOptions
  const sentinels = process.env.REVOCATION_SENTINELS
  const redis = sentinels === undefined
    ? new Redis({ host: '127.0.0.1', port: Number(process.env.REVOCATION_REDIS_PORT) })
    : new Redis(JSON.parse(sentinels) as { sentinels: Array<{ host: string, port: number }>, name: string })
  redis.on('error', () => {}) // while the test has Redis down
  const app = Fastify()
  await app.register(cognitoAuth, { ...pool, tokenUse: 'any', revocation: { redis, keyPrefix: process.env.REVOCATION_PREFIX, timeout: 1 } })
  app.get('/me', { onRequest: app.authenticate }, async (request) => ({ sub: request.cognitoClaims?.sub }))
  app.post('/logout', { onRequest: app.authenticate }, async (request, reply) => {
    await app.cognitoRevocation.revokeSession(request.cognitoClaims!)
    return reply.code(204).send()
  })
  app.post<{ Params: { sub: string } }>('/sign-out/:sub', async (request, reply) => {
    await app.cognitoRevocation.signOutUser({ iss: process.env.REVOCATION_ISSUER as string, sub: request.params.sub })
    return reply.code(204).send()
  })
  app.get('/revocation', async () => app.cognitoRevocation.stats())
  const stop = async (): Promise<void> => {
    await app.close()
    redis.disconnect()
    process.exit(0)
  }
  process.once('SIGTERM', () => { void stop() })
  process.once('disconnect', () => { void stop() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  console.log(JSON.stringify({ port: (app.server.address() as { port: number }).port }))
}

void main()
