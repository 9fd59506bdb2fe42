/**
 * From a token string to verified Cognito claims. In order:
 *   1. a size cap, before anything is decoded;
 *   2. the cache of tokens already verified;
 *   3. the header's `kid` (and `alg`, so that a token that cannot pass never costs a key fetch);
 *      each distinct header of a verified token is read once;
 *   4. the pool, by exact issuer (lib/pools/directory.ts: with several pools, or the application's
 *      resolver; with one pool, checked here only before a `kid` lookup that may fetch);
 *   5. the key, by `kid` (lib/keys/store.ts): synchronous when known, a JWKS fetch when not;
 *   6. fast-jwt's verifier for that key, built once per key: base64url segments, RS256 only, the
 *      signature, `crit`, `iss`, `exp` and `nbf` with the tolerance, the required claims;
 *   7. what fast-jwt has no option for (lib/claims.ts): claim types, `iat`, `token_use`, the app
 *      client (`aud` or `client_id`), an access token's audience, `exp` itself;
 *   8. the application's claims schema of the pool, if any (lib/claims-schema.ts).
 * Steps 6 to 8 run once per token: a token from the cache has passed them all.
 * A known key keeps the whole path synchronous; only a key fetch returns a promise.
 */
import type { FastifyBaseLogger } from 'fastify'
import { TokenError } from './fast-jwt'
import { asCognitoClaims, checkCognitoClaims, hasExpired } from './claims'
import { checkClaimSchemas } from './claims-schema'
import { JwksUnavailableError, TokenExpiredError, TokenInvalidError, withReason, type CognitoAuthError } from './errors'
import type { StoredKey } from './keys/store'
import type { JwksSettings, PoolSettings, ResolverSettings } from './options'
import { createPoolDirectory, type PoolDirectory } from './pools/directory'
import type { KeyVerifier, Pool } from './pools/pool'
import { keyStillServed, TokenCache, type VerifiedToken } from './token-cache'

function refuse (reason: string): CognitoAuthError {
  return withReason(new TokenInvalidError(), reason)
}

/**
 * fast-jwt's refusals in fixed words: its own messages may carry claim values ("The token has
 * expired at <date>", "The iss claim value is not allowed"), and the reason reaches logs and events.
 * Made on the first refusal, when a verifier has loaded fast-jwt: the import must not load it.
 */
let tokenErrorTexts: Readonly<Record<string, string>> | undefined
const makeTokenErrorTexts = (): Readonly<Record<string, string>> => ({
  [TokenError.codes.expired]: 'the token has expired',
  [TokenError.codes.inactive]: 'the token is not active yet (nbf)',
  [TokenError.codes.invalidSignature]: 'the signature is invalid',
  [TokenError.codes.invalidAlgorithm]: 'the algorithm is not allowed',
  [TokenError.codes.malformed]: 'the token is malformed',
  [TokenError.codes.invalidPayload]: 'the payload is not a JSON object',
  [TokenError.codes.invalidClaimType]: 'a claim has the wrong type',
  [TokenError.codes.invalidClaimValue]: 'a claim value is not allowed',
  [TokenError.codes.missingRequiredClaim]: 'a required claim is missing',
  [TokenError.codes.missingSignature]: 'the signature is missing',
  [TokenError.codes.invalidCritHeader]: 'a crit header is not supported',
  [TokenError.codes.invalidKey]: 'the key is unusable',
  [TokenError.codes.missingKey]: 'no key to verify with',
  [TokenError.codes.keyFetchingError]: 'the key could not be retrieved'
})

/** fast-jwt's verdict in the plugin's terms: expired, key trouble, or invalid. The reason names no claim value. */
export function fromTokenError (err: unknown): CognitoAuthError {
  const { code } = err as Partial<TokenError>
  tokenErrorTexts ??= makeTokenErrorTexts()
  const text = typeof code === 'string' ? tokenErrorTexts[code] : undefined
  const reason = text === undefined ? 'the verifier refused the token' : `${code as string}: ${text}`
  switch (code) {
    case TokenError.codes.expired:
      return withReason(new TokenExpiredError(), reason)
    case TokenError.codes.invalidKey:
    case TokenError.codes.missingKey:
    case TokenError.codes.keyFetchingError:
      return withReason(new JwksUnavailableError(), reason)
    default:
      return refuse(reason)
  }
}

export interface VerifierSettings {
  pools: PoolSettings[]
  resolver?: ResolverSettings
  jwks: JwksSettings
  clockToleranceMs: number
  maxTokenLength: number
  tokenCacheMax: number
  log: FastifyBaseLogger
}

export class CognitoVerifier {
  readonly directory: PoolDirectory
  private readonly headers = new Map<string, string>()
  private readonly maxHeaders: number
  private readonly cache: TokenCache | null
  private readonly toleranceMs: number
  private readonly maxTokenLength: number

  constructor ({ pools, resolver, jwks, clockToleranceMs, maxTokenLength, tokenCacheMax, log }: VerifierSettings) {
    this.toleranceMs = clockToleranceMs
    this.maxTokenLength = maxTokenLength
    this.cache = tokenCacheMax > 0 ? new TokenCache(tokenCacheMax, keyStillServed) : null
    this.directory = createPoolDirectory(pools, resolver, { jwks, clockToleranceMs, log })
    // A handful of headers per pool that may be held at once: with many tenants, room for all of theirs.
    this.maxHeaders = Math.max(MIN_HEADERS, HEADERS_PER_POOL * (resolver?.max ?? pools.length))
  }

