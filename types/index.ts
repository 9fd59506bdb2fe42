/**
 * Public types of fastify-cognito-jwt, and the augmentation of Fastify's own types with the
 * decorators the plugin adds.
 */
import type {
  FastifyBaseLogger,
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
  FastifyTypeProvider,
  onRequestHookHandler,
  preHandlerHookHandler,
  RawServerBase,
  RawServerDefault,
  RegisterOptions
} from 'fastify'

/**
 * Any JSON value: the type of the claims a pre-token-generation trigger may write. Version 1
 * writes strings (`email_verified: "true"`); versions 2 and 3 may write numbers, booleans,
 * lists and objects too. The plugin does not check these claims: narrow them before use.
 */
export type CognitoClaimValue = string | number | boolean | null | CognitoClaimValue[] | { [member: string]: CognitoClaimValue }

/**
 * Claims every token issued by a Cognito user pool carries. The plugin refuses a token in which a
 * claim it decides with (`iss`, `exp`, `nbf`, `iat`, `auth_time`, `token_use`, `aud`,
 * `client_id`, `cognito:groups`, `scope`, `sub`, `jti`, `origin_jti`) has another type than the
 * one named here; the others are typed as Cognito or a trigger may write them.
 */
export interface CognitoBaseClaims {
  /** The user's immutable id (a UUID). */
  sub: string
  /** `https://cognito-idp.<region>.amazonaws.com/<userPoolId>` (or the `issuer-cognito-idp` form). */
  iss: string
  /** Expiry, seconds since the epoch. */
  exp: number
  /** Issued at, seconds since the epoch. */
  iat: number
  /** When the user authenticated, seconds since the epoch. */
  auth_time?: number
  /** Groups of the user; absent when the user is in no group. */
  'cognito:groups'?: string[]
  /** IAM roles that come with the groups (not checked). */
  'cognito:roles'?: CognitoClaimValue
  /** Not checked. */
  'cognito:preferred_role'?: CognitoClaimValue
  /** The id of this token. */
  jti?: string
  /** The id of the authentication that produced this token; shared by the tokens of one sign-in. */
  origin_jti?: string
  /** Not checked. */
  event_id?: CognitoClaimValue
  nbf?: number
  [claim: string]: unknown
}

/** Claims of a Cognito ID token as Cognito writes them: who the user is, for the app client in `aud`. */
export interface CognitoStandardIdTokenClaims extends CognitoBaseClaims {
  token_use: 'id'
  /** The app client id. */
  aud: string
  /** The user name (not checked, as every claim below: a trigger may write them, see CognitoClaimValue). */
  'cognito:username'?: CognitoClaimValue
  email?: CognitoClaimValue
  email_verified?: CognitoClaimValue
  phone_number?: CognitoClaimValue
  phone_number_verified?: CognitoClaimValue
  name?: CognitoClaimValue
  given_name?: CognitoClaimValue
  family_name?: CognitoClaimValue
  /** Federated identities, when the user signed in through an identity provider. */
  identities?: CognitoClaimValue
  at_hash?: CognitoClaimValue
  nonce?: CognitoClaimValue
}

/**
 * Claims of a Cognito access token as Cognito writes them: what the caller may do. `client_id` names the app client; an
 * `aud`, when present, names resource servers (see the pool's `audience` option). A
 * machine-to-machine token (client-credentials grant) has no `username` and no groups, and its
 * `sub` is the client id.
 */
export interface CognitoStandardAccessTokenClaims extends CognitoBaseClaims {
  token_use: 'access'
  /** The app client id. */
  client_id: string
  /** The resource servers the token is for, one or several (RFC 7519). */
  aud?: string | string[]
  /** The user name; absent from machine-to-machine tokens (not checked). */
  username?: CognitoClaimValue
  /** Space-separated OAuth scopes, e.g. `openid email orders/read`. */
  scope?: string
  /** Not checked. */
  version?: CognitoClaimValue
}

/**
 * The claims the application declares, checked at run time by the `claims` option's JSON Schemas.
 * Augment this interface to type them (e.g. with TypeBox's `Static`):
 *
 * ```ts
 * declare module 'fastify-cognito-jwt' {
 *   interface CognitoClaimsRegistry { id: { email: string, 'custom:tenant': string } }
 * }
 * ```
 *
 * `id` types ID tokens' claims, `access` access tokens', `alb` the user claims an Application Load
 * Balancer signs (`request.cognitoAlbClaims`). Each kind registered makes the `claims` option's
 * schema of that kind required for every pool that accepts such tokens (`alb`: every pool, and the
 * `alb` option), so the types cannot claim what nothing checks. A claim the plugin decides with may only be redeclared to its
 * own type (or a narrower one): otherwise `register` is a type error.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface CognitoClaimsRegistry {}

/** The kinds of token whose claims are registered in CognitoClaimsRegistry. */
type RegisteredKind = Extract<keyof CognitoClaimsRegistry, 'id' | 'access'>

/** Whether the load balancer's user claims are registered (`CognitoClaimsRegistry['alb']`): `'alb'`, or never. */
type RegisteredAlb = Extract<keyof CognitoClaimsRegistry, 'alb'>

