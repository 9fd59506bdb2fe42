/**
 * The `authenticated` and `refused` events on diagnostics_channel: their shape, once per
 * occurrence, a reason for every refusal, nothing published while nobody listens, and no token in
 * any message.
 */
import diagnostics from 'node:diagnostics_channel'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import t, { type Test } from 'tap'
import cognitoAuth, {
  channels,
  type CognitoAuthenticatedEvent,
  type CognitoAuthOptions,
  type CognitoJwksEvent,
  type CognitoPoolEvent,
  type CognitoRefusedEvent,
  type CognitoRevocationEvent
} from '../index'
import { publishJwks, publishPool, publishRevocation, wantsJwksEvents, wantsPoolEvents, wantsRevocationEvents } from '../lib/events'
import { LocalIssuer } from '../testing'

const issuer = new LocalIssuer()

interface Heard {
  authenticated: CognitoAuthenticatedEvent[]
  refused: CognitoRefusedEvent[]
}

/** Subscribes to both request channels for the test's duration. */
function listen (t: Test): Heard {
  const heard: Heard = { authenticated: [], refused: [] }
  const onAuthenticated = (message: unknown): void => { heard.authenticated.push(message as CognitoAuthenticatedEvent) }
  const onRefused = (message: unknown): void => { heard.refused.push(message as CognitoRefusedEvent) }
  diagnostics.subscribe(channels.authenticated, onAuthenticated)
  diagnostics.subscribe(channels.refused, onRefused)
  t.teardown(() => {
    diagnostics.unsubscribe(channels.authenticated, onAuthenticated)
    diagnostics.unsubscribe(channels.refused, onRefused)
  })
  return heard
}

type Options = Omit<Partial<CognitoAuthOptions>, 'userPools'>

async function buildApp (t: Test, options: Options = {}): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, { ...issuer.pluginOptions(), ...options } as CognitoAuthOptions)
  const ok = async (): Promise<string> => 'ok'
  app.get('/private', { onRequest: app.authenticate }, ok)
  app.get('/optional', { onRequest: app.authenticateOptional }, ok)
  app.get('/admin', { onRequest: [app.authenticate, app.requireGroups('admin')] }, ok)
  app.get('/write', { onRequest: [app.authenticate, app.requireScopes('orders/write')] }, ok)
  app.get('/groups-only', { onRequest: app.requireGroups('admin') }, ok)
  return app
}

function bearer (token: string): { authorization: string } {
  return { authorization: `Bearer ${token}` }
}

/** Every string reachable from `value` (own properties, enumerable or not), with its path. */
function strings (value: unknown, path: string, skip: ReadonlySet<string>, seen = new Set<unknown>(), found: Array<[string, string]> = []): Array<[string, string]> {
  if (typeof value === 'string') {
    found.push([path, value])
    return found
  }
  if (typeof value === 'number' || typeof value === 'bigint') {
    found.push([path, String(value)])
    return found
  }
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null || seen.has(value)) return found
  seen.add(value)
  for (const key of Reflect.ownKeys(value)) {
    const name = String(key)
    if (skip.has(name)) continue
    const descriptor = Object.getOwnPropertyDescriptor(value, key)
    if (descriptor === undefined || !('value' in descriptor)) continue
    strings(descriptor.value, `${path}.${name}`, skip, seen, found)
  }
  return found
}

/** Asserts that no string of the message (but its request) holds the token or one of its parts. */
function assertNoToken (t: Test, message: object, token: string): void {
  const parts = token.split('.').filter((part) => part.length >= 8)
  const leaks = strings(message, 'message', new Set(['request']))
    .filter(([, text]) => text.includes(token) || parts.some((part) => text.includes(part)))
    .map(([path]) => path)
  t.same(leaks, [], 'no token, header, payload or signature in the message')
}

