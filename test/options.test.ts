/**
 * Option validation: every mistake fails `register` with FST_COGNITO_INVALID_OPTION and a message
 * that names the option, before any request is served.
 */
import { generateKeyPairSync } from 'node:crypto'
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import cognitoAuth, { type CognitoAuthOptions } from '../index'
import { parseOptions } from '../lib/options'
import { LocalIssuer } from '../testing'
import { bearer, buildApp } from './helpers/app'

const issuer = new LocalIssuer()
// Keys given up front: a valid configuration never reaches for the network.
const valid = { userPoolId: 'eu-central-1_xYzaq', clientId: 'app-client', jwks: issuer.jwks }

function escapeRegExp (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** Registers the plugin with options a caller could pass by mistake, whatever their type. */
async function registerFails (t: Test, options: unknown, option: string, name: string): Promise<void> {
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(cognitoAuth, options as CognitoAuthOptions)
  await t.rejects(async () => { await app.ready() }, {
    code: 'FST_COGNITO_INVALID_OPTION',
    message: new RegExp(`^Invalid option ${escapeRegExp(option)}: \\S`)
  }, name)
}

async function registers (t: Test, options: CognitoAuthOptions, name: string): Promise<void> {
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(cognitoAuth, options)
  await t.resolves(async () => { await app.ready() }, name)
}

const { n, e } = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' })
const rsa1024 = { kty: 'RSA', n, e }

/** [what is wrong, the options, the option the message must name] */
const invalid: Array<[string, unknown, string]> = [
  ['options a string', 'eu-central-1_xYzaq', 'options'],
  ['options an array', [valid], 'options'],
  ['options a number', 42, 'options'],

  ['userPoolId missing', { clientId: 'app-client' }, 'userPoolId'],
  ['userPoolId a number', { ...valid, userPoolId: 42 }, 'userPoolId'],
  ['userPoolId without an underscore', { ...valid, userPoolId: 'xYzaq' }, 'userPoolId'],
  ['userPoolId with an empty id', { ...valid, userPoolId: 'eu-central-1_' }, 'userPoolId'],
  ['userPoolId in upper case', { ...valid, userPoolId: 'EU-CENTRAL-1_xYzaq' }, 'userPoolId'],
  ['userPoolId without an AWS region, no issuer', { ...valid, userPoolId: 'local_4GYoIvBY' }, 'userPoolId'],
  ['userPoolId with a region lacking its number', { ...valid, userPoolId: 'eu-central_xYzaq' }, 'userPoolId'],
  ['region not the pool\'s', { ...valid, region: 'us-east-1' }, 'region'],

  ['tokenUse unknown', { ...valid, tokenUse: 'both' }, 'tokenUse'],
  ['tokenUse in upper case', { ...valid, tokenUse: 'ID' }, 'tokenUse'],
  ['tokenUse not a string', { ...valid, tokenUse: 1 }, 'tokenUse'],

  ['clientId missing', { userPoolId: valid.userPoolId, jwks: valid.jwks }, 'clientId'],
  ['clientId empty array', { ...valid, clientId: [] }, 'clientId'],
  ['clientId empty string', { ...valid, clientId: '' }, 'clientId'],
  ['clientId array with an empty string', { ...valid, clientId: ['a', ''] }, 'clientId'],
  ['clientId a number', { ...valid, clientId: 42 }, 'clientId'],
  ['clientId array with a number', { ...valid, clientId: ['a', 1] }, 'clientId'],

  ['issuer not a URL', { ...valid, issuer: 'not a url', jwksUri: 'http://127.0.0.1:1/jwks.json' }, 'issuer'],
  ['issuer ftp', { ...valid, issuer: 'ftp://idp.example/pool', jwksUri: 'http://127.0.0.1:1/jwks.json' }, 'issuer'],
  ['issuer empty array', { ...valid, issuer: [], jwksUri: 'http://127.0.0.1:1/jwks.json' }, 'issuer'],
  ['issuer a number', { ...valid, issuer: 42, jwksUri: 'http://127.0.0.1:1/jwks.json' }, 'issuer'],
  ['issuer without jwksUri', { ...valid, issuer: 'http://127.0.0.1:9229/eu-central-1_xYzaq' }, 'jwksUri'],

  ['jwks empty object', { ...valid, jwks: {} }, 'jwks'],
  ['jwks an array', { ...valid, jwks: [] }, 'jwks'],
  ['jwks a string', { ...valid, jwks: 'keys' }, 'jwks'],
  ['jwks keys not an array', { ...valid, jwks: { keys: 'x' } }, 'jwks'],
  ['jwks with no key', { ...valid, jwks: { keys: [] } }, 'jwks'],
  ['jwks with an EC key only', { ...valid, jwks: { keys: [{ kty: 'EC', kid: 'ec', crv: 'P-256', x: 'a', y: 'b' }] } }, 'jwks'],
  ['jwks with a 1024-bit key only', { ...valid, jwks: { keys: [{ ...rsa1024, kid: 'short' }] } }, 'jwks'],

  ['jwksUri not a URL', { ...valid, jwksUri: 'nope' }, 'jwksUri'],
  ['jwksUri file', { ...valid, jwksUri: 'file:///etc/passwd' }, 'jwksUri'],
  ['jwksUri a number', { ...valid, jwksUri: 42 }, 'jwksUri'],
  ['jwksUri a folder', { ...valid, jwksUri: 'https://idp.example/pool/' }, 'jwksUri'],
  ['jwksUri true', { ...valid, jwksUri: true }, 'jwksUri'],
  ['jwksUri false without jwks', { ...valid, jwks: undefined, jwksUri: false }, 'jwksUri'],
  ['jwksCache.maxKeys 0', { ...valid, jwksCache: { maxKeys: 0 } }, 'jwksCache.maxKeys'],
  ['jwksCache.maxKeys 1.5', { ...valid, jwksCache: { maxKeys: 1.5 } }, 'jwksCache.maxKeys'],

  ['clockTolerance negative', { ...valid, clockTolerance: -1 }, 'clockTolerance'],
  ['clockTolerance NaN', { ...valid, clockTolerance: NaN }, 'clockTolerance'],
  ['clockTolerance Infinity', { ...valid, clockTolerance: Infinity }, 'clockTolerance'],
  ['clockTolerance a string', { ...valid, clockTolerance: '5' }, 'clockTolerance'],

  ['maxTokenLength 0', { ...valid, maxTokenLength: 0 }, 'maxTokenLength'],
  ['maxTokenLength negative', { ...valid, maxTokenLength: -1 }, 'maxTokenLength'],
  ['maxTokenLength fractional', { ...valid, maxTokenLength: 1.5 }, 'maxTokenLength'],
  ['maxTokenLength a string', { ...valid, maxTokenLength: '8192' }, 'maxTokenLength'],

  ['realm with a quote', { ...valid, realm: 'my "api"' }, 'realm'],
  ['realm with a backslash', { ...valid, realm: 'my\\api' }, 'realm'],
  ['realm non-ASCII', { ...valid, realm: 'réalm' }, 'realm'],
  ['realm with a line break', { ...valid, realm: 'a\r\nSet-Cookie: x=1' }, 'realm'],
  ['realm a number', { ...valid, realm: 42 }, 'realm'],

  ['jwksCache a string', { ...valid, jwksCache: 'x' }, 'jwksCache'],
  ['jwksCache null', { ...valid, jwksCache: null }, 'jwksCache'],
  ['jwksCache an array', { ...valid, jwksCache: [] }, 'jwksCache'],
  ['jwksCache.prefetch a string', { ...valid, jwksCache: { prefetch: 'yes' } }, 'jwksCache.prefetch'],
  ['jwksCache.prefetch a number', { ...valid, jwksCache: { prefetch: 1 } }, 'jwksCache.prefetch'],
  ['jwksCache.ttl 0', { ...valid, jwksCache: { ttl: 0 } }, 'jwksCache.ttl'],
  ['jwksCache.ttl negative', { ...valid, jwksCache: { ttl: -1 } }, 'jwksCache.ttl'],
  ['jwksCache.timeout 0', { ...valid, jwksCache: { timeout: 0 } }, 'jwksCache.timeout'],
  ['jwksCache.cooldown negative', { ...valid, jwksCache: { cooldown: -1 } }, 'jwksCache.cooldown'],
  ['jwksCache.maxStale NaN', { ...valid, jwksCache: { maxStale: NaN } }, 'jwksCache.maxStale'],
  ['jwksCache.maxBytes 0', { ...valid, jwksCache: { maxBytes: 0 } }, 'jwksCache.maxBytes'],
  ['jwksCache.maxBytes fractional', { ...valid, jwksCache: { maxBytes: 1.5 } }, 'jwksCache.maxBytes'],

  ['revocationCacheTtl negative', { ...valid, revocationCacheTtl: -1 }, 'revocationCacheTtl'],
  ['revocationCacheTtl without the token cache', { ...valid, revocationCacheTtl: 5, tokenCache: false }, 'revocationCacheTtl'],

  ['tokenCache a string', { ...valid, tokenCache: 'x' }, 'tokenCache'],
  ['tokenCache true', { ...valid, tokenCache: true }, 'tokenCache'],
  ['tokenCache null', { ...valid, tokenCache: null }, 'tokenCache'],
  ['tokenCache.max 0', { ...valid, tokenCache: { max: 0 } }, 'tokenCache.max'],
  ['tokenCache.max negative', { ...valid, tokenCache: { max: -1 } }, 'tokenCache.max'],
  ['tokenCache.max fractional', { ...valid, tokenCache: { max: 1.5 } }, 'tokenCache.max'],

  ['resolveUser a string', { ...valid, resolveUser: 'x' }, 'resolveUser'],
  ['isRevoked an object', { ...valid, isRevoked: {} }, 'isRevoked'],
  ['extractToken a number', { ...valid, extractToken: 1 }, 'extractToken'],

  ['userPools with a top-level userPoolId', { userPools: [valid], userPoolId: valid.userPoolId }, 'userPools'],
  ['userPools with a top-level clientId null', { userPools: [valid], clientId: null }, 'userPools'],
  ['userPools empty', { userPools: [] }, 'userPools'],
  ['userPools an object', { userPools: valid }, 'userPools'],
  ['userPools a string', { userPools: 'eu-central-1_xYzaq' }, 'userPools'],
  ['userPools entry a number', { userPools: [1] }, 'userPools[0]'],
  ['userPools entry null', { userPools: [valid, null] }, 'userPools[1]'],
  ['userPools entry with a bad userPoolId', { userPools: [valid, { ...valid, userPoolId: 'bad' }] }, 'userPools[1].userPoolId'],
  ['userPools entry with no clientId', { userPools: [valid, { userPoolId: 'us-east-1_Other', jwks: valid.jwks }] }, 'userPools[1].clientId'],
  ['two pools sharing an issuer', { userPools: [valid, { ...valid, clientId: 'another-client' }] }, 'userPools'],
  ['two overrides sharing an issuer', {
    userPools: [
      { ...valid, userPoolId: 'local_A', issuer: 'http://127.0.0.1:9229/pool', jwksUri: 'http://127.0.0.1:9229/a.json' },
      { ...valid, userPoolId: 'local_B', issuer: ['http://127.0.0.1:9229/other', 'http://127.0.0.1:9229/pool'], jwksUri: 'http://127.0.0.1:9229/b.json' }
    ]
  }, 'userPools']
]

t.test('each invalid option fails register, naming the option', async (t) => {
  for (const [name, options, option] of invalid) await registerFails(t, options, option, name)
})

t.test('register without options names the first required option', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(cognitoAuth as never) // the types refuse this; JavaScript callers can still do it
  await t.rejects(async () => { await app.ready() }, { code: 'FST_COGNITO_INVALID_OPTION', message: /^Invalid option userPoolId: / })
})

