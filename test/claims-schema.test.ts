/**
 * The application's claims schemas (`claims: { id, access }`): checked at register, compiled
 * once, checked once per token after the plugin's own rules, per pool, and for a resolver's
 * answers once per distinct schema, a changed schema checking cached tokens again.
 */
import * as diagnostics from 'node:diagnostics_channel'
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import cognitoAuth, { channels, type CognitoAuthOptions, type CognitoPoolAnswer, type CognitoRefusedEvent } from '../index'
import { checkClaimSchemas, parseClaimSchemas } from '../lib/claims-schema'
import { parseOptions, parsePoolAnswer } from '../lib/options'
import { CognitoVerifier } from '../lib/verify'
import { LocalIssuer } from '../testing'
import { bearer, buildApp } from './helpers/app'
import { fakeClock } from './helpers/clock'

const INVALID = 'Bearer realm="api", error="invalid_token", error_description="The token is invalid"'

/** The claims an application relies on, as a TypeBox `Type.Object` would write them. */
const ID_CLAIMS = {
  type: 'object',
  required: ['email', 'email_verified', 'custom:tenant'],
  properties: {
    email: { type: 'string', format: 'email' },
    email_verified: { type: 'boolean' },
    'custom:tenant': { type: 'string', minLength: 1 }
  }
}

const ACCESS_CLAIMS = {
  type: 'object',
  required: ['custom:plan'],
  properties: { 'custom:plan': { enum: ['free', 'pro'] } }
}

/** Refusal events while the test runs. */
function refusals (t: Test): CognitoRefusedEvent[] {
  const events: CognitoRefusedEvent[] = []
  const listen = (message: unknown): void => { events.push(message as CognitoRefusedEvent) }
  diagnostics.subscribe(channels.refused, listen)
  t.teardown(() => diagnostics.unsubscribe(channels.refused, listen))
  return events
}

t.test('register refuses claims that are misspelt, empty, not schemas, or for tokens the pool never accepts', async (t) => {
  const issuer = new LocalIssuer()
  const pool = issuer.pluginOptions()
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ claims: { idd: ID_CLAIMS } }, /^Invalid option claims\.idd: is not an option; did you mean id\?$/],
    [{ claims: { id: ID_CLAIMS, email: {} } }, /^Invalid option claims\.email: is not an option; expected one of id, access, alb$/],
    [{ claims: null }, /claims: must be an object/],
    [{ claims: [ID_CLAIMS] }, /claims: must be an object/],
    [{ claims: {} }, /claims: must give a schema for id, access or alb tokens/],
    [{ claims: { id: undefined } }, /claims: must give a schema for id, access or alb tokens/],
    [{ claims: { id: true } }, /claims\.id: must be a JSON Schema object/],
    [{ claims: { id: [] } }, /claims\.id: must be a JSON Schema object/],
    [{ claims: { id: { type: 'object', maxProperties: 10n } } }, /claims\.id: must be a JSON Schema \(plain JSON data\)/],
    [{ claims: { id: { type: 'objekt' } } }, /^Invalid option claims\.id: does not compile: schema is invalid: data\/type must be equal to one of the allowed values/],
    [{ claims: { id: { type: 'object', requird: ['email'] } } }, /claims\.id: does not compile: strict mode: unknown keyword: "requird"/],
    [{ claims: { id: { properties: { email: { type: 'string', format: 'e-mail' } } } } }, /claims\.id: does not compile: unknown format "e-mail"/],
    [{ claims: { id: { $ref: 'https://example.com/claims.json' } } }, /claims\.id: does not compile: can't resolve reference/],
    [{ claims: { id: { $async: true, type: 'object' } } }, /claims\.id: must not be asynchronous/],
    [{ claims: { access: ACCESS_CLAIMS } }, /^Invalid option claims\.access: applies to access tokens only, and this pool's tokenUse is "id"$/],
    [{ tokenUse: 'access', claims: { id: ID_CLAIMS } }, /claims\.id: applies to id tokens only, and this pool's tokenUse is "access"$/]
  ]
  for (const [options, message] of cases) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(cognitoAuth, { ...pool, ...options } as CognitoAuthOptions) }, { code: 'FST_COGNITO_INVALID_OPTION', message }, JSON.stringify(options, (_, v: unknown) => typeof v === 'bigint' ? 'bigint' : v))
    await app.close()
  }
  // Per pool: the entry's own path names it; at the top level beside userPools it is refused.
  t.throws(() => parseOptions({ userPools: [pool, { ...new LocalIssuer({ userPoolId: 'eu-west-1_Other' }).pluginOptions(), claims: { id: { type: 'objekt' } } }] }),
    { message: /^Invalid option userPools\[1\]\.claims\.id: does not compile/ })
  t.throws(() => parseOptions({ userPools: [pool], claims: { id: ID_CLAIMS } } as unknown as CognitoAuthOptions),
    { message: /userPools: cannot be combined with top-level claims/ })
  t.throws(() => parsePoolAnswer({ ...pool, claims: { id: ID_CLAIMS, acess: {} } }), { message: /^Invalid option userPools\(\)\.claims\.acess: is not an option; did you mean access\?$/ })
  t.same(parseOptions({ ...pool, tokenUse: 'any', claims: { id: ID_CLAIMS, access: ACCESS_CLAIMS } }).pools[0].claims?.fingerprint,
    JSON.stringify([JSON.stringify(ID_CLAIMS), JSON.stringify(ACCESS_CLAIMS), null]), 'a pool of both kinds takes a schema for each')
  t.equal(parseOptions(pool).pools[0].claims, null, 'no claims, no schemas')
})

