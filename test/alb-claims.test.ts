/**
 * The application's schema for the load balancer's user claims (`claims: { alb }`): allowed only
 * with the `alb` option, checked after the signature and the plugin's own claim rules, once per
 * token, and refused with a reason that names the claim and the rule, never the value.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import cognitoAuth, { channels, type CognitoAuthError, type CognitoAuthOptions, type CognitoAuthenticatedEvent } from '../index'
import { parseOptions, parsePoolAnswer } from '../lib/options'
import { AlbIssuer, LocalIssuer } from '../testing'

/** What the userInfo endpoint writes, as an application relies on it (strings, as userInfo has them). */
const ALB_CLAIMS = {
  type: 'object',
  required: ['email', 'email_verified', 'custom:tenant'],
  properties: {
    email: { type: 'string', format: 'email' },
    email_verified: { enum: ['true'] },
    'custom:tenant': { type: 'string', minLength: 1 },
    sub: { type: 'string', minLength: 40 }
  }
}

const GOOD = { email: 'ada@example.com', email_verified: 'true', 'custom:tenant': 'acme' }

async function setup (t: Test, claims: Record<string, unknown>, options: Record<string, unknown> = {}, albOptions: Record<string, unknown> = {}): Promise<{ app: FastifyInstance, alb: AlbIssuer }> {
  const alb = new AlbIssuer({ pool: new LocalIssuer() })
  await alb.listen()
  t.teardown(() => alb.close())
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, { ...alb.pluginOptions(), claims, ...options, alb: { ...alb.albOptions(), ...albOptions } } as CognitoAuthOptions)
  app.get('/me', { onRequest: app.authenticate }, async (request) => ({ alb: request.cognitoAlbClaims, sub: request.cognitoClaims?.sub ?? null }))
  return { app, alb }
}

function heard<Message> (t: Test, channel: string): Message[] {
  const messages: Message[] = []
  const listener = (message: unknown): void => { messages.push(message as Message) }
  subscribe(channel, listener)
  t.teardown(() => unsubscribe(channel, listener))
  return messages
}

/** A long `sub`, so that the schema's `sub` rule (minLength 40) passes. */
function sub (): string {
  return `${crypto.randomUUID()}-0000`
}

t.test('user claims that pass the schema are on the request; those that fail are refused, the reason naming the claim and the rule', async (t) => {
  const { app, alb } = await setup(t, { alb: ALB_CLAIMS })
  const id = sub()
  const ok = await app.inject({ url: '/me', headers: alb.headers({ ...GOOD, sub: id }) })
  t.equal(ok.statusCode, 200)
  t.equal(ok.json().alb['custom:tenant'], 'acme')
  t.equal(ok.json().sub, id, 'the access token is still verified')

  const refused = heard<{ error: CognitoAuthError }>(t, channels.refused)
  const cases: Array<[Record<string, unknown>, RegExp, string]> = [
    [{ ...GOOD, 'custom:tenant': undefined }, /^claim custom:tenant fails the claims schema: must have required property 'custom:tenant' \(required at \/\)$/, 'a missing claim'],
    [{ ...GOOD, email_verified: 'secret-false' }, /^claim email_verified fails the claims schema: must be equal to one of the allowed values \(enum at \/email_verified\)$/, 'a value the rule refuses'],
    [{ ...GOOD, email: 'not-an-address-secret' }, /^claim email fails the claims schema: must match format "email" \(format at \/email\)$/, 'a format'],
    [{ ...GOOD, 'custom:tenant': 42 }, /^claim custom:tenant fails the claims schema: must be string \(type at \/custom:tenant\)$/, 'a type']
  ]
  for (const [claims, reason, what] of cases) {
    const res = await app.inject({ url: '/me', headers: alb.headers({ ...claims, sub: sub() }) })
    t.equal(res.statusCode, 401, what)
    t.equal(res.json().code, 'FST_COGNITO_TOKEN_INVALID', what)
    t.match(res.headers['www-authenticate'], /^Bearer realm="api"/, what)
    t.match(refused.at(-1)?.error.reason, reason, what)
    t.notOk(refused.at(-1)?.error.reason?.includes('secret'), `${what}: the reason carries no claim value`)
    t.notOk(res.body.includes('secret'), `${what}: the answer carries no claim value`)
  }
  // The schema sees what the plugin's rules accepted: `sub` is held to the schema's rule as well.
  const short = await app.inject({ url: '/me', headers: alb.headers({ ...GOOD, sub: 'short-sub' }) })
  t.equal(short.statusCode, 401)
  t.match(refused.at(-1)?.error.reason, /^claim sub fails the claims schema: must NOT have fewer than 40 characters/)
})

t.test('the plugin\'s own rules and the signature come first: a schema never turns their refusal into another', async (t) => {
  const { app, alb } = await setup(t, { alb: ALB_CLAIMS })
  const refused = heard<{ error: CognitoAuthError }>(t, channels.refused)
  // Both the plugin's rule (empty sub) and the schema (no custom:tenant) would refuse: the plugin's speaks.
  t.equal((await app.inject({ url: '/me', headers: alb.headers({ sub: '' }) })).statusCode, 401)
  t.match(refused.at(-1)?.error.reason, 'sub claim missing or not a string')
  // A token failing the schema whose signature is broken: the signature speaks, the payload is not read.
  const headers = alb.headers({ sub: sub() })
  const [header, payload, signature] = headers['x-amzn-oidc-data'].split('.')
  headers['x-amzn-oidc-data'] = `${header}.${payload}.${signature.startsWith('A') ? 'B' : 'A'}${signature.slice(1)}`
  t.equal((await app.inject({ url: '/me', headers })).statusCode, 401)
  t.match(refused.at(-1)?.error.reason, 'the signature is invalid')
})

