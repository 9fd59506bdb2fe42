/**
 * Which pool an issuer is: the one place that knows. With `userPools` listed up front it is a map
 * from each exact issuer to its pool. With `userPools` given as a function (the application's own
 * tenant store), the function is asked, and its answers are cached:
 *   - a pool is used as is for `poolCache.ttl`; past it, the pool is still served while the
 *     resolver is asked again in the background, for at most as long again: a held tenant's
 *     requests never wait on its refresh, nor behind questions about strangers. An answer of "no
 *     pool" ends it at once; a resolver that keeps failing, once that time is up. An unchanged
 *     answer keeps the pool's keys, a changed one (any field that decides acceptance) starts afresh;
 *   - at most `poolCache.max` pools, the least recently used first out, its key store discarded
 *     (fetch aborted, connections closed, keys retired, so cached tokens of it stop passing);
 *   - "not a pool" (any falsy answer, or a pool of other issuers) is remembered for
 *     `poolCache.unknownTtl`, at most `max` issuers of it;
 *   - one question per issuer at a time, in two lanes: refreshes of pools held, and questions
 *     about any other issuer. The second is held to `poolCache.newIssuerRate` questions a second,
 *     a few at once and a bounded queue; beyond, refused as unavailable. A flood of forged issuers
 *     thus costs the resolver a bounded rate, and never delays a tenant it holds;
 *   - only issuers of Cognito's own two forms are asked about, unless the application opts in to
 *     other prefixes: a token cannot make the plugin fetch keys from, or ask about, where it likes.
 * A resolver that fails, or answers something that is no pool, fails closed and is not remembered.
 * Every question, outcome, eviction and refusal is an event (lib/events.ts); listeners given to
 * `onRemoved` hear of each pool that stops being accepted.
 */
import type { CognitoPoolEvent } from '../../types'
import { HookFailedError, PoolUnavailableError, TokenInvalidError, withReason, type CognitoAuthError } from '../errors'
import { publishPool, wantsPoolEvents } from '../events'
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

/**
 * Why a pool left: the resolver no longer answers it (`unknown`), a changed answer replaced it
 * (`changed`), or it was the least recently used beyond `poolCache.max` (`evicted`: it is still a
 * pool, asked about again on its next token).
 */
export type PoolRemovalCause = 'unknown' | 'changed' | 'evicted'

/** Told of a pool that stops being held: its issuer, the pool (its key store already discarded), and why. */
export type PoolRemovedListener = (issuer: string, pool: Pool, cause: PoolRemovalCause) => void

export interface PoolDirectory {
  /** The only pool, when exactly one is configured: the verifier's fast path. */
  readonly single: Pool | undefined
  /** The pool of this exact issuer; a promise while the resolver is asked. Throws (rejects) a CognitoAuthError. */
  lookup: (issuer: string) => Pool | Promise<Pool>
  /** Whether a cached token's pool still stands; the token then takes the pool's latest answer. */
  current: (verified: VerifiedToken, nowMs: number) => boolean
  /** Every pool held now. */
  pools: () => Pool[]
  /**
   * Calls `listener` whenever a pool stops being accepted: the resolver no longer answers it, a
   * changed answer replaces it, or it is evicted. Not when the server closes. Pools listed up
   * front are never removed.
   */
  onRemoved: (listener: PoolRemovedListener) => void
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

  pools (): Pool[] {
    return this.all
  }

  /** Pools listed up front stay as long as the server: no listener is ever called. */
  onRemoved (): void {}

  close (): void {
    for (const pool of this.all) pool.store.close()
  }
}

interface Entry {
  pool: Pool
  /** What of the answer decides acceptance, as a string: an unchanged answer keeps the key store. */
  fingerprint: string
  /** Until when the answer is used as is. */
  freshUntil: number
  /** Until when it is still used while the resolver is asked again. */
  staleUntil: number
}

/** Cognito's issuers: `https://cognito-idp.<region>.amazonaws.com/<region>_<id>`, and the `issuer-cognito-idp` form. */
const COGNITO_ISSUER = /^https:\/\/(?:issuer-)?cognito-idp\.([a-z]{2}(?:-[a-z]+)+-\d{1,2})\.amazonaws\.com\/([a-z]{2}(?:-[a-z]+)+-\d{1,2})_[0-9A-Za-z]{1,64}$/