/** The claims registered for a kind of token; `{}` when none are. */
export type RegisteredClaims<Kind extends 'id' | 'access' | 'alb'> = CognitoClaimsRegistry extends { [K in Kind]: infer Claims } ? Claims : {}

/**
 * Claims of a Cognito ID token: Cognito's, with the application's registered ones
 * (`CognitoClaimsRegistry['id']`), which the `claims` option's schema has checked.
 */
export type CognitoIdTokenClaims = WithRegistered<CognitoStandardIdTokenClaims, RegisteredClaims<'id'>>

/** Claims of a Cognito access token: Cognito's, with the application's registered ones (`CognitoClaimsRegistry['access']`). */
export type CognitoAccessTokenClaims = WithRegistered<CognitoStandardAccessTokenClaims, RegisteredClaims<'access'>>

/**
 * Cognito's claims with the registered ones in place of those of the same name (`email` becomes
 * `string` instead of any JSON value); Cognito's as they are when none are registered.
 */
type WithRegistered<Standard, Registered> = [keyof Registered] extends [never]
  ? Standard
  : { [Claim in keyof Standard as Claim extends keyof Registered ? never : Claim]: Standard[Claim] } & Registered

/** The verified claims of either kind of token; narrow on `token_use`. */
export type CognitoClaims = CognitoIdTokenClaims | CognitoAccessTokenClaims

/**
 * The user's claims in the token an Application Load Balancer signs (`x-amzn-oidc-data`): what
 * Cognito's userInfo endpoint returned. The plugin checks `sub`, `iss` and `exp`; the others are
 * strings as userInfo writes them (`email_verified: "true"`), typed as they may arrive.
 */
export interface CognitoStandardAlbClaims {
  /** The user's immutable id: the access token's `sub`. */
  sub: string
  /** The pool's issuer. */
  iss: string
  /** Expiry, seconds since the epoch. */
  exp: number
  username?: CognitoClaimValue
  email?: CognitoClaimValue
  email_verified?: CognitoClaimValue
  phone_number?: CognitoClaimValue
  phone_number_verified?: CognitoClaimValue
  name?: CognitoClaimValue
  given_name?: CognitoClaimValue
  family_name?: CognitoClaimValue
  identities?: CognitoClaimValue
  [claim: string]: unknown
}

/**
 * The load balancer's user claims: the standard ones, with the application's registered ones
 * (`CognitoClaimsRegistry['alb']`), which the pool's `claims.alb` schema has checked.
 */
export type CognitoAlbClaims = WithRegistered<CognitoStandardAlbClaims, RegisteredClaims<'alb'>>

/** Which tokens a pool accepts. */
export type TokenUse = 'id' | 'access' | 'any'

/** The claims of the tokens a pool with this `tokenUse` accepts: `'any'` (or a mix) gives the union. */
export type CognitoClaimsFor<Use extends TokenUse> =
  Use extends 'id' ? CognitoIdTokenClaims : Use extends 'access' ? CognitoAccessTokenClaims : CognitoClaims

/**
 * The claims the plugin decides with: its own checks hold them to these types before any schema
 * of the application's runs, and the registry may not give them others.
 */
export type CognitoDecisionClaim =
  'iss' | 'exp' | 'sub' | 'token_use' | 'aud' | 'client_id' | 'cognito:groups' | 'scope' | 'jti' | 'origin_jti' | 'auth_time' | 'iat' | 'nbf'

/** A decision claim's type in a token of this kind, as the plugin checks it. */
type DecisionClaimTypes<Kind extends 'id' | 'access'> = {
  iss: string
  exp: number
  sub: string
  token_use: Kind
  aud: Kind extends 'id' ? string : string | string[]
  client_id: string
  'cognito:groups': string[]
  scope: string
  jti: string
  origin_jti: string
  auth_time: number
  iat: number
  nbf: number
}

/** The claims the plugin decides with in the load balancer's user claims (lib/alb/claims.ts), with their types. */
interface AlbDecisionClaimTypes {
  iss: string
  exp: number
  sub: string
  nbf: number
}

type DecisionTypesOf<Kind extends 'id' | 'access' | 'alb'> = Kind extends 'id' | 'access' ? DecisionClaimTypes<Kind> : AlbDecisionClaimTypes

/** The decision claims the registry redeclares, for this kind, to a type the plugin does not check. */
export type RedeclaredDecisionClaims<Kind extends 'id' | 'access' | 'alb'> = {
  [Claim in keyof RegisteredClaims<Kind> & keyof DecisionTypesOf<Kind>]-?:
    [Exclude<RegisteredClaims<Kind>[Claim], undefined>] extends [DecisionTypesOf<Kind>[Claim]] ? never : Claim
}[keyof RegisteredClaims<Kind> & keyof DecisionTypesOf<Kind>]

/** Every decision claim the registry redeclares to another type, of any kind. */
type AnyRedeclaredDecisionClaims = RedeclaredDecisionClaims<'id'> | RedeclaredDecisionClaims<'access'> | RedeclaredDecisionClaims<'alb'>

