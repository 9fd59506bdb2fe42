/**
 * Checks the options once, at register, and turns them into the plugin's settings: a mistake in
 * the configuration fails `register` with a message naming the option, never a request.
 */
import type { FastifyRequest } from 'fastify'
import type {
  CognitoAuthOptions,
  CognitoClaims,
  CognitoPool,
  CognitoUser,
  PoolResolver,
  TokenExtractor,
  TokenUse
} from '../types'
import { parseAlb, type AlbSettings } from './alb/options'
import { parseClaimSchemas, type ClaimSchemas } from './claims-schema'
import { InvalidOptionError } from './errors'
import { parseJwks, type ParsedKeySet } from './keys/jwk'
import { REGISTER_KEYS, refuseUnknownKeys } from './option-keys'
import { parseRevocation, type RevocationSettings } from './revocation/options'

export interface PoolSettings {
  userPoolId: string
  /** The exact issuers accepted for this pool. */
  issuers: string[]
  /** null: only the keys given up front, never fetched. */
  jwksUri: string | null
  /** Keys given up front (the `jwks` option), already parsed. */
  keys?: ParsedKeySet
  tokenUse: TokenUse
  clientIds: ReadonlySet<string> | null
  /** The resource servers an access token's `aud` must name; null: any. */
  audiences: ReadonlySet<string> | null
  /** The application's claims schemas, compiled (lib/claims-schema.ts); null without `claims`. */
  claims: ClaimSchemas | null
  /** The entry as given (its pool keys, and a resolver's `tenant`), frozen: `request.cognitoPool`. */
  entry: CognitoPool
}

/** `userPools` as a function: the application's resolver, and the bounds of its answers' cache. */
export interface ResolverSettings {
  resolve: PoolResolver
  /** The most pools kept, and the most issuers remembered as no pool. */
  max: number
  ttlMs: number
  unknownTtlMs: number
  /** Questions per second about issuers of which no pool is held. */
  newIssuerRate: number
  /** Issuers asked about besides Cognito's own forms (emulators, tests). */
  issuerPrefixes: readonly string[]
}

export interface JwksSettings {
  ttlMs: number
  maxKeys: number
  cooldownMs: number
  timeoutMs: number
  maxStaleMs: number
  maxBytes: number
  prefetch: boolean | 'required'
}

export interface Settings {
  /** Empty when the pools are resolved at run time (`resolver`). */
  pools: PoolSettings[]
  resolver?: ResolverSettings
  clockToleranceMs: number
  maxTokenLength: number
  realm: string
  resolveUser?: (claims: CognitoClaims, request: FastifyRequest) => CognitoUser | null | undefined | Promise<CognitoUser | null | undefined>
  isRevoked?: (claims: CognitoClaims, request: FastifyRequest) => boolean | Promise<boolean>
  revocationCacheTtlMs: number
  /** The revocation list's store; undefined without the `revocation` option. */
  revocation?: RevocationSettings
  extractToken?: TokenExtractor
  jwks: JwksSettings
  /** 0 turns the cache off. */
  tokenCacheMax: number
  /** Behind an Application Load Balancer; undefined without the `alb` option. */
  alb?: AlbSettings
}

const POOL_ID = /^([a-z0-9-]+)_[0-9A-Za-z]+$/
const AWS_REGION = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/
const TOKEN_USES: readonly string[] = ['id', 'access', 'any']
const POOL_KEYS = ['userPoolId', 'region', 'clientId', 'tokenUse', 'issuer', 'jwksUri', 'jwks', 'audience', 'claims']
/** Options that hold for every pool; one a line. */
const SHARED_KEYS = [
  'userPools',
  'clockTolerance',
  'resolveUser',
  'isRevoked',
  'revocationCacheTtl',
  'revocation',
  'extractToken',
  'realm',
  'maxTokenLength',
  'jwksCache',
  'tokenCache',
  'poolCache',
  'resolverIssuerPrefixes',
  'alb'
]
const TOP_LEVEL_KEYS = [...POOL_KEYS, ...SHARED_KEYS, ...REGISTER_KEYS]
const JWKS_CACHE_KEYS = ['ttl', 'maxKeys', 'cooldown', 'timeout', 'maxStale', 'maxBytes', 'prefetch']
const TOKEN_CACHE_KEYS = ['max']
const POOL_CACHE_KEYS = ['max', 'ttl', 'unknownTtl', 'newIssuerRate']
/** A resolver's answer: a pool entry, and the application's own data about it. */
const ANSWER_KEYS = [...POOL_KEYS, 'tenant']

