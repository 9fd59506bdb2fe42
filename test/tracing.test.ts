/**
 * Tracing with @fastify/otel: it names a hook's span after the hook's function, so the plugin's
 * hooks carry their decorator's name. Spans stay in memory (InMemorySpanExporter).
 */
import { FastifyOtelInstrumentation } from '@fastify/otel'
import { context, trace } from '@opentelemetry/api'
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import cognitoAuth from '../index'
import { LocalIssuer } from '../testing'

const issuer = new LocalIssuer()

/** A tracer provider whose spans stay in memory, torn down with the test. */
function tracing (t: Test): { exporter: InMemorySpanExporter, otel: FastifyOtelInstrumentation, flush: () => Promise<void> } {
  const exporter = new InMemorySpanExporter()
  const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  provider.register()
  t.teardown(async () => {
    await provider.shutdown()
    trace.disable()
    context.disable()
  })
  const otel = new FastifyOtelInstrumentation()
  otel.setTracerProvider(provider)
  return { exporter, otel, flush: async () => await provider.forceFlush() }
}

const PLUGIN_HOOK = /^(onRequest|preHandler) - (authenticate|authenticateOptional|requireGroups|requireScopes)$/

type Tracing = ReturnType<typeof tracing>

type Case = [url: string, headers: Record<string, string>, status: number, hooks: string[]]

/** Each request's hook spans, by name (in any order: a span is exported when it ends). */
async function assertHookSpans (t: Test, app: FastifyInstance, { exporter, flush }: Tracing, cases: Case[]): Promise<void> {
  for (const [url, headers, status, hooks] of cases) {
    await flush()
    exporter.reset()
    const res = await app.inject({ url, headers })
    t.equal(res.statusCode, status, `${url}: ${status}`)
    await flush()
    const names = exporter.getFinishedSpans().map((span) => span.name)
    t.ok(names.includes('request'), `${url}: the request was traced`)
    t.same(names.filter((name) => PLUGIN_HOOK.test(name)).sort(), [...hooks].sort(), `${url}: a span per hook, by name`)
    t.same(names.filter((name) => / - (hook|authorize|anonymous)$/.test(name)), [], `${url}: no span of a nameless hook`)
  }
}

const admin = { authorization: `Bearer ${issuer.idToken({ 'cognito:groups': ['admin'] })}` }
const reader = { authorization: `Bearer ${issuer.accessToken({ scope: 'orders/read' })}` }
const ok = async (): Promise<string> => 'ok'

t.test("@fastify/otel first, as its documentation asks: the hooks' spans carry their names", async (t) => {
  const tracer = tracing(t)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(tracer.otel.plugin())
  await app.register(cognitoAuth, { ...issuer.pluginOptions(), tokenUse: 'any' })
  app.get('/admin', { onRequest: [app.authenticate, app.requireGroups('admin')] }, ok)
  app.get('/orders', { onRequest: app.authenticateOptional, preHandler: app.requireScopes('orders/read') }, ok)
  app.get('/declared', { config: { cognito: { groups: 'admin' } } }, ok)
  await assertHookSpans(t, app, tracer, [
    ['/admin', admin, 200, ['onRequest - authenticate', 'onRequest - requireGroups']],
    ['/admin', {}, 401, ['onRequest - authenticate']],
    ['/orders', reader, 200, ['onRequest - authenticateOptional', 'preHandler - requireScopes']],
    ['/orders', {}, 401, ['onRequest - authenticateOptional', 'preHandler - requireScopes']],
    // The plugin wires `config.cognito` routes in its own onRoute hook, after @fastify/otel's has
    // wrapped the route's hooks: the route works, its plugin hooks have no span of their own.
    ['/declared', admin, 200, []],
    ['/declared', {}, 401, []]
  ])
  t.same([app.authenticate.name, app.authenticateOptional.name, app.requireGroups('a').name, app.requireScopes('s').name],
    ['authenticate', 'authenticateOptional', 'requireGroups', 'requireScopes'], 'the decorators bear their names')
})

t.test('@fastify/otel after the plugin: config.cognito routes get a span per hook too', async (t) => {
  const tracer = tracing(t)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, { ...issuer.pluginOptions(), tokenUse: 'any' })
  await app.register(tracer.otel.plugin())
  app.get('/declared', { config: { cognito: { groups: 'admin' } } }, ok)
  app.get('/scoped', { config: { cognito: { scopes: 'orders/read', optional: true } } }, ok)
  await assertHookSpans(t, app, tracer, [
    ['/declared', admin, 200, ['onRequest - authenticate', 'onRequest - requireGroups']],
    ['/scoped', reader, 200, ['onRequest - authenticateOptional', 'onRequest - requireScopes']]
  ])
})
