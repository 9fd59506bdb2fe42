/**
 * The signing keys of one JWKS URI: fetched once and shared by concurrent callers, converted once
 * per key, refreshed in the background when their TTL passes, served stale for a bounded time
 * while the endpoint fails, and refetched for an unknown `kid` at most once per cooldown.
 *
 * The lookup of a known key (`get`) is synchronous: a request whose key is known never waits on
 * the network or a promise.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { KeyStoreStats } from '../types'
import { fetchJson, type FetchError } from './fetch-json'
import { parseJwks, type ParsedKeySet } from './jwk'
import { JwksUnavailableError } from './errors'

/** A key ready for use. `alive` turns false when the key leaves the JWKS, or the keys expire. */
export interface StoredKey<V> {
  readonly kid: string
  readonly material: string
  /** What `prepare` made of the key: in this plugin, a verifier bound to it. */
  readonly value: V
  alive: boolean
}

export interface KeyStoreOptions<V> {
  jwksUri: string
  /** Keys known up front, parsed; they do not expire, but an unknown `kid` still fetches. */
  keys?: ParsedKeySet
  ttlMs: number
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

export class KeyStore<V> {
  private keys = new Map<string, StoredKey<V>>()
  /** When the keys should be refreshed, and when, without a refresh, they stop being served. */
  private refreshAt = 0
  private expireAt = Infinity
  /** No fetch starts before this: the cooldown after a success, the backoff after a failure. */
  private nextFetchAt = 0
  private failuresInRow = 0
  private inflight: Promise<void> | undefined
  /** Aborted when the server closes, so that no fetch outlives it. */
  private readonly closing = new AbortController()
  private readonly counters = { fetches: 0, failures: 0, lastSuccess: null as number | null, lastFailure: null as number | null }

  constructor (private readonly options: KeyStoreOptions<V>) {
    if (options.keys !== undefined) {
      this.replace(options.keys)
      this.refreshAt = Infinity
    }
  }

  /** The key with this `kid`, if it is known and may be used. Never waits. */
  get (kid: string): StoredKey<V> | undefined {
    this.maintain()
    return this.keys.get(kid)
  }

  /**
   * The key with this `kid`, fetching the JWKS if the cooldown allows. Resolves `undefined` when
   * the JWKS is known and has no such key; rejects with JwksUnavailableError while the last fetch
   * failed, so that a key we cannot check is not called invalid.
   */
  async find (kid: string): Promise<StoredKey<V> | undefined> {
    const known = this.get(kid)
    if (known !== undefined) return known
    if (this.inflight !== undefined || Date.now() >= this.nextFetchAt) {
      await this.refresh().catch(noop)
      const fetched = this.get(kid)
      if (fetched !== undefined) return fetched
    }
    // No keys at all without a failure cannot happen here: they are missing only before the
    // first fetch (which `get` starts) or once expired (when `maintain` starts one at once).
    if (this.failuresInRow > 0) throw new JwksUnavailableError()
    return undefined
  }

  /** Fetches the JWKS now, unless a fetch is under way: then its outcome is shared. */
  refresh (): Promise<void> {
    this.inflight ??= this.fetchKeys().finally(() => { this.inflight = undefined })
    return this.inflight
  }

  /** Aborts fetches under way; used when the server closes. */
  close (): void {
    this.closing.abort()
  }

  stats (): KeyStoreStats {
    return { jwksUri: this.options.jwksUri, keys: this.keys.size, ...this.counters }
  }

  /**
   * Past the TTL: refresh in the background, and stop serving the keys once too stale. The TTL
   * refresh waits out the backoff after a failure, not the unknown-`kid` cooldown after a success:
   * keys allowed to expire before the cooldown ends (a short `maxStale`) would be left unrefreshed.
   */
  private maintain (): void {
    const now = Date.now()
    if (now < this.refreshAt) return
    if (now >= this.expireAt && this.keys.size > 0) {
      this.options.log.error({ jwksUri: this.options.jwksUri }, 'cognito: JWKS keys expired without a successful refresh; refusing tokens until one succeeds')
      for (const key of this.keys.values()) key.alive = false
      this.keys = new Map()
    }
    if (this.inflight === undefined && (this.failuresInRow === 0 || now >= this.nextFetchAt)) this.refresh().catch(noop)
  }

  private async fetchKeys (): Promise<void> {
    const { jwksUri, timeoutMs, maxBytes, log } = this.options
    const started = Date.now()
    this.counters.fetches++
    // Known once the response came: a body that is no usable JWKS is then logged with it.
    let status: number | undefined
    try {
      const response = await fetchJson(jwksUri, { timeoutMs, maxBytes, signal: this.closing.signal })
      status = response.status
      const keySet = parseJwks(response.body)
      const now = Date.now()
      this.replace(keySet)
      this.failuresInRow = 0
      this.counters.lastSuccess = now
      this.refreshAt = now + this.options.ttlMs
      this.expireAt = this.refreshAt + this.options.maxStaleMs
      this.nextFetchAt = now + this.options.cooldownMs
      log.debug({ jwksUri, status, durationMs: now - started, keys: keySet.keys.size, skipped: keySet.skipped }, 'cognito: JWKS fetched')
    } catch (err) {
      const now = Date.now()
      this.failuresInRow++
      this.counters.failures++
      this.counters.lastFailure = now
      const backoffMs = Math.min(1000 * 2 ** (this.failuresInRow - 1), MAX_BACKOFF_MS)
      this.nextFetchAt = now + backoffMs
      log.warn({
        jwksUri,
        status: status ?? (err as FetchError).status,
        durationMs: now - started,
        reason: (err as Error).message,
        retryInMs: backoffMs
      }, 'cognito: JWKS fetch failed')
      throw err
    }
  }

  /** Installs a new key set, keeping the converted form of keys whose material did not change. */
  private replace ({ keys: parsed }: ParsedKeySet): void {
    const next = new Map<string, StoredKey<V>>()
    const added: string[] = []
    for (const [kid, key] of parsed) {
      const current = this.keys.get(kid)
      if (current !== undefined && current.material === key.material) {
        next.set(kid, current)
      } else {
        next.set(kid, { kid, material: key.material, value: this.options.prepare(key.pem), alive: true })
        added.push(kid)
      }
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

function noop (): void {}
