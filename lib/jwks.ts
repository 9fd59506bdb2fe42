/**
 * The signing keys of one pool. get-jwks retrieves them and its TTL cache says when a key is due
 * for a refresh; this store adds what get-jwks lacks:
 *   - one fetch at a time per pool, whatever the `kid`, shared by every caller;
 *   - the whole key set from each fetch (through lib/jwks-fetch.ts): every key is known after one
 *     fetch, a key that left the set is retired, a `kid` reused with new material switches over;
 *   - a cooldown for unknown `kid`s, backoff after failures, and known keys served for up to
 *     `maxStale` while the endpoint fails (get-jwks' own stale cache lasts one TTL);
 *   - the RSA checks on each key (lib/jwk.ts), each key converted once, by `prepare`;
 *   - the warm start, keys given up front, logs and counters.
 *
 * The lookup of a known key (`get`) is synchronous: a request whose key is known never waits on
 * the network or a promise.
 */
import type { FastifyBaseLogger } from 'fastify'
import buildGetJwks, { type GetJwks, type JWK } from 'get-jwks'
import type { KeyStoreStats } from '../types'
import { JwksUnavailableError } from './errors'
import { parseJwks, type ParsedKeySet } from './jwk'
import { FetchAbortedError, JwksFetcher } from './jwks-fetch'

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
  /** Its key in get-jwks' cache, made once: `get` runs on every request. */
  readonly cacheKey: string
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

/** How a store with a URI fetches: get-jwks, through the bounded dispatcher, for one domain. */
interface Remote {
  fetcher: JwksFetcher
  getJwks: GetJwks
  domain: string
}

/** Retries after failed fetches wait 1 s, 2 s, 4 s ... up to this. */
const MAX_BACKOFF_MS = 60_000

/** Keys are asked of get-jwks for RS256, the only algorithm the plugin accepts. */
const ALG = 'RS256'

/** What get-jwks is asked for when no `kid` is known yet (the warm start): the set comes all the same. */
const PROBE_KID = '(warm start)'

/**
 * get-jwks fetches `<domain><jwksPath>`: the configured URI, split at its last path segment, so
 * that the URL fetched is exactly the configured one, never one derived from a token.
 */
function splitUri (jwksUri: string): { domain: string, jwksPath: string } {
  const url = new URL(jwksUri)
  const cut = url.pathname.lastIndexOf('/') + 1
  return { domain: url.origin + url.pathname.slice(0, cut), jwksPath: url.pathname.slice(cut) + url.search }
}

export class KeyStore<V> {
  private keys = new Map<string, Entry<V>>()
  /** Until when fetched keys may be served without a successful refresh. */
  private expireAt = Infinity
  /** No fetch starts before this: the cooldown after a success, the backoff after a failure. */
  private nextFetchAt = 0
  private failuresInRow = 0
  private inflight: Promise<void> | undefined
  private closed = false
  private readonly remote: Remote | undefined
  private readonly counters = { fetches: 0, failures: 0, lastSuccess: null as number | null, lastFailure: null as number | null }

  constructor (private readonly options: KeyStoreOptions<V>) {
    if (options.jwksUri !== null) {
      const { domain, jwksPath } = splitUri(options.jwksUri)
      const fetcher = new JwksFetcher(options)
      const getJwks = buildGetJwks({
        // Its LRU cache takes whole milliseconds, and holds an entry until strictly past its TTL:
        // one less makes the keys due at the TTL itself.
        ttl: Math.max(1, Math.ceil(options.ttlMs) - 1),
        max: options.maxKeys,
        issuersWhitelist: [domain],
        jwksPath,
        fetchOptions: fetcher.fetchOptions
      })
      this.remote = { fetcher, getJwks, domain }
    }
    if (options.keys !== undefined) this.install(options.keys, true)
  }

  /** The key with this `kid`, if it is known and may be used. Never waits. */
  get (kid: string): StoredKey<V> | undefined {
    const key = this.keys.get(kid)
    if (key === undefined || this.remote === undefined || this.remote.getJwks.cache.get(key.cacheKey) !== undefined) return key
    this.pastTtl()
    return this.keys.get(kid)
  }

