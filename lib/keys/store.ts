/**
 * The signing keys of one pool. get-jwks retrieves them and its TTL cache says when a key is due
 * for a refresh; this store adds what get-jwks lacks:
 *   - one fetch at a time per pool, whatever the `kid`, shared by every caller;
 *   - the whole key set from each fetch (through lib/keys/fetch.ts): every key is known after one
 *     fetch, a key that left the set is retired, a `kid` reused with new material switches over;
 *   - a cooldown for unknown `kid`s, backoff after failures, and known keys served for up to
 *     `maxStale` while the endpoint fails (get-jwks' own stale cache lasts one TTL);
 *   - the RSA checks on each key (lib/keys/jwk.ts), each key converted once, by `prepare`;
 *   - the warm start, keys given up front, logs, counters and events (lib/events.ts).
 *
 * The lookup of a known key (`get`) is synchronous: a request whose key is known never waits on
 * the network or a promise. It reads no cache either: the store remembers when its keys are due,
 * and asks get-jwks' cache (whose clock sets a timer per reading) only once that time has come.
 * get-jwks and undici are loaded by the first fetch (lib/keys/fetch.ts), never before.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { JWK } from 'get-jwks'
import type { CognitoJwksEvent, KeyStoreStats } from '../../types'
import { JwksPrefetchError, JwksUnavailableError } from '../errors'
import { publishJwks, wantsJwksEvents } from '../events'
import { parseJwks, type ParsedKeySet } from './jwk'
import { ALG, FetchAbortedError, openRemote, type Remote } from './fetch'

/** A key ready for use. `alive` turns false when the key leaves the JWKS, or the keys expire. */
export interface StoredKey<V> {
  readonly kid: string
  readonly material: string
  /** What `prepare` made of the key: in this plugin, a verifier bound to it. */
  readonly value: V
  alive: boolean
}

interface Entry<V> extends StoredKey<V> {
  /** Given by the operator (the `jwks` option): only a successful fetch can retire it. */
  readonly pinned: boolean
}

export interface KeyStoreOptions<V> {
  /** null: only the keys given up front, never fetched. */
  jwksUri: string | null
  /** Keys known up front, parsed; refreshed on the TTL like fetched keys, never dropped by a failure. */
  keys?: ParsedKeySet
  ttlMs: number
  /** The most keys kept from one JWKS. */
  maxKeys: number
  cooldownMs: number
  timeoutMs: number
  maxStaleMs: number
  maxBytes: number
  log: FastifyBaseLogger
  /** Converts a key, once, into what the store hands out. */
  prepare: (pem: string) => V
}

/** Retries after failed fetches wait 1 s, 2 s, 4 s ... up to this. */
const MAX_BACKOFF_MS = 60_000

/** How soon get-jwks' cache is asked again when it still holds keys the store thought due. */
const RECHECK_MS = 1000

/** What get-jwks is asked for when no `kid` is known yet (the warm start): the set comes all the same. */
const PROBE_KID = '(warm start)'

export class KeyStore<V> {
  private keys = new Map<string, Entry<V>>()
  /** Until when fetched keys may be served without a successful refresh. */
  private expireAt = Infinity
  /** No fetch starts before this: the cooldown after a success, the backoff after a failure. */
  private nextFetchAt = 0
  private failuresInRow = 0
  private inflight: Promise<void> | undefined
  private closed = false
  /**
   * When the keys are due for a refresh, as far as the store knows: the TTL from their install.
   * get-jwks' cache has the last word once this time is reached. Never, without a URI.
   */
  private dueAt = Infinity
  /** get-jwks and the dispatcher, set up by the first fetch. */
  private remote: Remote | undefined
  private readonly counters = { fetches: 0, failures: 0, lastSuccess: null as number | null, lastFailure: null as number | null }

  constructor (private readonly options: KeyStoreOptions<V>) {
    if (options.keys !== undefined) this.install(options.keys, true)
  }

  /**
   * The key with this `kid`, if it is known and may be used. Never waits. `nowMs` spares a clock
   * reading to a caller that has just made one (the token cache): on a cache hit this lookup is
   * the store's whole cost.
   */
  get (kid: string, nowMs = Date.now()): StoredKey<V> | undefined {
    const key = this.keys.get(kid)
    if (key === undefined || nowMs < this.dueAt || !this.due(kid)) return key
    this.pastTtl()
    return this.keys.get(kid)
  }

