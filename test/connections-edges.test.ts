/**
 * `app.cognitoWatch` at its edges: the default endings, misuse, races with revocations and
 * renewals, resolved pools that are removed, an instance without a revocation list, and the
 * bounds of ten thousand watches.
 */
import { request as httpRequest } from 'node:http'
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import t from 'tap'
import cognitoAuth, { type CognitoPoolAnswer, type CognitoWatch, type CognitoWatchEndReason } from '../index'
import { LocalIssuer } from '../testing'
import { claimsOf } from './helpers/revocation-behaviour'
import { OPEN } from './helpers/ws'
import { closed, echoes, echoRoute, fakeTimers, issuer, openSocket, openStream, serve, sizes, streamRoute } from './helpers/connections'

const EMPTY = { watches: 0, sessions: 0, users: 0, pools: 0, timers: 0 }

async function settle (): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve))
}

t.test('a response not yet started answers 401 with the refusal\'s code and challenge', async (t) => {
  const served = await serve(t, {}, (s) => {
    s.app.get('/poll', { onRequest: s.app.authenticate }, (request, reply) => {
      reply.hijack()
      s.app.cognitoWatch(request)
    })
  })
  const token = issuer.idToken({ sub: 'ana' })
  const answered = new Promise<{ status: number, challenge: string, body: string }>((resolve, reject) => {
    const req = httpRequest(`http://${served.url}/poll`, { headers: { authorization: `Bearer ${token}` } }, (res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => { body += chunk.toString() })
      res.on('end', () => resolve({ status: res.statusCode as number, challenge: res.headers['www-authenticate'] as string, body }))
    })
    req.on('error', reject)
    req.end()
  })
  while (sizes(served.app).watches === 0) await settle()
  await served.app.cognitoRevocation.revokeSession(claimsOf(token))
  const { status, challenge, body } = await answered
  t.equal(status, 401)
  t.match(challenge, /error="invalid_token"/)
  t.equal(JSON.parse(body).code, 'FST_COGNITO_TOKEN_REVOKED')
})

t.test('the default 401 names each reason\'s code', async (t) => {
  const clock = fakeTimers(t)
  const served = await serve(t, {}, (s) => {
    s.app.get('/poll', { onRequest: s.app.authenticate }, (request, reply) => {
      reply.hijack()
      s.app.cognitoWatch(request)
    })
  })
  const res = s2(served.url, issuer.idToken({ sub: 'ana' }))
  while (sizes(served.app).watches === 0) await settle()
  clock.tick(3600_000)
  t.equal(JSON.parse((await res).body).code, 'FST_COGNITO_TOKEN_EXPIRED')
})