  /**
   * The key with this `kid`, fetching the JWKS if the cooldown allows. Resolves `undefined` when
   * the JWKS is known and has no such key; rejects with JwksUnavailableError when it cannot tell.
   */
  async find (kid: string): Promise<StoredKey<V> | undefined> {
    const known = this.get(kid)
    if (known !== undefined || this.remote === undefined) return known
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
    for (const key of this.keys.values()) {
      key.alive = false
      // get-jwks moves what leaves its cache to its stale copy: that one last.
      this.remote?.getJwks.cache.delete(key.cacheKey)
      this.remote?.getJwks.staleCache.delete(key.cacheKey)
    }
    this.keys = new Map()
  }

  stats (): KeyStoreStats {
    return { jwksUri: this.options.jwksUri, keys: this.keys.size, ...this.counters }
  }

  private cacheKey (kid: string): string {
    return this.remote === undefined ? '' : this.remote.getJwks.generateCacheKey(ALG, kid, this.remote.domain)
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
    if (dropped.length > 0) {
      this.options.log.error({ jwksUri: this.options.jwksUri, dropped }, 'cognito: JWKS keys expired without a successful refresh; refusing tokens until one succeeds')
    }
    this.keys = kept
  }

  private async fetchKeys (wanted: string | undefined): Promise<void> {
    const { jwksUri, log } = this.options
    if (this.closed) throw new FetchAbortedError('aborted: the server is closing', true)
    // Never called without a URI: such a store has all its keys, and `find` returns before fetching.
    const { fetcher, getJwks, domain } = this.remote as Remote
    const kid = wanted ?? this.keys.keys().next().value ?? PROBE_KID
    const started = Date.now()
    this.counters.fetches++
    // get-jwks must really fetch, and fail rather than answer from its stale copy: this store
    // judges freshness and staleness itself.
    const cacheKey = this.cacheKey(kid)
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
    } catch (err) {
      const reason = reasonOf(err, this.options.maxBytes)
      if (reason instanceof FetchAbortedError && reason.closing) {
        log.debug({ jwksUri }, 'cognito: JWKS fetch aborted: the server is closing')
        throw reason
      }
      const now = Date.now()
      this.failuresInRow++
      this.counters.failures++
      this.counters.lastFailure = now
      const backoffMs = Math.min(1000 * 2 ** (this.failuresInRow - 1), MAX_BACKOFF_MS)
      this.nextFetchAt = now + backoffMs
      log.warn({ jwksUri, status: response?.status, durationMs: now - started, reason: reason.message, retryInMs: backoffMs }, 'cognito: JWKS fetch failed')
      throw reason
    }
  }

  /**
   * Installs a key set: keys whose material did not change keep their converted form, others are
   * converted once; keys no longer listed are retired. Every key is handed to get-jwks' cache, so
   * that its TTL runs for the whole set from this fetch.
   */
  private install ({ keys: parsed }: ParsedKeySet, pinned: boolean): void {
    const next = new Map<string, Entry<V>>()
    const added: string[] = []
    for (const [kid, key] of parsed) {
      const current = this.keys.get(kid)
      let entry = current
      if (entry === undefined || entry.material !== key.material) {
        entry = { kid, material: key.material, value: this.options.prepare(key.pem), alive: true, pinned, cacheKey: this.cacheKey(kid) }
        added.push(kid)
      }
      next.set(kid, entry)
      this.remote?.getJwks.cache.set(entry.cacheKey, { ...key.jwk, domain: this.remote.domain, alg: ALG, kid } satisfies JWK)
    }
    const removed: string[] = []
    for (const [kid, key] of this.keys) {
      if (next.get(kid) !== key) {
        key.alive = false
        removed.push(kid)
      }
    }
    if (this.keys.size > 0 && (added.length > 0 || removed.length > 0)) {
      this.options.log.info({ jwksUri: this.options.jwksUri, added, removed }, 'cognito: JWKS keys rotated')
    }
    this.keys = next
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