t.test('a token whose claims pass is accepted; one whose claims fail is refused, naming the claim and the rule but never the value', async (t) => {
  const issuer = new LocalIssuer()
  const logged: string[] = []
  const app = await buildApp(t, { ...issuer.pluginOptions(), claims: { id: ID_CLAIMS } },
    { logger: { level: 'debug', stream: { write: (line: string) => { logged.push(line) } } } })
  const events = refusals(t)
  const good = await app.inject({ url: '/private', headers: bearer(issuer.idToken({ sub: 'alice', email: 'alice@example.com', 'custom:tenant': 'acme' })) })
  t.equal(good.statusCode, 200)
  t.match(good.json(), { claims: { sub: 'alice', email: 'alice@example.com', email_verified: true, 'custom:tenant': 'acme' } })

  const cases: Array<[Record<string, unknown>, string]> = [
    [{ 'custom:tenant': undefined }, "claim custom:tenant fails the claims schema: must have required property 'custom:tenant' (required at /)"],
    [{ 'custom:tenant': 'acme', email: 'secret-not-an-email' }, 'claim email fails the claims schema: must match format "email" (format at /email)'],
    // A version-1 trigger writes booleans as strings: no coercion, the string is refused.
    [{ 'custom:tenant': 'acme', email_verified: 'true' }, 'claim email_verified fails the claims schema: must be boolean (type at /email_verified)'],
    [{ 'custom:tenant': { id: 'secret-tenant-id' } }, 'claim custom:tenant fails the claims schema: must be string (type at /custom:tenant)']
  ]
  for (const [claims, reason] of cases) {
    const response = await app.inject({ url: '/private', headers: bearer(issuer.idToken(claims)) })
    t.equal(response.statusCode, 401)
    t.equal(response.json().code, 'FST_COGNITO_TOKEN_INVALID')
    t.equal(response.headers['www-authenticate'], INVALID)
    t.equal(events.at(-1)?.error.reason, reason, 'the refused event names the claim and the rule')
  }
  t.equal(events.length, cases.length)
  const debug = logged.map((line) => JSON.parse(line) as { msg: string, reason?: string }).filter((line) => line.msg === 'cognito: request refused')
  t.same(debug.map((line) => line.reason), cases.map(([, reason]) => reason), 'the debug log has the same reasons')
  t.notMatch(logged.join('') + JSON.stringify(events.map((event) => event.error)), /secret/, 'no claim value reaches the log or the event')
})