/**
 * A JSON Schema for a token's claims, as an object (a TypeBox `Type.Object(...)` is one). It is
 * compiled at register (a resolver's answer: once per distinct schema) by ajv, with ajv-formats.
 */
export type CognitoClaimsSchema = object

/**
 * The `claims` option: a JSON Schema for ID tokens' claims, access tokens', or both; with the
 * `alb` option, one for the load balancer's user claims too (refused without it).
 */
export interface CognitoClaimsOptions {
  id?: CognitoClaimsSchema
  access?: CognitoClaimsSchema
  alb?: CognitoClaimsSchema
}

/** The kinds of token a pool with this `tokenUse` accepts. */
type KindsOf<Use extends TokenUse> = Use extends 'any' ? 'id' | 'access' : Exclude<Use, 'any'>

/** What a pool of this `tokenUse` accepts as `claims`: the schemas of the kinds it accepts, and the load balancer's. */
export type CognitoClaimsOptionsFor<Use extends TokenUse> = Pick<CognitoClaimsOptions, KindsOf<Use> | 'alb'>

/** The kinds whose schema a pool of this `tokenUse` must give: those it accepts that are registered, and `alb` when registered. */
type RequiredKinds<Use extends TokenUse> = Extract<RegisteredKind, KindsOf<Use>> | RegisteredAlb

/**
 * `claims` as a pool with this `tokenUse` must give it: required, with a schema for each kind of
 * token it accepts whose claims are registered in CognitoClaimsRegistry; optional with no registry.
 * A registry that redeclares a decision claim to another type makes it impossible to satisfy,
 * and the error names the claims.
 */
export type CognitoClaimsRequirement<Use extends TokenUse> =
  [AnyRedeclaredDecisionClaims] extends [never]
    ? [RequiredKinds<Use>] extends [never]
        ? { claims?: CognitoClaimsOptionsFor<Use> }
        : { claims: CognitoClaimsOptionsFor<Use> & { [Kind in RequiredKinds<Use>]-?: CognitoClaimsSchema } }
    : { claims: { 'CognitoClaimsRegistry redeclares decision claims to another type': AnyRedeclaredDecisionClaims } }

/**
 * With the load balancer's user claims registered, the `alb` option is required: without it there
 * are no such claims, and `claims.alb` is refused.
 */
export type CognitoAlbRequirement = [RegisteredAlb] extends [never] ? {} : { alb: CognitoAlbOptions }

/**
 * The application's user. Augment this interface to give `request.cognitoUser` your own type:
 *
 * ```ts
 * declare module 'fastify-cognito-jwt' {
 *   interface CognitoUserRegistry { user: { id: number; email: string } }
 * }
 * ```
 */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface CognitoUserRegistry {}

/** The type of `request.cognitoUser`: the registered user type, or the claims when none is registered. */
export type CognitoUser = CognitoUserRegistry extends { user: infer U } ? U : CognitoClaims

/** A JSON Web Key as published in a JWKS. Only RSA signing keys are used. */
export interface JsonWebKey {
  kty: string
  kid?: string
  alg?: string
  use?: string
  n?: string
  e?: string
  [member: string]: unknown
}

/** A JSON Web Key Set, as served at `<issuer>/.well-known/jwks.json`. */
export interface JsonWebKeySet {
  keys: JsonWebKey[]
}

/** One user pool whose tokens are accepted. */
export interface CognitoUserPoolOptions {
  /** The user pool id, e.g. `eu-central-1_xYzaq`. */
  userPoolId: string
  /** The AWS region; defaults to the pool id's prefix, and must equal it when given. */
  region?: string
  /**
   * The app client id, or several. `null` skips the check, which accepts the tokens of every app
   * client of the pool: opt in to that explicitly.
   */
  clientId: string | readonly string[] | null
  /** Which token the pool accepts: `'id'` (the default), `'access'` or `'any'`. */
  tokenUse?: TokenUse
  /** Overrides the issuer (for emulators such as cognito-local). It is still matched exactly. */
  issuer?: string | readonly string[]
  /**
   * Overrides the JWKS URL; by default derived from the region and the pool id. `false` uses only
   * the keys in `jwks` and never fetches (air-gapped deployments, tests).
   */
  jwksUri?: string | false
  /** Keys known up front (baked in at deploy time): no fetch is needed until an unknown `kid` arrives. */
  jwks?: JsonWebKeySet
  /**
   * Access tokens only: the resource server(s) an access token's `aud` must name (a string `aud`
   * equal to one of them, or a list that contains one). By default any `aud`, or none, is
   * accepted: the app client is `client_id`. Refused with `tokenUse: 'id'`.
   */
  audience?: string | readonly string[]
}

/**
 * A pool's entry with its `claims` schemas, as its `tokenUse` requires them (see
 * `CognitoClaimsRequirement`): a `userPools` entry, or a resolver's answer.
 */
export type CognitoUserPoolEntry = CognitoUserPoolOptions & CognitoPoolClaims

/**
 * `claims` for a pool of each `tokenUse`: with claims registered, the schemas of the kinds of
 * token it accepts, required for those the registry types; without, any schemas, optional.
 */
