/**
 * Route-level authorization on verified claims: `cognito:groups` and the access token's `scope`.
 * These hooks run after `authenticate`; a request that was not authenticated is a 401, one that
 * lacks the group or scope a 403 with RFC 6750's `insufficient_scope`.
 */
import type { FastifyRequest } from 'fastify'
import type { CognitoClaims, CognitoHook, CognitoRouteConfig, RequirementOptions } from '../types'
import { ForbiddenError, InvalidOptionError, NoTokenError, withReason } from './errors'
import { awaitable, refuseRequest } from './authenticate'
import { refuseUnknownKeys } from './option-keys'

type Held = (claims: CognitoClaims) => readonly string[]

type Kind = 'groups' | 'scopes'

// Scopes go into the `WWW-Authenticate` challenge, so they keep to RFC 6749's scope-token
// characters. Groups never leave the server: they follow Cognito's own rule for group names
// (letters, marks, symbols, digits, punctuation of any script, no whitespace).
const validName: Record<Kind, RegExp> = {
  scopes: /^[\x21\x23-\x5b\x5d-\x7e]+$/,
  groups: /^[\p{L}\p{M}\p{S}\p{N}\p{P}]+$/u
}
const nameRule: Record<Kind, string> = {
  scopes: 'must be a scope or a non-empty array of scopes, without spaces, quotes or backslashes',
  groups: 'must be a group name or a non-empty array of group names, without spaces'
}

function names (value: unknown, kind: Kind, option: string = kind): string[] {
  const list = typeof value === 'string' ? [value] : value
  if (!Array.isArray(list) || list.length === 0 || !list.every((name) => typeof name === 'string' && validName[kind].test(name))) {
    throw new InvalidOptionError(option, nameRule[kind])
  }
  return list as string[]
}

const REQUIREMENT_OPTIONS = ['match']

function matchMode (options: RequirementOptions | undefined, option: string): 'any' | 'all' {
  // A bare string (`requireGroups(['a', 'b'], 'all')`) or a misspelt key (`{ mach: 'all' }`)
  // would otherwise silently mean "any".
  if (options !== undefined && (typeof options !== 'object' || options === null || Array.isArray(options))) {
    throw new InvalidOptionError(option, 'must be an object such as { match: "all" }')
  }
  if (options !== undefined) refuseUnknownKeys(options, REQUIREMENT_OPTIONS, option)
  const match = options?.match ?? 'any'
  if (match !== 'any' && match !== 'all') throw new InvalidOptionError(option, 'match must be "any" or "all"')
  return match
}

const groupsOf: Held = (claims) => {
  const groups = claims['cognito:groups']
  return Array.isArray(groups) ? groups : []
}

/**
 * The scopes of each verified claims object, split once: the plugin's claims are frozen, and a
 * cached token hands the same object to every request that sends it. Claims the application put
 * on the request itself (not frozen) are split each time, as they may change.
 */
const scopeLists = new WeakMap<CognitoClaims, readonly string[]>()

const scopesOf: Held = (claims) => {
  const known = scopeLists.get(claims)
  if (known !== undefined) return known
  const scope = claims.token_use === 'access' ? claims.scope : undefined
  const list = typeof scope === 'string' ? scope.split(' ') : []
  if (Object.isFrozen(claims)) scopeLists.set(claims, list)
  return list
}

function requirement (kind: Kind, held: Held, realm: string, required: unknown, options: RequirementOptions | undefined): CognitoHook {
  const wanted = names(required, kind)
  const match = matchMode(options, `${kind} options`)
  // A challenge names missing scopes (RFC 6750 §3); groups are not OAuth scopes and stay unnamed.
  const scope = kind === 'scopes' ? wanted : undefined
  return awaitable(function authorize (request: FastifyRequest, _reply, done) {
    const claims = request.cognitoClaims
    if (claims === null) {
      refuseRequest(request, realm, withReason(new NoTokenError(), 'not authenticated'), done)
      return
    }
    const have = held(claims)
    const ok = match === 'any' ? wanted.some((name) => have.includes(name)) : wanted.every((name) => have.includes(name))
    if (ok) done()
    else refuseRequest(request, realm, withReason(new ForbiddenError(), `missing ${kind}`), done, scope)
  }, kind === 'groups' ? 'requireGroups' : 'requireScopes')
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

const ROUTE_NEEDS = ['groups', 'scopes', 'match', 'optional']

/** A typo in `config.cognito` (`group`, `optional: 'yes'`) must fail at startup, not loosen the route. */
export function checkRouteNeeds (needs: unknown): void {
  if (typeof needs !== 'object' || needs === null || Array.isArray(needs)) {
    throw new InvalidOptionError('config.cognito', 'must be an object such as { groups: ["admin"] }')
  }
  refuseUnknownKeys(needs, ROUTE_NEEDS, 'config.cognito')
  const { match, optional } = needs as CognitoRouteConfig
  if (match !== undefined && match !== 'any' && match !== 'all') throw new InvalidOptionError('config.cognito', 'match must be "any" or "all"')
  if (optional !== undefined && typeof optional !== 'boolean') throw new InvalidOptionError('config.cognito', 'optional must be a boolean')
  // A key that is present counts, whatever its value: `groups: process.env.UNSET` is refused, by
  // the name the route wrote, not read as "no groups".
  if ('groups' in needs) names((needs as CognitoRouteConfig).groups, 'groups', 'config.cognito.groups')
  if ('scopes' in needs) names((needs as CognitoRouteConfig).scopes, 'scopes', 'config.cognito.scopes')
}
