/**
 * The Cognito rules fast-jwt does not know: which kind of token this is, and which app client it
 * was issued to. ID tokens name the client in `aud`; access tokens have no `aud` and name it in
 * `client_id`, so each kind is checked on its own claim and a missing one never passes.
 */
import type { CognitoClaims, TokenUse } from '../types'

export interface ClaimRules {
  tokenUse: TokenUse
  /** Allowed app client ids; null when the application opted out of the check. */
  clientIds: ReadonlySet<string> | null
}

/** Why the claims are refused, or undefined when they pass. The reason names no claim value. */
export function checkCognitoClaims (rules: ClaimRules, claims: Record<string, unknown>, nowMs: number, toleranceMs: number): string | undefined {
  if (typeof claims.sub !== 'string') return 'sub claim missing'
  if (typeof claims.iat !== 'number') return 'iat claim missing'
  if (claims.iat * 1000 > nowMs + toleranceMs) return 'iat claim in the future'
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
  for (const value of Object.values(claims)) {
    if (typeof value === 'object' && value !== null) Object.freeze(value)
  }
  return Object.freeze(claims) as unknown as CognitoClaims
}