/** Asserts that the request holds the token only where Fastify put it: the headers. */
function assertTokenOnlyInHeaders (t: Test, request: FastifyRequest, token: string): void {
  // The server, logger and socket are the application's and Node's, not the request's own data.
  const skip = new Set(['server', 'log', 'socket', 'connection', 'client', '_readableState', '_events'])
  const holders = [
    ...strings(request, 'request', skip),
    ...strings({ headers: request.headers }, 'request', skip)
  ].filter(([, text]) => text.includes(token)).map(([path]) => path)
  t.ok(holders.length > 0, 'the walk reaches the headers')
  t.same(holders.filter((path) => !/headers\.authorization$|rawHeaders\.\d+$/.test(path)), [], 'the token is in the headers only')
}

/** The claim values of a token (strings and numbers, and the dates of `exp`, `nbf`, `iat`). */
function claimValues (token: string): string[] {
  let payload: Record<string, unknown>
  try {
    payload = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as Record<string, unknown>
  } catch {
    return [] // not a JWT: no claims
  }
  const values: string[] = []
  for (const [key, value] of Object.entries(payload)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (typeof item === 'string' || typeof item === 'number') values.push(String(item))
      if (typeof item === 'number' && ['exp', 'nbf', 'iat', 'auth_time'].includes(key)) values.push(new Date(item * 1000).toISOString().slice(0, 16))
    }
  }
  return values.filter((value) => value.length >= 4)
}

t.test('an accepted request: one authenticated event, cached once the token cache holds it', async (t) => {
  const heard = listen(t)
  const app = await buildApp(t)
  const token = issuer.idToken({ sub: 'alice', email: 'alice@example.com' })
  for (let i = 0; i < 3; i++) {
    const res = await app.inject({ url: '/private', headers: bearer(token) })
    t.equal(res.statusCode, 200)
  }
  t.equal(heard.authenticated.length, 3, 'one event per request')
  // The cache admits a token on its second verification.
  t.same(heard.authenticated.map((message) => message.cached), [false, false, true], 'the third request hits the token cache')
  t.same(heard.refused, [])
  for (const message of heard.authenticated) {
    t.same(Object.keys(message).sort(), ['cached', 'claims', 'request'])
    t.equal(message.claims.sub, 'alice')
    t.equal(message.claims, message.request.cognitoClaims, 'the claims the request holds')
    t.equal(message.request.headers.authorization, `Bearer ${token}`)
    assertNoToken(t, message, token)
    assertTokenOnlyInHeaders(t, message.request, token)
  }
})

t.test('with resolveUser and isRevoked: published after both, cached or not', async (t) => {
  const heard = listen(t)
  const app = await buildApp(t, {
    resolveUser: async (claims) => claims,
    isRevoked: async () => false
  })
  const token = issuer.idToken({ sub: 'bob' })
  for (let i = 0; i < 3; i++) await app.inject({ url: '/private', headers: bearer(token) })
  t.same(heard.authenticated.map((message) => message.cached), [false, false, true])
  t.same(heard.authenticated.map((message) => message.request.cognitoUser === message.claims), [true, true, true], 'the user is set when the event fires')
  t.same(heard.refused, [])
})

t.test('without the token cache every event is uncached', async (t) => {
  const heard = listen(t)
  const app = await buildApp(t, { tokenCache: false })
  const token = issuer.idToken()
  for (let i = 0; i < 3; i++) await app.inject({ url: '/private', headers: bearer(token) })
  t.same(heard.authenticated.map((message) => message.cached), [false, false, false])
})

t.test('authenticateOptional: an anonymous request publishes nothing, a token does', async (t) => {
  const heard = listen(t)
  const app = await buildApp(t)
  const anonymous = await app.inject({ url: '/optional' })
  t.equal(anonymous.statusCode, 200)
  t.same(heard, { authenticated: [], refused: [] }, 'neither authenticated nor refused')
  await app.inject({ url: '/optional', headers: bearer(issuer.idToken()) })
  t.equal(heard.authenticated.length, 1)
  await app.inject({ url: '/optional', headers: bearer('abc.def.ghi') })
  t.same(heard.refused.map((message) => message.error.code), ['FST_COGNITO_TOKEN_INVALID'], 'a bad token is still a refusal')
})