export type CognitoPoolClaims = [RegisteredKind | RegisteredAlb] extends [never]
  ? { claims?: CognitoClaimsOptions }
  :
    | ({ tokenUse?: 'id' } & CognitoClaimsRequirement<'id'>)
    | ({ tokenUse: 'access' } & CognitoClaimsRequirement<'access'>)
    | ({ tokenUse: 'any' } & CognitoClaimsRequirement<'any'>)

/**
 * The application's own data about a pool (a tenant). Augment this interface to give the
 * resolver's `tenant` and `request.cognitoPool.tenant` your own type:
 *
 * ```ts
 * declare module 'fastify-cognito-jwt' {
 *   interface CognitoPoolRegistry { tenant: { id: number; name: string } }
 * }
 * ```
 */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface CognitoPoolRegistry {}

/** The registered tenant type, or `unknown` when none is registered. */
export type CognitoTenant = CognitoPoolRegistry extends { tenant: infer T } ? T : unknown

/**
 * What a `userPools` resolver answers for an issuer: a pool entry, checked like one listed up
 * front, and `tenant`, the application's own data (required once a tenant type is registered).
 */
export type CognitoPoolAnswer = CognitoUserPoolEntry &
  (CognitoPoolRegistry extends { tenant: unknown } ? { tenant: CognitoTenant } : { tenant?: unknown })

/**
 * `request.cognitoPool`: the entry of the pool that accepted the token, frozen. A resolved pool's
 * is the resolver's latest answer, with its `tenant`; a configured pool's is its entry, without one.
 */
export type CognitoPool = Readonly<CognitoUserPoolOptions> & { readonly claims?: Readonly<CognitoClaimsOptions>, readonly tenant?: CognitoTenant }

/**
 * Says which pool tokens of this (unverified, exact) issuer belong to, from the application's
 * allow-list; `null`, `undefined` or `false` (any falsy value) for an issuer that is no pool of the
 * application's.
 */
export type PoolResolver = (issuer: string) => CognitoPoolAnswer | null | undefined | false | Promise<CognitoPoolAnswer | null | undefined | false>

/** How a resolver's answers are cached. Durations are in seconds. */
export interface PoolCacheOptions {
  /** The most pools kept (least recently used first out), and the most issuers remembered as no pool. Default 5000. */
  max?: number
  /**
   * How long an answer is used before the resolver is asked again. Default 300. Past it, the pool
   * is still served while the resolver is asked in the background, for at most as long again.
   */
  ttl?: number
  /** How long "no pool" is remembered for an issuer. Default 60. */
  unknownTtl?: number
  /**
   * Questions per second, at most, about issuers of which no pool is held (new tenants, evicted
   * ones, strangers), with a burst of as many; beyond it a token is refused with 503
   * `FST_COGNITO_POOL_UNAVAILABLE`. Pools held are refreshed whatever this rate. Default 100.
   */
  newIssuerRate?: number
}

/** How the keys of a pool are cached. Durations are in seconds. */
export interface JwksCacheOptions {
  /** How long fetched keys count as fresh; after that they are refreshed in the background while still served. Default 600. */
  ttl?: number
  /** The most keys kept from one JWKS (Cognito publishes two). Default 16. */
  maxKeys?: number
  /** An unknown `kid` refetches the JWKS at most once in this window. Default 10. */
  cooldown?: number
  /** Timeout of one JWKS fetch, from connecting to the last byte of the body. Default 5. */
  timeout?: number
  /** How long past `ttl` keys are still served while the JWKS endpoint fails. Default 86400 (a day). */
  maxStale?: number
  /** The largest JWKS body accepted, in bytes. Default 65536. */
  maxBytes?: number
  /**
   * Fetch the keys when the server becomes ready. `true` (the default) logs a warning on failure and
   * starts anyway; `'required'` makes a failure stop the server from starting; `false` fetches on
   * the first request instead.
   */
  prefetch?: boolean | 'required'
}

/** The cache of verified tokens. */
export interface TokenCacheOptions {
  /** The most tokens kept. Default 1000. */
  max?: number
}

/** Where the token comes from: the `Authorization: Bearer` header unless the application says otherwise. */
export type TokenExtractor = (request: FastifyRequest) => string | undefined | null

/**
 * Turns verified claims into the application's user. Any falsy value (`null`, `undefined`, `false`,
 * `0`, `''`) means no such user (401); a rejection without an Error is FST_COGNITO_HOOK_FAILED (500).
 * `Claims` are those of the tokens the pool accepts (see `CognitoClaimsFor`).
 */
export type ResolveUser<Claims extends CognitoClaims = CognitoClaims> =
  (claims: Claims, request: FastifyRequest) => CognitoUser | null | undefined | Promise<CognitoUser | null | undefined>

/** Says whether a verified token was revoked (e.g. after GlobalSignOut); `true` answers 401. */
export type IsRevoked<Claims extends CognitoClaims = CognitoClaims> =
  (claims: Claims, request: FastifyRequest) => boolean | Promise<boolean>

/**
 * What the plugin calls on the application's Redis client: ioredis' API, which iovalkey and
 * @fastify/redis' `app.redis` share. The plugin checks the methods are there at register; it
 * never closes this client, only the subscriber it makes with `duplicate()`.
 */
