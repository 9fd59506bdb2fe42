/**
 * The plugin is built on fast-jwt and get-jwks: every verification goes through a fast-jwt
 * verifier (one per key, built once), every key retrieval through get-jwks. Both modules are
 * wrapped with counters, and the plugin loaded over them.
 */
import t from 'tap'
import type * as FastJwt from 'fast-jwt'
import type buildGetJwksType from 'get-jwks'
import Fastify from 'fastify'
import { LocalIssuer } from '../testing'
import { bearer } from './helpers/app'

/* eslint-disable @typescript-eslint/no-require-imports */
const fastJwt = require('fast-jwt') as typeof FastJwt
const buildGetJwks = require('get-jwks') as typeof buildGetJwksType

const calls = { verifiersBuilt: 0, verifications: 0, getJwk: [] as string[], jwksUris: [] as string[] }

const countingFastJwt = {
  ...fastJwt,
  createVerifier: (options: Parameters<typeof fastJwt.createVerifier>[0]) => {
    calls.verifiersBuilt++
    t.equal(typeof options?.key, 'string', 'built with a static key, never a key function')
    const verify = fastJwt.createVerifier(options) as (token: string) => unknown
    return (token: string) => {
      calls.verifications++
      return verify(token)
    }
  }
}

const countingGetJwks = (options: Parameters<typeof buildGetJwks>[0]): ReturnType<typeof buildGetJwks> => {
  const getJwks = buildGetJwks(options)
  calls.jwksUris.push(`${options?.issuersWhitelist?.join()}|${options?.jwksPath}`)
  return {
    ...getJwks,
    getJwk: (signature) => {
      calls.getJwk.push(signature.kid)
      return getJwks.getJwk(signature)
    }
  }
}

t.test('verifications go through fast-jwt, key retrievals through get-jwks', async (t) => {
  const { default: cognitoAuth } = t.mockRequire<typeof import('../index')>('../index', {
    'fast-jwt': countingFastJwt,
    'get-jwks': countingGetJwks
  })
  const issuer = new LocalIssuer()
  await issuer.listen()
  t.teardown(() => issuer.close())
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, { ...issuer.pluginOptions(), jwksCache: { cooldown: 0 } })
  app.get('/', { onRequest: app.authenticate }, async () => 'ok')
  await app.ready()

  t.same(calls.jwksUris, [`http://127.0.0.1:${new URL(issuer.jwksUri).port}/${issuer.userPoolId}/.well-known/|jwks.json`], 'one get-jwks per pool, on the configured URI')
  t.equal(calls.getJwk.length, 1, 'the warm start is one get-jwks retrieval')
  t.equal(calls.verifiersBuilt, 1, 'one verifier for the one key')

  const tokens = Array.from({ length: 5 }, (_, i) => issuer.idToken({ sub: `user-${i}` }))
  for (const token of tokens) t.equal((await app.inject({ url: '/', headers: bearer(token) })).statusCode, 200)
  t.equal(calls.verifications, 5, 'each distinct token is verified by fast-jwt')
  for (const token of tokens) t.equal((await app.inject({ url: '/', headers: bearer(token) })).statusCode, 200)
  t.equal(calls.verifications, 10, 'a token seen once more is verified again, and kept')
  for (const token of tokens) t.equal((await app.inject({ url: '/', headers: bearer(token) })).statusCode, 200)
  t.equal(calls.verifications, 10, 'from then on, it comes from the verified-token cache')
  t.equal(calls.getJwk.length, 1, 'known keys need no retrieval')
  t.equal(calls.verifiersBuilt, 1, 'nor a new verifier')

  const [, payload, signature] = issuer.idToken().split('.')
  const unknownKid = `${Buffer.from(JSON.stringify({ alg: 'RS256', kid: 'no-such-kid' })).toString('base64url')}.${payload}.${signature}`
  t.equal((await app.inject({ url: '/', headers: bearer(unknownKid) })).statusCode, 401)
  t.same(calls.getJwk.slice(1), ['no-such-kid'], 'an unknown kid is asked of get-jwks')

  const rotated = issuer.rotate()
  t.equal((await app.inject({ url: '/', headers: bearer(issuer.idToken()) })).statusCode, 200, 'a new key is picked up')
  t.same(calls.getJwk.slice(2), [rotated], 'through get-jwks')
  t.equal(calls.verifiersBuilt, 2, 'with a verifier of its own')
  t.equal(calls.verifications, 11)
})