t.test('parseOptions refuses a missing options object', async (t) => {
  t.throws(() => parseOptions(undefined), { code: 'FST_COGNITO_INVALID_OPTION', message: /^Invalid option options: / })
})

t.test('the share of an issuer is told apart from a pool id typo', async (t) => {
  // The message of a shared issuer explains what to do instead.
  t.throws(() => parseOptions({ userPools: [valid, { ...valid, clientId: 'b' }] }), { message: /list all app clients of a pool in one entry/ })
  t.throws(() => parseOptions({ userPools: [valid], userPoolId: 'x', clientId: 'y' } as never), { message: /top-level userPoolId, clientId$/ })
})

t.test('valid configurations register', async (t) => {
  await registers(t, { ...valid, clientId: null }, 'clientId null')
  await registers(t, { ...valid, clientId: ['web', 'mobile'] }, 'several client ids')
  await registers(t, { ...valid, region: 'eu-central-1' }, 'region matching the pool id')
  await registers(t, { ...valid, userPoolId: 'us-gov-west-1_AbCdEf123' }, 'a GovCloud pool')
  await registers(t, { ...valid, tokenUse: 'any', tokenCache: false, revocationCacheTtl: 0, clockTolerance: 0, realm: '' }, 'zeros and off switches')
  await registers(t, { ...valid, jwksCache: { ttl: 1, maxKeys: 2, cooldown: 0, timeout: 0.5, maxStale: 0, maxBytes: 1, prefetch: false } }, 'every jwksCache member')
  await registers(t, { ...valid, jwksUri: 'http://127.0.0.1:9229/jwks?pool=a' }, 'a jwksUri with a query')
  await registers(t, { ...valid, jwks: { keys: [{ ...rsa1024, kid: 'short' }, ...issuer.jwks.keys] } }, 'a JWKS with one unusable key among usable ones')
  await registers(t, {
    ...valid,
    userPoolId: 'local_4GYoIvBY',
    issuer: ['http://127.0.0.1:9229/local_4GYoIvBY', 'http://localhost:9229/local_4GYoIvBY'],
    jwksUri: 'http://127.0.0.1:9229/local_4GYoIvBY/.well-known/jwks.json'
  }, 'an emulator: issuer and jwksUri')
  await registers(t, {
    userPools: [valid, { userPoolId: 'us-east-1_Other', clientId: null, tokenUse: 'access', jwks: issuer.jwks }],
    clockTolerance: 5
  }, 'two pools, with shared options at the top level')
  await registers(t, {
    ...valid,
    resolveUser: async () => null,
    isRevoked: () => false,
    extractToken: () => undefined,
    revocationCacheTtl: 30
  }, 'the functions')
})

t.test('the realm appears in every challenge', async (t) => {
  const app = await buildApp(t, { ...issuer.pluginOptions(), realm: 'orders api' })
  const none = await app.inject({ url: '/private' })
  t.equal(none.headers['www-authenticate'], 'Bearer realm="orders api"')
  const forged = await app.inject({ url: '/private', headers: bearer(issuer.idToken({ aud: 'another-client' })) })
  t.equal(forged.headers['www-authenticate'], 'Bearer realm="orders api", error="invalid_token", error_description="The token is invalid"')
  const malformed = await app.inject({ url: '/private', headers: { authorization: 'Bearer a b' } })
  t.equal(malformed.headers['www-authenticate'], 'Bearer realm="orders api", error="invalid_request", error_description="Malformed Authorization header"')
})
