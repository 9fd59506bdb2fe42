/**
 * The errors a request can meet, each with a stable code, a status and the RFC 6750
 * `WWW-Authenticate` challenge that goes with it. Messages are generic on purpose: they never
 * carry a token or a claim value.
 */
import createError from '@fastify/error'
import type { CognitoAuthError } from '../types'

// Client errors are expected traffic: a stack trace per refused request is cost without use.
const noStack = false

export const NoTokenError = createError('FST_COGNITO_NO_TOKEN', 'Authentication required', 401, TypeError, noStack)
export const BadAuthorizationHeaderError = createError(
  'FST_COGNITO_BAD_AUTHORIZATION_HEADER',
  'Malformed Authorization header',
  400,
  TypeError,
  noStack
)
export const TokenExpiredError = createError('FST_COGNITO_TOKEN_EXPIRED', 'The token has expired', 401, TypeError, noStack)
export const TokenInvalidError = createError('FST_COGNITO_TOKEN_INVALID', 'The token is invalid', 401, TypeError, noStack)
export const TokenRevokedError = createError('FST_COGNITO_TOKEN_REVOKED', 'The token has been revoked', 401, TypeError, noStack)
export const UserNotFoundError = createError('FST_COGNITO_USER_NOT_FOUND', 'Unknown user', 401, TypeError, noStack)
export const ForbiddenError = createError('FST_COGNITO_FORBIDDEN', 'Insufficient permissions', 403, TypeError, noStack)
export const JwksUnavailableError = createError(
  'FST_COGNITO_JWKS_UNAVAILABLE',
  'The signing keys cannot be retrieved; try again later',
  503,
  Error,
  noStack
)
/** The keys could not be fetched at startup (`prefetch: 'required'`): names the JWKS URI and the cause, for the operator. */
export const JwksPrefetchError = createError<[string, string, { cause: unknown }]>(
  'FST_COGNITO_JWKS_UNAVAILABLE',
  'The signing keys cannot be retrieved from %s: %s',
  503
)
/** The application's `userPools` resolver failed: whether the token's pool is a tenant is not known. */
export const PoolUnavailableError = createError(
  'FST_COGNITO_POOL_UNAVAILABLE',
  'The user pool cannot be resolved; try again later',
  503,
  Error,
  noStack
)
/** The revocation list cannot vouch for a request (out of sync past `maxStale`), or cannot take a revocation. */
export const RevocationUnavailableError = createError(
  'FST_COGNITO_REVOCATION_UNAVAILABLE',
  'The revocation list is unavailable; try again later',
  503,
  Error,
  noStack
)
/** A token without `origin_jti` or `jti` cannot be revoked on its own. */
export const TokenNotRevocableError = createError(
  'FST_COGNITO_TOKEN_NOT_REVOCABLE',
  'The token has no origin_jti or jti; enable token revocation on the app client',
  500,
  TypeError
)
export const InvalidOptionError = createError<[string, string]>('FST_COGNITO_INVALID_OPTION', 'Invalid option %s: %s', 500, TypeError)
/**
 * A hook of the application (`isRevoked`, `resolveUser`) failed without an error to answer with:
 * it rejected with no Error, or `isRevoked` answered something else than a boolean. Either way the
 * plugin cannot vouch for the request, so it is an application error, not a pass.
 */
export const HookFailedError = createError<[string, string]>('FST_COGNITO_HOOK_FAILED', '%s %s', 500)

export type { CognitoAuthError } from '../types'

/**
 * Whether an error is one the plugin made (any `FST_COGNITO_*` code), for custom error handlers:
 * it narrows to CognitoAuthError, whose `headers` carry the `WWW-Authenticate` challenge. It reads
 * the code rather than the class, so that a CommonJS and an ES copy of the package agree.
 */
export function isCognitoAuthError (error: unknown): error is CognitoAuthError {
  if (!(error instanceof Error)) return false
  const { code, statusCode } = error as Partial<CognitoAuthError>
  return typeof code === 'string' && code.startsWith('FST_COGNITO_') && typeof statusCode === 'number'
}

/**
 * Attaches the reason (for the debug log and the `refused` event) to an error: a non-enumerable
 * property, so that serializers and responses never see it.
 */
export function withReason<E extends Error> (error: E, reason: string): E {
  Object.defineProperty(error, 'reason', { value: reason })
  return error
}

/** RFC 6750 error codes, by the error that answers the request. */
const challengeErrors: Record<string, string | undefined> = {
  FST_COGNITO_BAD_AUTHORIZATION_HEADER: 'invalid_request',
  FST_COGNITO_TOKEN_EXPIRED: 'invalid_token',
  FST_COGNITO_TOKEN_INVALID: 'invalid_token',
  FST_COGNITO_TOKEN_REVOKED: 'invalid_token',
  FST_COGNITO_USER_NOT_FOUND: 'invalid_token',
  FST_COGNITO_FORBIDDEN: 'insufficient_scope'
}

/**
 * The `WWW-Authenticate` value for an error (RFC 6750 §3). A request with no credentials gets the
 * bare challenge, without an error code, as the RFC asks. Values are built from constants only.
 */
export function buildChallenge (realm: string, error: CognitoAuthError, scope?: readonly string[]): string | undefined {
  if (error.code === 'FST_COGNITO_JWKS_UNAVAILABLE') return undefined
  // The server's trouble, not the token's (a pool that cannot be resolved, an invalid answer).
  if (error.statusCode >= 500) return undefined
  let challenge = `Bearer realm="${realm}"`
  const code = challengeErrors[error.code]
  if (code !== undefined) {
    challenge += `, error="${code}", error_description="${error.message}"`
  }
  if (scope !== undefined) challenge += `, scope="${scope.join(' ')}"`
  return challenge
}