function s2 (url: string, token: string): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`http://${url}/poll`, { headers: { authorization: `Bearer ${token}` } }, (res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => { body += chunk.toString() })
      res.on('end', () => resolve({ status: res.statusCode as number, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('a WebSocket server the plugin does not know: the upgraded socket is destroyed', async (t) => {
  const served = await serve(t, {}, (s) => echoRoute(s, '/live'), { announce: false })
  const token = issuer.idToken({ sub: 'ana' })
  const client = await openSocket(t, `${served.url}/live`, token)
  const ending = closed(client)
  await served.app.cognitoRevocation.revokeSession(claimsOf(token))
  t.equal((await ending).code, 1006, 'no close frame: the connection itself ended')
  t.same(sizes(served.app), EMPTY)
})

t.test('misuse: a request authenticate did not accept, an onEnd that is no function', async (t) => {
  const served = await serve(t, {}, (s) => {
    s.app.get('/anonymous', async (request) => {
      try {
        s.app.cognitoWatch(request)
      } catch (err) {
        return { error: (err as Error).message }
      }
    })
    s.app.get('/bad', { onRequest: s.app.authenticate }, async (request) => {
      try {
        s.app.cognitoWatch(request, 'close' as never)
      } catch (err) {
        return { error: (err as Error).message }
      }
    })
  })
  t.same((await served.app.inject('/anonymous')).json(), { error: 'cognitoWatch needs a request that app.authenticate accepted' })
  const bad = await served.app.inject({ url: '/bad', headers: { authorization: `Bearer ${issuer.idToken()}` } })
  t.same(bad.json(), { error: 'cognitoWatch: onEnd must be a function' })
  t.same(sizes(served.app), EMPTY)
})

t.test('an onEnd that throws is logged; the watch is gone all the same', async (t) => {
  const lines: string[] = []
  const app = Fastify({ logger: { level: 'error', stream: new Writable({ write (chunk: Buffer, _enc, done) { lines.push(chunk.toString()); done() } }) } })
  t.teardown(() => app.close())
  await app.register(cognitoAuth, { ...issuer.pluginOptions(), revocation: { store: 'memory' } })
  app.get('/poll', { onRequest: app.authenticate }, (request, reply) => {
    reply.hijack()
    app.cognitoWatch(request, () => { reply.raw.end(); throw new Error('boom') })
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const token = issuer.idToken({ sub: 'ana' })
  const res = s2(`127.0.0.1:${(app.server.address() as { port: number }).port}`, token)
  while (sizes(app).watches === 0) await settle()
  await app.cognitoRevocation.revokeSession(claimsOf(token))
  t.equal((await res).status, 200)
  t.match(lines.join(''), /a watch's onEnd threw/)
  t.same(sizes(app), EMPTY)
})

t.test('revoked between authenticate and cognitoWatch: the watch ends at once (unless stopped first)', async (t) => {
  const ends: CognitoWatchEndReason[] = []
  let stoppedWatch: CognitoWatch | undefined
  const served = await serve(t, {}, (s) => {
    s.ws.route('/late', s.app.authenticate, (socket, request) => {
      void s.app.cognitoRevocation.revokeSession(request.cognitoClaims as { iss: string, origin_jti: string }).then(() => {
        s.app.cognitoWatch(request, (reason) => { ends.push(reason); socket.close(4401, reason) })
      })
    })
    s.ws.route('/stopped', s.app.authenticate, (_socket, request) => {
      void s.app.cognitoRevocation.revokeSession(request.cognitoClaims as { iss: string, origin_jti: string }).then(() => {
        stoppedWatch = s.app.cognitoWatch(request, (reason) => ends.push(reason))
        stoppedWatch.stop()
      })
    })
  })
  const late = await openSocket(t, `${served.url}/late`, issuer.idToken({ sub: 'ana' }))
  t.same(await closed(late), { code: 4401, reason: 'revoked' })
  const other = await openSocket(t, `${served.url}/stopped`, issuer.idToken({ sub: 'bob' }))
  while (stoppedWatch === undefined) await settle()
  await settle()
  t.equal(other.readyState, OPEN)
  t.same(ends, ['revoked'], 'the stopped watch called nothing')
  t.equal(stoppedWatch?.ended, true)
  t.same(sizes(served.app), EMPTY)
})

t.test('a response closed before cognitoWatch: the watch has ended already', async (t) => {
  let watch: CognitoWatch | undefined
  const served = await serve(t, {}, (s) => {
    s.app.get('/gone', { onRequest: s.app.authenticate }, async (request, reply) => {
      await reply.send({ ok: true })
      await new Promise((resolve) => reply.raw.once('close', resolve))
      watch = s.app.cognitoWatch(request)
    })
  })
  await served.app.inject({ url: '/gone', headers: { authorization: `Bearer ${issuer.idToken()}` } })
  await settle()
  t.equal(watch?.ended, true)
  t.same(sizes(served.app), EMPTY)
})

t.test('renew: no token, a watch that ends meanwhile, isRevoked', async (t) => {
  const revokedTokens = new Set<string>()
  let stopDuringCheck: CognitoWatch | undefined
  const watches: CognitoWatch[] = []
  const served = await serve(t, {
    isRevoked: async (claims) => {
      stopDuringCheck?.stop()
      if (claims.jti === 'throws') throw new Error('store down')
      return revokedTokens.has(claims.jti as string)
    }
  }, (s) => s.ws.route('/live', s.app.authenticate, (_socket, request) => {
    watches.push(s.app.cognitoWatch(request))
  }))
  const open = async (): Promise<CognitoWatch> => {
    await openSocket(t, `${served.url}/live`, issuer.idToken({ sub: 'ana' }))
    while (watches.length === 0) await settle()
    return watches.shift() as CognitoWatch
  }
  const watch = await open()
  await t.rejects(watch.renew(''), { code: 'FST_COGNITO_NO_TOKEN' })
  await t.rejects(watch.renew(undefined as never), { code: 'FST_COGNITO_NO_TOKEN' })

  const fresh = issuer.idToken({ sub: 'ana' })
  await watch.renew(fresh)
  t.equal(watch.deadline, claimsOf(fresh).exp * 1000, 'isRevoked cleared it')
  const revoked = issuer.idToken({ sub: 'ana', jti: 'revoked-one' })
  revokedTokens.add('revoked-one')
  await t.rejects(watch.renew(revoked), { code: 'FST_COGNITO_TOKEN_REVOKED' })
  await t.rejects(watch.renew(issuer.idToken({ sub: 'ana', jti: 'throws' })), { code: 'FST_COGNITO_TOKEN_REVOKED' }, 'a throw does not clear')

  // Stopped while the verification is awaited.
  const renewal = watch.renew(issuer.idToken({ sub: 'ana' }))
  watch.stop()
  await t.rejects(renewal, { code: 'FST_COGNITO_TOKEN_INVALID' })

  // Stopped while isRevoked is asked.
  const second = await open()
  stopDuringCheck = second
  await t.rejects(second.renew(issuer.idToken({ sub: 'ana' })), { code: 'FST_COGNITO_TOKEN_INVALID' })
  t.same(sizes(served.app), EMPTY)
})

t.test('without the revocation option, watches still end at exp', async (t) => {
  const clock = fakeTimers(t)
  const served = await serve(t, { revocation: undefined }, (s) => { echoRoute(s, '/live'); streamRoute(s, '/events') })
  const token = issuer.idToken({ sub: 'ana' })
  const client = await openSocket(t, `${served.url}/live`, token)
  const stream = await openStream(t, `${served.url}/events`, token)
  const ending = closed(client)
  clock.tick(claimsOf(token).exp * 1000 - clock.now)
  t.same(await ending, { code: 4401, reason: 'expired' })
  await stream.ended
  t.same(sizes(served.app), EMPTY)
})

t.test('a deadline beyond the longest timer is reached in steps; an early timer finds nothing due', async (t) => {
  const clock = fakeTimers(t)
  const served = await serve(t, {}, (s) => echoRoute(s, '/live'))
  const far = issuer.idToken({ sub: 'ana', exp: Math.floor(clock.now / 1000) + 40 * 86_400 })
  const near = issuer.idToken({ sub: 'bob' })
  const farClient = await openSocket(t, `${served.url}/live`, far)
  const nearClient = await openSocket(t, `${served.url}/live`, near)
  // The earliest is taken out: the timer armed for it fires, finds nothing due, arms for the next.
  nearClient.close()
  await closed(nearClient)
  while (sizes(served.app).watches > 1) await settle()
  clock.tick(3600_000)
  t.ok(await echoes(farClient), 'open after the removed one\'s deadline')
  clock.tick(2 ** 31 - 1)
  t.ok(await echoes(farClient), 'open after the longest timer')
  const ending = closed(farClient)
  clock.tick(claimsOf(far).exp * 1000 - clock.now)
  t.same(await ending, { code: 4401, reason: 'expired' })
})

t.test('a resolved pool: asked again every poolCache.ttl while watched; its connections end once it is no pool', async (t) => {
  const clock = fakeTimers(t)
  const tenant = new LocalIssuer({ userPoolId: 'eu-west-1_Tenant' })
  const other = new LocalIssuer({ userPoolId: 'eu-west-1_Other' })
  let answer: 'pool' | 'none' | 'fail' = 'pool'
  let asked = 0
  const resolve = (iss: string): CognitoPoolAnswer | null => {
    asked++
    if (answer === 'fail') throw new Error('tenant store down')
    const found = [tenant, other].find((candidate) => candidate.issuer === iss)
    if (found === undefined || (answer === 'none' && found === tenant)) return null
    const { userPoolId, clientId, jwks } = found.pluginOptions()
    return { userPoolId, clientId, jwks, jwksUri: false }
  }
  const served = await serve(t, {
    userPools: resolve,
    poolCache: { ttl: 60 }
  }, (s) => {
    echoRoute(s, '/live')
    s.app.get('/poll', { onRequest: s.app.authenticate }, (request, reply) => {
      reply.hijack()
      s.app.cognitoWatch(request)
    })
  })
  const token = tenant.idToken({ sub: 'ana' })
  const client = await openSocket(t, `${served.url}/live`, token)
  const bystander = await openSocket(t, `${served.url}/live`, other.idToken({ sub: 'bob' }))
  t.equal(sizes(served.app).pools, 2)
  const before = asked

  answer = 'fail'
  clock.tick(60_000)
  await settle()
  t.equal(asked, before + 2, 'asked again without a request')
  t.ok(await echoes(client), 'a resolver that fails ends nothing')

  answer = 'pool'
  const poll = s2(served.url, tenant.idToken({ sub: 'cy' }))
  while (sizes(served.app).watches < 3) await settle()
  answer = 'none'
  const ending = closed(client)
  clock.tick(60_000)
  t.same(await ending, { code: 4401, reason: 'pool-removed' })
  t.same(await poll, { status: 401, body: JSON.stringify({ statusCode: 401, code: 'FST_COGNITO_TOKEN_INVALID', error: 'Unauthorized', message: 'The token is invalid' }) })
  t.ok(await echoes(bystander), 'another pool\'s connection stays')
  t.equal(sizes(served.app).pools, 1)
  bystander.close()
  await closed(bystander)
  while (sizes(served.app).watches > 0) await settle()
  t.same(sizes(served.app), EMPTY)
})

t.test('a resolved pool whose resolver keeps failing past the stale window: its connections stay, asked again each ttl', async (t) => {
  const clock = fakeTimers(t)
  const tenant = new LocalIssuer({ userPoolId: 'eu-west-1_Failing' })
  let failing = false
  let asked = 0
  const served = await serve(t, {
    userPools: (): CognitoPoolAnswer => {
      asked++
      if (failing) throw new Error('tenant store down')
      const { userPoolId, clientId, jwks } = tenant.pluginOptions()
      return { userPoolId, clientId, jwks, jwksUri: false }
    },
    poolCache: { ttl: 60 }
  }, (s) => echoRoute(s, '/live'))
  const client = await openSocket(t, `${served.url}/live`, tenant.idToken({ sub: 'ana' }))
  failing = true
  clock.tick(60_000)
  await settle()
  t.equal(asked, 2, 'the last answer serves while the resolver is asked again, and fails')
  clock.tick(60_000)
  await settle()
  t.equal(asked, 3, 'past the stale window the question itself fails')
  t.ok(await echoes(client), 'a resolver that cannot answer ends nothing')
  t.equal(sizes(served.app).pools, 1, 'and the pool is asked about again after the next ttl')
  client.close()
  await closed(client)
})

t.test('an evicted pool with watched connections stays watched; once the resolver no longer names it, they end', async (t) => {
  const clock = fakeTimers(t)
  const tenant = new LocalIssuer({ userPoolId: 'eu-west-1_Evicted' })
  const other = new LocalIssuer({ userPoolId: 'eu-west-1_Newcomer' })
  let tenantGone = false
  const served = await serve(t, {
    userPools: (iss: string): CognitoPoolAnswer | null => {
      const found = [tenant, other].find((candidate) => candidate.issuer === iss)
      if (found === undefined || (tenantGone && found === tenant)) return null
      const { userPoolId, clientId, jwks } = found.pluginOptions()
      return { userPoolId, clientId, jwks, jwksUri: false }
    },
    poolCache: { ttl: 60, max: 1 }
  }, (s) => echoRoute(s, '/live'))
  const client = await openSocket(t, `${served.url}/live`, tenant.idToken({ sub: 'ana' }))
  const newcomer = await openSocket(t, `${served.url}/live`, other.idToken({ sub: 'bob' }))
  t.ok(await echoes(client), 'evicted by the newcomer\'s pool (max 1), the connection stays: the pool still stands')
  tenantGone = true
  const ending = closed(client)
  clock.tick(60_000)
  t.same(await ending, { code: 4401, reason: 'pool-removed' })
  t.ok(await echoes(newcomer))
  newcomer.close()
  await closed(newcomer)
})

t.test('ten thousand watches: found by index, bounded, and nothing left once they end', async (t) => {
  const served = await serve(t, {}, (s) => {
    s.app.get('/poll', { onRequest: s.app.authenticate }, (request, reply) => {
      reply.hijack()
      s.app.cognitoWatch(request)
    })
  })
  const users = 100
  const tokens = Array.from({ length: users }, (_, i) => issuer.idToken({ sub: `user-${i}` }))
  const answers: Array<Promise<{ statusCode: number }>> = []
  for (let i = 0; i < 10_000; i++) {
    answers.push(served.app.inject({ url: '/poll', headers: { authorization: `Bearer ${tokens[i % users]}` } }))
  }
  while (sizes(served.app).watches < 10_000) await settle()
  t.same(sizes(served.app), { watches: 10_000, sessions: 2 * users, users, pools: 0, timers: 1 })
  await served.app.cognitoRevocation.signOutUser({ iss: issuer.issuer, sub: 'user-0' })
  t.equal(sizes(served.app).watches, 9_900, 'one user\'s hundred, and no other')
  for (let i = 1; i < users; i++) await served.app.cognitoRevocation.signOutUser({ iss: issuer.issuer, sub: `user-${i}` })
  const statuses = new Set((await Promise.all(answers)).map((res) => res.statusCode))
  t.same([...statuses], [401])
  t.same(sizes(served.app), EMPTY)
})

t.test('closing the instance stops every watch', async (t) => {
  const served = await serve(t, {}, (s) => streamRoute(s, '/events'))
  await openStream(t, `${served.url}/events`, issuer.idToken({ sub: 'ana' }))
  t.equal(sizes(served.app).watches, 1)
  const closing = served.app.close()
  served.app.server.closeAllConnections()
  await closing
  t.same(sizes(served.app), EMPTY)
})

t.test('a pool\'s question still out when its last connection closes: the answer is let go', async (t) => {
  const clock = fakeTimers(t)
  const tenant = new LocalIssuer({ userPoolId: 'eu-west-1_Slow' })
  let gate: Promise<void> | undefined
  let asked = 0
  const served = await serve(t, {
    userPools: async () => {
      asked++
      await gate
      const { userPoolId, clientId, jwks } = tenant.pluginOptions()
      return { userPoolId, clientId, jwks, jwksUri: false }
    },
    poolCache: { ttl: 60 }
  }, (s) => echoRoute(s, '/live'))
  const client = await openSocket(t, `${served.url}/live`, tenant.idToken({ sub: 'ana' }))
  let open: () => void = () => {}
  gate = new Promise((resolve) => { open = resolve })
  clock.tick(60_000)
  while (asked < 2) await settle()
  client.close()
  await closed(client)
  while (sizes(served.app).watches > 0) await settle()
  open()
  await settle()
  t.same(sizes(served.app), EMPTY, 'no question scheduled again, no timer')
})
