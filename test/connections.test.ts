/**
 * `app.cognitoWatch` with real connections on loopback: WebSockets (`ws` clients, served the way
 * @fastify/websocket serves them) and event streams read by fetch. Time is a fake clock where the
 * test allows (test/helpers/connections.ts): sockets stay real.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import t from 'tap'
import { channels, type CognitoWatch, type CognitoWatchEndReason, type CognitoWatchEvent } from '../index'
import { claimsOf } from './helpers/revocation-behaviour'
import { agent, closed, echoes, echoRoute, fakeTimers, issuer, openSocket, openStream, serve, sizes, streamRoute } from './helpers/connections'
import { OPEN } from './helpers/ws'

const EMPTY = { watches: 0, sessions: 0, users: 0, pools: 0, timers: 0 }

t.test('a WebSocket is closed with 4401 and "expired" once its token expires, not before', async (t) => {
  const clock = fakeTimers(t)
  const served = await serve(t, {}, (s) => echoRoute(s, '/live'))
  const token = issuer.idToken({ sub: 'ana' })
  const client = await openSocket(t, `${served.url}/live`, token)
  const exp = claimsOf(token).exp * 1000
  t.same(sizes(served.app), { watches: 1, sessions: 2, users: 1, pools: 0, timers: 1 })

  clock.tick(exp - clock.now - 1)
  t.ok(await echoes(client), 'open 1 ms before exp')
  const ending = closed(client)
  clock.tick(1)
  t.same(await ending, { code: 4401, reason: 'expired' })
  t.same(sizes(served.app), EMPTY, 'nothing left: no watch, no index entry, no timer')
})

t.test('clockTolerance: an event stream ends at exp plus the tolerance', async (t) => {
  const clock = fakeTimers(t)
  const served = await serve(t, { clockTolerance: 30 }, (s) => streamRoute(s, '/events'))
  const token = issuer.idToken({ sub: 'ana' })
  const stream = await openStream(t, `${served.url}/events`, token)
  t.equal(stream.text(), 'data: hello\n\n')
  const exp = claimsOf(token).exp * 1000
  clock.tick(exp - clock.now + 29_999)
  t.equal(sizes(served.app).watches, 1, 'open within the tolerance')
  clock.tick(1)
  await stream.ended
  t.same(sizes(served.app), EMPTY)
})

t.test('revokeSession closes the connections of that sign-in, and no other', async (t) => {
  const ends: CognitoWatchEndReason[] = []
  const served = await serve(t, {}, (s) => { echoRoute(s, '/live', ends); streamRoute(s, '/events') })
  const session = issuer.idToken({ sub: 'ana' })
  const sameSession = issuer.accessToken({ sub: 'ana', origin_jti: claimsOf(session).origin_jti })
  const otherSession = issuer.idToken({ sub: 'ana' })
  const socket = await openSocket(t, `${served.url}/live`, session)
  const stream = await openStream(t, `${served.url}/events`, sameSession)
  const other = await openSocket(t, `${served.url}/live`, otherSession)

  const ending = closed(socket)
  await served.app.cognitoRevocation.revokeSession(claimsOf(session))
  t.same(await ending, { code: 4401, reason: 'revoked' })
  await stream.ended
  t.same(ends, ['revoked'], 'onEnd called once')
  t.ok(await echoes(other), 'the other sign-in of the same user stays')
  t.equal(sizes(served.app).watches, 1)
})

t.test('signOutUser closes every connection of that user, and none of another', async (t) => {
  const served = await serve(t, {}, (s) => { echoRoute(s, '/live'); streamRoute(s, '/events') })
  const ana = [issuer.idToken({ sub: 'ana' }), issuer.accessToken({ sub: 'ana' }), issuer.idToken({ sub: 'ana' })]
  const sockets = await Promise.all(ana.map(async (token) => await openSocket(t, `${served.url}/live`, token)))
  const stream = await openStream(t, `${served.url}/events`, ana[0])
  const bob = await openSocket(t, `${served.url}/live`, issuer.idToken({ sub: 'bob' }))
  const bobStream = await openStream(t, `${served.url}/events`, issuer.idToken({ sub: 'bob' }))

  const endings = sockets.map(closed)
  await served.app.cognitoRevocation.signOutUser({ iss: issuer.issuer, sub: 'ana' })
  for (const ending of await Promise.all(endings)) t.same(ending, { code: 4401, reason: 'signed-out' })
  await stream.ended
  t.ok(await echoes(bob), 'another user\'s WebSocket stays')
  t.equal(bob.readyState, OPEN)
  t.same(sizes(served.app), { watches: 2, sessions: 4, users: 1, pools: 0, timers: 1 }, 'only bob\'s two')
  t.equal(bobStream.text(), 'data: hello\n\n')
})

t.test('a sign-out ends only the sign-ins at or before its mark', async (t) => {
  const clock = fakeTimers(t)
  const served = await serve(t, {}, (s) => echoRoute(s, '/live'))
  const start = clock.now
  clock.tick(5000)
  const client = await openSocket(t, `${served.url}/live`, issuer.idToken({ sub: 'ana' }))
  // Signed out by an instance whose clock is 5 s behind: its mark is before this sign-in.
  clock.setSystemTime(start)
  await served.app.cognitoRevocation.signOutUser({ iss: issuer.issuer, sub: 'ana' })
  await served.app.cognitoRevocation.revokeSession({ iss: issuer.issuer, origin_jti: 'another' })
  t.ok(await echoes(client))
  t.equal(sizes(served.app).watches, 1)
})

t.test('renew: a fresh token of the same user moves the deadline and the session watched; others are refused', async (t) => {
  const clock = fakeTimers(t)
  let watch: CognitoWatch | undefined
  const served = await serve(t, {}, (s) => s.ws.route('/live', s.app.authenticate, (socket, request) => {
    watch = s.app.cognitoWatch(request, (reason) => socket.close(4401, reason))
    socket.on('message', (data: Buffer) => {
      watch?.renew(data.toString()).then(() => socket.send('renewed'), (err: { code: string }) => socket.send(err.code))
    })
  }))
  const first = issuer.idToken({ sub: 'ana' })
  const client = await openSocket(t, `${served.url}/live`, first)
  const firstDeadline = (watch as CognitoWatch).deadline
  t.equal(firstDeadline, claimsOf(first).exp * 1000)

  const answer = async (text: string): Promise<string> => {
    const reply = new Promise<string>((resolve) => client.once('message', (data: Buffer) => resolve(data.toString())))
    client.send(text)
    return await reply
  }
  t.equal(await answer(issuer.idToken({ sub: 'bob' })), 'FST_COGNITO_TOKEN_INVALID', 'another user\'s token')
  const otherPool = new (issuer.constructor as typeof import('../testing').LocalIssuer)({ userPoolId: 'eu-central-1_Other' })
  t.equal(await answer(otherPool.idToken({ sub: 'ana' })), 'FST_COGNITO_TOKEN_INVALID', 'a token of another pool')
  t.equal(await answer(issuer.idToken({ sub: 'ana', exp: Math.floor(clock.now / 1000) - 10 })), 'FST_COGNITO_TOKEN_EXPIRED', 'an expired token')
  const revoked = issuer.idToken({ sub: 'ana' })
  await served.app.cognitoRevocation.revokeSession(claimsOf(revoked))
  t.equal(await answer(revoked), 'FST_COGNITO_TOKEN_REVOKED', 'a revoked token')
  t.equal((watch as CognitoWatch).deadline, firstDeadline, 'each refusal changed nothing')

  clock.tick(600_000)
  const fresh = issuer.idToken({ sub: 'ana' })
  t.equal(await answer(fresh), 'renewed')
  t.equal((watch as CognitoWatch).deadline, claimsOf(fresh).exp * 1000)
  clock.tick(firstDeadline - clock.now)
  t.ok(await echoesRenewal(client), 'open past the first token\'s exp')
  await served.app.cognitoRevocation.revokeSession(claimsOf(first))
  t.equal(client.readyState, OPEN, 'the first sign-in is no longer the one watched')
  const ending = closed(client)
  await served.app.cognitoRevocation.revokeSession(claimsOf(fresh))
  t.same(await ending, { code: 4401, reason: 'revoked' })
  await t.rejects((watch as CognitoWatch).renew(issuer.idToken({ sub: 'ana' })), { code: 'FST_COGNITO_TOKEN_INVALID' }, 'an ended watch renews nothing')
  t.same(sizes(served.app), EMPTY)
})

/** The renewal route answers every message; an empty one is no token. */
async function echoesRenewal (client: import('./helpers/ws').WsClient): Promise<boolean> {
  const reply = new Promise<string>((resolve) => client.once('message', (data: Buffer) => resolve(data.toString())))
  client.send('')
  return await reply === 'FST_COGNITO_NO_TOKEN'
}

