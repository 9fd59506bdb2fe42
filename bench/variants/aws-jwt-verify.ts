/**
 * aws-jwt-verify's CognitoJwtVerifier, as its README's Fastify example uses it (hydrated at
 * start, `await verifier.verify(token)` per request). It derives the JWKS URI from the pool id;
 * a custom Fetcher (the extension point its README documents) serves that URI from loopback.
 */
import { CognitoJwtVerifier } from 'aws-jwt-verify'
import type { Fetcher } from 'aws-jwt-verify/https'
import { SimpleJwksCache } from 'aws-jwt-verify/jwk'
import type { FastifyRequest } from 'fastify'
import { CLIENT_ID, COGNITO_JWKS_URI, USER_POOL_ID } from '../config'
import { bearerToken, peerHook, recordedSubject, type Claims, type SetupVariant } from './common'

class LoopbackFetcher implements Fetcher {
  constructor (private readonly jwksUri: string) {}

  async fetch (uri: string): Promise<ArrayBuffer> {
    if (uri !== COGNITO_JWKS_URI) throw new Error(`unexpected JWKS URI ${uri}`)
    const response = await fetch(this.jwksUri)
    return await response.arrayBuffer()
  }
}

export const setupAwsJwtVerify: SetupVariant = async (_app, { jwksUri, resolveUser }) => {
  const verifier = CognitoJwtVerifier.create(
    { userPoolId: USER_POOL_ID, tokenUse: 'id', clientId: CLIENT_ID },
    { jwksCache: new SimpleJwksCache({ fetcher: new LoopbackFetcher(jwksUri) }) }
  )
  await verifier.hydrate()
  const verify = async (request: FastifyRequest): Promise<Claims> => await verifier.verify(bearerToken(request) ?? '')
  return { hook: peerHook(verify, resolveUser), subject: recordedSubject }
}
