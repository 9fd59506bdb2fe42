/**
 * The revocation list: an in-process replica of the store's entries, so that checking a token is
 * a map lookup on the request path, never a network call. Every entry belongs to a user pool (its
 * `userPoolId`), whichever of the pool's issuers the token or the call names. Two kinds:
 *   - a session: an `origin_jti` (every ID and access token of one sign-in) or a lone `jti`;
 *   - a user mark: the pool's tokens of `sub` from a sign-in at or before the mark are refused.
 * Entries only ever get added, and each one expires when the tokens it revokes would have: the
 * list is a set that grows by union, so an entry seen twice, or out of order, changes nothing.
 * That is what lets the Redis store subscribe first, then load, resync by loading again, and
 * write back what Redis lost.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { CognitoAuthError, CognitoBaseClaims, CognitoClaims, CognitoRevocation, RevocationStats } from '../../types'
import { MAX_IAT_AHEAD_MS } from '../claims'
import { InvalidOptionError, TokenInvalidError, TokenNotRevocableError, TokenRevokedError, withReason } from '../errors'
import type { RevocationSettings } from './options'

/** `pool` is the pool's `userPoolId`; `expires` is in epoch milliseconds, `mark` in epoch seconds. */
export type RevocationEntry =
  | { kind: 'session', pool: string, id: string, expires: number }
  | { kind: 'user', pool: string, sub: string, mark: number, expires: number }

/** What the list needs of a pool: the token's (`verified.pool.settings`), or an issuer's. */
export interface RevocationPool {
  readonly userPoolId: string
}

/**
 * The pool of an issuer, as a token of that issuer would get it (the pool directory's `lookup`):
 * a promise while a resolver is asked; throws (rejects) a CognitoAuthError, `TokenInvalidError`
 * when the issuer is no pool.
 */
export type PoolOf = (iss: string) => { settings: RevocationPool } | Promise<{ settings: RevocationPool }>

/** What a store may do with the replica. */
export interface RevocationReplica {
  /** Adds an entry: loaded, or published by any instance (this one included). Idempotent. */
  apply: (entry: RevocationEntry) => void
  /** Drops the entries expired at `now`. */
  prune: (now: number) => void
  /** Entries held. */
  size: () => number
  /** Every entry held (a user's latest mark only): what the store compares with its own. */
  entries: () => Iterable<RevocationEntry>
  readonly log: FastifyBaseLogger
}

/**
 * Told of every entry the replica applies (loaded, published, or written here), after it applies
 * it: lib/connections/ finds the connections it may end by the entry's session id or user, then
 * asks `refusal` for the verdict. The replica knows nothing of what listens.
 */
export type RevocationListener = (entry: RevocationEntry) => void

export type RevocationSyncStats = Pick<RevocationStats, 'inSync' | 'since' | 'lastSync' | 'lastError' | 'pending'>

/** Where the entries live beyond this process, and whether the replica is in sync with it. */
export interface RevocationStore {
  /** Subscribes to the entries, then loads them all into the replica; resolves once loaded. */
  start: () => Promise<void>
  /**
   * Resolves once the store holds the entry (and has told the other instances); rejects with
   * FST_COGNITO_REVOCATION_UNAVAILABLE, the entry then kept to be written once the store is back.
   */
  write: (entry: RevocationEntry) => Promise<void>
  close: () => Promise<void>
  /** The error to refuse every token with while the replica cannot be trusted; undefined otherwise. */
  staleRefusal: () => CognitoAuthError | undefined
  syncStats: () => RevocationSyncStats
}

/**
 * A store's module, by the store's name: lib/revocation/memory.ts or lib/revocation/redis.ts. The
 * Redis side is loaded only by the applications that use it (and by the tests that run a
 * redis-server: a machine without one leaves it out of the coverage it measures).
 */
function createStore (settings: RevocationSettings, replica: RevocationReplica): RevocationStore {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createStore } = require(`./${settings.store}`) as { createStore: (settings: RevocationSettings, replica: RevocationReplica) => RevocationStore }
  return createStore(settings, replica)
}

/** How often expired entries are dropped from the replica. */
const PRUNE_INTERVAL_MS = 60_000

