/**
 * fastify-jwt-jwks as its README configures it: `jwksUrl` (the pool's JWKS, on loopback here),
 * `issuer` and `audience`; its `authenticate` decorator verifies the request.
 */
import { createRequire } from 'node:module'
import type { FastifyInstance, FastifyPluginCallback, FastifyRequest } from 'fastify'
import { CLIENT_ID, ISSUER } from '../config'
import { peerHook, recordedSubject, type Claims, type SetupVariant } from './common'

interface JwtJwksOptions {
  jwksUrl: string
  issuer: string
  audience: string
}

type JwtJwksInstance = FastifyInstance & { authenticate: (request: FastifyRequest) => Promise<void> }

// Its type declarations give `fastify.authenticate` another type than this plugin's do; loading it
// untyped keeps both in one type-checked project (each variant runs in its own process anyway).
const fastifyJwtJwks = createRequire(__filename)('fastify-jwt-jwks') as FastifyPluginCallback<JwtJwksOptions>

export const setupFastifyJwtJwks: SetupVariant = async (app, { jwksUri, resolveUser }) => {
  await app.register(fastifyJwtJwks, { jwksUrl: jwksUri, issuer: ISSUER, audience: CLIENT_ID })
  const verify = async (request: FastifyRequest): Promise<Claims> => {
    await (app as JwtJwksInstance).authenticate(request)
    return request.user as Claims
  }
  return { hook: peerHook(verify, resolveUser), subject: recordedSubject }
}