t.test('every kind of refusal: one refused event with its code, status and reason', async (t) => {
  const expiredToken = issuer.idToken({ sub: 'carol', exp: Math.floor(Date.now() / 1000) - 600, email: 'carol@example.com' })
  const foreignToken = issuer.idToken({ sub: 'dave-the-forger' }, { signingKey: LocalIssuer.foreignKey() })
  const wrongClient = issuer.idToken({ sub: 'erin', aud: 'another-client-id' })
  const member = issuer.idToken({ sub: 'frank', 'cognito:groups': ['staff'] })
  const unknownUser = issuer.idToken({ sub: 'ghost-user' })
  const failing = issuer.idToken({ sub: 'failing-user' })
  const badHook = issuer.idToken({ sub: 'bad-hook-user' })
  const revoked = issuer.idToken({ sub: 'revoked-user' })
  const oddRevocation = issuer.idToken({ sub: 'odd-revocation' })
  const access = issuer.accessToken({ sub: 'scoped', scope: 'orders/read' })
  const critical = issuer.idToken({ sub: 'crit-user' }, { header: { crit: ['x-private-extension'], 'x-private-extension': 1 } })
  const thrown = new Error('the user store is down')
  const cases: Array<{ name: string, url: string, headers: Record<string, string>, code: string, status: number, token?: string, authenticated?: number }> = [
    { name: 'no token', url: '/private', headers: {}, code: 'FST_COGNITO_NO_TOKEN', status: 401 },
    { name: 'another scheme', url: '/private', headers: { authorization: 'Basic dXNlcjpwYXNz' }, code: 'FST_COGNITO_NO_TOKEN', status: 401 },
    { name: 'Bearer without a token', url: '/private', headers: { authorization: 'Bearer ' }, code: 'FST_COGNITO_BAD_AUTHORIZATION_HEADER', status: 400 },
    { name: 'credentials with a space', url: '/private', headers: { authorization: 'Bearer abc def' }, code: 'FST_COGNITO_BAD_AUTHORIZATION_HEADER', status: 400 },
    { name: 'garbage', url: '/private', headers: bearer('abc.def.ghi'), code: 'FST_COGNITO_TOKEN_INVALID', status: 401, token: 'abc.def.ghi' },
    { name: 'foreign signature', url: '/private', headers: bearer(foreignToken), code: 'FST_COGNITO_TOKEN_INVALID', status: 401, token: foreignToken },
    { name: 'another app client', url: '/private', headers: bearer(wrongClient), code: 'FST_COGNITO_TOKEN_INVALID', status: 401, token: wrongClient },
    { name: 'expired', url: '/private', headers: bearer(expiredToken), code: 'FST_COGNITO_TOKEN_EXPIRED', status: 401, token: expiredToken },
    { name: 'unknown crit header', url: '/private', headers: bearer(critical), code: 'FST_COGNITO_TOKEN_INVALID', status: 401, token: critical },
    { name: 'forbidden group', url: '/admin', headers: bearer(member), code: 'FST_COGNITO_FORBIDDEN', status: 403, token: member, authenticated: 1 },
    { name: 'forbidden scope', url: '/write', headers: bearer(access), code: 'FST_COGNITO_FORBIDDEN', status: 403, token: access, authenticated: 1 },
    { name: 'requirement without authentication', url: '/groups-only', headers: bearer(member), code: 'FST_COGNITO_NO_TOKEN', status: 401, token: member },
    { name: 'user not found', url: '/private', headers: bearer(unknownUser), code: 'FST_COGNITO_USER_NOT_FOUND', status: 401, token: unknownUser },
    { name: 'revoked', url: '/private', headers: bearer(revoked), code: 'FST_COGNITO_TOKEN_REVOKED', status: 401, token: revoked },
    { name: 'resolveUser rejects without an Error', url: '/private', headers: bearer(badHook), code: 'FST_COGNITO_HOOK_FAILED', status: 500, token: badHook },
    { name: 'isRevoked answers neither true nor false', url: '/private', headers: bearer(oddRevocation), code: 'FST_COGNITO_HOOK_FAILED', status: 500, token: oddRevocation },
    { name: 'resolveUser throws its own error', url: '/private', headers: bearer(failing), code: 'FST_COGNITO_HOOK_FAILED', status: 500, token: failing }
  ]
  const app = await buildApp(t, {
    tokenUse: 'any',
    resolveUser: async (claims) => {
      if (claims.sub === 'ghost-user') return null
      if (claims.sub === 'failing-user') throw thrown
      // eslint-disable-next-line prefer-promise-reject-errors
      if (claims.sub === 'bad-hook-user') return await Promise.reject('a string')
      return claims
    },
    isRevoked: async (claims) => {
      if (claims.sub === 'odd-revocation') return 'no' as unknown as boolean
      return claims.sub === 'revoked-user'
    }
  })
  for (const c of cases) {
    const heard = listen(t)
    const res = await app.inject({ url: c.url, headers: c.headers })
    t.equal(res.statusCode, c.status, `${c.name}: answered ${c.status}`)
    t.equal(heard.refused.length, 1, `${c.name}: one refused event`)
    t.equal(heard.authenticated.length, c.authenticated ?? 0, `${c.name}: authenticated events`)
    const [message] = heard.refused
    t.same(Object.keys(message).sort(), ['error', 'request'], `${c.name}: the message's keys`)
    t.equal(message.request.url, c.url)
    const { error } = message
    t.equal(error.code, c.code, `${c.name}: the code`)
    t.equal(error.statusCode, c.status, `${c.name}: the status`)
    t.type(error.reason, 'string', `${c.name}: a reason`)
    t.ok((error.reason as string).length > 0)
    t.notOk(Object.keys(error).includes('reason'), `${c.name}: the reason is not serialized`)
    t.notMatch(error.reason, /x-private-extension|\d{4}-\d{2}-\d{2}T/, `${c.name}: no header entry or date in the reason`)
    if (c.token !== undefined) {
      const values = claimValues(c.token).filter((value) => (error.reason as string).includes(value))
      t.same(values, [], `${c.name}: the reason names no claim value`)
      assertNoToken(t, message, c.token)
      assertTokenOnlyInHeaders(t, message.request, c.token)
    }
    if (c.name === 'expired') t.match(error.reason, /expired/)
    if (c.name === 'unknown crit header') t.match(error.reason, /crit/)
    // Done with this case: the next one listens afresh.
    t.equal(res.json().code, c.name === 'resolveUser throws its own error' ? undefined : c.code, `${c.name}: the response`)
  }
})