function notConfigured (): never {
  throw new InvalidOptionError('revocation', 'is not set: app.cognitoRevocation needs { redis: <client> } or { store: \'memory\' }')
}

/** `app.cognitoRevocation` of an instance without the `revocation` option: every call says so. */
export const revocationNotConfigured: CognitoRevocation = {
  revokeSession: async () => notConfigured(),
  signOutUser: async () => notConfigured(),
  stats: () => notConfigured()
}

function nonEmpty (value: unknown): value is string {
  return typeof value === 'string' && value !== ''
}

export class RevocationList implements RevocationReplica {
  /** Pool -> session id -> expiry (epoch ms). */
  private readonly sessions = new Map<string, Map<string, number>>()
  /** Pool -> sub -> the mark (seconds) and its expiry (epoch ms). */
  private readonly users = new Map<string, Map<string, { mark: number, expires: number }>>()
  private sessionCount = 0
  private userCount = 0
  private readonly store: RevocationStore
  private pruneTimer: NodeJS.Timeout | undefined
  private readonly listeners = new Set<RevocationListener>()
  readonly api: CognitoRevocation

  constructor (
    private readonly settings: RevocationSettings,
    /** The pool of an issuer, as its tokens get it: a revocation names the pool it belongs to. */
    private readonly poolOf: PoolOf,
    readonly log: FastifyBaseLogger
  ) {
    this.store = createStore(settings, this)
    this.api = {
      revokeSession: async (claims) => await this.revokeSession(claims),
      signOutUser: async (user) => await this.signOutUser(user),
      stats: () => this.stats()
    }
  }

  /** Loads the whole list (before the server is ready); rejects if the store cannot give it. */
  async start (): Promise<void> {
    this.pruneTimer = setInterval(() => this.prune(Date.now()), PRUNE_INTERVAL_MS).unref()
    await this.store.start()
  }

  /** Always succeeds, started or not (a failed `ready()` still closes). */
  async close (): Promise<void> {
    clearInterval(this.pruneTimer)
    await this.store.close()
  }

  /**
   * Why a verified token of this pool must be refused, if it must: the request path's one
   * synchronous check. A new error each time: the refusal puts this request's challenge on it.
   */
  refusal (claims: CognitoClaims, pool: RevocationPool): CognitoAuthError | undefined {
    if (this.sessionCount > 0) {
      const sessions = this.sessions.get(pool.userPoolId)
      const { origin_jti: origin, jti } = claims
      if (sessions !== undefined && ((origin !== undefined && sessions.has(origin)) || (jti !== undefined && sessions.has(jti)))) {
        return withReason(new TokenRevokedError(), 'the session was revoked')
      }
    }
    if (this.userCount > 0) {
      const user = this.users.get(pool.userPoolId)?.get(claims.sub)
      if (user !== undefined && (claims.auth_time ?? claims.iat) <= user.mark) {
        return withReason(new TokenRevokedError(), 'the user was signed out after this sign-in')
      }
    }
    // Only a store that can fall out of sync has a refusal of its own (lib/revocation/redis.ts).
    return this.store.staleRefusal()
  }

