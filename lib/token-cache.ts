/**
 * Tokens already verified, so that a token sent again costs a map lookup instead of a signature
 * check; a token is admitted on its second verification. Bounded in entries (the oldest goes
 * first); an entry is used only while the token has not expired and the key that verified it is
 * still in the key store. Only successes are kept: a
 * failure, such as an outage of the JWKS endpoint, is never remembered.
 */
import type { CognitoClaims } from '../types'
import type { Pool } from './pools/pool'

export interface VerifiedToken {
  readonly claims: CognitoClaims
  /** Epoch milliseconds after which the token is expired (clock tolerance included). */
  readonly expiresAt: number
  /** The key that verified the token; the entry dies with it. */
  readonly key: { readonly kid: string, readonly alive: boolean }
  /**
   * The pool that accepted the token (`request.cognitoPool` is its entry); a resolved pool's
   * latest answer, always with the key store the key came from.
   */
  pool: Pool
  /** Until when a "not revoked" answer may be reused (epoch milliseconds); 0 when never asked. */
  notRevokedUntil: number
}

/** What the cache holds for a token: when it expires, at the latest. */
export interface Cacheable {
  /** Epoch milliseconds after which the token is expired (clock tolerance included). */
  readonly expiresAt: number
}

/** Whether an entry that has not expired may still be used (its key still served, for one). */
export type StillValid<V> = (verified: V, nowMs: number) => boolean

interface Entry<V> {
  token: string
  verified: V
}

/**
 * The map is keyed by the token's last characters (its signature's): hashing a whole 1 KB token
 * on every request costs more than the rest of a cache hit. A hit still requires the whole token
 * to be equal, so a forged token that shares the tail only ever misses.
 */
const KEY_LENGTH = 32

/** The characters of the tail that make up a token's fingerprint in the doorkeeper. */
const FINGERPRINT_LENGTH = 12

/**
 * A small number standing for a token: its signature's last characters. Two tokens that share it
 * only make the cache admit a token a little early; a hit still needs the whole token.
 */
function fingerprint (token: string): number {
  let hash = 0
  for (let i = Math.max(0, token.length - FINGERPRINT_LENGTH); i < token.length; i++) {
    hash = (hash * 31 + token.charCodeAt(i)) | 0
  }
  return hash
}

/**
 * A Cognito token's entry stands while its key does. It is looked up as an uncached token's key
 * would be: the store's upkeep (a refresh once the TTL has passed, the keys dropped once too
 * stale) must not stop because tokens come from the cache.
 */
export function keyStillServed (verified: VerifiedToken, nowMs: number): boolean {
  verified.pool.store.get(verified.key.kid, nowMs)
  return verified.key.alive
}

export class TokenCache<V extends Cacheable = VerifiedToken> {
  private readonly entries = new Map<string, Entry<V>>()
  /**
   * Fingerprints of tokens verified once. A token is kept on its second verification: a stream of
   * tokens that each come once (a crawler, a batch of new sign-ins) then neither flushes the tokens
   * that do come back nor keeps a thousand claims alive for the garbage collector to move.
   */
  private readonly seenOnce = new Set<number>()

  constructor (private readonly max: number, private readonly stillValid: StillValid<V>) {}

  get (token: string, nowMs: number): V | undefined {
    const key = token.slice(-KEY_LENGTH)
    const entry = this.entries.get(key)
    if (entry === undefined || entry.token !== token) return undefined
    const { verified } = entry
    if (nowMs < verified.expiresAt && this.stillValid(verified, nowMs)) return verified
    this.entries.delete(key)
    return undefined
  }

  set (token: string, verified: V): void {
    const print = fingerprint(token)
    if (!this.seenOnce.has(print)) {
      if (this.seenOnce.size >= this.max) this.seenOnce.clear()
      this.seenOnce.add(print)
      return
    }
    this.seenOnce.delete(print)
    const key = token.slice(-KEY_LENGTH)
    if (this.entries.size >= this.max) {
      // Maps iterate in insertion order: the first key is the oldest entry.
      this.entries.delete(this.entries.keys().next().value as string)
    }
    this.entries.set(key, { token, verified })
  }
}