export interface RevocationRedisClient {
  duplicate: (...args: never[]) => unknown
  eval: (...args: never[]) => unknown
  zscan: (...args: never[]) => unknown
  subscribe: (...args: never[]) => unknown
  on: (...args: never[]) => unknown
  /** ioredis' connection status; a write while it is not `'ready'` is refused at once. */
  readonly status?: string
}

/** The revocation list in Redis, shared by every instance of the application. Durations in seconds. */
export interface RedisRevocationOptions {
  /** The application's client (ioredis, iovalkey, @fastify/redis' `app.redis`; an ioredis `Cluster`). */
  redis: RevocationRedisClient
  /**
   * Prefix of the sorted set (`<prefix>entries`) and the channel (`<prefix>events`). Default
   * `'cognito:revocation:'`. In Redis Cluster the key is one slot whatever the prefix.
   */
  keyPrefix?: string
  /**
   * The longest lifetime of the ID and access tokens of the pools. Default 86400 (a day, Cognito's
   * maximum). An entry lives this long plus the `iat` allowance (5 minutes) and twice `clockTolerance`.
   */
  maxTokenLifetime?: number
  /**
   * Refuse every token (503 FST_COGNITO_REVOCATION_UNAVAILABLE) once the replica has been out of
   * sync with Redis for longer than this. Default: never; the replica keeps enforcing what it knows.
   */
  maxStale?: number
  /** The longest a revocation, or one page of a load, may wait for Redis. Default 5. */
  timeout?: number
  /**
   * Resolve a revocation only once this many Redis replicas acknowledged it (`WAIT`, within
   * `timeout`), so that it survives a failover. Default 0: the primary's word is enough.
   */
  replicas?: number
}

/** The revocation list in this process's memory: for a single process (tests, demos). */
export interface MemoryRevocationOptions {
  store: 'memory'
  /** The longest lifetime of the tokens, in seconds. Default 86400. */
  maxTokenLifetime?: number
}

export type RevocationOptions = RedisRevocationOptions | MemoryRevocationOptions

/** The state of the revocation list, for health checks. */
export interface RevocationStats {
  store: 'redis' | 'memory'
  /** Revoked sessions plus signed-out users held by this process. */
  entries: number
  sessions: number
  users: number
  /** Whether the replica is known to hold everything the store holds. */
  inSync: boolean
  /** Epoch milliseconds since which `inSync` has had its value. */
  since: number
  /** Epoch milliseconds of the last complete load, or null. */
  lastSync: number | null
  /** The last error met while talking to the store, or null. */
  lastError: string | null
  /** Revocations enforced here that the store did not take yet: written as soon as it is back. */
  pending: number
}

/** `app.cognitoRevocation`: revokes tokens on every instance. Each promise resolves once the store has the entry and this process enforces it. */
export interface CognitoRevocation {
  /** Refuses every token of the sign-in of these claims (by `origin_jti`, else `jti`), in the pool of `iss`. */
  revokeSession: (claims: Pick<CognitoBaseClaims, 'iss' | 'origin_jti' | 'jti'>) => Promise<void>
  /**
   * Refuses every token of this user of the pool of `iss` (either of its issuers) from a sign-in
   * (`auth_time`, else `iat`) at or before now plus `clockTolerance`.
   */
  signOutUser: (user: { iss: string, sub: string }) => Promise<void>
  stats: () => RevocationStats
}

/**
 * Behind an Application Load Balancer with Cognito authentication: requests are authenticated by
 * the tokens the load balancer forwards (`x-amzn-oidc-data`, `x-amzn-oidc-accesstoken`), never by
 * `Authorization`.
 */
export interface CognitoAlbOptions {
  /**
   * The ARN of the load balancer whose signature is accepted, or several:
   * `arn:<aws|aws-us-gov|aws-cn>:elasticloadbalancing:<region>:<account>:loadbalancer/app/<name>/<id>`.
   */
  loadBalancerArn: string | readonly string[]
  /**
   * Where the load balancer's public keys are served: `${keysUri}/${kid}` is a PEM file. Default
   * `https://public-keys.auth.elb.<region>.amazonaws.com` for `aws` ARNs; required for the others
   * (GovCloud serves them from an S3 bucket path).
   */
  keysUri?: string
  /**
   * Require `x-amzn-oidc-accesstoken` to verify as an access token of the pool, for the same user
   * (the default). It carries what the load balancer's token lacks (`origin_jti`, `auth_time`,
   * groups, scopes): `request.cognitoClaims` is its claims. `false` verifies the load balancer's
   * token alone: `request.cognitoClaims` and `cognitoUser` stay null, and `resolveUser`,
   * `isRevoked` and `revocation` are refused.
   */
  accessToken?: boolean
}