t.test("an application's own error: the request answers with it, the event with a hook failure that has it as cause", async (t) => {
  const heard = listen(t)
  const thrown = Object.assign(new Error('the user store is down'), { statusCode: 503 })
  const app = await buildApp(t, {
    resolveUser: async () => { throw thrown },
    isRevoked: async (claims) => { if (claims.sub === 'x') throw thrown; return false }
  })
  const res = await app.inject({ url: '/private', headers: bearer(issuer.idToken()) })
  t.equal(res.statusCode, 503, "the application's error answers")
  t.equal(res.json().message, 'the user store is down')
  await app.inject({ url: '/private', headers: bearer(issuer.idToken({ sub: 'x' })) })
  t.equal(heard.refused.length, 2)
  t.same(heard.refused.map(({ error }) => [error.code, error.message, error.reason, error.cause]), [
    ['FST_COGNITO_HOOK_FAILED', 'resolveUser threw', 'resolveUser threw', thrown],
    ['FST_COGNITO_HOOK_FAILED', 'isRevoked threw', 'isRevoked threw', thrown]
  ])
  t.equal(heard.refused[0].error.cause, thrown, 'the very error, as cause')
  t.same(heard.authenticated, [])
})

t.test('nothing is published while nobody subscribes', async (t) => {
  const published: Record<string, number> = {}
  for (const name of Object.values(channels)) {
    const channel = diagnostics.channel(name)
    t.equal(channel.hasSubscribers, false, `${name}: nobody listens`)
    published[name] = 0
    channel.publish = (message: unknown) => {
      published[name]++
      // The prototype's, read at each call: a channel changes prototype when it gains a subscriber.
      const { publish } = Object.getPrototypeOf(channel) as { publish: (message: unknown) => void }
      publish.call(channel, message)
    }
    t.teardown(() => { delete (channel as { publish?: unknown }).publish })
  }
  const app = await buildApp(t, { resolveUser: async (claims) => claims.sub === 'ghost' ? null : claims })
  const token = issuer.idToken()
  const requests: Array<[string, Record<string, string>]> = [
    ['/private', bearer(token)],
    ['/private', bearer(token)],
    ['/private', {}],
    ['/private', { authorization: 'Bearer ' }],
    ['/private', bearer('abc.def.ghi')],
    ['/private', bearer(issuer.idToken({ exp: Math.floor(Date.now() / 1000) - 600 }))],
    ['/private', bearer(issuer.idToken({ sub: 'ghost' }))],
    ['/admin', bearer(token)],
    ['/optional', {}]
  ]
  for (const [url, headers] of requests) await app.inject({ url, headers })
  t.same(published, Object.fromEntries(Object.values(channels).map((name) => [name, 0])), 'no publish on any channel')

  // The counting works: with a subscriber, the same requests publish.
  const heard = listen(t)
  for (const [url, headers] of requests) await app.inject({ url, headers })
  t.equal(published[channels.authenticated], heard.authenticated.length)
  t.equal(published[channels.refused], heard.refused.length)
  t.same([heard.authenticated.length, heard.refused.length], [3, 6])
})

