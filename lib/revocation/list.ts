/**
 * The revocation list: an in-process replica of the store's entries, so that checking a token is
 * a map lookup on the request path, never a network call. Two kinds of entries:
 *   - a session: an `origin_jti` (every ID and access token of one sign-in) or a lone `jti`;
 *   - a user mark: tokens of `iss`/`sub` from a sign-in at or before the mark are refused.
 * Entries only ever get added, and each one expires when the tokens it revokes would have: the
 * list is a set that grows by union, so an entry seen twice, or out of order, changes nothing.
 * That is what lets the Redis store subscribe first, then load, and resync by loading again.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { CognitoAuthError, CognitoBaseClaims, CognitoClaims, CognitoRevocation, RevocationStats } from '../../types'
import { InvalidOptionError, TokenNotRevocableError, TokenRevokedError, withReason } from '../errors'
import type { RevocationSettings } from './options'

export type RevocationEntry =
  | { kind: 'session', id: string, expires: number }
  | { kind: 'user', iss: string, sub: string, mark: number, expires: number }

/** What a store may do with the replica. */
export interface RevocationReplica {
  /** Adds an entry: loaded, or published by any instance (this one included). Idempotent. */
  apply: (entry: RevocationEntry) => void
  /** Drops the entries expired at `now`. */
  prune: (now: number) => void
  /** Entries held. */
  size: () => number
  readonly log: FastifyBaseLogger
}

/**
 * Told of every entry the replica applies (loaded, published, or written here), after it applies
 * it: lib/connections/ finds the connections it may end by the entry's session id or user, then
 * asks `refusal` for the verdict. The replica knows nothing of what listens.
 */
export type RevocationListener = (entry: RevocationEntry) => void

export type RevocationSyncStats = Pick<RevocationStats, 'inSync' | 'since' | 'lastSync' | 'lastError'>

/** Where the entries live beyond this process, and whether the replica is in sync with it. */
export interface RevocationStore {
  /** Subscribes to the entries, then loads them all into the replica; resolves once loaded. */
  start: (replica: RevocationReplica) => Promise<void>
  /** Resolves once the store holds the entry (and has told the other instances); rejects with FST_COGNITO_REVOCATION_UNAVAILABLE. */
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
function createStore (settings: RevocationSettings): RevocationStore {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createStore } = require(`./${settings.store}`) as { createStore: (settings: RevocationSettings) => RevocationStore }
  return createStore(settings)
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
  /** Session id -> expiry (epoch ms). */
  private readonly sessions = new Map<string, number>()
  /** iss -> sub -> the mark (seconds) and its expiry (epoch ms). */
  private readonly users = new Map<string, Map<string, { mark: number, expires: number }>>()
  private userCount = 0
  private readonly store: RevocationStore
  private pruneTimer: NodeJS.Timeout | undefined
  private readonly listeners = new Set<RevocationListener>()
  readonly api: CognitoRevocation

  constructor (
    private readonly settings: RevocationSettings,
    /** Whether tokens of this issuer may be accepted: a configured pool's, or one the `userPools` resolver may be asked about. */
    private readonly isIssuer: (iss: string) => boolean,
    readonly log: FastifyBaseLogger
  ) {
    this.store = createStore(settings)
    this.api = {
      revokeSession: async (claims) => await this.revokeSession(claims),
      signOutUser: async (user) => await this.signOutUser(user),
      stats: () => this.stats()
    }
  }

  /** Loads the whole list (before the server is ready); rejects if the store cannot give it. */
  async start (): Promise<void> {
    this.pruneTimer = setInterval(() => this.prune(Date.now()), PRUNE_INTERVAL_MS).unref()
    await this.store.start(this)
  }

  async close (): Promise<void> {
    clearInterval(this.pruneTimer)
    await this.store.close()
  }

  /**
   * Why a verified token must be refused, if it must: the request path's one synchronous check.
   * A new error each time: the refusal puts this request's challenge on it.
   */
  refusal (claims: CognitoClaims): CognitoAuthError | undefined {
    if (this.sessions.size > 0) {
      const { origin_jti: origin, jti } = claims
      if ((origin !== undefined && this.sessions.has(origin)) || (jti !== undefined && this.sessions.has(jti))) {
        return withReason(new TokenRevokedError(), 'the session was revoked')
      }
    }
    if (this.userCount > 0) {
      const user = this.users.get(claims.iss)?.get(claims.sub)
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
      const known = this.sessions.get(entry.id)
      if (known === undefined || known < entry.expires) this.sessions.set(entry.id, entry.expires)
      return
    }
    let subs = this.users.get(entry.iss)
    if (subs === undefined) {
      subs = new Map()
      this.users.set(entry.iss, subs)
    }
    const known = subs.get(entry.sub)
    if (known === undefined) this.userCount++
    // The latest mark wins; it also expires last.
    if (known === undefined || known.mark < entry.mark) subs.set(entry.sub, { mark: entry.mark, expires: entry.expires })
  }

  stats (): RevocationStats {
    return {
      store: this.settings.store,
      entries: this.size(),
      sessions: this.sessions.size,
      users: this.userCount,
      ...this.store.syncStats()
    }
  }

  size (): number {
    return this.sessions.size + this.userCount
  }

  /** Drops the entries whose tokens have all expired: the replica's memory stays bounded. */
  prune (now: number): void {
    for (const [id, expires] of this.sessions) if (expires <= now) this.sessions.delete(id)
    for (const [iss, subs] of this.users) {
      for (const [sub, { expires }] of subs) {
        if (expires > now) continue
        subs.delete(sub)
        this.userCount--
      }
      if (subs.size === 0) this.users.delete(iss)
    }
  }

  private async revokeSession (claims: Pick<CognitoBaseClaims, 'origin_jti' | 'jti'>): Promise<void> {
    const { origin_jti: origin, jti } = claims ?? {}
    const id = nonEmpty(origin) ? origin : nonEmpty(jti) ? jti : undefined
    if (id === undefined) throw withReason(new TokenNotRevocableError(), 'the claims have neither origin_jti nor jti')
    await this.write({ kind: 'session', id, expires: Date.now() + this.settings.maxTokenLifetimeMs })
  }

  private async signOutUser (user: { iss: string, sub: string }): Promise<void> {
    const { iss, sub } = user ?? {}
    if (!nonEmpty(iss) || !nonEmpty(sub)) throw new TypeError('signOutUser needs { iss, sub }, both non-empty strings')
    // A mistyped issuer would revoke nothing, silently.
    if (!this.isIssuer(iss)) throw new TypeError('signOutUser: iss is not an issuer of the user pools')
    const now = Date.now()
    await this.write({ kind: 'user', iss, sub, mark: Math.floor(now / 1000), expires: now + this.settings.maxTokenLifetimeMs })
  }

  /** Enforced here first, whatever the store answers; resolves once the store has it too. */
  private async write (entry: RevocationEntry): Promise<void> {
    this.apply(entry)
    await this.store.write(entry)
  }
}
