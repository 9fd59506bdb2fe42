/**
 * A user pool as the verifier uses it: its settings and its key store, in which every key comes
 * with a fast-jwt verifier bound to it, built once when the key arrives.
 */
import type { FastifyBaseLogger } from 'fastify'
import { createVerifier } from '../fast-jwt'
import { KeyStore } from '../keys/store'
import type { JwksSettings, PoolSettings } from '../options'

/** A fast-jwt verifier bound to one key: returns the payload or throws a TokenError. */
export type KeyVerifier = (token: string) => Record<string, unknown>

export interface Pool {
  settings: PoolSettings
  store: KeyStore<KeyVerifier>
}

/** What every pool of an instance shares. */
export interface PoolDefaults {
  jwks: JwksSettings
  clockToleranceMs: number
  log: FastifyBaseLogger
}

/**
 * Claims every Cognito token carries, whatever its kind. `aud` is left to lib/claims.ts: it names
 * the app client in ID tokens only, a resource server in access tokens.
 */
const REQUIRED_CLAIMS = ['iss', 'sub', 'exp', 'iat', 'token_use']

export function createPool (settings: PoolSettings, { jwks, clockToleranceMs, log }: PoolDefaults): Pool {
  const store = new KeyStore<KeyVerifier>({
    jwksUri: settings.jwksUri,
    keys: settings.keys,
    ttlMs: jwks.ttlMs,
    maxKeys: jwks.maxKeys,
    cooldownMs: jwks.cooldownMs,
    timeoutMs: jwks.timeoutMs,
    maxStaleMs: jwks.maxStaleMs,
    maxBytes: jwks.maxBytes,
    log,
    // One verifier per key, with the key itself: fast-jwt imports it once, here.
    prepare: (pem) => createVerifier({
      key: pem,
      algorithms: ['RS256'],
      allowedIss: settings.issuers,
      requiredClaims: REQUIRED_CLAIMS,
      clockTolerance: clockToleranceMs,
      cache: false
    }) as KeyVerifier
  })
  return { settings, store }
}