  /** The pools held now: every configured one, or those resolved and cached. */
  get pools (): Pool[] {
    return this.directory.pools()
  }

  /** The token's entry in the verified-token cache, if it is there and still good. */
  cached (token: string): VerifiedToken | undefined {
    const now = Date.now()
    const hit = this.cache?.get(token, now)
    // A resolved pool stands only for its TTL: past it, the token takes the path that asks again.
    return hit !== undefined && this.directory.current(hit, now) ? hit : undefined
  }

  close (): void {
    this.directory.close()
  }

  /**
   * Verified claims, synchronously when the key is known; throws (or rejects) a CognitoAuthError.
   * Callers look in the cache first (`cached`).
   */
  verify (token: string): VerifiedToken | Promise<VerifiedToken> {
    if (token.length > this.maxTokenLength) throw refuse('token longer than maxTokenLength')

    const firstDot = token.indexOf('.')
    if (firstDot <= 0) throw refuse('not three parts')
    const segment = token.slice(0, firstDot)
    let kid = this.headers.get(segment)
    // A header not seen yet is remembered once a token of it has been verified: one that forged
    // tokens bring (each distinct, each up to maxTokenLength) never takes memory.
    let header: string | undefined
    if (kid === undefined) {
      kid = kidOf(segment)
      header = segment
    }
    const single = this.directory.single
    if (single === undefined) {
      const pool = this.directory.lookup(this.issuerOf(token, firstDot))
      if (pool instanceof Promise) return pool.then((found) => this.withPool(found, kid, token, header))
      return this.withPool(pool, kid, token, header)
    }
    const key = single.store.get(kid)
    if (key !== undefined) return this.check(single, key, token, header)
    // An unknown kid may cost a JWKS fetch: only a token that claims this pool's issuer may cause one.
    this.directory.lookup(this.issuerOf(token, firstDot))
    return this.fetchKey(single, kid, token, header)
  }

  private withPool (pool: Pool, kid: string, token: string, header: string | undefined): VerifiedToken | Promise<VerifiedToken> {
    const key = pool.store.get(kid)
    if (key !== undefined) return this.check(pool, key, token, header)
    return this.fetchKey(pool, kid, token, header)
  }

  private fetchKey (pool: Pool, kid: string, token: string, header: string | undefined): Promise<VerifiedToken> {
    return pool.store.find(kid).then((found) => {
      if (found === undefined) throw refuse('kid is not a key of the JWKS')
      return this.check(pool, found, token, header)
    })
  }

  /** Remembers the `kid` of a header a token was just verified with, if the header is of a sane size. */
  private remember (header: string, kid: string): void {
    if (header.length > MAX_REMEMBERED_HEADER) return
    if (this.headers.size >= this.maxHeaders) this.headers.clear()
    this.headers.set(header, kid)
  }

  /** The issuer the (still unverified) token names: it picks the pool, whose key then verifies everything. */
  private issuerOf (token: string, firstDot: number): string {
    const lastDot = token.lastIndexOf('.')
    const payload = lastDot > firstDot ? parseSegment(token.slice(firstDot + 1, lastDot)) : undefined
    if (typeof payload?.iss !== 'string') throw refuse('issuer is not a configured pool')
    return payload.iss
  }

  /** Verifies with the key; `header`, when given, is a new header, remembered once the token passes. */
  private check (pool: Pool, key: StoredKey<KeyVerifier>, token: string, header: string | undefined): VerifiedToken {
    let claims: Record<string, unknown>
    try {
      claims = key.value(token)
    } catch (err) {
      throw fromTokenError(err)
    }
    const now = Date.now()
    const reason = checkCognitoClaims(pool.settings, claims, now, this.toleranceMs)
    if (reason !== undefined) throw refuse(reason)
    if (hasExpired(claims, now, this.toleranceMs)) throw withReason(new TokenExpiredError(), 'the token has expired (exp reached)')
    // Last: the application's rules only ever refuse claims the plugin's own rules have accepted.
    const refusal = checkClaimSchemas(pool.settings.claims, claims)
    if (refusal !== undefined) throw refuse(refusal)
    const verified: VerifiedToken = {
      claims: asCognitoClaims(claims),
      expiresAt: (claims.exp as number) * 1000 + this.toleranceMs,
      key,
      pool,
      notRevokedUntil: 0
    }
    this.cache?.set(token, verified)
    if (header !== undefined) this.remember(header, key.kid)
    return verified
  }
}

/** Distinct headers remembered, at least, and per pool; past this the memory starts over. */
const MIN_HEADERS = 64
const HEADERS_PER_POOL = 4

/**
 * The longest header remembered, in characters (one byte each: base64url). Cognito's,
 * `{"kid":"<44 characters>","alg":"RS256"}`, is about a hundred: the memory of headers stays
 * under MAX_REMEMBERED_HEADER bytes per entry.
 */
const MAX_REMEMBERED_HEADER = 256

/**
 * The `kid` of a header that says RS256. A pool's tokens share a few headers, so each distinct
 * header is read once; only the headers of verified tokens are remembered.
 */
function kidOf (segment: string): string {
  const header = parseSegment(segment)
  if (header === undefined) throw refuse('malformed token header')
  if (header.alg !== 'RS256') throw refuse('algorithm is not RS256')
  const kid = header.kid
  if (typeof kid !== 'string' || kid === '') throw refuse('kid header missing')
  return kid
}

/** A base64url JSON object, or undefined when it is not one; only to pick the key and the pool. */
function parseSegment (segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'))
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}
