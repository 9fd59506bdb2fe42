/**
 * The rules of the load balancer's user claims: they are not an ID or access token's. The payload
 * is what Cognito's userInfo endpoint returned (`sub`, `email`, `username`, ...; strings, such as
 * `email_verified: "true"`), plus `exp` and `iss`: no `jti`, `iat`, `auth_time`, `token_use` or
 * `aud`. Every rule of the plugin's is in `checkAlbClaims`, the one place a further one belongs;
 * the application's own (`claims.alb`, lib/claims-schema.ts) are checked after them.
 */
import type { CognitoAlbClaims } from '../../types'
import { TokenExpiredError, withReason, type CognitoAuthError } from '../errors'
import { asCognitoClaims } from '../claims'
import { refuse } from './token'

/** What the claims are checked against: the pool's issuers (either form). */
export interface AlbClaimRules {
  issuers: readonly string[]
}

/**
 * The refusal of claims that break a rule, or undefined when they pass. Reasons name no claim value.
 * `sub`, `iss` and `exp` are required with their types; `nbf`, when present, must have passed.
 */
export function checkAlbClaims (rules: AlbClaimRules, claims: Record<string, unknown>, nowMs: number, toleranceMs: number): CognitoAuthError | undefined {
  const { sub, iss, exp, nbf } = claims
  if (typeof sub !== 'string' || sub === '') return refuse('sub claim missing or not a string')
  if (typeof iss !== 'string' || !rules.issuers.includes(iss)) return refuse('iss claim is not the pool\'s issuer')
  if (typeof exp !== 'number' || !Number.isFinite(exp)) return refuse('exp claim missing or not a number')
  if (nbf !== undefined && (typeof nbf !== 'number' || !Number.isFinite(nbf))) return refuse('nbf claim has the wrong type')
  if (nbf !== undefined && (nbf as number) * 1000 > nowMs + toleranceMs) return refuse('the token is not active yet (nbf)')
  if (nowMs >= exp * 1000 + toleranceMs) return withReason(new TokenExpiredError(), 'the token has expired (exp reached)')
  return undefined
}

/** Claims that passed, frozen all the way down: a cached token hands the same object to every request. */
export function asAlbClaims (claims: Record<string, unknown>): CognitoAlbClaims {
  return asCognitoClaims(claims) as unknown as CognitoAlbClaims
}
