/**
 * What the runner and every server agree on: the user pool, its app client, its issuer, and the
 * one user the `resolveUser` workload looks up.
 */

export const USER_POOL_ID = 'eu-central-1_Bench'
export const CLIENT_ID = 'bench-client'
/** The issuer real Cognito puts in this pool's tokens; only the JWKS is served from loopback. */
export const ISSUER = `https://cognito-idp.eu-central-1.amazonaws.com/${USER_POOL_ID}`
/** Where real Cognito publishes the pool's keys (peers that derive it get it redirected to loopback). */
export const COGNITO_JWKS_URI = `${ISSUER}/.well-known/jwks.json`
/** The subject of the tokens of the `resolveUser` workload: the one user the directory knows. */
export const KNOWN_USER_SUB = '6f1d0c4e-6b2a-4a59-9a3e-0d6f3a3c1b7e'

export const VARIANTS = ['none', 'floor', 'plugin', 'fast-jwt cache', 'aws-jwt-verify', '@fastify/jwt+get-jwks', 'fastify-jwt-jwks', 'plugin+events', 'plugin+claims'] as const
export type Variant = typeof VARIANTS[number]
/** Variants measured only when named in --variants. */
export const OPTIONAL_VARIANTS: readonly Variant[] = ['plugin+events', 'plugin+claims']
/** The libraries the plugin is compared with. */
export const PEERS: readonly Variant[] = ['aws-jwt-verify', '@fastify/jwt+get-jwks', 'fastify-jwt-jwks']

/** What the runner tells a server process (as JSON in the BENCH_SERVER environment variable). */
export interface ServerSpec {
  variant: Variant
  /** The pool's JWKS, served by the runner on 127.0.0.1. */
  jwksUri: string
  /** Look the user up (asynchronously) after verification. */
  resolveUser: boolean
  /** The plugin with its revocation list in this Redis (the revocation step). */
  revocation?: { redisPort: number, keyPrefix: string }
}

/** The route a server answers on. */
export const ROUTE = '/'
/** Internal routes: the heap after a full collection, and the CPU time the process has used. */
export const HEAP_ROUTE = '/__heap'
export const CPU_ROUTE = '/__cpu'
/** The revocation step: POST `{ "origin_jti": ... }` revokes that session (answers once revokeSession resolved). */
export const REVOKE_ROUTE = '/__revoke'