/** The longest issuer of an opted-in prefix that is asked about: each unknown one is remembered. */
const MAX_ISSUER_LENGTH = 512

/** Questions the resolver is asked at once, in each lane; questions about new issuers that may wait. */
const MAX_ASKING = 32
const MAX_WAITING = 1000

/**
 * A few questions at a time; the others wait their turn, at most `maxWaiting` of them. The lane
 * of refreshes needs no bound of its own: it holds one question per pool held at most.
 */
class Lane {
  private running = 0
  private readonly line: Array<() => void> = []

  constructor (private readonly maxWaiting: number) {}

  get waiting (): number {
    return this.line.length
  }

  /** No room to wait: the question is refused. */
  get full (): boolean {
    return this.running >= MAX_ASKING && this.line.length >= this.maxWaiting
  }

  async enter (): Promise<void> {
    if (this.running < MAX_ASKING) {
      this.running++
      return
    }
    await new Promise<void>((resolve) => this.line.push(resolve))
  }

  /** A question ended: the next waiting one takes its turn. */
  leave (): void {
    const next = this.line.shift()
    if (next === undefined) this.running--
    else next()
  }
}

/** Questions about issuers of which no pool is held: `rate` a second, with a burst of as many. */
class Budget {
  private tokens: number
  private at = Date.now()

  constructor (private readonly rate: number) {
    this.tokens = rate
  }

  take (now: number): boolean {
    // A clock set back refills nothing.
    this.tokens = Math.min(this.rate, this.tokens + Math.max(0, now - this.at) * this.rate / 1000)
    this.at = now
    if (this.tokens < 1) return false
    this.tokens--
    return true
  }
}

export class ResolvingDirectory implements PoolDirectory {
  readonly single = undefined
  /** Pools by issuer, least recently used first (a Map iterates in insertion order). */
  private readonly entries = new Map<string, Entry>()
  /** Issuers that are no pool, until when; oldest first. */
  private readonly unknown = new Map<string, number>()
  private readonly asking = new Map<string, Promise<Pool>>()
  private readonly refreshes = new Lane(Infinity)
  private readonly newcomers = new Lane(MAX_WAITING)
  private readonly budget: Budget
  private readonly listeners: PoolRemovedListener[] = []
  private questions = 0
  private closed = false

  constructor (private readonly settings: ResolverSettings, private readonly defaults: PoolDefaults) {
    this.budget = new Budget(settings.newIssuerRate)
  }

  lookup (issuer: string): Pool | Promise<Pool> {
    const now = Date.now()
    const entry = this.entries.get(issuer)
    if (entry !== undefined && now < entry.staleUntil) {
      this.touch(issuer, entry)
      // Past its freshness the pool is still served, while the resolver is asked again.
      if (now >= entry.freshUntil) this.refresh(issuer)
      return entry.pool
    }
    const pending = this.asking.get(issuer)
    if (pending !== undefined) return pending
    // A held pool that could not be refreshed in time: its requests wait on the resolver, in its lane.
    if (entry !== undefined) return this.start(issuer, true)
    const until = this.unknown.get(issuer)
    if (until !== undefined && now < until) throw notAPool('issuer is not a pool of the resolver (remembered)')
    if (!this.askable(issuer)) throw notAPool('issuer is neither a Cognito issuer nor of an allowed prefix')
    if (!this.budget.take(now)) {
      if (wantsPoolEvents()) this.publish('refused', issuer, { reason: 'poolCache.newIssuerRate reached' })
      throw withReason(new PoolUnavailableError(), 'too many questions about new issuers (poolCache.newIssuerRate)')
    }
    return this.start(issuer, false)
  }

  current (verified: VerifiedToken, nowMs: number): boolean {
    const issuer = verified.claims.iss
    const entry = this.entries.get(issuer)
    if (entry === undefined || entry.pool.store !== verified.pool.store || nowMs >= entry.staleUntil) return false
    if (nowMs >= entry.freshUntil) this.refresh(issuer)
    verified.pool = entry.pool
    this.touch(issuer, entry)
    return true
  }

