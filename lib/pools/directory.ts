/**
 * Which pool an issuer is: the one place that knows. With `userPools` listed up front it is a map
 * from each exact issuer to its pool. With `userPools` given as a function (the application's own
 * tenant store), the function is asked, and its answers are cached:
 *   - a pool is kept for `poolCache.ttl`, then asked about again (a removed tenant stops being
 *     accepted within it); an unchanged answer keeps the pool's keys, a changed one starts afresh;
 *   - at most `poolCache.max` pools, the least recently used first out, its key store discarded
 *     (fetch aborted, connections closed, keys retired, so cached tokens of it stop passing);
 *   - "not a pool" is remembered for `poolCache.unknownTtl`, at most `max` issuers of it;
 *   - one question per issuer at a time, and a bounded number overall: a few run, a bounded
 *     queue waits, the rest are refused as unavailable;
 *   - only issuers of Cognito's own two forms are asked about, unless the application opts in to
 *     other prefixes: a token cannot make the plugin fetch keys from, or ask about, where it likes.
 * A resolver that fails, or answers something that is no pool, fails closed and is not remembered.
 */
import { HookFailedError, PoolUnavailableError, TokenInvalidError, withReason, type CognitoAuthError } from '../errors'
import { parsePoolAnswer, type PoolSettings, type ResolverSettings } from '../options'
import { createPool, type Pool, type PoolDefaults } from './pool'
import type { VerifiedToken } from '../token-cache'

/** Sizes of a resolving directory, for health checks and tests. */
export interface DirectorySizes {
  pools: number
  unknown: number
  asking: number
  waiting: number
  questions: number
}

export interface PoolDirectory {
  /** The only pool, when exactly one is configured: the verifier's fast path. */
  readonly single: Pool | undefined
  /** The pool of this exact issuer; a promise while the resolver is asked. Throws (rejects) a CognitoAuthError. */
  lookup: (issuer: string) => Pool | Promise<Pool>
  /** Whether a cached token's pool still stands; the token then takes the pool's latest answer. */
  current: (verified: VerifiedToken, nowMs: number) => boolean
  /** Whether tokens of this issuer may be accepted: configured, or one the resolver may be asked about. */
  mayIssue: (issuer: string) => boolean
  /** Every pool held now. */
  pools: () => Pool[]
  /**
   * With a resolver only: whether the issuer is still a pool, for connections accepted earlier
   * (lib/connections/). The cached answer while fresh, else the resolver's; rejects when it fails.
   */
  recheck?: (issuer: string) => Promise<boolean>
  close: () => void
}

function notAPool (reason: string): CognitoAuthError {
  return withReason(new TokenInvalidError(), reason)
}

/** `userPools` listed up front: a map, built once. */
export class StaticDirectory implements PoolDirectory {
  readonly single: Pool | undefined
  private readonly all: Pool[]
  private readonly byIssuer = new Map<string, Pool>()

  constructor (pools: readonly PoolSettings[], defaults: PoolDefaults) {
    this.all = pools.map((settings) => {
      const pool = createPool(settings, defaults)
      for (const issuer of settings.issuers) this.byIssuer.set(issuer, pool)
      return pool
    })
    this.single = this.all.length === 1 ? this.all[0] : undefined
  }

  lookup (issuer: string): Pool {
    const pool = this.byIssuer.get(issuer)
    if (pool === undefined) throw notAPool('issuer is not a configured pool')
    return pool
  }

  current (): boolean {
    return true
  }

  mayIssue (issuer: string): boolean {
    return this.byIssuer.has(issuer)
  }

  pools (): Pool[] {
    return this.all
  }

  close (): void {
    for (const pool of this.all) pool.store.close()
  }
}

interface Entry {
  pool: Pool
  /** The answer's pool settings, as a string: an unchanged answer keeps the key store. */
  fingerprint: string
  freshUntil: number
}

