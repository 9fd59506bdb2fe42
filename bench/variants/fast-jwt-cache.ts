/**
 * The plugin's verification with fast-jwt's own cache of verified tokens in place of the
 * plugin's: the same verifier options (one verifier per key, its `cache` on), the same Cognito
 * checks (lib/claims.ts), run once per verified payload. The plugin keeps its own cache only if
 * it is faster than this.
 */
import { createPublicKey } from 'node:crypto'
import { createVerifier } from 'fast-jwt'
import type { onRequestHookHandler } from 'fastify'
import { checkCognitoClaims } from '../../lib/claims'
import { extractBearer } from '../../lib/extract'
import { CLIENT_ID, ISSUER } from '../config'
import { findUser, recordedSubject, refuse, setSubject, type Claims, type SetupVariant } from './common'

type Verify = (token: string) => Claims

async function verifiersByKid (jwksUri: string): Promise<Map<string, Verify>> {
  const response = await fetch(jwksUri)
  const { keys } = await response.json() as { keys: Array<Record<string, string>> }
  return new Map(keys.map((jwk) => [jwk.kid, createVerifier({
    key: createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string,
    algorithms: ['RS256'],
    allowedIss: [ISSUER],
    allowedAud: [CLIENT_ID],
    requiredClaims: ['iss', 'sub', 'exp', 'iat', 'token_use'],
    cache: 1000
  }) as Verify]))
}

export const setupFastJwtCache: SetupVariant = async (_app, { jwksUri, resolveUser }) => {
  const verifiers = await verifiersByKid(jwksUri)
  const byHeader = new Map<string, Verify>()
  const rules = { tokenUse: 'id' as const, clientIds: new Set([CLIENT_ID]), audiences: null }
  // fast-jwt's cache hands back the same payload for the same token: check each payload once.
  const checked = new WeakSet<Claims>()

  function claimsOf (authorization: string | undefined): Claims | undefined {
    const token = extractBearer(authorization)
    if (typeof token !== 'string') return undefined
    const header = token.slice(0, token.indexOf('.'))
    let verify = byHeader.get(header)
    if (verify === undefined) {
      const { kid } = JSON.parse(Buffer.from(header, 'base64url').toString()) as { kid: string }
      verify = verifiers.get(kid)
      if (verify === undefined) return undefined
      byHeader.set(header, verify)
    }
    const claims = verify(token)
    if (!checked.has(claims)) {
      if (checkCognitoClaims(rules, claims, Date.now(), 0) !== undefined) return undefined
      checked.add(Object.freeze(claims))
    }
    return claims
  }

  const hook: onRequestHookHandler = async function authenticate (request, reply) {
    let claims: Claims | undefined
    try {
      claims = claimsOf(request.headers.authorization)
    } catch {
      return refuse(reply)
    }
    if (claims === undefined || (resolveUser && await findUser(claims.sub) === undefined)) return refuse(reply)
    setSubject(request, claims.sub as string)
  }
  return { hook, subject: recordedSubject }
}