t.test('checked once per token: a token accepted is served from the cache, a refused one is refused every time', async (t) => {
  const { app, alb } = await setup(t, { alb: ALB_CLAIMS })
  const authenticated = heard<CognitoAuthenticatedEvent>(t, channels.authenticated)
  const refused = heard<{ error: CognitoAuthError }>(t, channels.refused)
  const headers = alb.headers({ ...GOOD, sub: sub() })
  for (let i = 0; i < 3; i++) t.equal((await app.inject({ url: '/me', headers })).statusCode, 200)
  t.same(authenticated.map((event) => event.cached), [false, false, true], 'the third request is a cache hit for both tokens')
  t.ok(Object.isFrozen(authenticated[2].albClaims), 'the cached claims are the ones the schema checked, frozen')
  const bad = alb.headers({ sub: sub() })
  for (let i = 0; i < 2; i++) t.equal((await app.inject({ url: '/me', headers: bad })).statusCode, 401)
  t.equal(refused.length, 2, 'a refused token is never cached')
})

t.test('with the access token\'s schema too, each token is held to its own', async (t) => {
  const access = { type: 'object', required: ['scope'], properties: { scope: { type: 'string', pattern: '(^| )orders/read( |$)' } } }
  const { app, alb } = await setup(t, { alb: ALB_CLAIMS, access })
  const refused = heard<{ error: CognitoAuthError }>(t, channels.refused)
  const id = sub()
  const headers = alb.headers({ ...GOOD, sub: id })
  t.equal((await app.inject({ url: '/me', headers })).statusCode, 401, 'the forwarded access token has no orders/read scope')
  t.match(refused.at(-1)?.error.reason, /^claim scope fails the claims schema/)
  headers['x-amzn-oidc-accesstoken'] = alb.pool.accessToken({ sub: id, scope: 'openid orders/read' })
  t.equal((await app.inject({ url: '/me', headers })).statusCode, 200)
})

t.test('without the access token, the user claims schema still applies', async (t) => {
  const { app, alb } = await setup(t, { alb: ALB_CLAIMS }, {}, { accessToken: false })
  t.equal((await app.inject({ url: '/me', headers: alb.headers({ ...GOOD, sub: sub() }) })).statusCode, 200)
  t.equal((await app.inject({ url: '/me', headers: alb.headers({ sub: sub() }) })).statusCode, 401)
})

t.test('several pools: each has its own schema for the user claims', async (t) => {
  const first = new LocalIssuer()
  const second = new LocalIssuer({ userPoolId: 'eu-central-1_Second', clientId: 'second-client' })
  const alb = new AlbIssuer({ pool: first })
  await alb.listen()
  t.teardown(() => alb.close())
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, {
    userPools: [
      { ...first.pluginOptions(), tokenUse: 'access', claims: { alb: ALB_CLAIMS } },
      { ...second.pluginOptions(), tokenUse: 'access' }
    ],
    alb: alb.albOptions()
  })
  app.get('/me', { onRequest: app.authenticate }, async (request) => request.cognitoPool?.userPoolId)
  t.equal((await app.inject({ url: '/me', headers: alb.headers({ sub: sub() }) })).statusCode, 401, 'the first pool\'s schema refuses')
  // The same load balancer in front of the second pool: its header and payload name that pool.
  const id = sub()
  const headers = {
    'x-amzn-oidc-data': alb.dataToken({ sub: id, iss: second.issuer }, { header: { iss: second.issuer, client: second.clientId } }),
    'x-amzn-oidc-accesstoken': second.accessToken({ sub: id })
  }
  const res = await app.inject({ url: '/me', headers })
  t.equal(res.statusCode, 200, 'the second pool has no schema for them')
  t.equal(res.body, second.userPoolId)
})

t.test('claims.alb is refused where there are no load balancer claims to check', async (t) => {
  const issuer = new LocalIssuer()
  t.throws(() => parseOptions({ ...issuer.pluginOptions(), tokenUse: 'access', claims: { alb: ALB_CLAIMS } } as CognitoAuthOptions),
    { code: 'FST_COGNITO_INVALID_OPTION', message: /^Invalid option claims\.alb: applies to the load balancer's user claims only: set the alb option, or remove claims\.alb$/ })
  t.throws(() => parseOptions({ userPools: [{ ...issuer.pluginOptions(), claims: { alb: ALB_CLAIMS } }] } as CognitoAuthOptions),
    { message: /^Invalid option userPools\[0\]\.claims\.alb: applies to the load balancer's user claims only/ })
  t.throws(() => parsePoolAnswer({ ...issuer.pluginOptions(), claims: { alb: ALB_CLAIMS } }),
    { message: /^Invalid option userPools\(\)\.claims\.alb: applies to the load balancer's user claims only/ })
  const alb = new AlbIssuer({ pool: issuer })
  await alb.listen()
  t.teardown(() => alb.close())
  t.throws(() => parseOptions({ ...alb.pluginOptions(), claims: { alb: { type: 'objekt' } } } as CognitoAuthOptions),
    { message: /^Invalid option claims\.alb: does not compile/ })
  t.throws(() => parseOptions({ ...alb.pluginOptions(), claims: { alb: 'schema' } } as unknown as CognitoAuthOptions),
    { message: /^Invalid option claims\.alb: must be a JSON Schema object/ })
  t.equal(parseOptions({ ...alb.pluginOptions(), claims: { alb: ALB_CLAIMS } } as CognitoAuthOptions).pools[0].claims?.fingerprint,
    JSON.stringify([null, null, JSON.stringify(ALB_CLAIMS)]), 'the user claims schema is part of what a token is accepted under')
})