/** Cognito's issuers: `https://cognito-idp.<region>.amazonaws.com/<region>_<id>`, and the `issuer-cognito-idp` form. */
const COGNITO_ISSUER = /^https:\/\/(?:issuer-)?cognito-idp\.([a-z]{2}(?:-[a-z]+)+-\d{1,2})\.amazonaws\.com\/([a-z]{2}(?:-[a-z]+)+-\d{1,2})_[0-9A-Za-z]{1,64}$/

/** The longest issuer of an opted-in prefix that is asked about: each unknown one is remembered. */
const MAX_ISSUER_LENGTH = 512

/** Questions the resolver is asked at once, and questions that may wait for one of them. */
const MAX_ASKING = 32
const MAX_WAITING = 1000

export class ResolvingDirectory implements PoolDirectory {
  readonly single = undefined
  /** Pools by issuer, least recently used first (a Map iterates in insertion order). */
  private readonly entries = new Map<string, Entry>()
  /** Issuers that are no pool, until when; oldest first. */
  private readonly unknown = new Map<string, number>()
  private readonly asking = new Map<string, Promise<Pool>>()
  private readonly waiting: Array<() => void> = []
  private running = 0
  private questions = 0
  private closed = false

  constructor (private readonly settings: ResolverSettings, private readonly defaults: PoolDefaults) {}

  lookup (issuer: string): Pool | Promise<Pool> {
    const now = Date.now()
    const entry = this.entries.get(issuer)
    if (entry !== undefined && now < entry.freshUntil) {
      this.touch(issuer, entry)
      return entry.pool
    }
    const until = this.unknown.get(issuer)
    if (until !== undefined && now < until) throw notAPool('issuer is not a pool of the resolver (remembered)')
    let pending = this.asking.get(issuer)
    if (pending === undefined) {
      if (!this.askable(issuer)) throw notAPool('issuer is neither a Cognito issuer nor of an allowed prefix')
      pending = this.ask(issuer).finally(() => this.asking.delete(issuer))
      this.asking.set(issuer, pending)
    }
    return pending
  }

  current (verified: VerifiedToken, nowMs: number): boolean {
    const issuer = verified.claims.iss
    const entry = this.entries.get(issuer)
    if (entry === undefined || entry.pool.store !== verified.pool.store || nowMs >= entry.freshUntil) return false
    verified.pool = entry.pool
    this.touch(issuer, entry)
    return true
  }

  mayIssue (issuer: string): boolean {
    return this.askable(issuer)
  }

  pools (): Pool[] {
    return [...this.entries.values()].map((entry) => entry.pool)
  }

  async recheck (issuer: string): Promise<boolean> {
    try {
      await this.lookup(issuer)
      return true
    } catch (err) {
      // "No pool" is the answer; any other error is the resolver's trouble, not an answer.
      if (err instanceof TokenInvalidError) return false
      throw err
    }
  }

  close (): void {
    this.closed = true
    for (const entry of this.entries.values()) entry.pool.store.discard()
    this.entries.clear()
    this.unknown.clear()
  }

  sizes (): DirectorySizes {
    return { pools: this.entries.size, unknown: this.unknown.size, asking: this.asking.size, waiting: this.waiting.length, questions: this.questions }
  }

  private askable (issuer: string): boolean {
    const cognito = COGNITO_ISSUER.exec(issuer)
    // The pool id's region is the host's: anything else is no Cognito pool.
    if (cognito !== null) return cognito[1] === cognito[2]
    return issuer.length <= MAX_ISSUER_LENGTH && this.settings.issuerPrefixes.some((prefix) => issuer.startsWith(prefix))
  }

