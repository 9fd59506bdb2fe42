/**
 * A request behind an Application Load Balancer with Cognito authentication: the load balancer's
 * token (`x-amzn-oidc-data`), then the access token it forwards (`x-amzn-oidc-accesstoken`).
 *
 * The load balancer's token is verified here with `node:crypto`, not fast-jwt: its segments carry
 * `=` padding, which a strict JWT verifier refuses, and its signature covers them; it is ES256;
 * its keys are PEM files per `kid`, not a JWKS. In order:
 *   1. a size cap; the cache of tokens already verified;
 *   2. the parts and the header (lib/alb/token.ts): ES256, a UUID `kid`, an accepted `signer`,
 *      the pool's `iss` and `client`, `exp` not passed; all before any key is looked up;
 *   3. the key by `kid` (lib/alb/keys.ts): synchronous when known, a bounded fetch when not;
 *   4. the signature, over the padded `header.payload` as sent;
 *   5. the user claims (lib/alb/claims.ts), then the pool's `claims.alb` schema, if any.
 * Then, unless turned off, the access token: through the plugin's own verifier (lib/verify.ts), an
 * access token of the same pool and app client, for the same `sub`. `x-amzn-oidc-identity` is never
 * read: it is not signed.
 */
import { verify as verifySignature } from 'node:crypto'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { CognitoAlbClaims } from '../../types'
import { NoTokenError, withReason } from '../errors'
import type { JwksSettings } from '../options'
import type { Pool } from '../pools/pool'
import { checkAlbClaimSchema } from '../claims-schema'
import { TokenCache, type VerifiedToken } from '../token-cache'
import type { CognitoVerifier } from '../verify'
import { asAlbClaims, checkAlbClaims } from './claims'
import { AlbKeyStore, type AlbKey } from './keys'
import type { AlbSettings } from './options'
import { checkAlbHeader, parseSegment, readAlbToken, refuse, type AlbTokenParts } from './token'

export const DATA_HEADER = 'x-amzn-oidc-data'
export const ACCESS_TOKEN_HEADER = 'x-amzn-oidc-accesstoken'

/** A verified load balancer token. */
export interface AlbVerified {
  readonly claims: CognitoAlbClaims
  /** The pool its `iss` named. */
  readonly pool: Pool
  /** The app client its header named. */
  readonly client: string
  /** Epoch milliseconds after which it is expired: the earlier of the header's and the payload's `exp`, with the tolerance. */
  readonly expiresAt: number
  readonly key: AlbKey
}

/** What a request behind the load balancer came to. */
export interface AlbAuthentication {
  alb: AlbVerified
  /** The access token, verified; undefined with `alb.accessToken: false`. */
  verified: VerifiedToken | undefined
  /** Both tokens came from the verified-token caches. */
  cached: boolean
}

export interface AlbVerifierSettings {
  alb: AlbSettings
  verifier: CognitoVerifier
  jwks: JwksSettings
  clockToleranceMs: number
  maxTokenLength: number
  tokenCacheMax: number
  log: FastifyBaseLogger
}

/** A load balancer token's entry stands while the key store keeps its key. */
const keyKept = (verified: AlbVerified): boolean => verified.key.alive

export class AlbVerifier {
  readonly store: AlbKeyStore
  private readonly settings: AlbSettings
  private readonly verifier: CognitoVerifier
  private readonly byIssuer = new Map<string, Pool>()
  private readonly cache: TokenCache<AlbVerified> | null
  private readonly toleranceMs: number
  private readonly maxTokenLength: number

  constructor ({ alb, verifier, jwks, clockToleranceMs, maxTokenLength, tokenCacheMax, log }: AlbVerifierSettings) {
    this.settings = alb
    this.verifier = verifier
    this.toleranceMs = clockToleranceMs
    this.maxTokenLength = maxTokenLength
    this.cache = tokenCacheMax > 0 ? new TokenCache(tokenCacheMax, keyKept) : null
    // The pools are listed up front (a resolver is refused with `alb`): the map never changes.
    for (const pool of verifier.pools) for (const issuer of pool.settings.issuers) this.byIssuer.set(issuer, pool)
    this.store = new AlbKeyStore({
      keysUri: alb.keysUri,
      maxKeys: jwks.maxKeys,
      cooldownMs: jwks.cooldownMs,
      timeoutMs: jwks.timeoutMs,
      maxBytes: jwks.maxBytes,
      log
    })
  }