t.test('stop, and a client that closes, leave nothing behind; stop calls no onEnd', async (t) => {
  const ends: string[] = []
  let watches: CognitoWatch[] = []
  const served = await serve(t, {}, (s) => s.ws.route('/live', s.app.authenticate, (socket, request) => {
    watches.push(s.app.cognitoWatch(request, (reason) => ends.push(reason)))
    socket.on('message', () => { watches[0].stop(); socket.send('stopped') })
  }))
  const token = issuer.idToken({ sub: 'ana' })
  const one = await openSocket(t, `${served.url}/live`, token)
  const stopped = new Promise((resolve) => one.once('message', resolve))
  one.send('stop')
  await stopped
  t.equal(watches[0].ended, true)
  t.same(sizes(served.app), EMPTY, 'stopped: nothing left')
  watches[0].stop()
  await served.app.cognitoRevocation.revokeSession(claimsOf(token))
  t.equal(one.readyState, OPEN, 'a stopped watch ends nothing')
  t.same(ends, [])

  watches = []
  const two = await openSocket(t, `${served.url}/live`, issuer.idToken({ sub: 'bob' }))
  t.equal(sizes(served.app).watches, 1)
  const gone = closed(two)
  two.close(1000)
  await gone
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(sizes(served.app), EMPTY, 'closed by the client: nothing left')
  t.equal(watches[0].ended, true)
  t.same(ends, [])
})

