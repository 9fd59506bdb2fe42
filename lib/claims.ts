/**
 * What fast-jwt has no option for, checked on claims it has already verified (signature, `iss`,
 * `exp` and `nbf` with the tolerance, the required claims):
 *   - the types of the claims the plugin decides with: dates are finite numbers (JSON `1e400`
 *     parses to Infinity, which fast-jwt takes for a date that never comes), identifiers and
 *     `scope` are strings, `cognito:groups` a list of strings. Informational claims (`email`,
 *     `email_verified`, ...) are not checked: a pre-token-generation trigger may write them as
 *     strings (version 1) or any JSON value (versions 2 and 3), and the exported types say so;
 *   - `exp` exclusive (RFC 7519: not accepted on or after it; fast-jwt accepts `exp` itself);
 *   - `iat` no more than a bound ahead: clocks drift, so a fresh token may be issued "in the future";
 *   - Cognito's own rules: which kind of token this is, and which app client it was issued to. ID
 *     tokens name the client in `aud`; access tokens in `client_id`, their `aud` (if any) naming a
 *     resource server, which only the pool's `audience` option restricts.
 */
import type { CognitoClaims, TokenUse } from '../types'

export interface ClaimRules {
  tokenUse: TokenUse
  /** Allowed app client ids; null when the application opted out of the check. */
  clientIds: ReadonlySet<string> | null
  /** The resource servers an access token's `aud` must name one of; null: any `aud`, or none. */
  audiences: ReadonlySet<string> | null
}

type Claims = Record<string, unknown>
type TypeCheck = (value: unknown) => boolean

const isString: TypeCheck = (value) => typeof value === 'string'
const isFiniteNumber: TypeCheck = (value) => typeof value === 'number' && Number.isFinite(value)
const isStringList: TypeCheck = (value) => Array.isArray(value) && value.every(isString)

/** The type of every claim the plugin (or its revocation) decides with; a present claim of another type is refused. */
const CLAIM_TYPES: ReadonlyArray<[string, TypeCheck]> = [
  ['iss', isString],
  ['exp', isFiniteNumber],
  ['iat', isFiniteNumber],
  ['nbf', isFiniteNumber],
  ['auth_time', isFiniteNumber],
  ['token_use', isString],
  ['sub', isString],
  ['jti', isString],
  ['origin_jti', isString],
  ['client_id', isString],
  ['scope', isString],
  ['cognito:groups', isStringList]
]

/**
 * How far ahead of the server's clock (beyond `clockTolerance`) a token's `iat` may be: Cognito's
 * clock and the server's drift by seconds, and refusing a fresh token makes sign-ins fail at
 * random. A token issued further in the future than this is refused.
 */
export const MAX_IAT_AHEAD_MS = 5 * 60_000

/** Why the claims are refused, or undefined when they pass. The reason names no claim value. */
export function checkCognitoClaims (rules: ClaimRules, claims: Claims, nowMs: number, toleranceMs: number): string | undefined {
  for (const [name, hasType] of CLAIM_TYPES) {
    if (claims[name] !== undefined && !hasType(claims[name])) return `${name} claim has the wrong type`
  }
  if ((claims.iat as number) * 1000 > nowMs + MAX_IAT_AHEAD_MS + toleranceMs) return 'iat claim too far in the future'
  const use = claims.token_use
  if (use !== 'id' && use !== 'access') return 'token_use claim is neither id nor access'
  if (rules.tokenUse !== 'any' && rules.tokenUse !== use) return `${use} token where ${rules.tokenUse} tokens are required`
  const { aud } = claims
  if (use === 'id') {
    // The ID token's audience is the app client: one string (RFC 7519 allows a list; Cognito writes one).
    if (aud !== undefined && !isString(aud)) return 'aud claim has the wrong type'
  } else {
    // An access token's `aud` names resource servers: a string or a list of strings (RFC 7519 §4.1.3).
    if (aud !== undefined && !isString(aud) && !isStringList(aud)) return 'aud claim has the wrong type'
    if (rules.audiences !== null && !namesOneOf(aud, rules.audiences)) return 'aud claim names no allowed audience'
  }
  if (rules.clientIds === null) return undefined
  const client = use === 'id' ? aud : claims.client_id
  if (client === undefined || !rules.clientIds.has(client as string)) {
    return use === 'id' ? 'aud claim is not an allowed app client' : 'client_id claim is not an allowed app client'
  }
  return undefined
}

function namesOneOf (aud: unknown, allowed: ReadonlySet<string>): boolean {
  return typeof aud === 'string' ? allowed.has(aud) : Array.isArray(aud) && aud.some((name: string) => allowed.has(name))
}

/**
 * Whether the token has expired: RFC 7519 accepts it only before `exp`, so `exp` itself is too
 * late. fast-jwt accepts `exp` itself, so this check comes on top of its own.
 */
export function hasExpired (claims: Claims, nowMs: number, toleranceMs: number): boolean {
  return nowMs >= (claims.exp as number) * 1000 + toleranceMs
}

/**
 * Freezes claims that passed the checks above, all the way down, once per verified token: a
 * cached token hands the same claims to every request that sends it, so one handler must not be
 * able to change what the next one sees.
 */
export function asCognitoClaims (claims: Claims): CognitoClaims {
  return deepFreeze(claims) as unknown as CognitoClaims
}

/** Iterative, so that no nesting depth can exhaust the stack. */
function deepFreeze (root: object): object {
  const pending: object[] = [root]
  for (let value = pending.pop(); value !== undefined; value = pending.pop()) {
    Object.freeze(value)
    for (const member of Object.values(value)) {
      if (typeof member === 'object' && member !== null) pending.push(member)
    }
  }
  return root
}