  pools (): Pool[] {
    return [...this.entries.values()].map((entry) => entry.pool)
  }

  onRemoved (listener: PoolRemovedListener): void {
    this.listeners.push(listener)
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
    return {
      pools: this.entries.size,
      unknown: this.unknown.size,
      asking: this.asking.size,
      waiting: this.refreshes.waiting + this.newcomers.waiting,
      questions: this.questions
    }
  }

  private askable (issuer: string): boolean {
    const cognito = COGNITO_ISSUER.exec(issuer)
    // The pool id's region is the host's: anything else is no Cognito pool.
    if (cognito !== null) return cognito[1] === cognito[2]
    return issuer.length <= MAX_ISSUER_LENGTH && this.settings.issuerPrefixes.some((prefix) => issuer.startsWith(prefix))
  }

  /** Asks again about a held pool, in the background, unless a question about it is under way. */
  private refresh (issuer: string): void {
    if (!this.asking.has(issuer)) this.start(issuer, true).catch(noop)
  }

  /** The one question about this issuer, shared by every request that needs its answer. */
  private start (issuer: string, refresh: boolean): Promise<Pool> {
    const pending = this.ask(issuer, refresh).finally(() => this.asking.delete(issuer))
    this.asking.set(issuer, pending)
    return pending
  }

  private async ask (issuer: string, refresh: boolean): Promise<Pool> {
    const lane = refresh ? this.refreshes : this.newcomers
    if (lane.full) {
      if (wantsPoolEvents()) this.publish('refused', issuer, { reason: 'too many questions waiting' })
      throw withReason(new PoolUnavailableError(), 'too many pool questions waiting')
    }
    await lane.enter()
    const started = Date.now()
    if (wantsPoolEvents()) this.publish('asked', issuer, { refresh })
    let answer: unknown
    try {
      this.questions++
      answer = await this.settings.resolve(issuer)
    } catch (err) {
      this.defaults.log.warn({ issuer, err }, 'cognito: the userPools resolver failed; refusing the pool\'s tokens until it answers')
      if (wantsPoolEvents()) this.publish('failed', issuer, { refresh, durationMs: Date.now() - started, reason: 'the resolver failed' })
      throw withReason(new PoolUnavailableError(), 'the userPools resolver failed')
    } finally {
      lane.leave()
    }
    if (this.closed) throw withReason(new PoolUnavailableError(), 'the server is closing')
    // Any falsy answer is "not a tenant": `known.has(iss) && { ... }` answers false.
    if (!answer) return this.notAPool(issuer, refresh, started, 'the resolver answered no pool')
    let settings: PoolSettings
    try {
      settings = parsePoolAnswer(answer)
    } catch (err) {
      this.defaults.log.error({ issuer, err }, 'cognito: the userPools resolver answered an invalid pool')
      if (wantsPoolEvents()) this.publish('failed', issuer, { refresh, durationMs: Date.now() - started, reason: 'the resolver answered an invalid pool' })
      throw withReason(new HookFailedError('userPools', 'answered an invalid pool'), (err as Error).message)
    }
    if (!settings.issuers.includes(issuer)) {
      // The wrong tenant's pool, or a resolver that matches loosely: never lets this issuer in.
      this.defaults.log.error({ issuer, answered: settings.issuers }, 'cognito: the userPools resolver answered a pool of other issuers')
      return this.notAPool(issuer, refresh, started, 'the resolver answered a pool of other issuers')
    }
    const { pool, changed } = this.install(issuer, settings)
    if (wantsPoolEvents()) this.publish('answered', issuer, { refresh, durationMs: Date.now() - started, changed })
    return pool
  }

  /** The answer is "no pool": remembered, and any pool held for the issuer dropped. */
  private notAPool (issuer: string, refresh: boolean, started: number, reason: string): never {
    this.forget(issuer)
    if (wantsPoolEvents()) this.publish('unknown', issuer, { refresh, durationMs: Date.now() - started, reason })
    throw notAPool(reason)
  }

