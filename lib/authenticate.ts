/**
 * The `authenticate` hook: token from the request, verified claims, revocation, the application's
 * user, then `request.cognitoClaims` and `request.cognitoUser`. Refusals answer with their status,
 * code and `WWW-Authenticate` challenge; the reason goes to `request.log.debug`, never the token.
 *
 * The hook takes Fastify's `done` callback, so a cached or known-key token is authenticated with
 * no promise at all; called without `done` (e.g. awaited by hand) it returns a promise.
 */
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { CognitoAlbClaims, CognitoClaims, CognitoHook, CognitoUser } from '../types'
import type { AlbAuthentication, AlbVerifier } from './alb/verify'
import { buildChallenge, HookFailedError, NoTokenError, TokenRevokedError, UserNotFoundError, withReason, type CognitoAuthError } from './errors'
import { publishAuthenticated, publishRefused, wantsRefusedEvents } from './events'
import { extractFromHeader, type Extracted } from './extract'
import { markAuthenticated } from './connections/source'
import type { Settings } from './options'
import type { RevocationList } from './revocation/list'
import type { VerifiedToken } from './token-cache'
import type { CognitoVerifier } from './verify'

type Done = (err?: Error) => void

export interface AuthenticateContext {
  settings: Settings
  verifier: CognitoVerifier
  /** The revocation list's replica, with the `revocation` option. */
  revocation?: RevocationList
  /** The load balancer's tokens, with the `alb` option: then the only place tokens come from. */
  alb?: AlbVerifier
}

/**
 * Answers the request with a refusal: debug log, then the error to Fastify. The challenge travels
 * on the error's `headers`, which Fastify's error handler applies to the reply: it reaches the
 * client only if this error is the answer, not when another strategy (e.g. @fastify/auth's `or`)
 * lets the request through. Every refusal is a new error object, so the headers are this
 * request's own.
 */
export function refuseRequest (request: FastifyRequest, realm: string, error: CognitoAuthError, done: Done, scope?: readonly string[]): void {
  const challenge = buildChallenge(realm, error, scope)
  if (challenge !== undefined) error.headers = { 'www-authenticate': challenge }
  request.log.debug({ code: error.code, reason: error.reason }, 'cognito: request refused')
  publishRefused(request, error)
  done(error)
}

/**
 * Lets a callback-style hook also be awaited: any value given to `done` (even `null`) rejects.
 * The hook bears `name` (by default the wrapped function's): tracers such as @fastify/otel name
 * a hook's span after its function.
 */
export function awaitable (run: (request: FastifyRequest, reply: FastifyReply, done: Done) => void, name = run.name): CognitoHook {
  const hook = function (this: unknown, request: FastifyRequest, reply: FastifyReply, done?: HookHandlerDoneFunction): Promise<void> | undefined {
    if (done !== undefined) {
      run(request, reply, done)
      return undefined
    }
    return new Promise<void>((resolve, reject) => run(request, reply, (err) => err === undefined ? resolve() : reject(err)))
  } as CognitoHook
  return Object.defineProperty(hook, 'name', { value: name })
}

/**
 * What a throw or rejection of one of the application's hooks answers the request with. One
 * without an Error (`undefined`, `null`, a string) would otherwise reach `done` as "no error" and
 * let the request through.
 */
function hookFailure (hook: string, err: unknown): CognitoAuthError | ApplicationHookError {
  if (!(err instanceof Error)) return withReason(new HookFailedError(hook, 'rejected without an Error'), `${hook} rejected without an Error`) as CognitoAuthError
  return new ApplicationHookError(hook, err)
}

/** An error the application's hook threw: it answers the request as thrown; the hook is for the event. */
class ApplicationHookError {
  constructor (readonly hook: string, readonly error: Error) {}
}

/**
 * The `refused` event's error for an application's own error. The event keeps its promise of a
 * plugin error with a code and a reason: an FST_COGNITO_HOOK_FAILED whose `cause` is that error.
 */
function hookRefusal ({ hook, error }: ApplicationHookError): CognitoAuthError {
  const refusal = withReason(new HookFailedError(hook, 'threw'), `${hook} threw`)
  refusal.cause = error
  return refusal as CognitoAuthError
}

/**
 * Without `resolveUser` the user is the claims. Once an application registers its own user type
 * (CognitoUserRegistry), the options' type requires `resolveUser`, so this cast never lies.
 */
function claimsAsUser (claims: CognitoClaims): CognitoUser {
  return claims as unknown as CognitoUser
}