t.test('the reason names the claim of a rule on the whole claims object, and none when no claim is at fault', async (t) => {
  const check = (schema: object, claims: Record<string, unknown>): string | undefined =>
    checkClaimSchemas(parseClaimSchemas({ id: schema }, 'claims', 'id'), { token_use: 'id', ...claims })
  t.equal(check({ type: 'object', properties: { token_use: {} }, additionalProperties: false }, { 'secret-name': 1 }),
    'claim secret-name fails the claims schema: must NOT have additional properties (additionalProperties at /)', 'an unexpected claim: its name')
  t.equal(check({ type: 'object', propertyNames: { maxLength: 9 } }, { 'a-long-name': 'secret' }),
    'claim a-long-name fails the claims schema: must NOT have more than 9 characters (maxLength at /)', 'a refused claim name')
  t.equal(check({ type: 'object', minProperties: 3 }, {}),
    'the claims fail the claims schema: must NOT have fewer than 3 properties (minProperties at /)', 'no claim at fault')
  t.equal(check({ type: 'object', properties: { 'a/b~c': { type: 'number' } } }, { 'a/b~c': 'secret' }),
    'claim a/b~c fails the claims schema: must be number (type at /a~1b~0c)', 'a JSON Pointer segment, decoded')
  t.equal(check({ type: 'object', properties: { address: { type: 'object', properties: { country: { enum: ['DE', 'FR'] } } } } }, { address: { country: 'secret' } }),
    'claim address fails the claims schema: must be equal to one of the allowed values (enum at /address/country)', 'a member of a claim: the claim is named')
  t.equal(check({ type: 'object' }, {}), undefined, 'claims that pass')
  t.equal(checkClaimSchemas(parseClaimSchemas({ access: ACCESS_CLAIMS }, 'claims', 'any'), { token_use: 'id' }), undefined, 'no schema for this kind of token: nothing to check')
  t.equal(checkClaimSchemas(null, { token_use: 'id' }), undefined, 'no schemas at all')
})

t.test('the schema runs after the plugin\'s own rules and can neither loosen nor change them', async (t) => {
  const clock = fakeClock(t)
  const issuer = new LocalIssuer()
  const events = refusals(t)
  const app = await buildApp(t, {
    ...issuer.pluginOptions(),
    claims: {
      id: {
        type: 'object',
        // What Fastify's body compiler would apply, none of which may reach claims: defaults,
        // coercion, removal of unknown properties.
        properties: {
          'cognito:groups': { type: 'array', default: ['admin'] },
          email_verified: { type: 'boolean' },
          exp: { type: 'number' }
        },
        required: ['email_verified']
      }
    }
  })
  const noGroups = await app.inject({ url: '/private', headers: bearer(issuer.idToken({ 'cognito:groups': undefined })) })
  t.equal(noGroups.statusCode, 200)
  t.notOk('cognito:groups' in noGroups.json().claims, 'a schema default adds no claim')
  const coerced = await app.inject({ url: '/private', headers: bearer(issuer.idToken({ email_verified: 'true' })) })
  t.equal(coerced.statusCode, 401, 'a string is not coerced to a boolean')

  const wrongType = await app.inject({ url: '/private', headers: bearer(issuer.idToken({ 'cognito:groups': 'admin', email_verified: 'true' })) })
  t.equal(events.at(-1)?.error.reason, 'cognito:groups claim has the wrong type', 'the plugin\'s own rule speaks first')
  t.equal(wrongType.statusCode, 401)
  const expired = issuer.idToken({ email_verified: 'true' })
  clock.tick(3_600_000)
  const late = await app.inject({ url: '/private', headers: bearer(expired) })
  t.equal(late.json().code, 'FST_COGNITO_TOKEN_EXPIRED', 'an expired token is expired, whatever its claims')
})

t.test('checked once per token: a token from the cache is not checked again', async (t) => {
  const issuer = new LocalIssuer()
  const settings = parseOptions({ ...issuer.pluginOptions(), claims: { id: ID_CLAIMS } })
  const verifier = new CognitoVerifier({ ...settings, log: Fastify().log })
  t.teardown(() => verifier.close())
  const schemas = verifier.pools[0].settings.claims as NonNullable<typeof settings.pools[0]['claims']>
  const check = schemas.id as NonNullable<typeof schemas.id>
  let checks = 0
  schemas.id = (claims) => { checks++; return check(claims) }
  const token = issuer.idToken({ 'custom:tenant': 'acme' })
  for (let i = 0; i < 5; i++) {
    const verified = verifier.cached(token) ?? await verifier.verify(token)
    t.equal(verified.claims['custom:tenant'], 'acme')
  }
  t.equal(checks, 2, 'checked on each verification until the cache admits the token (its second), then never')
})