  private install (issuer: string, settings: PoolSettings): { pool: Pool, changed: boolean } {
    const fingerprint = fingerprintOf(settings)
    const previous = this.entries.get(issuer)
    // The same pool: its keys stay warm; only the entry (e.g. the tenant's data) is new.
    const pool = previous?.fingerprint === fingerprint
      ? { settings, store: previous.pool.store }
      : createPool(settings, this.defaults)
    const now = Date.now()
    this.entries.delete(issuer)
    this.unknown.delete(issuer)
    this.entries.set(issuer, { pool, fingerprint, freshUntil: now + this.settings.ttlMs, staleUntil: now + 2 * this.settings.ttlMs })
    const changed = previous !== undefined && previous.pool.store !== pool.store
    if (changed) this.removed(issuer, previous.pool, 'changed')
    if (this.entries.size > this.settings.max) {
      const [oldest, entry] = this.entries.entries().next().value as [string, Entry]
      this.entries.delete(oldest)
      this.removed(oldest, entry.pool, 'evicted')
      if (wantsPoolEvents()) this.publish('evicted', oldest, {})
    }
    return { pool, changed }
  }

  /** The issuer is no pool (any more): its pool, if it had one, is discarded. */
  private forget (issuer: string): void {
    const entry = this.entries.get(issuer)
    if (entry !== undefined) {
      this.entries.delete(issuer)
      this.removed(issuer, entry.pool, 'unknown')
    }
    this.unknown.delete(issuer)
    this.unknown.set(issuer, Date.now() + this.settings.unknownTtlMs)
    if (this.unknown.size > this.settings.max) this.unknown.delete(this.unknown.keys().next().value as string)
  }

  /** A pool stops being accepted: its key store goes, and the listeners hear of it. */
  private removed (issuer: string, pool: Pool, cause: PoolRemovalCause): void {
    pool.store.discard()
    for (const listener of this.listeners) {
      try {
        listener(issuer, pool, cause)
      } catch (err) {
        this.defaults.log.error({ issuer, err }, 'cognito: a listener of removed pools threw')
      }
    }
  }

  private touch (issuer: string, entry: Entry): void {
    this.entries.delete(issuer)
    this.entries.set(issuer, entry)
  }

  /** Publishes a directory event; the caller has checked that someone listens. */
  private publish (event: CognitoPoolEvent['event'], issuer: string, details: Partial<CognitoPoolEvent>): void {
    publishPool({ event, issuer, pools: this.entries.size, ...details })
  }
}

/**
 * Every field of an answer, and what of it decides whether a token is accepted (null: nothing).
 * Two answers equal in all of these are the same pool: its key store, and the tokens it verified,
 * stay. Any difference makes a new pool, and tokens verified under the old answer are verified
 * again. Typed over every field of PoolSettings: a field added there does not compile until it is
 * given a line here.
 */
const ACCEPTANCE: { readonly [Field in keyof Required<PoolSettings>]: ((value: PoolSettings[Field]) => unknown) | null } = {
  userPoolId: (id) => id,
  issuers: (issuers) => issuers,
  jwksUri: (uri) => uri,
  keys: (keys) => keys === undefined ? null : [...keys.keys].map(([kid, key]) => `${kid} ${key.material}`),
  tokenUse: (use) => use,
  clientIds: sorted,
  audiences: sorted,
  // The claims schemas: a token accepted under other ones is checked again.
  claims: (claims) => claims?.fingerprint ?? null,
  // The entry as given, and the application's `tenant` in it: handed to requests, never a verdict.
  entry: null
}

function sorted (values: ReadonlySet<string> | null): string[] | null {
  return values === null ? null : [...values].sort()
}

/** The answer's fields that decide acceptance, as one string. */
function fingerprintOf (settings: PoolSettings): string {
  const parts: unknown[] = []
  for (const field of Object.keys(ACCEPTANCE) as Array<keyof PoolSettings>) {
    const of = ACCEPTANCE[field] as ((value: unknown) => unknown) | null
    if (of !== null) parts.push(of(settings[field]))
  }
  return JSON.stringify(parts)
}

function noop (): void {}

export function createPoolDirectory (pools: readonly PoolSettings[], resolver: ResolverSettings | undefined, defaults: PoolDefaults): PoolDirectory {
  return resolver === undefined ? new StaticDirectory(pools, defaults) : new ResolvingDirectory(resolver, defaults)
}