/** Options that hold for every pool of an instance; `Claims` are the claims its hooks receive. */
export interface CognitoAuthSharedOptions<Claims extends CognitoClaims = CognitoClaims> {
  /** Seconds of leeway for `exp`, `nbf` and `iat`. Default 0. */
  clockTolerance?: number
  resolveUser?: ResolveUser<Claims>
  /**
   * Says whether a verified token was revoked (e.g. after GlobalSignOut): `true` answers 401, only
   * `false` lets the request on; any other answer, or a rejection without an Error, is
   * FST_COGNITO_HOOK_FAILED (500).
   */
  isRevoked?: IsRevoked<Claims>
  /** Seconds an `isRevoked` answer is reused for the same token. Default 0: asked on every request. */
  revocationCacheTtl?: number
  /**
   * The revocation list behind `app.cognitoRevocation`, checked in memory on every request:
   * `{ redis: client }` shares it between instances, `{ store: 'memory' }` keeps it in this process.
   */
  revocation?: RevocationOptions
  /** Reads the token from somewhere else than the `Authorization` header. */
  extractToken?: TokenExtractor
  /** The realm in `WWW-Authenticate`. Default `'api'`. */
  realm?: string
  /** The longest token accepted, in characters. Default 8192. */
  maxTokenLength?: number
  jwksCache?: JwksCacheOptions
  /** The cache of verified tokens; `false` turns it off. */
  tokenCache?: TokenCacheOptions | false
  /**
   * Authenticate requests by the tokens an Application Load Balancer forwards. The pools'
   * `tokenUse` is then `'access'` (the default with this option; set it to have hooks typed with
   * access token claims).
   */
  alb?: CognitoAlbOptions
}

/** One user pool, given at the top level. */
export interface CognitoSinglePoolOptions extends CognitoUserPoolOptions, CognitoAuthSharedOptions {
  userPools?: undefined
}

/**
 * One user pool whose `tokenUse` is `Use`: `resolveUser` and `isRevoked` receive the claims of
 * those tokens. `tokenUse` may be left out for `'id'`, its default, and for a `Use` that leaves
 * the kind open (`TokenUse`, or `'id' | 'access'`), whose claims are then a union that includes
 * those of ID tokens.
 */
export type CognitoSinglePoolOptionsFor<Use extends TokenUse> =
  Omit<CognitoUserPoolOptions, 'tokenUse'> & CognitoAuthSharedOptions<CognitoClaimsFor<Use>> & { userPools?: undefined } &
  CognitoClaimsRequirement<Use> &
  ([Use] extends ['access'] ? { tokenUse: Use } : [Use] extends ['any'] ? { tokenUse: Use } : { tokenUse?: Use })

/** The kind of token a pool's options accept: `'id'` when `tokenUse` is left out. */
export type TokenUseOf<Pool> =
  Pool extends { readonly tokenUse: infer Use extends TokenUse } ? Use
    : Pool extends { readonly tokenUse?: infer Use } ? Extract<Use, TokenUse> | 'id'
      : 'id'

/** The claims of the tokens any of these pools accepts: the union of the pools' kinds. */
export type CognitoClaimsOfPools<Pools extends readonly CognitoUserPoolEntry[]> = CognitoClaimsFor<TokenUseOf<Pools[number]>>

/** Several user pools (or app client sets) in one instance; the hooks receive the claims of any of them. */
export interface CognitoMultiPoolOptions<Pools extends readonly CognitoUserPoolEntry[] = readonly CognitoUserPoolEntry[]>
  extends CognitoAuthSharedOptions<CognitoClaimsOfPools<Pools>>, Partial<Record<keyof CognitoUserPoolOptions | 'claims', undefined>> {
  userPools: Pools
}

/** Pools resolved at run time: `userPools` is the application's resolver. */
export interface CognitoResolvedPoolOptions
  extends CognitoAuthSharedOptions, Partial<Record<keyof CognitoUserPoolOptions | 'claims', undefined>> {
  userPools: PoolResolver
  /** Not with a resolver: the load balancer's pools are listed up front. */
  alb?: undefined
  poolCache?: PoolCacheOptions
  /**
   * Issuers the resolver is also asked about, by prefix (e.g. `'http://127.0.0.1:'` for local
   * issuers and emulators). Without it only Cognito's own issuers are. Not for production.
   */
  resolverIssuerPrefixes?: string | readonly string[]
}

/** An application that registered its own user type must say how to resolve it. */
export type CognitoUserResolution<Claims extends CognitoClaims = CognitoClaims> =
  CognitoUserRegistry extends { user: unknown } ? { resolveUser: ResolveUser<Claims> } : { resolveUser?: ResolveUser<Claims> }

/**
 * The plugin's options, with hooks that handle the claims of either token. `app.register` is
 * more precise: there `resolveUser` and `isRevoked` receive the claims of the tokens `tokenUse`
 * accepts (see `CognitoSinglePoolOptionsFor`).
 */
export type CognitoAuthOptions = ((CognitoSinglePoolOptions & CognitoPoolClaims) | CognitoMultiPoolOptions | CognitoResolvedPoolOptions) & CognitoUserResolution & CognitoAlbRequirement

// A mark that exists in the types only: it lets the `register` overloads below recognise this
// plugin, and no other, without any runtime property.
declare const cognitoAuthPlugin: unique symbol

/** The type of the plugin itself. */
export type CognitoAuthPlugin = FastifyPluginAsync<CognitoAuthOptions> & { readonly [cognitoAuthPlugin]: true }

