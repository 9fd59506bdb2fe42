/**
 * `app.cognitoWatch` with @fastify/websocket itself: the README's recipes, against the package's
 * own upgrade path and `websocketServer`. Skipped where the package is not installed;
 * test/connections.test.ts covers the same behaviour with a server that upgrades the way
 * @fastify/websocket does.
 */
import { once } from 'node:events'
import Fastify, { type FastifyInstance, type FastifyPluginAsync, type FastifyRequest } from 'fastify'
import t, { type Test } from 'tap'
import cognitoAuth, { type CognitoAuthOptions } from '../index'
import { claimsOf } from './helpers/revocation-behaviour'
import { closed, echoes, fakeTimers, issuer, openSocket, sizes } from './helpers/connections'
import type { WsClient } from './helpers/ws'

type WebSocketPlugin = FastifyPluginAsync<{ options?: { handleProtocols?: (protocols: Set<string>) => string | false } }>

function load (): WebSocketPlugin | undefined {
  const name = '@fastify/websocket'
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require(name) as { default: WebSocketPlugin }).default
  } catch {
    return undefined
  }
}

const websocket = load()

if (websocket === undefined) {
  t.plan(0, '@fastify/websocket is not installed')
} else {
  async function serve (t: Test, options: Partial<CognitoAuthOptions> = {}, protocols = false): Promise<{ app: FastifyInstance, url: string }> {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(cognitoAuth, { ...issuer.pluginOptions(), tokenUse: 'any', revocation: { store: 'memory' }, ...options } as CognitoAuthOptions)
    await app.register(websocket as WebSocketPlugin, protocols ? { options: { handleProtocols: (offered) => (offered.has('bearer') ? 'bearer' : false) } } : {})
    const handler = (socket: WsClient, request: FastifyRequest): void => {
      app.cognitoWatch(request)
      socket.on('message', (data: Buffer) => socket.send(data.toString()))
    }
    app.get('/live', { websocket: true, onRequest: [app.authenticate] } as never, handler as never)
    await app.listen({ port: 0, host: '127.0.0.1' })
    return { app, url: `127.0.0.1:${(app.server.address() as { port: number }).port}/live` }
  }

  t.test('closed with 4401 and "expired" at exp, by default', async (t) => {
    const clock = fakeTimers(t)
    const { app, url } = await serve(t)
    const token = issuer.idToken({ sub: 'ana' })
    const client = await openSocket(t, url, token)
    t.ok(await echoes(client))
    const ending = closed(client)
    clock.tick(claimsOf(token).exp * 1000 - clock.now)
    t.same(await ending, { code: 4401, reason: 'expired' })
    while (sizes(app).watches > 0) await new Promise((resolve) => setImmediate(resolve))
    t.same(sizes(app), { watches: 0, sessions: 0, users: 0, pools: 0, timers: 0 })
  })

  t.test('signOutUser closes the user\'s sockets and no other; a client close leaves nothing', async (t) => {
    const { app, url } = await serve(t)
    const ana = await openSocket(t, url, issuer.idToken({ sub: 'ana' }))
    const bob = await openSocket(t, url, issuer.idToken({ sub: 'bob' }))
    const ending = closed(ana)
    await app.cognitoRevocation.signOutUser({ iss: issuer.issuer, sub: 'ana' })
    t.same(await ending, { code: 4401, reason: 'signed-out' })
    t.ok(await echoes(bob))
    bob.close()
    await once(bob, 'close')
    while (sizes(app).watches > 0) await new Promise((resolve) => setImmediate(resolve))
    t.same(sizes(app), { watches: 0, sessions: 0, users: 0, pools: 0, timers: 0 })
  })

  t.test('the subprotocol recipe', async (t) => {
    const { app, url } = await serve(t, {
      extractToken: (request) => {
        const offered = request.headers['sec-websocket-protocol']?.split(',').map((value) => value.trim()) ?? []
        return offered[0] === 'bearer' ? offered[1] : undefined
      }
    }, true)
    const token = issuer.idToken({ sub: 'ana' })
    const client = await openSocket(t, url, undefined, ['bearer', token])
    t.equal(client.protocol, 'bearer')
    const ending = closed(client)
    await app.cognitoRevocation.revokeSession(claimsOf(token))
    t.same(await ending, { code: 4401, reason: 'revoked' })
  })
}