  /** Calls `listener` after each entry applied; returns the function that stops it. */
  listen (listener: RevocationListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  apply (entry: RevocationEntry): void {
    this.keep(entry)
    for (const listener of this.listeners) listener(entry)
  }

  private keep (entry: RevocationEntry): void {
    if (entry.kind === 'session') {
      const sessions = inner(this.sessions, entry.pool)
      const known = sessions.get(entry.id)
      if (known === undefined) this.sessionCount++
      if (known === undefined || known < entry.expires) sessions.set(entry.id, entry.expires)
      return
    }
    const subs = inner(this.users, entry.pool)
    const known = subs.get(entry.sub)
    if (known === undefined) {
      this.userCount++
      subs.set(entry.sub, { mark: entry.mark, expires: entry.expires })
      return
    }
    // The latest mark wins; it lives as long as the longest-lived mark (each side only grows).
    if (known.mark < entry.mark) known.mark = entry.mark
    if (known.expires < entry.expires) known.expires = entry.expires
  }

  * entries (): Iterable<RevocationEntry> {
    for (const [pool, sessions] of this.sessions) {
      for (const [id, expires] of sessions) yield { kind: 'session', pool, id, expires }
    }
    for (const [pool, subs] of this.users) {
      for (const [sub, { mark, expires }] of subs) yield { kind: 'user', pool, sub, mark, expires }
    }
  }

  stats (): RevocationStats {
    return {
      store: this.settings.store,
      entries: this.size(),
      sessions: this.sessionCount,
      users: this.userCount,
      ...this.store.syncStats()
    }
  }

  size (): number {
    return this.sessionCount + this.userCount
  }

  /** Drops the entries whose tokens have all expired: the replica's memory stays bounded. */
  prune (now: number): void {
    for (const [pool, sessions] of this.sessions) {
      for (const [id, expires] of sessions) {
        if (expires > now) continue
        sessions.delete(id)
        this.sessionCount--
      }
      if (sessions.size === 0) this.sessions.delete(pool)
    }
    for (const [pool, subs] of this.users) {
      for (const [sub, { expires }] of subs) {
        if (expires > now) continue
        subs.delete(sub)
        this.userCount--
      }
      if (subs.size === 0) this.users.delete(pool)
    }
  }

  /**
   * When an entry made now may expire: once every token it revokes has, allowances included.
   * A token out now may carry an `iat` up to MAX_IAT_AHEAD_MS (plus the tolerance) ahead of this
   * clock, lives `maxTokenLifetime` from its `iat`, and is accepted up to the tolerance past `exp`.
   */
  private expiresFrom (now: number): number {
    return now + this.settings.maxTokenLifetimeMs + MAX_IAT_AHEAD_MS + 2 * this.settings.clockToleranceMs
  }

  private async revokeSession (claims: Pick<CognitoBaseClaims, 'iss' | 'origin_jti' | 'jti'>): Promise<void> {
    const { iss, origin_jti: origin, jti } = claims ?? {}
    const id = nonEmpty(origin) ? origin : nonEmpty(jti) ? jti : undefined
    if (id === undefined) throw withReason(new TokenNotRevocableError(), 'the claims have neither origin_jti nor jti')
    if (!nonEmpty(iss)) throw new TypeError('revokeSession needs the claims\' iss: a session belongs to its user pool')
    const pool = await this.poolOfIssuer(iss, 'revokeSession')
    await this.write({ kind: 'session', pool, id, expires: this.expiresFrom(Date.now()) })
  }

  private async signOutUser (user: { iss: string, sub: string }): Promise<void> {
    const { iss, sub } = user ?? {}
    if (!nonEmpty(iss) || !nonEmpty(sub)) throw new TypeError('signOutUser needs { iss, sub }, both non-empty strings')
    const pool = await this.poolOfIssuer(iss, 'signOutUser')
    const now = Date.now()
    // A sign-in up to clockTolerance after this call may be Cognito's clock running ahead of this
    // one: it is refused too. A sign-in after that passes.
    const mark = Math.floor((now + this.settings.clockToleranceMs) / 1000)
    await this.write({ kind: 'user', pool, sub, mark, expires: this.expiresFrom(now) })
  }

  /**
   * The pool an issuer names, as a token of that issuer would find it: a mistyped issuer would
   * revoke nothing, silently, so "not a pool" throws. A resolver that cannot answer rejects as it
   * would for a token (FST_COGNITO_POOL_UNAVAILABLE): nothing was revoked.
   */
  private async poolOfIssuer (iss: string, call: string): Promise<string> {
    try {
      return (await this.poolOf(iss)).settings.userPoolId
    } catch (error) {
      if (error instanceof TokenInvalidError) throw new TypeError(`${call}: iss is not an issuer of the user pools`)
      throw error
    }
  }

  /** Enforced here first, whatever the store answers; resolves once the store has it too. */
  private async write (entry: RevocationEntry): Promise<void> {
    this.apply(entry)
    await this.store.write(entry)
  }
}

/** The inner map of `key`, made on first use. */
function inner<V> (outer: Map<string, Map<string, V>>, key: string): Map<string, V> {
  let map = outer.get(key)
  if (map === undefined) {
    map = new Map()
    outer.set(key, map)
  }
  return map
}
