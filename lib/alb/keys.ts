/**
 * The load balancer's signing keys: one PEM public key per `kid`, at `<keysUri>/<kid>`, not a
 * JWKS. A key never changes under its `kid` (a new key comes with a new `kid`), so a key is kept
 * until the store is full, the oldest out first. What keeps a stream of made-up `kid`s (any UUID
 * passes the header checks) from costing a fetch each:
 *   - one fetch per `kid` at a time, shared by every request that waits for it;
 *   - one fetch of an unknown `kid` at a time overall: another unknown `kid` meanwhile is
 *     answered "unavailable" (503) without a fetch;
 *   - after an answer of "no such key" (any 4xx: S3 answers 403 for a missing object), no other
 *     unknown `kid` is fetched for the cooldown, and that `kid` is remembered as missing for it;
 *     after a failure (5xx, timeout, a body that is no EC P-256 key), a backoff of 1 s, 2 s, ...
 * Fetches go through lib/keys/fetch.ts's bounded dispatcher (deadline, body cap, no redirects),
 * loaded by the first fetch; events and counters are the key stores' (lib/events.ts).
 */
import { createPublicKey, type KeyObject } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { CognitoJwksEvent, KeyStoreStats } from '../../types'
import { JwksUnavailableError, TokenInvalidError, withReason, type CognitoAuthError } from '../errors'
import { publishJwks, wantsJwksEvents } from '../events'
import { fetchDocument, JwksFetcher } from '../keys/fetch'

/** A key ready for use; `alive` turns false when the store lets it go (tokens cached with it then stop passing). */
export interface AlbKey {
  readonly kid: string
  readonly key: KeyObject
  alive: boolean
}

export interface AlbKeyStoreOptions {
  keysUri: string
  /** The most keys kept, and the most `kid`s remembered as missing. */
  maxKeys: number
  cooldownMs: number
  timeoutMs: number
  maxBytes: number
  log: FastifyBaseLogger
}

/** Retries after failed fetches wait 1 s, 2 s, 4 s ... up to this. */
const MAX_BACKOFF_MS = 60_000

function unavailable (reason: string): CognitoAuthError {
  return withReason(new JwksUnavailableError(), reason)
}

const NO_SUCH_KEY = 'kid is not a key of the load balancer'

function noSuchKey (): CognitoAuthError {
  return withReason(new TokenInvalidError(), NO_SUCH_KEY)
}

/** Why a fetch brought no key: the endpoint has none (`missing`), or it could not tell. */
interface Failure {
  missing: boolean
  reason: string
}

/** The key, or a new error for this request: a refusal's challenge headers are set on its own error object. */
function answer (outcome: AlbKey | Failure): AlbKey {
  if ('key' in outcome) return outcome
  throw outcome.missing ? noSuchKey() : unavailable(outcome.reason)
}

export class AlbKeyStore {
  private readonly keys = new Map<string, AlbKey>()
  /** `kid`s the endpoint said it has no key for, until when that answer stands. */
  private readonly missing = new Map<string, number>()
  /** The one fetch under way, and the `kid` it is for. */
  private current: { kid: string, outcome: Promise<AlbKey | Failure> } | undefined
  /** No fetch of an unknown `kid` starts before this: the cooldown after a 4xx, the backoff after a failure. */
  private nextFetchAt = 0
  private failuresInRow = 0
  private fetcher: JwksFetcher | undefined
  private closed = false
  private readonly counters = { fetches: 0, failures: 0, lastSuccess: null as number | null, lastFailure: null as number | null }

  constructor (private readonly options: AlbKeyStoreOptions) {}

  /** The key with this `kid`, if it is known. Never waits. */
  get (kid: string): AlbKey | undefined {
    return this.keys.get(kid)
  }

  /**
   * The key with this `kid`, fetched if the bounds allow. Rejects with TokenInvalidError when the
   * endpoint has no such key, with JwksUnavailableError when it cannot tell (or may not be asked now).
   * Callers have looked with `get` first.
   */
  async find (kid: string): Promise<AlbKey> {
    if (this.current?.kid === kid) return answer(await this.current.outcome)
    const now = Date.now()
    const missingUntil = this.missing.get(kid)
    if (missingUntil !== undefined && now < missingUntil) throw noSuchKey()
    if (this.closed) throw unavailable('the server is closing')
    if (this.current !== undefined) throw unavailable('another unknown kid is being fetched')
    if (now < this.nextFetchAt) throw unavailable('unknown kids are not fetched until the cooldown ends')
    const outcome = this.fetchKey(kid).finally(() => { this.current = undefined })
    this.current = { kid, outcome }
    return answer(await outcome)
  }

  stats (): KeyStoreStats {
    return { jwksUri: this.options.keysUri, keys: this.keys.size, ...this.counters }
  }