  /**
   * The key with this `kid`, fetching the JWKS if the cooldown allows. Resolves `undefined` when
   * the JWKS is known and has no such key; rejects with JwksUnavailableError when it cannot tell.
   */
  async find (kid: string): Promise<StoredKey<V> | undefined> {
    const known = this.get(kid)
    if (known !== undefined || this.options.jwksUri === null) return known
    if (this.inflight !== undefined || Date.now() >= this.nextFetchAt) {
      await this.refresh(kid).catch(noop)
      const fetched = this.get(kid)
      if (fetched !== undefined) return fetched
    }
    // While the last fetch failed (or the server closes), a key we cannot check is not called invalid.
    if (this.failuresInRow > 0 || this.closed) throw new JwksUnavailableError()
    return undefined
  }

  /** Fetches the JWKS now, unless a fetch is under way: then its outcome is shared. */
  refresh (kid?: string): Promise<void> {
    this.inflight ??= this.fetchKeys(kid).finally(() => { this.inflight = undefined })
    return this.inflight
  }

  /**
   * The warm start: fetches the keys now. A failure rejects with an error that names the JWKS URI
   * and the cause, for a server that must not start without its keys.
   */
  async prefetch (): Promise<void> {
    try {
      await this.refresh()
    } catch (err) {
      throw new JwksPrefetchError(String(this.options.jwksUri), (err as Error).message, { cause: err })
    }
  }

  /** Aborts fetches under way, and refuses later ones; used when the server closes. */
  close (): void {
    this.closed = true
    this.remote?.fetcher.close()
  }

  /**
   * Closes the store and lets go of its keys, for a pool no longer used (a resolved pool evicted
   * or changed): tokens verified with its keys stop passing, even from the token cache.
   */
  discard (): void {
    this.close()
    const remote = this.remote
    for (const key of this.keys.values()) {
      key.alive = false
      if (remote === undefined) continue
      // get-jwks moves what leaves its cache to its stale copy: that one last.
      const cacheKey = remote.cacheKey(key.kid)
      remote.getJwks.cache.delete(cacheKey)
      remote.getJwks.staleCache.delete(cacheKey)
    }
    this.keys = new Map()
  }

  stats (): KeyStoreStats {
    return { jwksUri: this.options.jwksUri, keys: this.keys.size, ...this.counters }
  }

  /**
   * Whether the keys are due, now that the time the store noted has come: get-jwks' cache decides.
   * If it still holds the key (its clock is not `Date`, and `Date` may jump), the store asks again
   * a little later. Keys given up front, before any fetch set get-jwks up, are due at their TTL.
   */
  private due (kid: string): boolean {
    if (this.remote === undefined || this.remote.getJwks.cache.get(this.remote.cacheKey(kid)) === undefined) return true
    this.dueAt = Date.now() + Math.min(RECHECK_MS, this.options.ttlMs)
    return false
  }

  /**
   * get-jwks' TTL has passed: refresh in the background, and stop serving fetched keys once too
   * stale. The refresh waits out the backoff after a failure, not the unknown-`kid` cooldown after
   * a success: keys allowed to expire before the cooldown ends (a short `maxStale`) would be left
   * unrefreshed.
   */
  private pastTtl (): void {
    const now = Date.now()
    if (now >= this.expireAt) this.expire()
    if (this.inflight === undefined && (this.failuresInRow === 0 || now >= this.nextFetchAt)) this.refresh().catch(noop)
  }

  /** Drops the fetched keys; keys given up front stay, until a fetch that succeeds no longer lists them. */
  private expire (): void {
    this.expireAt = Infinity
    const kept = new Map<string, Entry<V>>()
    const dropped: string[] = []
    for (const [kid, key] of this.keys) {
      if (key.pinned) {
        kept.set(kid, key)
      } else {
        key.alive = false
        dropped.push(kid)
      }
    }
    this.keys = kept
    if (dropped.length > 0) {
      this.options.log.error({ jwksUri: this.options.jwksUri, dropped }, 'cognito: JWKS keys expired without a successful refresh; refusing tokens until one succeeds')
      if (wantsJwksEvents()) this.publish('expired', { removed: dropped })
    }
  }

