/**
 * One benchmarked server: the variant named in BENCH_SERVER (see ServerSpec), one route, listening
 * on an ephemeral port of 127.0.0.1. It prints `{"port":N}` once ready, and exits when told
 * (SIGTERM) or when the runner goes away (IPC disconnect), closing Fastify first so that a
 * `--cpu-prof` profile gets written.
 */
import Fastify, { type RouteShorthandOptions } from 'fastify'
import type { AddressInfo } from 'node:net'
import { CPU_ROUTE, HEAP_ROUTE, ROUTE, type ServerSpec } from './config'
import { variants } from './variants'

async function main (): Promise<void> {
  const spec = JSON.parse(process.env.BENCH_SERVER ?? '') as ServerSpec
  const app = Fastify()
  app.decorateRequest('benchSubject', '')
  const { hook, subject } = await variants[spec.variant](app, spec)

  const options: RouteShorthandOptions = hook === undefined ? {} : { onRequest: hook }
  app.get(ROUTE, options, async (request) => ({ sub: subject(request) }))
  // For the memory step: the heap after a full collection (the process runs with --expose-gc).
  app.get(HEAP_ROUTE, async () => {
    globalThis.gc?.()
    return { heapUsed: process.memoryUsage().heapUsed }
  })
  // CPU time is what a variant costs even when other processes share the cores.
  app.get(CPU_ROUTE, async () => {
    const { user, system } = process.cpuUsage()
    return { micros: user + system }
  })

  await app.listen({ host: '127.0.0.1', port: 0 })
  let closing = false
  const stop = (): void => {
    if (closing) return
    closing = true
    app.close().finally(() => process.exit(0))
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  process.on('disconnect', stop)
  process.stdout.write(`${JSON.stringify({ port: (app.server.address() as AddressInfo).port })}\n`)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