  private async ask (issuer: string): Promise<Pool> {
    await this.turn()
    let answer: unknown
    try {
      this.questions++
      answer = await this.settings.resolve(issuer)
    } catch (err) {
      this.defaults.log.warn({ issuer, err }, 'cognito: the userPools resolver failed; refusing the pool\'s tokens until it answers')
      throw withReason(new PoolUnavailableError(), 'the userPools resolver failed')
    } finally {
      this.done()
    }
    if (this.closed) throw withReason(new PoolUnavailableError(), 'the server is closing')
    if (answer === null || answer === undefined) {
      this.forget(issuer)
      throw notAPool('issuer is not a pool of the resolver')
    }
    let settings: PoolSettings
    try {
      settings = parsePoolAnswer(answer)
    } catch (err) {
      this.defaults.log.error({ issuer, err }, 'cognito: the userPools resolver answered an invalid pool')
      throw withReason(new HookFailedError('userPools', 'answered an invalid pool'), (err as Error).message)
    }
    if (!settings.issuers.includes(issuer)) {
      // The wrong tenant's pool, or a resolver that matches loosely: never lets this issuer in.
      this.defaults.log.error({ issuer, answered: settings.issuers }, 'cognito: the userPools resolver answered a pool of other issuers')
      this.forget(issuer)
      throw notAPool('the resolver answered a pool of other issuers')
    }
    return this.install(issuer, settings)
  }

  private install (issuer: string, settings: PoolSettings): Pool {
    const fingerprint = fingerprintOf(settings)
    const previous = this.entries.get(issuer)
    let pool: Pool
    if (previous?.fingerprint === fingerprint) {
      // The same pool: its keys stay warm; only the entry (e.g. the tenant's data) is new.
      pool = { settings, store: previous.pool.store }
    } else {
      previous?.pool.store.discard()
      pool = createPool(settings, this.defaults)
    }
    this.entries.delete(issuer)
    this.entries.set(issuer, { pool, fingerprint, freshUntil: Date.now() + this.settings.ttlMs })
    if (this.entries.size > this.settings.max) {
      const [oldest, entry] = this.entries.entries().next().value as [string, Entry]
      this.entries.delete(oldest)
      entry.pool.store.discard()
    }
    return pool
  }

  /** The issuer is no pool (any more): its pool, if it had one, is discarded. */
  private forget (issuer: string): void {
    const entry = this.entries.get(issuer)
    if (entry !== undefined) {
      this.entries.delete(issuer)
      entry.pool.store.discard()
    }
    this.unknown.delete(issuer)
    this.unknown.set(issuer, Date.now() + this.settings.unknownTtlMs)
    if (this.unknown.size > this.settings.max) this.unknown.delete(this.unknown.keys().next().value as string)
  }

  private touch (issuer: string, entry: Entry): void {
    this.entries.delete(issuer)
    this.entries.set(issuer, entry)
  }

  /** Waits for one of the few questions that may run at once; refused when too many wait already. */
  private async turn (): Promise<void> {
    if (this.running < MAX_ASKING) {
      this.running++
      return
    }
    if (this.waiting.length >= MAX_WAITING) throw withReason(new PoolUnavailableError(), 'too many pool questions waiting')
    await new Promise<void>((resolve) => this.waiting.push(resolve))
  }

  /** A question ended: the next waiting one takes its turn. */
  private done (): void {
    const next = this.waiting.shift()
    if (next === undefined) this.running--
    else next()
  }
}

/** What makes two answers the same pool: everything its key store and verifiers are built from. */
function fingerprintOf ({ userPoolId, issuers, jwksUri, keys, tokenUse, clientIds }: PoolSettings): string {
  return JSON.stringify([
    userPoolId,
    issuers,
    jwksUri,
    keys === undefined ? null : [...keys.keys].map(([kid, key]) => `${kid} ${key.material}`),
    tokenUse,
    clientIds === null ? null : [...clientIds].sort()
  ])
}

export function createPoolDirectory (pools: readonly PoolSettings[], resolver: ResolverSettings | undefined, defaults: PoolDefaults): PoolDirectory {
  return resolver === undefined ? new StaticDirectory(pools, defaults) : new ResolvingDirectory(resolver, defaults)
}
