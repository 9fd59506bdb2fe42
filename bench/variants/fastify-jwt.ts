/**
 * @fastify/jwt with get-jwks, combined as get-jwks's README shows: the secret is a function that
 * asks getJwks.getPublicKey for the token's `kid`, and `request.jwtVerify()` runs in `onRequest`.
 * The `domain` is where the pool's JWKS is served: the issuer in production, loopback here.
 */
import fastifyJwt from '@fastify/jwt'
import type { FastifyRequest } from 'fastify'
import buildGetJwks from 'get-jwks'
import { CLIENT_ID, ISSUER } from '../config'
import { peerHook, recordedSubject, type Claims, type SetupVariant } from './common'

export const setupFastifyJwt: SetupVariant = async (app, { jwksUri, resolveUser }) => {
  const domain = jwksUri.slice(0, -'.well-known/jwks.json'.length)
  const getJwks = buildGetJwks()
  await app.register(fastifyJwt, {
    decode: { complete: true },
    verify: { algorithms: ['RS256'], allowedIss: ISSUER, allowedAud: CLIENT_ID },
    secret: (_request, token, callback) => {
      const { kid, alg } = 'header' in token ? token.header : token
      getJwks.getPublicKey({ kid, alg, domain }).then((key) => { callback(null, key) }, (err: Error) => { callback(err, undefined) })
    }
  })
  const verify = async (request: FastifyRequest): Promise<Claims> => await request.jwtVerify<Claims>()
  return { hook: peerHook(verify, resolveUser), subject: recordedSubject }
}
