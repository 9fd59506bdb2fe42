/**
 * From a token string to verified Cognito claims. In order:
 *   1. a size cap, before anything is decoded;
 *   2. the cache of tokens already verified;
 *   3. the shape: three parts;
 *   4. the header: RS256 and a `kid`, whatever else it says (`jku`, `x5u`, `jwk` are ignored,
 *      `crit` refused); each distinct header is parsed once;
 *   5. the pool, by exact issuer (with one pool, checked here only before a `kid` lookup that may fetch);
 *   6. the key, by `kid`: synchronous when known, a JWKS fetch when not;
 *   7. the RS256 signature, with the key imported once (a one-shot `crypto.verify`);
 *   8. the claims (lib/claims.ts): issuer, times, `token_use`, `aud`/`client_id`.
 * A known key keeps the whole path synchronous; only a key fetch returns a promise. The payload is
 * parsed once, after the signature: nothing the token says is trusted before then, but its `kid`
 * (and, with several pools, its issuer) to find the key.
 */
import { createPublicKey, verify as verifySignature, type KeyObject } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { asCognitoClaims, checkCognitoClaims, EXPIRED } from './claims'
import { TokenExpiredError, TokenInvalidError, withReason, type CognitoAuthError } from './errors'
import { KeyStore, type StoredKey } from './jwks'
import type { JwksSettings, PoolSettings } from './options'
import { TokenCache, type VerifiedToken } from './token-cache'

interface Pool {
  settings: PoolSettings
  store: KeyStore<KeyObject>
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
  private readonly headers = new Map<string, string>()
  private readonly cache: TokenCache | null
  private readonly toleranceMs: number
  private readonly maxTokenLength: number

  constructor ({ pools, jwks, clockToleranceMs, maxTokenLength, tokenCacheMax, log }: VerifierSettings) {
    this.toleranceMs = clockToleranceMs
    this.maxTokenLength = maxTokenLength
    this.cache = tokenCacheMax > 0 ? new TokenCache(tokenCacheMax) : null
    this.pools = pools.map((settings) => {
      const store = new KeyStore<KeyObject>({
        jwksUri: settings.jwksUri,
        keys: settings.keys,
        ttlMs: jwks.ttlMs,
        cooldownMs: jwks.cooldownMs,
        timeoutMs: jwks.timeoutMs,
        maxStaleMs: jwks.maxStaleMs,
        maxBytes: jwks.maxBytes,
        log,
        prepare: createPublicKey
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
    const lastDot = token.lastIndexOf('.')
    if (firstDot <= 0 || token.indexOf('.', firstDot + 1) !== lastDot) throw refuse('not three parts')
    const kid = this.kidOf(token.slice(0, firstDot))
    const single = this.pools.length === 1
    const pool = single ? this.pools[0] : this.poolOf(token, firstDot, lastDot)
    const key = pool.store.get(kid)
    if (key !== undefined) return this.check(pool, key, token, firstDot, lastDot)
    // An unknown kid may cost a JWKS fetch: only a token that claims this pool's issuer may cause one.
    if (single) this.poolOf(token, firstDot, lastDot)
    return pool.store.find(kid).then((found) => {
      if (found === undefined) throw refuse('kid is not a key of the JWKS')
      return this.check(pool, found, token, firstDot, lastDot)
    })
  }

  /**
   * The `kid` of a header, which must say RS256 and nothing critical. A pool's tokens share a few
   * headers, so each distinct header is parsed once; only accepted headers are remembered.
   */
  private kidOf (segment: string): string {
    const known = this.headers.get(segment)
    if (known !== undefined) return known
    const header = parseSegment(segment)
    if (header === undefined) throw refuse('malformed token header')
    if (header.alg !== 'RS256') throw refuse('algorithm is not RS256')
    // No extension is understood, so none may be critical (RFC 7515 §4.1.11).
    if (header.crit !== undefined) throw refuse('crit header present')
    const kid = header.kid
    if (typeof kid !== 'string' || kid === '') throw refuse('kid header missing')
    if (this.headers.size >= MAX_HEADERS) this.headers.clear()
    this.headers.set(segment, kid)
    return kid
  }

  /** The pool whose issuer the (still unverified) token names; its key then verifies everything. */
  private poolOf (token: string, firstDot: number, lastDot: number): Pool {
    const payload = parseSegment(token.slice(firstDot + 1, lastDot))
    const pool = typeof payload?.iss === 'string' ? this.byIssuer.get(payload.iss) : undefined
    if (pool === undefined) throw refuse('issuer is not a configured pool')
    return pool
  }

  private check (pool: Pool, key: StoredKey<KeyObject>, token: string, firstDot: number, lastDot: number): VerifiedToken {
    const encoded = token.slice(lastDot + 1)
    const signature = Buffer.from(encoded, 'base64url')
    // The decoder skips characters outside base64url: only the canonical text is the signature.
    if (signature.toString('base64url') !== encoded) throw refuse('signature is not base64url')
    if (!verifySignature('RSA-SHA256', Buffer.from(token.slice(0, lastDot)), key.value, signature)) {
      throw refuse('signature does not verify')
    }
    const claims = parseSegment(token.slice(firstDot + 1, lastDot))
    if (claims === undefined) throw refuse('payload is not a JSON object')
    const reason = checkCognitoClaims(pool.settings, claims, Date.now(), this.toleranceMs)
    if (reason !== undefined) throw refuse(reason, reason === EXPIRED)
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

/** Distinct headers remembered; past this the memory starts over (headers are a handful per pool). */
const MAX_HEADERS = 64

/** A base64url JSON object, or undefined when it is not one. */
function parseSegment (segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'))
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}
