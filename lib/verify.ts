/**
 * From a token string to verified Cognito claims. In order:
 *   1. a size cap, before anything is decoded;
 *   2. the cache of tokens already verified;
 *   3. the header: RS256 and a `kid`, whatever else it says (`jku`, `x5u`, `jwk` are ignored);
 *   4. the pool, by exact issuer (with one pool, checked here only before a `kid` lookup that may fetch);
 *   5. the key, by `kid`: synchronous when known, a JWKS fetch when not;
 *   6. fast-jwt, with a verifier bound to that one key: signature, `iss`, `exp`, `nbf`;
 *   7. the Cognito rules: `iat`, `token_use`, `aud`/`client_id`.
 * A known key keeps the whole path synchronous; only a key fetch returns a promise.
 */
import { createVerifier, TokenError } from 'fast-jwt'
import type { FastifyBaseLogger } from 'fastify'
import { asCognitoClaims, checkCognitoClaims } from './claims'
import { TokenExpiredError, TokenInvalidError, withReason, type CognitoAuthError } from './errors'
import { KeyStore, type StoredKey } from './jwks'
import type { JwksSettings, PoolSettings } from './options'
import { TokenCache, type VerifiedToken } from './token-cache'

type KeyVerifier = (token: string) => Record<string, unknown>

interface Pool {
  settings: PoolSettings
  store: KeyStore<KeyVerifier>
}

function refuse (reason: string, expired = false): CognitoAuthError {
  return withReason(expired ? new TokenExpiredError() : new TokenInvalidError(), reason)
}

export interface VerifierSettings {
  pools: PoolSettings[]
  jwks: JwksSettings
  clockToleranceMs: number
  maxTokenLength: number
  tokenCacheMax: number
  log: FastifyBaseLogger
}

export class CognitoVerifier {
  readonly pools: Pool[]
  private readonly byIssuer = new Map<string, Pool>()
  private readonly cache: TokenCache | null
  private readonly toleranceMs: number
  private readonly maxTokenLength: number

  constructor ({ pools, jwks, clockToleranceMs, maxTokenLength, tokenCacheMax, log }: VerifierSettings) {
    this.toleranceMs = clockToleranceMs
    this.maxTokenLength = maxTokenLength
    this.cache = tokenCacheMax > 0 ? new TokenCache(tokenCacheMax) : null
    this.pools = pools.map((settings) => {
      const prepare = (pem: string): KeyVerifier => createVerifier({
        key: pem,
        algorithms: ['RS256'],
        allowedIss: settings.issuers,
        requiredClaims: ['iss', 'exp'],
        clockTolerance: clockToleranceMs,
        cache: false
      })
      const store = new KeyStore<KeyVerifier>({
        jwksUri: settings.jwksUri,
        jwks: settings.jwks,
        ttlMs: jwks.ttlMs,
        cooldownMs: jwks.cooldownMs,
        timeoutMs: jwks.timeoutMs,
        maxStaleMs: jwks.maxStaleMs,
        maxBytes: jwks.maxBytes,
        log,
        prepare
      })
      const pool = { settings, store }
      for (const issuer of settings.issuers) this.byIssuer.set(issuer, pool)
      return pool
    })
  }

  /** Verified claims, synchronously when the key is known; throws (or rejects) a CognitoAuthError. */
  verify (token: string): VerifiedToken | Promise<VerifiedToken> {
    if (token.length > this.maxTokenLength) throw refuse('token longer than maxTokenLength')
    const now = Date.now()
    const cached = this.cache?.get(token, now)
    if (cached !== undefined) return cached

    const firstDot = token.indexOf('.')
    const header = parseSegment(token, 0, firstDot)
    if (header === undefined) throw refuse('malformed token header')
    if (header.alg !== 'RS256') throw refuse('algorithm is not RS256')
    const kid = header.kid
    if (typeof kid !== 'string' || kid === '') throw refuse('kid header missing')

    const single = this.pools.length === 1
    const pool = single ? this.pools[0] : this.poolOf(token, firstDot)
    const key = pool.store.get(kid)
    if (key !== undefined) return this.check(pool, key, token)
    // An unknown kid may cost a JWKS fetch: only a token that claims this pool's issuer may cause one.
    if (single) this.poolOf(token, firstDot)
    return pool.store.find(kid).then((found) => {
      if (found === undefined) throw refuse('kid is not a key of the JWKS')
      return this.check(pool, found, token)
    })
  }

  /** The pool whose issuer the (still unverified) token names; its key then verifies everything. */
  private poolOf (token: string, firstDot: number): Pool {
    const payload = parseSegment(token, firstDot + 1, token.indexOf('.', firstDot + 1))
    const pool = typeof payload?.iss === 'string' ? this.byIssuer.get(payload.iss) : undefined
    if (pool === undefined) throw refuse('issuer is not a configured pool')
    return pool
  }

  private check (pool: Pool, key: StoredKey<KeyVerifier>, token: string): VerifiedToken {
    let claims: Record<string, unknown>
    try {
      claims = key.value(token)
    } catch (err) {
      const { code, message } = err as TokenError
      throw refuse(message, code === TokenError.codes.expired)
    }
    const now = Date.now()
    const reason = checkCognitoClaims(pool.settings, claims, now, this.toleranceMs)
    if (reason !== undefined) throw refuse(reason)
    const verified: VerifiedToken = {
      claims: asCognitoClaims(claims),
      expiresAt: (claims.exp as number) * 1000 + this.toleranceMs,
      key,
      keys: pool.store,
      notRevokedUntil: 0
    }
    this.cache?.set(token, verified)
    return verified
  }
}

/** A base64url JSON object segment of the token, or undefined when it is not one. */
function parseSegment (token: string, start: number, end: number): Record<string, unknown> | undefined {
  if (end <= start) return undefined
  try {
    const value: unknown = JSON.parse(Buffer.from(token.slice(start, end), 'base64url').toString('utf8'))
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}