/** How `requireGroups`/`requireScopes` combine several names: any one of them (the default), or all. Other keys are refused. */
export interface RequirementOptions {
  match?: 'any' | 'all'
}

/**
 * What a route declares in `config.cognito`. A `groups` or `scopes` key that is present must hold
 * names, even if its value comes from configuration. The route must be declared where the plugin
 * sees it (in its scope or a child, once it loaded), or the server refuses to start (in an
 * instance created before the package loaded: the route refuses every request).
 */
export interface CognitoRouteConfig extends RequirementOptions {
  groups?: string | readonly string[]
  scopes?: string | readonly string[]
  /** Let anonymous requests through (an invalid token is still refused). */
  optional?: boolean
}

/** A hook usable as `onRequest` or `preHandler`, with a callback or awaited. */
export type CognitoHook = onRequestHookHandler &
  preHandlerHookHandler &
  ((request: FastifyRequest, reply: FastifyReply) => Promise<void>)

/** Counters of one key store, for health checks. */
export interface KeyStoreStats {
  /** null when the pool uses only the keys given in `jwks`. */
  jwksUri: string | null
  keys: number
  fetches: number
  failures: number
  /** Epoch milliseconds of the last successful fetch, or null. */
  lastSuccess: number | null
  /** Epoch milliseconds of the last failed fetch, or null. */
  lastFailure: number | null
}

/** An error the plugin answers a request with (every exported error class makes one). */
export interface CognitoAuthError extends Error {
  /** A stable `FST_COGNITO_*` code. */
  code: string
  statusCode: number
  /** The RFC 6750 `WWW-Authenticate` challenge of a refusal, for custom error handlers: `reply.headers(error.headers ?? {})`. */
  headers?: Record<string, string>
  /** Why the request was refused, in words that name no token or claim value; not serialized. */
  readonly reason?: string
}

/** `fastify-cognito-jwt:authenticated`: once per accepted request. */
export interface CognitoAuthenticatedEvent {
  request: FastifyRequest
  claims: CognitoClaims
  /** Behind a load balancer (the `alb` option): the user claims it signed. */
  albClaims?: CognitoAlbClaims
  /** The token came from the verified-token cache. */
  cached: boolean
}

/**
 * `fastify-cognito-jwt:authenticated` behind a load balancer with `alb.accessToken: false`: the
 * load balancer's token alone was verified, so there are no token claims.
 */
export interface CognitoAlbAuthenticatedEvent {
  request: FastifyRequest
  claims: null
  albClaims: CognitoAlbClaims
  /** The token came from the verified-token cache. */
  cached: boolean
}

/** `fastify-cognito-jwt:refused`: once per refused request. */
export interface CognitoRefusedEvent {
  request: FastifyRequest
  error: CognitoAuthError
}

/** `fastify-cognito-jwt:jwks`: once per JWKS fetch, and when keys rotate or expire. */
export interface CognitoJwksEvent {
  jwksUri: string | null
  outcome: 'fetched' | 'failed' | 'aborted' | 'rotated' | 'expired'
  /** The HTTP status, when a response came. */
  status: number | null
  /** How long the fetch took; null for rotations and expiries. */
  durationMs: number | null
  /** The keys the store holds after the event. */
  keys: number
  /** Why a fetch failed or was aborted. */
  reason?: string
  /** The `kid`s added and removed by a rotation, or dropped by an expiry. */
  added?: readonly string[]
  removed?: readonly string[]
}

/**
 * `fastify-cognito-jwt:pools`: what the pool directory does with a `userPools` resolver: each
 * question and its outcome, each pool evicted, each question refused for load.
 */
export interface CognitoPoolEvent {
  /**
   * `asked`: the resolver is asked about the issuer; `answered`: it answered a pool;
   * `unknown`: it answered no pool (or a pool of other issuers), a pool held for the issuer is
   * dropped; `failed`: it threw, or answered something that is no pool; `evicted`: the pool left
   * the cache, the least recently used beyond `poolCache.max`; `refused`: the question was not
   * asked, too many being asked already (`reason` says which bound).
   */
  event: 'asked' | 'answered' | 'unknown' | 'failed' | 'evicted' | 'refused'
  /** The issuer concerned, as a token named it: a Cognito issuer, or one of an allowed prefix. */
  issuer: string
  /** The pools held after the event. */
  pools: number
  /** A question about an issuer whose pool is held: the answer is refreshed (`asked`, `answered`, `unknown`, `failed`). */
  refresh?: boolean
  /** How long the resolver took (`answered`, `unknown`, `failed`). */
  durationMs?: number
  /** The answer differs from the pool held: a new key store (`answered`). */
  changed?: boolean
  /** Why (`unknown`, `failed`, `refused`), in words that name no token. */
  reason?: string
}

/** `fastify-cognito-jwt:revocation`: the revocation list's synchronisation with its store. */
export interface CognitoRevocationEvent {
  event: 'synced' | 'disconnected' | 'reconnected' | 'written'
  /** Entries the in-process replica holds. */
  entries: number
  /** How long the sync took (for `synced`). */
  durationMs?: number
  /** Why the connection was lost (for `disconnected`). */
  reason?: string
  /** Entries this process held that the store lacked, now written: pending revocations, or ones the store lost (for `written`). */
  written?: number
  /** Revocations still waiting for the store (for `written`). */
  pending?: number
}

