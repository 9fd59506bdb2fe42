/**
 * Routes that declare `config.cognito` get their hooks from the plugin's `onRoute` hook, which
 * sees only the routes declared after the plugin loaded, in its scope and the scopes created
 * after it. A route declared before (an unawaited register, a route or a scope first) or outside
 * it (a sibling scope) would get no hook at all: it would be public.
 *
 * So every Fastify instance created once this module is loaded is watched from its creation,
 * through Fastify's `fastify.initialization` diagnostics channel: a root-level `onRoute` hook
 * notes each route that declares `config.cognito`, and the server refuses to become ready while
 * one of them was not wired by the plugin. It all happens at startup: a wired route pays nothing
 * per request.
 */
import { subscribe } from 'node:diagnostics_channel'
import type { FastifyInstance, FastifyRequest, onRequestHookHandler, RouteOptions } from 'fastify'
import { InvalidOptionError } from './errors'

// Registry symbols: a CommonJS and an ES copy of the package in one process must agree on them.
/** Decorates the root of a watched instance; scopes inherit it. */
export const kRouteGuard = Symbol.for('fastify-cognito-jwt.route-guard')
const kWired = Symbol.for('fastify-cognito-jwt.wired')

type Hook = onRequestHookHandler & { [kWired]?: false }

/** Whether the plugin wired the route of this config: the one mark, read at startup and per request. */
function isWired (config: unknown): boolean {
  return (config as { [kWired]?: true })[kWired] === true
}

/**
 * The first hook of every `config.cognito` route until the plugin wires it: should a failed start
 * be ignored (e.g. `inject` after `ready()` rejected), the route still answers no request. Wiring
 * removes it; one that another plugin's `onRoute` wrapped in between (e.g. @fastify/otel's
 * spans) is no longer recognised, so it reads the route's mark and lets a wired route through.
 */
const refuseUnwired: Hook = Object.assign(function refuseUnwired (request: FastifyRequest, _reply: unknown, done: (err?: Error) => void): void {
  if (isWired(request.routeOptions.config)) done()
  else done(unwiredRoute())
}, { [kWired]: false as const })

function unwiredRoute (): Error {
  return new InvalidOptionError('config.cognito', 'this route was declared where fastify-cognito-jwt could not add its hooks')
}

function ownHooks (route: RouteOptions): onRequestHookHandler[] {
  const own = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest]
  return (own as Hook[]).filter((hook) => hook[kWired] !== false)
}

/**
 * Puts the plugin's hooks first on a route (in the options object `onRoute` got), before the
 * route's own, in place of the refusing hook, and marks its config as wired. Fastify copies the
 * config into the route's context, symbol keys included, so requests see the mark too.
 */
export function wireRoute (route: RouteOptions, hooks: readonly onRequestHookHandler[]): void {
  route.onRequest = [...hooks, ...ownHooks(route)]
  route.config = { ...route.config, [kWired]: true } as RouteOptions['config']
}

/**
 * For an instance created before this module loaded, whose earlier routes nothing watched: a
 * hook that refuses any `config.cognito` route the plugin did not wire. It costs a property read
 * per request, on those instances only.
 */
const refuseUnwiredRequest: onRequestHookHandler = function refuseUnwiredRequest (request, _reply, done) {
  const config = request.routeOptions.config
  if (config.cognito === undefined || isWired(config)) done()
  else done(unwiredRoute())
}

const lateRoots = new WeakSet<object>()

/**
 * The late-import fallback, on the root of the scope the plugin is registered in: Fastify adds a
 * root hook to every scope, those created before it included (and their routes, declared before
 * or after), so that a sibling scope's `config.cognito` route is refused per request too, not
 * only the plugin's own scope. Fastify's scopes inherit from their parent's object, so the root is
 * the end of the prototype chain of instances. The hook is added once per root.
 */
export function guardLateInstance (scope: FastifyInstance): void {
  let root = scope
  for (let parent: unknown = Object.getPrototypeOf(root); isInstance(parent); parent = Object.getPrototypeOf(parent)) root = parent
  if (lateRoots.has(root)) return
  lateRoots.add(root)
  root.addHook('onRequest', refuseUnwiredRequest)
}

/** Said at `warn` on every registration in an instance created before the module loaded. */
export const LATE_IMPORT_WARNING = 'cognito: this Fastify instance was created before fastify-cognito-jwt was loaded, ' +
  'so config.cognito routes the plugin cannot wire are refused per request (500) instead of stopping the start; ' +
  'load the module before creating the instance (fastify-cli: -r fastify-cognito-jwt; node --require or --import fastify-cognito-jwt) to have them refused at startup'

function isInstance (value: unknown): value is FastifyInstance {
  return typeof (value as Partial<FastifyInstance> | null)?.addHook === 'function'
}

function describe (route: RouteOptions): string {
  const methods = Array.isArray(route.method) ? route.method.join(',') : route.method
  return `${methods} ${route.url}`
}

/** Watches the routes of a new root instance; a second copy of the package leaves it to the first. */
export function guardRoutes (root: FastifyInstance): void {
  if (root.hasDecorator(kRouteGuard)) return
  root.decorate(kRouteGuard, true)
  const declared: RouteOptions[] = []
  // Added when the instance is created, this hook runs before any the plugin adds.
  root.addHook('onRoute', (route) => {
    if (route.config?.cognito === undefined) return
    declared.push(route)
    route.onRequest = [refuseUnwired, ...ownHooks(route)]
  })
  root.addHook('onReady', async () => {
    const unwired = declared.filter((route) => !isWired(route.config)).map(describe)
    declared.length = 0
    if (unwired.length === 0) return
    throw new InvalidOptionError('config.cognito', `routes ${unwired.join(', ')} declare it where fastify-cognito-jwt ` +
      'could not add its hooks (declared before the plugin loaded, or outside its scope), so they would be public: ' +
      'await app.register(cognitoAuth, options) in their scope or a parent before declaring them')
  })
}

subscribe('fastify.initialization', (message) => {
  guardRoutes((message as { fastify: FastifyInstance }).fastify)
})
