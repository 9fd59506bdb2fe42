/**
 * The long-lived connections step, short: workload watch of `npm run bench` (bench/watch.ts runs
 * this file as `node --expose-gc --import tsx bench/connections.ts`, which also works alone):
 *   - memory per watch: 10,000 open responses (100 users) on one instance, their heap with a watch
 *     each less their heap without (after a full collection);
 *   - propagation: 100 WebSockets of one user on one instance, `signOutUser` on another instance
 *     (the list in a redis-server on loopback), the time from the call to the last of the 100
 *     closes seen by its client; p50 and p99 over the rounds.
 * Both instances run in this process; the entry still travels through Redis, as between hosts.
 */
import { once } from 'node:events'
import Fastify, { type FastifyInstance } from 'fastify'
import Redis from 'ioredis'
import cognitoAuth from '../index'
import { LocalIssuer } from '../testing'
import { RedisServer, redisSkip } from '../test/helpers/redis-server'
import { webSocketRoutes } from '../test/helpers/websocket-server'
import { WebSocket, type WsClient } from '../test/helpers/ws'
import { median } from './report'

const WATCHES = Number(process.env.BENCH_WATCHES ?? 10_000)
const SOCKETS = 100
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 20)
const issuer = new LocalIssuer()
const cleanups: Array<() => unknown> = []
const teardown = { teardown: (fn: () => unknown) => { cleanups.push(fn) } }

function gc (): void {
  (globalThis as { gc?: () => void }).gc?.()
}

async function heapAfter (watched: boolean): Promise<number> {
  const app = Fastify()
  await app.register(cognitoAuth, { ...issuer.pluginOptions(), revocation: { store: 'memory' } })
  let handled = 0
  // A real connection holds its request and response: held here in both cases, the difference is the watch's.
  const held: unknown[] = []
  app.get('/poll', { onRequest: app.authenticate }, (request, reply) => {
    reply.hijack()
    handled++
    held.push(request, reply)
    if (watched) app.cognitoWatch(request)
  })
  await app.ready()
  const tokens = Array.from({ length: 100 }, (_, i) => issuer.idToken({ sub: `user-${i}` }))
  gc()
  const before = process.memoryUsage().heapUsed
  const pending: unknown[] = []
  for (let i = 0; i < WATCHES; i++) pending.push(app.inject({ url: '/poll', headers: { authorization: `Bearer ${tokens[i % 100]}` } }))
  while (handled < WATCHES) await new Promise((resolve) => setTimeout(resolve, 50))
  gc()
  const grown = process.memoryUsage().heapUsed - before
  held.length = 0
  await app.close()
  return grown
}

async function instance (redis: Redis, keyPrefix: string): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(cognitoAuth, { ...issuer.pluginOptions(), revocation: { redis, keyPrefix } })
  return app
}

async function propagation (): Promise<number[]> {
  const server = await RedisServer.start(teardown)
  const clients = [1, 2].map(() => new Redis({ host: '127.0.0.1', port: server.port }))
  cleanups.unshift(() => { for (const client of clients) client.disconnect() })
  const keyPrefix = 'bench:connections:'
  const one = await instance(clients[0], keyPrefix)
  const routes = webSocketRoutes(one)
  routes.route('/live', one.authenticate, (_socket, request) => { one.cognitoWatch(request) })
  await one.listen({ port: 0, host: '127.0.0.1' })
  const two = await instance(clients[1], keyPrefix)
  await two.ready()
  cleanups.unshift(async () => { await one.close(); await two.close() })
  const url = `ws://127.0.0.1:${(one.server.address() as { port: number }).port}/live`
  const samples: number[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const sub = `user-${round}`
    const sockets: WsClient[] = await Promise.all(Array.from({ length: SOCKETS }, async () => {
      const socket = new WebSocket(url, undefined, { headers: { authorization: `Bearer ${issuer.idToken({ sub })}` } })
      await once(socket, 'open')
      return socket
    }))
    const allClosed = Promise.all(sockets.map(async (socket) => await once(socket, 'close')))
    const start = performance.now()
    await two.cognitoRevocation.signOutUser({ iss: issuer.issuer, sub })
    await allClosed
    samples.push(performance.now() - start)
  }
  return samples.sort((a, b) => a - b)
}

async function main (): Promise<void> {
  if ((globalThis as { gc?: unknown }).gc === undefined) console.log('(run with --expose-gc for steadier memory figures)')
  const without = await heapAfter(false)
  const withWatches = await heapAfter(true)
  console.log(`memory per watch: ${Math.round((withWatches - without) / WATCHES)} bytes (${WATCHES} open responses, ${Math.round(without / WATCHES)} bytes each without a watch)`)
  if (redisSkip !== false) {
    console.log(`propagation: skipped, ${redisSkip}`)
    return
  }
  const samples = await propagation()
  const p = (q: number): string => samples[Math.min(samples.length - 1, Math.floor(samples.length * q))].toFixed(1)
  console.log(`signOutUser on another instance to the last of ${SOCKETS} WebSockets closed, ${ROUNDS} rounds: p50 ${median(samples).toFixed(1)} ms, p99 ${p(0.99)} ms`)
}

main().catch((err) => { console.error(err); process.exitCode = 1 }).finally(async () => {
  for (const cleanup of cleanups) await cleanup()
})