  close (): void {
    this.store.close()
  }

  /**
   * The request's tokens, verified: synchronously when both are known, a promise when a key must
   * be fetched. A request without the load balancer's header gets a NoTokenError back (returned,
   * for `authenticateOptional`); every other refusal is thrown (or rejected).
   */
  authenticate (request: FastifyRequest): AlbAuthentication | Promise<AlbAuthentication> | InstanceType<typeof NoTokenError> {
    const value = request.headers[DATA_HEADER]
    if (value === undefined) return withReason(new NoTokenError(), `no ${DATA_HEADER} header`)
    // A header sent twice arrives joined by Node ("a, b"; a list would be joined by String): not three parts.
    const data = String(value)
    const hit = this.cache?.get(data, Date.now())
    if (hit !== undefined) return this.withAccessToken(request, hit, true)
    const verified = this.verifyData(data)
    if (verified instanceof Promise) return verified.then((alb) => this.withAccessToken(request, alb, false))
    return this.withAccessToken(request, verified, false)
  }

  private verifyData (token: string): AlbVerified | Promise<AlbVerified> {
    if (token.length > this.maxTokenLength) throw refuse('token longer than maxTokenLength')
    const parts = readAlbToken(token)
    const { header } = parts
    const pool = this.byIssuer.get(header.iss)
    if (pool === undefined) throw refuse('iss header is not a configured pool')
    checkAlbHeader(header, { signers: this.settings.signers, clientIds: pool.settings.clientIds }, Date.now(), this.toleranceMs)
    const key = this.store.get(header.kid)
    if (key !== undefined) return this.check(token, parts, pool, key)
    return this.store.find(header.kid).then((found) => this.check(token, parts, pool, found))
  }

  private check (token: string, parts: AlbTokenParts, pool: Pool, key: AlbKey): AlbVerified {
    const { signed, payload, signature, header } = parts
    if (!verifySignature('sha256', Buffer.from(signed), { key: key.key, dsaEncoding: 'ieee-p1363' }, signature)) {
      throw refuse('the signature is invalid')
    }
    const claims = parseSegment(payload)
    if (claims === undefined) throw refuse('the payload is not a JSON object')
    const now = Date.now()
    const refusal = checkAlbClaims(pool.settings, claims, now, this.toleranceMs)
    if (refusal !== undefined) throw refusal
    // Last, as for the other tokens: the application's rules only refuse what the plugin accepted.
    const reason = checkAlbClaimSchema(pool.settings.claims, claims)
    if (reason !== undefined) throw refuse(reason)
    const verified: AlbVerified = {
      claims: asAlbClaims(claims),
      pool,
      client: header.client,
      expiresAt: Math.min(header.exp, claims.exp as number) * 1000 + this.toleranceMs,
      key
    }
    this.cache?.set(token, verified)
    return verified
  }

  private withAccessToken (request: FastifyRequest, alb: AlbVerified, cached: boolean): AlbAuthentication | Promise<AlbAuthentication> {
    if (!this.settings.accessToken) return { alb, verified: undefined, cached }
    const token = request.headers[ACCESS_TOKEN_HEADER]
    if (typeof token !== 'string' || token === '') throw refuse(`no ${ACCESS_TOKEN_HEADER} header with the load balancer's token`)
    const hit = this.verifier.cached(token)
    if (hit !== undefined) return paired(alb, hit, cached)
    const verified = this.verifier.verify(token)
    if (verified instanceof Promise) return verified.then((result) => paired(alb, result, false))
    return paired(alb, verified, false)
  }
}

/** The access token must be the one the load balancer forwarded for this user: same pool, client and `sub`. */
function paired (alb: AlbVerified, verified: VerifiedToken, cached: boolean): AlbAuthentication {
  if (verified.pool !== alb.pool) throw refuse('the access token is of another pool than the load balancer\'s token')
  const { sub, client_id: clientId } = verified.claims as { sub: string, client_id?: string }
  if (clientId !== alb.client) throw refuse('the access token is of another app client than the load balancer\'s token')
  if (sub !== alb.claims.sub) throw refuse('the access token is of another user than the load balancer\'s token')
  return { alb, verified, cached }
}