t.test('a watch whose response ended never touches the keep-alive connection\'s next request', async (t) => {
  const clock = fakeTimers(t)
  const sockets: unknown[] = []
  const served = await serve(t, {}, (s) => {
    s.app.get('/once', { onRequest: s.app.authenticate }, async (request) => {
      sockets.push(request.raw.socket)
      s.app.cognitoWatch(request)
      return { ok: true }
    })
    s.app.get('/events', { onRequest: s.app.authenticate }, (request, reply) => {
      sockets.push(request.raw.socket)
      reply.hijack()
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream' })
      reply.raw.write('data: hello\n\n')
    })
  })
  const dispatcher = agent(t, { connections: 1 })
  const short = issuer.idToken({ sub: 'ana' })
  const { fetch } = await import('undici')
  const first = await fetch(`http://${served.url}/once`, { headers: { authorization: `Bearer ${short}` }, dispatcher })
  t.same(await first.json(), { ok: true })
  await new Promise((resolve) => setImmediate(resolve))
  t.same(sizes(served.app), EMPTY, 'the watch stopped with its response')

  clock.tick(1000)
  const stream = await openStream(t, `${served.url}/events`, issuer.idToken({ sub: 'ana' }), dispatcher)
  t.equal(sockets[0], sockets[1], 'the same TCP connection')
  clock.tick(claimsOf(short).exp * 1000 - clock.now + 1)
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve))
  t.equal(stream.text(), 'data: hello\n\n')
  let ended = false
  void stream.ended.then(() => { ended = true }, () => {})
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(ended, false, 'the next request on that connection goes on')
})

t.test('the Sec-WebSocket-Protocol recipe: the token in the subprotocol list, only its name echoed', async (t) => {
  const clock = fakeTimers(t)
  const served = await serve(t, {
    extractToken: (request) => {
      const offered = request.headers['sec-websocket-protocol']?.split(',').map((value) => value.trim()) ?? []
      return offered[0] === 'bearer' ? offered[1] : undefined
    }
  }, (s) => echoRoute(s, '/live'), { handleProtocols: (protocols) => protocols.has('bearer') ? 'bearer' : false })
  const token = issuer.idToken({ sub: 'ana' })
  const client = await openSocket(t, `${served.url}/live`, undefined, ['bearer', token])
  t.equal(client.protocol, 'bearer', 'the token is never echoed')
  t.ok(await echoes(client))
  const ending = closed(client)
  clock.tick(claimsOf(token).exp * 1000 - clock.now)
  t.same(await ending, { code: 4401, reason: 'expired' })
})

t.test('endings are published on the watch channel, with the reason and no token', async (t) => {
  const events: CognitoWatchEvent[] = []
  const listener = (message: unknown): void => { events.push(message as CognitoWatchEvent) }
  subscribe(channels.watch, listener)
  t.teardown(() => { unsubscribe(channels.watch, listener) })
  const served = await serve(t, {}, (s) => echoRoute(s, '/live'))
  const token = issuer.idToken({ sub: 'ana' })
  const client = await openSocket(t, `${served.url}/live`, token)
  const ending = closed(client)
  await served.app.cognitoRevocation.signOutUser({ iss: issuer.issuer, sub: 'ana' })
  await ending
  t.equal(events.length, 1)
  t.equal(events[0].reason, 'signed-out')
  t.equal(events[0].request.cognitoClaims?.sub, 'ana')
  t.type(events[0].watchedMs, 'number')
  t.notOk(JSON.stringify({ reason: events[0].reason, watchedMs: events[0].watchedMs }).includes(token))
})
