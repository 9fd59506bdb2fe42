/**
 * The least work that still authenticates: one signature check with a key imported at start,
 * one JSON.parse, the claim checks. No cache, no `kid` lookup, no error detail.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto'
import type { FastifyRequest, onRequestHookHandler } from 'fastify'
import { findUser, isCognitoIdToken, refuse, recordedSubject, setSubject, type Claims, type SetupVariant } from './common'

async function importKey (jwksUri: string): Promise<KeyObject> {
  const response = await fetch(jwksUri)
  const { keys } = await response.json() as { keys: Array<Record<string, string>> }
  return createPublicKey({ key: keys[0], format: 'jwk' })
}

function verifiedClaims (authorization: string | undefined, key: KeyObject): Claims | undefined {
  if (authorization === undefined || !authorization.startsWith('Bearer ')) return undefined
  const [header, payload, signature] = authorization.slice(7).split('.')
  if (signature === undefined) return undefined
  if (!verify('RSA-SHA256', Buffer.from(`${header}.${payload}`), key, Buffer.from(signature, 'base64url'))) return undefined
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Claims
  const exp = claims.exp
  return typeof exp === 'number' && exp * 1000 > Date.now() && isCognitoIdToken(claims) ? claims : undefined
}

export const setupFloor: SetupVariant = async (_app, { jwksUri, resolveUser }) => {
  const key = await importKey(jwksUri)
  const hook: onRequestHookHandler = resolveUser
    ? async function authenticate (request, reply) {
      const claims = verifiedClaims(request.headers.authorization, key)
      if (claims === undefined || await findUser(claims.sub) === undefined) return refuse(reply)
      setSubject(request, claims.sub as string)
    }
    : function authenticate (request, reply, done) {
      const claims = verifiedClaims(request.headers.authorization, key)
      if (claims === undefined) {
        refuse(reply)
        return
      }
      setSubject(request, claims.sub as string)
      done()
    }
  return { hook, subject: (request: FastifyRequest) => recordedSubject(request) }
}
