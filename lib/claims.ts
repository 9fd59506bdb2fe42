/**
 * The rules a verified token's claims must meet: the pool's exact issuer, the times (`exp`
 * required, `nbf` and `iat` not in the future), and Cognito's own: which kind of token this is,
 * and which app client it was issued to. ID tokens name the client in `aud`; access tokens have
 * no `aud` and name it in `client_id`, so each kind is checked on its own claim and a missing one
 * never passes.
 */
import type { CognitoClaims, TokenUse } from '../types'

export interface ClaimRules {
  /** The exact issuers of the pool. */
  issuers: readonly string[]
  tokenUse: TokenUse
  /** Allowed app client ids; null when the application opted out of the check. */
  clientIds: ReadonlySet<string> | null
}

/** The reason of an expired token: the one refusal with a code of its own. */
export const EXPIRED = 'token expired: exp claim has passed'

/** Why the claims are refused, or undefined when they pass. The reason names no claim value. */
export function checkCognitoClaims (rules: ClaimRules, claims: Record<string, unknown>, nowMs: number, toleranceMs: number): string | undefined {
  const { iss, exp, nbf, iat } = claims
  if (typeof iss !== 'string' || !rules.issuers.includes(iss)) return 'iss claim is not the pool\'s issuer'
  if (typeof exp !== 'number') return 'exp claim missing'
  if (typeof iat !== 'number') return 'iat claim missing'
  if (nbf !== undefined && typeof nbf !== 'number') return 'nbf claim is not a number'
  // RFC 7519: expired on or after exp; not yet valid before nbf.
  if (nowMs >= exp * 1000 + toleranceMs) return EXPIRED
  if (nbf !== undefined && nbf * 1000 > nowMs + toleranceMs) return 'nbf claim in the future'
  if (iat * 1000 > nowMs + toleranceMs) return 'iat claim in the future'
  if (typeof claims.sub !== 'string') return 'sub claim missing'
  const use = claims.token_use
  if (use !== 'id' && use !== 'access') return 'token_use claim is neither id nor access'
  if (rules.tokenUse !== 'any' && rules.tokenUse !== use) return `${use} token where ${rules.tokenUse} tokens are required`
  if (rules.clientIds === null) return undefined
  const client = use === 'id' ? claims.aud : claims.client_id
  if (typeof client !== 'string' || !rules.clientIds.has(client)) {
    return use === 'id' ? 'aud claim is not an allowed app client' : 'client_id claim is not an allowed app client'
  }
  return undefined
}

/**
 * Narrows claims that passed the checks above, frozen: a cached token hands the same claims to
 * every request that sends it, so one handler must not be able to change what the next one sees.
 */
export function asCognitoClaims (claims: Record<string, unknown>): CognitoClaims {
  for (const name in claims) {
    const value = claims[name]
    if (typeof value === 'object' && value !== null) Object.freeze(value)
  }
  return Object.freeze(claims) as unknown as CognitoClaims
}