export function createAuthenticate ({ settings, verifier, revocation, alb }: AuthenticateContext, optional: boolean): CognitoHook {
  const { realm, resolveUser, isRevoked, revocationCacheTtlMs, extractToken } = settings
  const extract: (request: FastifyRequest) => Extracted = extractToken === undefined
    ? extractFromHeader
    : (request) => {
        const token: unknown = extractToken(request)
        // Anything but a non-empty string (undefined, null, '', a header's string[]) is no token.
        return typeof token === 'string' && token !== '' ? token : withReason(new NoTokenError(), 'extractToken found no token')
      }
  const needsMore = resolveUser !== undefined || isRevoked !== undefined

  function accept (request: FastifyRequest, reply: FastifyReply, verified: VerifiedToken, cached: boolean, done: Done, albClaims: CognitoAlbClaims | null = null): void {
    // The replica's check is a lookup in memory, for cached tokens too; isRevoked may follow.
    const refusal = revocation?.refusal(verified.claims, verified.pool.settings)
    if (refusal !== undefined) {
      refuseRequest(request, realm, refusal, done)
      return
    }
    if (!needsMore) {
      request.cognitoClaims = verified.claims
      request.cognitoUser = claimsAsUser(verified.claims)
      request.cognitoPool = verified.pool.settings.entry
      request.cognitoAlbClaims = albClaims
      markAuthenticated(request, reply, verified)
      publishAuthenticated(request, verified.claims, cached, albClaims ?? undefined)
      done()
      return
    }
    finish(request, reply, verified, albClaims).then((refusal) => {
      if (refusal !== undefined) {
        refuseRequest(request, realm, refusal, done)
        return
      }
      publishAuthenticated(request, verified.claims, cached, albClaims ?? undefined)
      done()
    }, (err: CognitoAuthError | ApplicationHookError) => {
      if (err instanceof ApplicationHookError) {
        // The application's own error, as it was thrown.
        if (wantsRefusedEvents()) publishRefused(request, hookRefusal(err))
        done(err.error)
      } else if (err instanceof TokenRevokedError || err instanceof UserNotFoundError) {
        refuseRequest(request, realm, err, done)
      } else {
        // A hook that failed without an error to answer with (FST_COGNITO_HOOK_FAILED).
        publishRefused(request, err)
        done(err)
      }
    })
  }

  /** The application's hooks; resolves with the list's refusal if a revocation arrived while they ran. */
  async function finish (request: FastifyRequest, reply: FastifyReply, verified: VerifiedToken, albClaims: CognitoAlbClaims | null): Promise<CognitoAuthError | undefined> {
    const { claims } = verified
    if (isRevoked !== undefined && Date.now() >= verified.notRevokedUntil) {
      let revoked: unknown
      try {
        revoked = await isRevoked(claims, request)
      } catch (err) {
        throw hookFailure('isRevoked', err)
      }
      if (revoked === true) throw withReason(new TokenRevokedError(), 'isRevoked returned true')
      // Only `false` clears the token: a forgotten `return` (undefined) must not read as "not revoked".
      if (revoked !== false) throw withReason(new HookFailedError('isRevoked', 'must return true or false'), 'isRevoked returned neither true nor false')
      if (revocationCacheTtlMs > 0) verified.notRevokedUntil = Date.now() + revocationCacheTtlMs
    }
    let user: unknown = claimsAsUser(claims)
    if (resolveUser !== undefined) {
      try {
        user = await resolveUser(claims, request)
      } catch (err) {
        throw hookFailure('resolveUser', err)
      }
    }
    // Every falsy value is no user: `false`, `0` or `''` must not become an authenticated request.
    if (!user) throw withReason(new UserNotFoundError(), 'resolveUser returned no user')
    // A sign-out that arrived while the hooks ran (a slow database) stops this request too.
    const refusal = revocation?.refusal(claims, verified.pool.settings)
    if (refusal !== undefined) return refusal
    request.cognitoClaims = claims
    request.cognitoUser = user as CognitoUser
    request.cognitoPool = verified.pool.settings.entry
    request.cognitoAlbClaims = albClaims
    markAuthenticated(request, reply, verified)
    return undefined
  }

  /**
   * Behind a load balancer: its access token is accepted as any token is, with its user claims.
   * Without the access token (`alb.accessToken: false`) there is nothing to revoke or resolve
   * (register refused those options): the load balancer's claims alone.
   */
  function acceptAlb (request: FastifyRequest, reply: FastifyReply, { alb: verified, verified: access, cached }: AlbAuthentication, done: Done): void {
    if (access !== undefined) {
      accept(request, reply, access, cached, done, verified.claims)
      return
    }
    request.cognitoAlbClaims = verified.claims
    request.cognitoPool = verified.pool.settings.entry
    publishAuthenticated(request, null, cached, verified.claims)
    done()
  }

  if (alb !== undefined) {
    return awaitable(function authenticate (request, reply, done) {
      let result: ReturnType<AlbVerifier['authenticate']>
      try {
        result = alb.authenticate(request)
      } catch (err) {
        refuseRequest(request, realm, err as CognitoAuthError, done)
        return
      }
      if (result instanceof Promise) {
        result.then(
          (found) => acceptAlb(request, reply, found, done),
          (err: CognitoAuthError) => refuseRequest(request, realm, err, done)
        )
      } else if ('alb' in result) {
        acceptAlb(request, reply, result, done)
      } else if (optional) {
        done()
      } else {
        refuseRequest(request, realm, result, done)
      }
    }, optional ? 'authenticateOptional' : 'authenticate')
  }

  return awaitable(function authenticate (request, reply, done) {
    const token = extract(request)
    if (typeof token !== 'string') {
      if (optional && token instanceof NoTokenError) done()
      else refuseRequest(request, realm, token, done)
      return
    }
    const cached = verifier.cached(token)
    if (cached !== undefined) {
      accept(request, reply, cached, true, done)
      return
    }
    let verified: VerifiedToken | Promise<VerifiedToken>
    try {
      verified = verifier.verify(token)
    } catch (err) {
      refuseRequest(request, realm, err as CognitoAuthError, done)
      return
    }
    if (verified instanceof Promise) {
      verified.then(
        (result) => accept(request, reply, result, false, done),
        (err: CognitoAuthError) => refuseRequest(request, realm, err, done)
      )
    } else {
      accept(request, reply, verified, false, done)
    }
  }, optional ? 'authenticateOptional' : 'authenticate')
}