  private async fetchKeys (wanted: string | undefined): Promise<void> {
    const { jwksUri, log } = this.options
    if (this.closed) throw new FetchAbortedError('aborted: the server is closing', true)
    // Never called without a URI: such a store has all its keys, and `find` returns before fetching.
    this.remote ??= openRemote({ ...this.options, jwksUri: jwksUri as string })
    const { fetcher, getJwks, domain } = this.remote
    const kid = wanted ?? this.keys.keys().next().value ?? PROBE_KID
    const started = Date.now()
    this.counters.fetches++
    // get-jwks must really fetch, and fail rather than answer from its stale copy: this store
    // judges freshness and staleness itself.
    const cacheKey = this.remote.cacheKey(kid)
    getJwks.cache.delete(cacheKey)
    getJwks.staleCache.delete(cacheKey)
    let outcome: unknown
    try {
      await getJwks.getJwk({ domain, alg: ALG, kid })
    } catch (err) {
      // A `kid` missing from the set is get-jwks' failure, not the fetch's: the set decides below.
      outcome = err
    }
    const response = fetcher.takeResponse()
    try {
      // A store closed or discarded while its fetch was under way installs nothing: a response
      // that was complete when the abort came must not bring keys back to a pool that is gone.
      if (this.closed) throw outcome
      if (response?.body === undefined) throw outcome
      if (response.status !== 200) throw new Error(`unexpected status ${response.status}`)
      const keySet = parseJwks(parseJson(response.body), this.options.maxKeys)
      const now = Date.now()
      this.install(keySet, false)
      this.failuresInRow = 0
      this.counters.lastSuccess = now
      this.expireAt = now + this.options.ttlMs + this.options.maxStaleMs
      this.nextFetchAt = now + this.options.cooldownMs
      log.debug({ jwksUri, status: response.status, durationMs: now - started, keys: keySet.keys.size, skipped: keySet.skipped }, 'cognito: JWKS fetched')
      if (wantsJwksEvents()) this.publish('fetched', { status: response.status, durationMs: now - started })
    } catch (err) {
      // Once the server closes, whatever ended the fetch (the abort, the agent destroyed while
      // connecting) is the shutdown, not a failure of the endpoint.
      if (this.closed) {
        const aborted = new FetchAbortedError('aborted: the server is closing', true)
        log.debug({ jwksUri }, 'cognito: JWKS fetch aborted: the server is closing')
        if (wantsJwksEvents()) this.publish('aborted', { status: response?.status ?? null, durationMs: Date.now() - started, reason: aborted.message })
        throw aborted
      }
      const reason = reasonOf(err, this.options.maxBytes)
      const now = Date.now()
      this.failuresInRow++
      this.counters.failures++
      this.counters.lastFailure = now
      const backoffMs = Math.min(1000 * 2 ** (this.failuresInRow - 1), MAX_BACKOFF_MS)
      this.nextFetchAt = now + backoffMs
      log.warn({ jwksUri, status: response?.status, durationMs: now - started, reason: reason.message, retryInMs: backoffMs }, 'cognito: JWKS fetch failed')
      if (wantsJwksEvents()) this.publish('failed', { status: response?.status ?? null, durationMs: now - started, reason: reason.message })
      throw reason
    }
  }

  /**
   * Installs a key set: keys whose material did not change keep their converted form, others are
   * converted once; keys no longer listed are retired. Every key is handed to get-jwks' cache (once
   * a fetch has set it up), so that its TTL runs for the whole set from this fetch; the store notes
   * when that TTL ends.
   */
  private install ({ keys: parsed }: ParsedKeySet, pinned: boolean): void {
    const next = new Map<string, Entry<V>>()
    const added: string[] = []
    for (const [kid, key] of parsed) {
      const current = this.keys.get(kid)
      let entry = current
      if (entry === undefined || entry.material !== key.material) {
        entry = { kid, material: key.material, value: this.options.prepare(key.pem), alive: true, pinned }
        added.push(kid)
      }
      next.set(kid, entry)
      this.remote?.getJwks.cache.set(this.remote.cacheKey(kid), { ...key.jwk, domain: this.remote.domain, alg: ALG, kid } satisfies JWK)
    }
    if (this.options.jwksUri !== null) this.dueAt = Date.now() + this.options.ttlMs
    const removed: string[] = []
    for (const [kid, key] of this.keys) {
      if (next.get(kid) !== key) {
        key.alive = false
        removed.push(kid)
      }
    }
    const rotated = this.keys.size > 0 && (added.length > 0 || removed.length > 0)
    this.keys = next
    if (rotated) {
      this.options.log.info({ jwksUri: this.options.jwksUri, added, removed }, 'cognito: JWKS keys rotated')
      if (wantsJwksEvents()) this.publish('rotated', { added, removed })
    }
  }

  /** Publishes a key store event; the caller has checked that someone listens. */
  private publish (outcome: CognitoJwksEvent['outcome'], details: Partial<CognitoJwksEvent>): void {
    publishJwks({ jwksUri: this.options.jwksUri, outcome, status: null, durationMs: null, keys: this.keys.size, ...details })
  }
}

function parseJson (body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'))
  } catch {
    throw new Error('the body is not JSON')
  }
}

/** The error that says why a fetch failed: `fetch` wraps the network's in a bare "fetch failed". */
function reasonOf (err: unknown, maxBytes: number): Error {
  const reason = err instanceof TypeError && err.cause instanceof Error ? err.cause : err as Error
  if ((reason as { code?: unknown }).code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE') return new Error(`the body is over ${maxBytes} bytes`)
  return reason
}

function noop (): void {}