t.test('the channels are the exported names', async (t) => {
  t.same(channels, {
    authenticated: 'fastify-cognito-jwt:authenticated',
    refused: 'fastify-cognito-jwt:refused',
    jwks: 'fastify-cognito-jwt:jwks',
    revocation: 'fastify-cognito-jwt:revocation',
    pools: 'fastify-cognito-jwt:pools',
    watch: 'fastify-cognito-jwt:watch'
  })
  t.ok(Object.isFrozen(channels))
})

t.test('the key store, revocation and pool directory publishers: a message only for a subscriber, as given', async (t) => {
  const jwksMessage: CognitoJwksEvent = { jwksUri: 'http://127.0.0.1:1/jwks.json', outcome: 'fetched', status: 200, durationMs: 12, keys: 2 }
  const revocationMessage: CognitoRevocationEvent = { event: 'synced', entries: 3, durationMs: 4 }
  const poolMessage: CognitoPoolEvent = { event: 'refused', issuer: 'https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_X', pools: 0, reason: 'too many questions waiting' }
  const cases = [
    { name: channels.jwks, wants: wantsJwksEvents, publish: () => { publishJwks(jwksMessage) }, message: jwksMessage },
    { name: channels.revocation, wants: wantsRevocationEvents, publish: () => { publishRevocation(revocationMessage) }, message: revocationMessage },
    { name: channels.pools, wants: wantsPoolEvents, publish: () => { publishPool(poolMessage) }, message: poolMessage }
  ]
  for (const { name, wants, publish, message } of cases) {
    const channel = diagnostics.channel(name)
    let published = 0
    channel.publish = (value: unknown) => {
      published++
      const { publish } = Object.getPrototypeOf(channel) as { publish: (message: unknown) => void }
      publish.call(channel, value)
    }
    t.teardown(() => { delete (channel as { publish?: unknown }).publish })
    t.equal(wants(), false, `${name}: nobody listens`)
    publish()
    t.equal(published, 0, `${name}: nothing published`)
    const heard: unknown[] = []
    const onMessage = (value: unknown): void => { heard.push(value) }
    diagnostics.subscribe(name, onMessage)
    t.equal(wants(), true, `${name}: someone listens`)
    publish()
    diagnostics.unsubscribe(name, onMessage)
    t.equal(published, 1, `${name}: published once`)
    t.same(heard, [message], `${name}: the message as given`)
    t.equal(heard[0], message)
  }
})