t.test('each pool has its own schemas', async (t) => {
  const tenants = new LocalIssuer({ userPoolId: 'eu-central-1_Tenants' })
  const staff = new LocalIssuer({ userPoolId: 'eu-west-1_Staff' })
  const app = await buildApp(t, {
    userPools: [
      { ...tenants.pluginOptions(), claims: { id: ID_CLAIMS } },
      { ...staff.pluginOptions(), tokenUse: 'access', claims: { access: ACCESS_CLAIMS } }
    ]
  })
  const status = async (token: string): Promise<number> => (await app.inject({ url: '/private', headers: bearer(token) })).statusCode
  t.equal(await status(tenants.idToken({ 'custom:tenant': 'acme' })), 200)
  t.equal(await status(tenants.idToken()), 401, 'the tenants pool requires custom:tenant')
  t.equal(await status(staff.accessToken({ 'custom:plan': 'pro' })), 200)
  t.equal(await status(staff.accessToken({ 'custom:plan': 'gold' })), 401, 'the staff pool requires a known plan')
  t.equal(await status(staff.accessToken({ 'custom:plan': 'pro', 'custom:tenant': undefined })), 200, 'and not the other pool\'s claims')
})

t.test('a resolver\'s answers: compiled once per distinct schema, and a changed schema checks cached tokens again', async (t) => {
  const clock = fakeClock(t)
  const issuer = new LocalIssuer()
  let schema: object = ID_CLAIMS
  let questions = 0
  const answer = (): CognitoPoolAnswer => {
    questions++
    // A new object on every answer, as a tenant store that builds it from a row would.
    return { ...issuer.pluginOptions(), claims: { id: JSON.parse(JSON.stringify(schema)) as object } }
  }
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, { userPools: answer, poolCache: { ttl: 60 } })
  app.get('/private', { onRequest: app.authenticate }, async (request) => ({ tenant: request.cognitoClaims?.['custom:tenant'] }))
  const status = async (token: string): Promise<number> => (await app.inject({ url: '/private', headers: bearer(token) })).statusCode

  const token = issuer.idToken({ 'custom:tenant': 'acme', 'custom:plan': 'free' })
  t.equal(await status(token), 200)
  t.equal(await status(token), 200, 'cached from here on')
  t.equal(await status(issuer.idToken()), 401, 'a token without custom:tenant is refused')

  clock.tick(61_000)
  t.equal(await status(token), 200, 'the same schema again: the cached token stands')
  t.equal(questions, 2)

  schema = { ...ID_CLAIMS, required: [...ID_CLAIMS.required, 'custom:region'] }
  clock.tick(61_000)
  t.equal(await status(token), 200, 'past the ttl the last answer serves while the resolver is asked again')
  t.equal(questions, 3)
  t.equal(await status(token), 401, 'a changed schema: the cached token is checked again, and now refused')

  schema = { type: 'objekt' }
  clock.tick(61_000)
  t.equal(await status(token), 401, 'the last answer serves while the resolver is asked again')
  t.equal(questions, 4)
  clock.tick(61_000)
  const broken = await app.inject({ url: '/private', headers: bearer(token) })
  t.equal(broken.statusCode, 500, 'a schema that does not compile is an answer the plugin cannot vouch for')
  t.equal(broken.json().code, 'FST_COGNITO_HOOK_FAILED')
})

t.test('compiled validators are shared by schemas of the same JSON, and bounded', async (t) => {
  const first = parsePoolAnswer({ ...new LocalIssuer().pluginOptions(), claims: { id: { type: 'object', properties: { n: { const: 0 } } } } })
  const again = parsePoolAnswer({ ...new LocalIssuer().pluginOptions(), claims: { id: { type: 'object', properties: { n: { const: 0 } } } } })
  t.equal(again.claims?.id, first.claims?.id, 'the same JSON: the same compiled check')
  // Tenants' schemas may share an `$id` (one template, per-tenant rules): each is its own.
  const one = parseClaimSchemas({ id: { $id: 'https://example.com/claims', type: 'object', required: ['a'] } }, 'claims', 'id')
  const other = parseClaimSchemas({ id: { $id: 'https://example.com/claims', type: 'object', required: ['b'] } }, 'claims', 'id')
  t.match(one?.id?.({ b: 1 }), /claim a fails/)
  t.match(other?.id?.({ a: 1 }), /claim b fails/)
  for (let n = 1; n <= 256; n++) parseClaimSchemas({ id: { type: 'object', properties: { n: { const: n } } } }, 'claims', 'id')
  const later = parseClaimSchemas({ id: { type: 'object', properties: { n: { const: 0 } } } }, 'claims', 'id')
  t.not(later?.id, first.claims?.id, 'past the bound, the oldest was forgotten and is compiled anew')
  t.equal(later?.id?.({ n: 0 }), undefined)
  t.match(later?.id?.({ n: 1 }), /claim n fails the claims schema: must be equal to constant \(const at \/n\)/, 'and still checks')
})
