/**
 * A Fastify app with the plugin registered, for tests that go through `app.inject`. It has two
 * routes that echo what the plugin put on the request: `/private` behind `authenticate`, and
 * `/public` without it. The app is closed when the test ends.
 */
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import cognitoAuth, { type CognitoAuthOptions } from '../../index'

/** What `t` offers that the helper needs: a place to close the app. */
export interface Teardown {
  teardown: (fn: () => unknown) => void
}

export async function buildApp (t: Teardown, options: CognitoAuthOptions, server: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify(server)
  t.teardown(() => app.close())
  await app.register(cognitoAuth, options)
  const echo = async (request: { cognitoClaims: unknown, cognitoUser: unknown }) => ({
    claims: request.cognitoClaims,
    user: request.cognitoUser
  })
  app.get('/private', { onRequest: app.authenticate }, echo)
  app.get('/public', echo)
  return app
}

/** The request headers that carry a token. */
export function bearer (token: string): { authorization: string } {
  return { authorization: `Bearer ${token}` }
}