/** Why a watched connection ended (`app.cognitoWatch`). */
export type CognitoWatchEndReason = 'expired' | 'revoked' | 'signed-out' | 'pool-removed'

/** Called once when a watch ends, with its reason; not called by `stop()`. */
export type CognitoWatchEnd = (reason: CognitoWatchEndReason) => void

/** A long-lived connection's watch (`app.cognitoWatch`). */
export interface CognitoWatch {
  /** When the token ends the connection (epoch milliseconds, `clockTolerance` included). */
  readonly deadline: number
  /** Whether the watch has ended, stopped, or its response closed. */
  readonly ended: boolean
  /**
   * Moves the watch to a fresh token of the same user and pool: verified as `authenticate` would,
   * its `exp` becomes the deadline and its session the one watched. Rejects with the refusal
   * (FST_COGNITO_*: expired, invalid, another user or pool, revoked) and changes nothing.
   */
  renew: (token: string) => Promise<void>
  /** Ends the watch without calling `onEnd`. */
  stop: () => void
}

/** `fastify-cognito-jwt:watch`: a watched connection was ended. Never a token. */
export interface CognitoWatchEvent {
  request: FastifyRequest
  reason: CognitoWatchEndReason
  /** How long it was watched. */
  watchedMs: number
}

declare module 'fastify' {
  /**
   * `app.register(cognitoAuth, options)`, typed from the options themselves: `tokenUse` (or the
   * pools' `tokenUse`s) decides the claims `resolveUser` and `isRevoked` receive, with no
   * annotation. Fastify's own overloads infer one options type from the plugin, and a union of
   * options cannot pick its member for an unannotated callback when `tokenUse` is left out.
   */
  interface FastifyRegister<
    T = void,
    RawServer extends RawServerBase = RawServerDefault,
    TypeProviderDefault extends FastifyTypeProvider = FastifyTypeProvider,
    LoggerDefault extends FastifyBaseLogger = FastifyBaseLogger
  > {
    (
      plugin: CognitoAuthPlugin,
      opts: RegisterOptions & CognitoResolvedPoolOptions & CognitoUserResolution & CognitoAlbRequirement
    ): T
    <const Pools extends readonly CognitoUserPoolEntry[]>(
      plugin: CognitoAuthPlugin,
      opts: RegisterOptions & CognitoMultiPoolOptions<Pools> & CognitoUserResolution<CognitoClaimsOfPools<Pools>> & CognitoAlbRequirement
    ): T
    <Use extends TokenUse = 'id'>(
      plugin: CognitoAuthPlugin,
      // `{ tokenUse?: Use }` is where `Use` is inferred from; left out, it is the default, 'id'.
      opts: RegisterOptions & { tokenUse?: Use } & CognitoSinglePoolOptionsFor<Use> & CognitoUserResolution<CognitoClaimsFor<Use>> & CognitoAlbRequirement
    ): T
  }

  interface FastifyInstance {
    /** Authenticates the request or answers 4xx/503. */
    authenticate: CognitoHook
    /** Authenticates when a token is present; lets requests without one through with null user. */
    authenticateOptional: CognitoHook
    /** Requires one (or all, with `{ match: 'all' }`) of the groups in `cognito:groups`. */
    requireGroups: (groups: string | readonly string[], options?: RequirementOptions) => CognitoHook
    /** Requires one (or all) of the OAuth scopes in the access token's `scope`. */
    requireScopes: (scopes: string | readonly string[], options?: RequirementOptions) => CognitoHook
    /** The state of each pool's key store (with a resolver, of each pool it holds now), then the load balancer's keys (with `alb`). */
    cognitoKeyStores: () => KeyStoreStats[]
    /** Revokes sessions and users (the `revocation` option); without the option, each call throws FST_COGNITO_INVALID_OPTION. */
    cognitoRevocation: CognitoRevocation
    /**
     * Watches the long-lived connection (WebSocket, event stream) of a request `authenticate`
     * accepted: `onEnd` is called once when its token expires, is revoked, its user is signed
     * out, or its pool is no longer accepted. Without `onEnd`, the WebSocket is closed with 4401
     * and the reason, a response under way is ended, one not yet started answers 401.
     */
    cognitoWatch: (request: FastifyRequest, onEnd?: CognitoWatchEnd) => CognitoWatch
  }
  interface FastifyRequest {
    /** The verified claims; null until authenticated. */
    cognitoClaims: CognitoClaims | null
    /** The application's user (or the claims without `resolveUser`); null until authenticated. */
    cognitoUser: CognitoUser | null
    /** The entry of the pool that accepted the token (a resolver's answer, with its `tenant`); null until authenticated. */
    cognitoPool: CognitoPool | null
    /** Behind a load balancer (the `alb` option): the user claims it signed; null until authenticated, and without `alb`. */
    cognitoAlbClaims: CognitoAlbClaims | null
  }
  interface FastifyContextConfig {
    cognito?: CognitoRouteConfig
  }
}