  /** Aborts the fetch under way, and refuses later ones; used when the server closes. */
  close (): void {
    this.closed = true
    this.fetcher?.close()
  }

  /** The key, or why there is none: shared by every request waiting for the `kid`, each of which makes its own error of it. */
  private async fetchKey (kid: string): Promise<AlbKey | Failure> {
    const { keysUri, log, timeoutMs, maxBytes } = this.options
    // The fetcher loads undici: an application that never meets an unknown kid never does.
    this.fetcher ??= new JwksFetcher({ timeoutMs, maxBytes })
    const started = Date.now()
    this.counters.fetches++
    let status: number | null = null
    try {
      const document = await fetchDocument(this.fetcher, `${keysUri}/${kid}`, 'application/x-pem-file, text/plain, */*')
      status = document.status
      if (status >= 400 && status < 500) return this.notFound(kid, status, started)
      if (status !== 200) throw new Error(`unexpected status ${status}`)
      const key = this.install(kid, parseKey(document.body))
      const now = Date.now()
      this.failuresInRow = 0
      this.counters.lastSuccess = now
      log.debug({ keysUri, kid, status, durationMs: now - started }, 'cognito: load balancer key fetched')
      if (wantsJwksEvents()) this.publish('fetched', { status, durationMs: now - started })
      return key
    } catch (err) {
      return this.failed(err, status, started)
    }
  }

  /** A 4xx: no such key. The answer is remembered, and other unknown `kid`s wait for the cooldown. */
  private notFound (kid: string, status: number, started: number): Failure {
    const now = Date.now()
    this.failuresInRow = 0
    this.nextFetchAt = now + this.options.cooldownMs
    if (this.missing.size >= this.options.maxKeys) this.missing.delete(this.missing.keys().next().value as string)
    this.missing.set(kid, now + this.options.cooldownMs)
    this.options.log.debug({ keysUri: this.options.keysUri, status }, 'cognito: load balancer key not found')
    if (wantsJwksEvents()) this.publish('failed', { status, durationMs: now - started, reason: `no such key (status ${status})` })
    return { missing: true, reason: NO_SUCH_KEY }
  }

  /** A fetch that could not tell: the keys are unavailable, and the next unknown `kid` waits out a backoff. */
  private failed (err: unknown, status: number | null, started: number): Failure {
    const now = Date.now()
    if (this.closed) {
      this.options.log.debug({ keysUri: this.options.keysUri }, 'cognito: load balancer key fetch aborted: the server is closing')
      if (wantsJwksEvents()) this.publish('aborted', { status, durationMs: now - started, reason: 'aborted: the server is closing' })
      return { missing: false, reason: 'the server is closing' }
    }
    const reason = reasonOf(err, this.options.maxBytes)
    this.failuresInRow++
    this.counters.failures++
    this.counters.lastFailure = now
    const backoffMs = Math.min(1000 * 2 ** (this.failuresInRow - 1), MAX_BACKOFF_MS)
    this.nextFetchAt = now + backoffMs
    this.options.log.warn({ keysUri: this.options.keysUri, status, durationMs: now - started, reason, retryInMs: backoffMs }, 'cognito: load balancer key fetch failed')
    if (wantsJwksEvents()) this.publish('failed', { status, durationMs: now - started, reason })
    return { missing: false, reason: `load balancer key fetch failed: ${reason}` }
  }

  /** Keeps a key; a full store lets its oldest key go. */
  private install (kid: string, key: KeyObject): AlbKey {
    if (this.keys.size >= this.options.maxKeys) {
      const oldest = this.keys.values().next().value as AlbKey
      oldest.alive = false
      this.keys.delete(oldest.kid)
    }
    const entry: AlbKey = { kid, key, alive: true }
    this.keys.set(kid, entry)
    this.missing.delete(kid)
    return entry
  }

  private publish (outcome: CognitoJwksEvent['outcome'], details: Partial<CognitoJwksEvent>): void {
    publishJwks({ jwksUri: this.options.keysUri, outcome, status: null, durationMs: null, keys: this.keys.size, ...details })
  }
}

/** A PEM public key on the P-256 curve, the only kind ES256 verifies with. */
function parseKey (body: Buffer): KeyObject {
  let key: KeyObject
  try {
    key = createPublicKey({ key: body.toString('utf8'), format: 'pem' })
  } catch {
    throw new Error('the body is not a PEM public key')
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new Error('the key is not an EC P-256 public key')
  }
  return key
}

/** Why a fetch failed, in words: `fetch` wraps the network's error in a bare "fetch failed". */
function reasonOf (err: unknown, maxBytes: number): string {
  const cause = err instanceof TypeError && err.cause instanceof Error ? err.cause : err as Error
  if ((cause as { code?: unknown }).code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE') return `the body is over ${maxBytes} bytes`
  return cause.message
}
