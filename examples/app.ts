/**
 * An example API protected by fastify-cognito-jwt:
 *   GET /        public
 *   GET /me      any signed-in user (ID or access token): their row in the app's user store
 *   GET /admin   users in the Cognito group `admin`
 *   GET /orders  access tokens granted the OAuth scope `orders/read`
 *   POST /logout signs the caller's session out: its tokens are refused from then on
 *   GET /alb/me  behind an Application Load Balancer (with the `alb` option): the user, from the
 *                load balancer's signed headers instead of a Bearer token
 */
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
// This example imports the plugin's source so it runs without a build; an application writes
// `import cognitoAuth, { type CognitoSinglePoolOptions } from 'fastify-cognito-jwt'`.
import cognitoAuth, { type CognitoAlbOptions, type CognitoSinglePoolOptions } from '../index'
import type { User, UserStore } from './users'

// Tells TypeScript what `resolveUser` returns, so `request.cognitoUser` is a `User` everywhere.
// An application names the package here: `declare module 'fastify-cognito-jwt'`.
declare module '../index' {
  interface CognitoUserRegistry {
    user: User
  }
}

export interface AppOptions {
  /** Which user pool and app client to trust: `userPoolId`, `clientId`, and optionally `issuer`/`jwksUri`. */
  cognito: CognitoSinglePoolOptions
  /** Where users are kept; the caller opens and closes it. */
  users: UserStore
  /** The load balancer in front of `/alb`, if any: its ARN and where its keys are served. */
  alb?: CognitoAlbOptions
  logger?: FastifyServerOptions['logger']
}

export function buildApp ({ cognito, users, alb, logger = false }: AppOptions): FastifyInstance {
  const app = Fastify({ logger })
  // Two APIs, each in a scope of its own with its own registration of the plugin: Bearer tokens
  // at the root, the load balancer's headers under /alb.
  app.register(async function bearerApi (api) {
    await bearerRoutes(api, cognito, users)
  })
  if (alb !== undefined) {
    app.register(async function albApi (api) {
      await api.register(cognitoAuth, {
        ...cognito,
        // The pool verifies the access token the load balancer forwards with its own.
        tokenUse: 'access',
        alb,
        resolveUser: (claims) => users.findOrCreate(claims)
      })
      // The load balancer's user claims (userInfo: email, ...) next to the application's user.
      api.get('/me', { onRequest: [api.authenticate] }, async (request) => ({
        user: request.cognitoUser,
        email: request.cognitoAlbClaims?.email
      }))
    }, { prefix: '/alb' })
  }
  return app
}

async function bearerRoutes (app: FastifyInstance, cognito: CognitoSinglePoolOptions, users: UserStore): Promise<void> {
  await app.register(cognitoAuth, {
    ...cognito,
    // Both kinds of Cognito token are accepted: ID tokens say who the user is, access tokens
    // also carry the OAuth scopes that /orders asks for.
    tokenUse: 'any',
    // Runs once the token is verified; its result becomes `request.cognitoUser`.
    resolveUser: (claims) => users.findOrCreate(claims),
    // The revocation list behind POST /logout. In memory it holds for this one process; an API
    // that runs several instances gives its Redis client instead: `revocation: { redis }`.
    revocation: { store: 'memory' }
  })

  // The routes are a plugin of their own, loaded once cognitoAuth is: `api.authenticate` and the
  // other decorators exist by then (and if the plugin's options are wrong, startup fails first).
  await app.register(async function routes (api) {
    api.get('/', async () => ({ hello: 'world', signIn: 'send a Cognito token to /me' }))

    api.get('/me', { onRequest: [api.authenticate] }, async (request) => request.cognitoUser)

    api.get('/admin', { onRequest: [api.authenticate, api.requireGroups('admin')] }, async () => ({
      users: users.count()
    }))

    // The same needs, declared in the route's config instead of hooks. An ID token has no
    // `scope` claim, so it gets 403 here.
    api.get('/orders', { config: { cognito: { scopes: ['orders/read'] } } }, async (request) => {
      const user = request.cognitoUser as User // never null here: the route requires a token
      return { owner: user.id, orders: [{ id: 1, item: 'coffee beans', quantity: 2 }] }
    })

    // Every ID and access token of the caller's sign-in is refused from now on. The client also
    // calls Cognito's RevokeToken with its refresh token, so that no new ones are issued.
    api.post('/logout', { onRequest: [api.authenticate] }, async (request, reply) => {
      await api.cognitoRevocation.revokeSession(request.cognitoClaims!)
      return reply.code(204).send()
    })
  })
}
