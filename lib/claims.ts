/**
 * What fast-jwt has no option for, checked on claims it has already verified (signature, `iss`,
 * `aud` when present, `exp` and `nbf` with the tolerance, the required claims):
 *   - types, even of claims the plugin does not compare: dates are finite numbers (JSON `1e400`
 *     parses to Infinity, which fast-jwt takes for a date that never comes), strings are strings,
 *     lists are lists of strings, so that the exported claim types never lie;
 *   - `iat` not in the future;
 *   - Cognito's own rules: which kind of token this is, and which app client it was issued to. ID
 *     tokens name the client in `aud`; access tokens have no `aud` and name it in `client_id`, so
 *     each kind is checked on its own claim and a missing one never passes.
 */
import type { CognitoClaims, TokenUse } from '../types'

export interface ClaimRules {
  tokenUse: TokenUse
  /** Allowed app client ids; null when the application opted out of the check. */
  clientIds: ReadonlySet<string> | null
}

type Claims = Record<string, unknown>
type TypeCheck = (value: unknown) => boolean

const isString: TypeCheck = (value) => typeof value === 'string'
const isBoolean: TypeCheck = (value) => typeof value === 'boolean'
const isFiniteNumber: TypeCheck = (value) => typeof value === 'number' && Number.isFinite(value)
const isStringList: TypeCheck = (value) => Array.isArray(value) && value.every(isString)
const isIdentityList: TypeCheck = (value) => Array.isArray(value) && value.every((identity: unknown) =>
  typeof identity === 'object' && identity !== null && !Array.isArray(identity) && isIdentity(identity as Claims))

function isIdentity ({ userId, providerName, providerType, issuer, primary, dateCreated }: Claims): boolean {
  return isString(userId) && isString(providerName) && isString(providerType) &&
    (issuer === undefined || issuer === null || isString(issuer)) &&
    (isString(primary) || isBoolean(primary)) &&
    (isString(dateCreated) || isFiniteNumber(dateCreated))
}

/** The type of every claim the exported claim types name; a present claim of another type is refused. */
const CLAIM_TYPES: ReadonlyArray<[string, TypeCheck]> = [
  ['exp', isFiniteNumber],
  ['iat', isFiniteNumber],
  ['nbf', isFiniteNumber],
  ['auth_time', isFiniteNumber],
  ['version', isFiniteNumber],
  ['sub', isString],
  ['aud', isString],
  ['jti', isString],
  ['origin_jti', isString],
  ['event_id', isString],
  ['username', isString],
  ['cognito:username', isString],
  ['client_id', isString],
  ['scope', isString],
  ['cognito:preferred_role', isString],
  ['email', isString],
  ['phone_number', isString],
  ['name', isString],
  ['given_name', isString],
  ['family_name', isString],
  ['at_hash', isString],
  ['nonce', isString],
  ['email_verified', isBoolean],
  ['phone_number_verified', isBoolean],
  ['cognito:groups', isStringList],
  ['cognito:roles', isStringList],
  ['identities', isIdentityList]
]

/** Why the claims are refused, or undefined when they pass. The reason names no claim value. */
export function checkCognitoClaims (rules: ClaimRules, claims: Claims, nowMs: number, toleranceMs: number): string | undefined {
  for (const [name, hasType] of CLAIM_TYPES) {
    if (claims[name] !== undefined && !hasType(claims[name])) return `${name} claim has the wrong type`
  }
  if ((claims.iat as number) * 1000 > nowMs + toleranceMs) return 'iat claim in the future'
  const use = claims.token_use
  if (use !== 'id' && use !== 'access') return 'token_use claim is neither id nor access'
  if (rules.tokenUse !== 'any' && rules.tokenUse !== use) return `${use} token where ${rules.tokenUse} tokens are required`
  if (rules.clientIds === null) return undefined
  const client = use === 'id' ? claims.aud : claims.client_id
  if (client === undefined || !rules.clientIds.has(client as string)) {
    return use === 'id' ? 'aud claim is not an allowed app client' : 'client_id claim is not an allowed app client'
  }
  return undefined
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
