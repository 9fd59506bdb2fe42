/**
 * `app.cognitoWatch(request, onEnd?)`: a watch over a long-lived connection (a WebSocket, an event
 * stream) that ends it when its token expires (`exp` plus `clockTolerance`), its session is
 * revoked or its user signed out (on any instance, through the revocation list's replica), or its
 * resolved pool is no longer accepted. `renew` moves it on to a fresh token of the same user and
 * pool; `stop` ends it silently. A watch belongs to its request's response: it stops by itself
 * when that response (or WebSocket) closes, and then holds nothing of the connection.
 */
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { CognitoAuthError, CognitoClaims, CognitoWatch, CognitoWatchEnd, CognitoWatchEndReason } from '../../types'
import { NoTokenError, TokenInvalidError, TokenRevokedError, withReason } from '../errors'
import { publishWatchEnded } from '../events'
import type { Settings } from '../options'
import type { RevocationList, RevocationPool } from '../revocation/list'
import type { CognitoVerifier } from '../verify'
import { endByDefault, type RawResponse } from './ending'
import { kReply, kVerifiedToken, type MarkedRequest } from './source'
import { Watches, type Watched } from './watches'

/** The decorator (on the instance) that gives the registry's sizes, for tests and health checks. */
export const kWatchSizes = Symbol('fastify-cognito-jwt.watchSizes')

export interface WatchingContext {
  settings: Settings
  verifier: CognitoVerifier
  revocation?: RevocationList
  log: FastifyBaseLogger
}

/** The session ids a token is revoked by: its sign-in's `origin_jti`, and its own `jti`. */
function sessionsOf ({ origin_jti: origin, jti }: CognitoClaims): string[] {
  const ids: string[] = []
  if (typeof origin === 'string' && origin !== '') ids.push(origin)
  if (typeof jti === 'string' && jti !== '' && jti !== origin) ids.push(jti)
  return ids
}

function ended (): CognitoAuthError {
  return withReason(new TokenInvalidError(), 'the watch has ended') as CognitoAuthError
}

class Watch implements CognitoWatch, Watched {
  at: number
  slot = -1
  claims: CognitoClaims
  sessions: readonly string[]
  readonly issuer: string
  readonly pool: RevocationPool
  private readonly started = Date.now()
  private done = false
  private request: FastifyRequest | undefined
  private response: RawResponse | undefined
  private onEnd: CognitoWatchEnd | undefined
  private readonly onClose = (): void => this.stop()

  constructor (private readonly watching: Watching, request: MarkedRequest, onEnd: CognitoWatchEnd | undefined) {
    const verified = request[kVerifiedToken] as NonNullable<MarkedRequest[typeof kVerifiedToken]>
    const response = (request[kReply] as NonNullable<MarkedRequest[typeof kReply]>).raw as unknown as RawResponse
    this.claims = verified.claims
    this.issuer = verified.claims.iss
    this.sessions = sessionsOf(verified.claims)
    this.pool = verified.pool.settings
    this.at = verified.expiresAt
    if (response.destroyed) {
      // The response closed before the watch began: there is nothing to watch.
      this.done = true
      return
    }
    this.request = request
    this.response = response
    this.onEnd = onEnd
    response.once('close', this.onClose)
    watching.watches.add(this)
    // Revoked between `authenticate` and now: it ends as soon as the caller has its watch.
    if (watching.revocation?.refusal(this.claims, this.pool)?.code === 'FST_COGNITO_TOKEN_REVOKED') {
      queueMicrotask(() => { if (this.watching.watches.remove(this)) this.end('revoked') })
    }
  }

  get deadline (): number {
    return this.at
  }

  get ended (): boolean {
    return this.done
  }

  stop (): void {
    if (this.done) return
    this.watching.watches.remove(this)
    this.release()
  }

  async renew (token: string): Promise<void> {
    if (typeof token !== 'string' || token === '') throw withReason(new NoTokenError(), 'renew was given no token')
    if (this.done) throw ended()
    const { verifier, revocation, settings } = this.watching
    // Awaited even when cached: a watch that ends meanwhile is seen below, whatever the path.
    const verified = await (verifier.cached(token) ?? verifier.verify(token))
    if (this.done) throw ended()
    const { claims } = verified
    if (claims.iss !== this.issuer || claims.sub !== this.claims.sub || verified.pool.settings.userPoolId !== this.pool.userPoolId) {
      throw withReason(new TokenInvalidError(), 'the token is of another user or pool')
    }
    const { isRevoked } = settings
    if (isRevoked !== undefined) {
      const request = this.request as FastifyRequest
      // Only `false` clears the token, as on the request path; a throw does not.
      const cleared = await Promise.resolve()
        .then(async () => await isRevoked(claims, request))
        .then((revoked) => revoked === false, () => false)
      if (!cleared) throw withReason(new TokenRevokedError(), 'isRevoked did not clear the token')
      if (this.done) throw ended()
    }
    // Checked last, right before the switch: nothing is applied in between.
    const refusal = revocation?.refusal(claims, verified.pool.settings)
    if (refusal !== undefined) throw refusal
    this.watching.watches.update(this, claims, sessionsOf(claims), verified.expiresAt)
  }

  /** Called by the registry, once it has taken the watch out. */
  end (reason: CognitoWatchEndReason): void {
    const { request, response, onEnd } = this
    this.release()
    const { log, settings } = this.watching
    publishWatchEnded(request as FastifyRequest, reason, Date.now() - this.started)
    if (onEnd === undefined) {
      endByDefault(request as FastifyRequest, response as RawResponse, reason, settings.realm)
      return
    }
    try {
      onEnd(reason)
    } catch (err) {
      log.error({ err, reason }, 'cognito: a watch\'s onEnd threw')
    }
  }

  /** Lets go of the connection: a closed one is kept alive by nothing here. */
  private release (): void {
    this.done = true
    this.response?.removeListener('close', this.onClose)
    this.request = undefined
    this.response = undefined
    this.onEnd = undefined
  }
}

export class Watching {
  readonly watches: Watches
  readonly verifier: CognitoVerifier
  readonly revocation: RevocationList | undefined
  readonly settings: Settings
  readonly log: FastifyBaseLogger

  constructor ({ settings, verifier, revocation, log }: WatchingContext) {
    this.settings = settings
    this.verifier = verifier
    this.revocation = revocation
    this.log = log
    const { directory } = verifier
    this.watches = new Watches({
      revocation,
      recheck: directory.recheck?.bind(directory),
      poolTtlMs: settings.resolver?.ttlMs ?? 0,
      log
    })
    // A pool the resolver no longer answers, or whose answer changed, ends its connections as soon
    // as the directory hears of it. An eviction does not: the pool still stands, and is asked again.
    directory.onRemoved((issuer, _pool, cause) => {
      if (cause !== 'evicted') this.watches.poolRemoved(issuer)
    })
  }

  /** `app.cognitoWatch`. */
  readonly watch = (request: FastifyRequest, onEnd?: CognitoWatchEnd): CognitoWatch => {
    const marked = request as MarkedRequest
    if (marked[kVerifiedToken] == null || marked[kReply] == null) {
      throw new TypeError('cognitoWatch needs a request that app.authenticate accepted')
    }
    if (onEnd !== undefined && typeof onEnd !== 'function') throw new TypeError('cognitoWatch: onEnd must be a function')
    return new Watch(this, marked, onEnd)
  }

  close (): void {
    this.watches.close()
  }
}