function fail (option: string, problem: string): never {
  throw new InvalidOptionError(option, problem)
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function seconds (value: unknown, option: string, fallback: number, { positive = false } = {}): number {
  if (value === undefined) return fallback * 1000
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (positive && value === 0)) {
    fail(option, positive ? 'must be a positive number of seconds' : 'must be a non-negative number of seconds')
  }
  return value * 1000
}

function positiveInteger (value: unknown, option: string, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || (value as number) <= 0) fail(option, 'must be a positive integer')
  return value as number
}

function optionalFunction<F> (value: unknown, option: string): F | undefined {
  if (value !== undefined && typeof value !== 'function') fail(option, 'must be a function')
  return value as F | undefined
}

function httpUrl (value: unknown, option: string): string {
  if (typeof value !== 'string') fail(option, 'must be a URL string')
  let url: URL
  try {
    url = new URL(value)
  } catch {
    fail(option, 'must be an absolute http(s) URL')
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') fail(option, 'must be an absolute http(s) URL')
  return value
}

/** A URL of a document: the key store fetches exactly it, so it must not end in a bare folder. */
function documentUrl (value: unknown, option: string): string {
  const url = new URL(httpUrl(value, option))
  if (url.pathname.endsWith('/') && url.search === '') fail(option, 'must name the JWKS document, e.g. ".../.well-known/jwks.json"')
  return value as string
}

function stringList (value: unknown, option: string): string[] {
  const list = typeof value === 'string' ? [value] : value
  if (!Array.isArray(list) || list.length === 0 || !list.every((item) => typeof item === 'string' && item !== '')) {
    fail(option, 'must be a non-empty string or a non-empty array of non-empty strings')
  }
  return list as string[]
}

function parsePool (pool: Record<string, unknown>, prefix: string, known = POOL_KEYS, defaultTokenUse: TokenUse = 'id', alb = false): PoolSettings {
  if (prefix !== '') refuseUnknownKeys(pool, known, prefix.slice(0, -1))
  const { userPoolId, region, clientId, tokenUse = defaultTokenUse, issuer, jwksUri, jwks, audience } = pool
  if (typeof userPoolId !== 'string') fail(`${prefix}userPoolId`, 'is required, e.g. "eu-central-1_xYzaq"')
  const match = POOL_ID.exec(userPoolId)
  if (match === null) fail(`${prefix}userPoolId`, 'must look like "<region>_<id>", e.g. "eu-central-1_xYzaq"')
  const poolRegion = match[1]
  if (region !== undefined && region !== poolRegion) fail(`${prefix}region`, 'does not match the region prefix of userPoolId')
  if (issuer === undefined && !AWS_REGION.test(poolRegion)) {
    fail(`${prefix}userPoolId`, 'has no AWS region prefix; set issuer and jwksUri for an emulator')
  }
  if (typeof tokenUse !== 'string' || !TOKEN_USES.includes(tokenUse)) fail(`${prefix}tokenUse`, 'must be "id", "access" or "any"')
  if (clientId === undefined) fail(`${prefix}clientId`, 'is required (the app client id); pass null to accept every app client of the pool')
  const clientIds = clientId === null ? null : new Set(stringList(clientId, `${prefix}clientId`))
  if (audience !== undefined && tokenUse === 'id') {
    fail(`${prefix}audience`, 'applies to access tokens only: set tokenUse to "access" (or "any"), or remove audience')
  }
  const audiences = audience === undefined ? null : new Set(stringList(audience, `${prefix}audience`))

  const cognitoIssuer = `https://cognito-idp.${poolRegion}.amazonaws.com/${userPoolId}`
  const issuers = issuer === undefined
    ? [cognitoIssuer, `https://issuer-cognito-idp.${poolRegion}.amazonaws.com/${userPoolId}`]
    : stringList(issuer, `${prefix}issuer`).map((value) => httpUrl(value, `${prefix}issuer`))
  if (issuer !== undefined && jwksUri === undefined) fail(`${prefix}jwksUri`, 'is required when issuer is set')
  if (jwksUri === false && jwks === undefined) fail(`${prefix}jwksUri`, 'false means "only the keys in jwks": give them in jwks')
  // Parsed once, here: keys the plugin cannot use fail register with the option's name.
  let keys: ParsedKeySet | undefined
  if (jwks !== undefined) {
    try {
      keys = parseJwks(jwks)
    } catch {
      fail(`${prefix}jwks`, 'must be a JWKS, { keys: [...] }, with at least one RSA signing key of 2048 bits or more')
    }
  }

  return {
    userPoolId,
    issuers,
    jwksUri: jwksUri === false ? null : jwksUri === undefined ? `${cognitoIssuer}/.well-known/jwks.json` : documentUrl(jwksUri, `${prefix}jwksUri`),
    keys,
    tokenUse: tokenUse as TokenUse,
    clientIds,
    audiences,
    claims: parseClaimSchemas(pool.claims, `${prefix}claims`, tokenUse as TokenUse, alb),
    entry: entryOf(pool, known)
  }
}

/** The keys of the entry that were given, copied and frozen: every request of the pool shares it. */
function entryOf (pool: Record<string, unknown>, known: readonly string[]): CognitoPool {
  const entry: Record<string, unknown> = {}
  for (const key of known) if (pool[key] !== undefined) entry[key] = pool[key]
  return Object.freeze(entry) as unknown as CognitoPool
}

/**
 * A resolver's answer, checked as a `userPools` entry is (plus `tenant`, the application's own
 * data); throws FST_COGNITO_INVALID_OPTION naming the key at fault.
 */
export function parsePoolAnswer (answer: unknown): PoolSettings {
  if (!isRecord(answer)) fail('userPools()', 'must answer an object, or null for an issuer that is no pool')
  return parsePool(answer, 'userPools().', ANSWER_KEYS)
}

/** Only Cognito's issuers are asked about by default: a prefix must at least name a scheme and a host. */
function issuerPrefixes (value: unknown): string[] {
  if (value === undefined) return []
  const list = stringList(value, 'resolverIssuerPrefixes')
  for (const prefix of list) {
    if (!/^https?:\/\/[^/]/.test(prefix)) fail('resolverIssuerPrefixes', 'each prefix must start with http:// or https:// and a host')
  }
  return list
}

function parseResolver (options: Record<string, unknown>): ResolverSettings | undefined {
  const { userPools, poolCache = {}, resolverIssuerPrefixes } = options
  if (typeof userPools !== 'function') {
    if (options.poolCache !== undefined) fail('poolCache', 'applies only when userPools is a function')
    if (resolverIssuerPrefixes !== undefined) fail('resolverIssuerPrefixes', 'applies only when userPools is a function')
    return undefined
  }
  if (!isRecord(poolCache)) fail('poolCache', 'must be an object')
  refuseUnknownKeys(poolCache, POOL_CACHE_KEYS, 'poolCache')
  return {
    resolve: userPools as PoolResolver,
    max: positiveInteger(poolCache.max, 'poolCache.max', 5000),
    ttlMs: seconds(poolCache.ttl, 'poolCache.ttl', 300, { positive: true }),
    unknownTtlMs: seconds(poolCache.unknownTtl, 'poolCache.unknownTtl', 60, { positive: true }),
    newIssuerRate: positiveInteger(poolCache.newIssuerRate, 'poolCache.newIssuerRate', 100),
    issuerPrefixes: issuerPrefixes(resolverIssuerPrefixes)
  }
}

/** The pools listed up front; `alb` says the load balancer's user claims may have a schema of their own. */
function parsePools (options: Record<string, unknown>, alb: boolean): PoolSettings[] {
  const { userPools } = options
  // Behind a load balancer the token verified by the pool is the access token it forwards.
  const defaultTokenUse: TokenUse = alb ? 'access' : 'id'
  if (userPools === undefined) return [parsePool(options, '', POOL_KEYS, defaultTokenUse, alb)]
  const topLevel = POOL_KEYS.filter((key) => options[key] !== undefined)
  if (topLevel.length > 0) fail('userPools', `cannot be combined with top-level ${topLevel.join(', ')}`)
  // A function: the pools are the resolver's answers, parsed as they come (lib/pools/directory.ts).
  if (typeof userPools === 'function') return []
  if (!Array.isArray(userPools) || userPools.length === 0) fail('userPools', 'must be a non-empty array, or a function that resolves an issuer to its pool')
  const pools = userPools.map((pool, i) => {
    if (!isRecord(pool)) fail(`userPools[${i}]`, 'must be an object')
    return parsePool(pool, `userPools[${i}].`, POOL_KEYS, defaultTokenUse, alb)
  })
  const seen = new Set<string>()
  for (const pool of pools) {
    for (const issuer of pool.issuers) {
      if (seen.has(issuer)) fail('userPools', 'two pools share an issuer; list all app clients of a pool in one entry')
      seen.add(issuer)
    }
  }
  return pools
}

export function parseOptions (input: CognitoAuthOptions | undefined): Settings {
  if (!isRecord(input)) fail('options', 'must be an object with at least userPoolId and clientId')
  const options = input as Record<string, unknown>
  refuseUnknownKeys(options, TOP_LEVEL_KEYS, '')
  const { realm = 'api', jwksCache = {}, tokenCache = {} } = options

  if (typeof realm !== 'string' || !/^[\x20-\x7e]*$/.test(realm) || realm.includes('"') || realm.includes('\\')) {
    fail('realm', 'must be printable ASCII without quotes or backslashes')
  }
  if (!isRecord(jwksCache)) fail('jwksCache', 'must be an object')
  refuseUnknownKeys(jwksCache, JWKS_CACHE_KEYS, 'jwksCache')
  if (tokenCache !== false && !isRecord(tokenCache)) fail('tokenCache', 'must be an object or false')
  if (tokenCache !== false) refuseUnknownKeys(tokenCache, TOKEN_CACHE_KEYS, 'tokenCache')
  const { prefetch = true } = jwksCache
  if (prefetch !== true && prefetch !== false && prefetch !== 'required') fail('jwksCache.prefetch', 'must be true, false or "required"')
  // A "not revoked" answer is kept on the token's cache entry: without the cache it has nowhere to live.
  if (tokenCache === false && options.revocationCacheTtl !== undefined && options.revocationCacheTtl !== 0) {
    fail('revocationCacheTtl', 'needs the token cache; remove tokenCache: false or the TTL')
  }

  const alb = options.alb === undefined ? undefined : parseAlb(options.alb)
  const pools = parsePools(options, alb !== undefined)
  if (alb !== undefined) checkAlbFits(options, pools, alb)

  const clockToleranceMs = seconds(options.clockTolerance, 'clockTolerance', 0)
  return {
    pools,
    resolver: parseResolver(options),
    clockToleranceMs,
    maxTokenLength: positiveInteger(options.maxTokenLength, 'maxTokenLength', 8192),
    realm,
    resolveUser: optionalFunction(options.resolveUser, 'resolveUser'),
    isRevoked: optionalFunction(options.isRevoked, 'isRevoked'),
    revocationCacheTtlMs: seconds(options.revocationCacheTtl, 'revocationCacheTtl', 0),
    revocation: parseRevocation(options.revocation, clockToleranceMs),
    extractToken: optionalFunction(options.extractToken, 'extractToken'),
    jwks: {
      ttlMs: seconds(jwksCache.ttl, 'jwksCache.ttl', 600, { positive: true }),
      maxKeys: positiveInteger(jwksCache.maxKeys, 'jwksCache.maxKeys', 16),
      cooldownMs: seconds(jwksCache.cooldown, 'jwksCache.cooldown', 10),
      timeoutMs: seconds(jwksCache.timeout, 'jwksCache.timeout', 5, { positive: true }),
      maxStaleMs: seconds(jwksCache.maxStale, 'jwksCache.maxStale', 86_400),
      maxBytes: positiveInteger(jwksCache.maxBytes, 'jwksCache.maxBytes', 65_536),
      prefetch
    },
    tokenCacheMax: tokenCache === false ? 0 : positiveInteger(tokenCache.max, 'tokenCache.max', 1000),
    alb
  }
}

/** The options `alb` cannot go with: each would leave a request that the plugin cannot vouch for. */
function checkAlbFits (options: Record<string, unknown>, pools: readonly PoolSettings[], alb: AlbSettings): void {
  if (typeof options.userPools === 'function') fail('alb', 'cannot be combined with a userPools resolver: list the pools behind the load balancer')
  if (options.extractToken !== undefined) fail('extractToken', 'cannot be combined with alb: the token is the load balancer\'s x-amzn-oidc-data header')
  if (alb.accessToken) {
    pools.forEach((pool, i) => {
      if (pool.tokenUse !== 'access') {
        fail(options.userPools === undefined ? 'tokenUse' : `userPools[${i}].tokenUse`, 'must be "access" with alb: the pool verifies the access token the load balancer forwards (or set alb.accessToken to false)')
      }
    })
    return
  }
  // Without the access token there are no token claims: what needs them has nothing to work on.
  for (const option of ['resolveUser', 'isRevoked', 'revocation']) {
    if (options[option] !== undefined) fail(option, 'needs the access token\'s claims: remove alb.accessToken: false')
  }
}
