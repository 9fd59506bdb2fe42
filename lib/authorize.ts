/**
 * Route-level authorization on verified claims: `cognito:groups` and the access token's `scope`.
 * These hooks run after `authenticate`; a request that was not authenticated is a 401, one that
 * lacks the group or scope a 403 with RFC 6750's `insufficient_scope`.
 */
import type { FastifyRequest } from 'fastify'
import type { CognitoClaims, CognitoHook, RequirementOptions } from '../types'
import { ForbiddenError, InvalidOptionError, NoTokenError, withReason } from './errors'
import { awaitable, refuseRequest } from './authenticate'

type Held = (claims: CognitoClaims) => readonly string[]

function names (value: unknown, option: string): string[] {
  const list = typeof value === 'string' ? [value] : value
  if (!Array.isArray(list) || list.length === 0 || !list.every((name) => typeof name === 'string' && /^[\x21\x23-\x5b\x5d-\x7e]+$/.test(name))) {
    throw new InvalidOptionError(option, 'must be a name or a non-empty array of names, without spaces, quotes or backslashes')
  }
  return list as string[]
}

function matchMode (options: RequirementOptions | undefined, option: string): 'any' | 'all' {
  const match = options?.match ?? 'any'
  if (match !== 'any' && match !== 'all') throw new InvalidOptionError(option, 'match must be "any" or "all"')
  return match
}

const groupsOf: Held = (claims) => {
  const groups = claims['cognito:groups']
  return Array.isArray(groups) ? groups : []
}

const scopesOf: Held = (claims) => {
  const scope = claims.token_use === 'access' ? claims.scope : undefined
  return typeof scope === 'string' ? scope.split(' ') : []
}

function requirement (kind: 'groups' | 'scopes', held: Held, realm: string, required: unknown, options: RequirementOptions | undefined): CognitoHook {
  const wanted = names(required, kind)
  const match = matchMode(options, `${kind} options`)
  // A challenge names missing scopes (RFC 6750 §3); groups are not OAuth scopes and stay unnamed.
  const scope = kind === 'scopes' ? wanted : undefined
  return awaitable(function authorize (request: FastifyRequest, reply, done) {
    const claims = request.cognitoClaims
    if (claims === null) {
      refuseRequest(request, reply, realm, new NoTokenError(), done)
      return
    }
    const have = held(claims)
    const ok = match === 'any' ? wanted.some((name) => have.includes(name)) : wanted.every((name) => have.includes(name))
    if (ok) done()
    else refuseRequest(request, reply, realm, withReason(new ForbiddenError(), `missing ${kind}`), done, scope)
  })
}

export function createRequirements (realm: string): {
  requireGroups: (groups: string | readonly string[], options?: RequirementOptions) => CognitoHook
  requireScopes: (scopes: string | readonly string[], options?: RequirementOptions) => CognitoHook
} {
  return {
    requireGroups: (groups, options) => requirement('groups', groupsOf, realm, groups, options),
    requireScopes: (scopes, options) => requirement('scopes', scopesOf, realm, scopes, options)
  }
}
