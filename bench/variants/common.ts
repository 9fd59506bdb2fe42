/**
 * What the variants share: the shape of a variant, the user directory of the `resolveUser`
 * workload, and the Cognito rules added around peers that do not know them.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify'
import { CLIENT_ID, ISSUER, KNOWN_USER_SUB, type ServerSpec } from '../config'

export interface Authentication {
  /** The `onRequest` hook of the route; none for the unauthenticated variant. */
  hook?: onRequestHookHandler
  /** Who sent the request, once the hook let it through. */
  subject: (request: FastifyRequest) => string
}

export type SetupVariant = (app: FastifyInstance, spec: ServerSpec) => Promise<Authentication>

export type Claims = Record<string, unknown>

export interface BenchUser {
  id: string
  name: string
}

const directory = new Map<string, BenchUser>([[KNOWN_USER_SUB, { id: KNOWN_USER_SUB, name: 'Bench User' }]])

/** The application's user lookup: a map read behind a promise, as a cache or database read would be. */
export async function findUser (sub: unknown): Promise<BenchUser | undefined> {
  return typeof sub === 'string' ? directory.get(sub) : undefined
}

/**
 * The subject the hooks of floor and peers record. It is a request decorator (declared by the
 * server) rather than a module augmentation, so the project's own Fastify types stay untouched.
 */
type IdentifiedRequest = FastifyRequest & { benchSubject: string }

export function setSubject (request: FastifyRequest, sub: string): void {
  (request as IdentifiedRequest).benchSubject = sub
}

export function recordedSubject (request: FastifyRequest): string {
  return (request as IdentifiedRequest).benchSubject
}

/** The token of `Authorization: Bearer <token>`, or undefined. */
export function bearerToken (request: FastifyRequest): string | undefined {
  const header = request.headers.authorization
  return header !== undefined && header.startsWith('Bearer ') ? header.slice(7) : undefined
}

export function refuse (reply: FastifyReply): FastifyReply {
  return reply.code(401).send({ error: 'Unauthorized' })
}

/**
 * The claims of a Cognito ID token for this app client. Generic JWT libraries do not know
 * `token_use`; checking all of it here (a few comparisons) makes every variant accept exactly the
 * same tokens.
 */
export function isCognitoIdToken (claims: Claims): boolean {
  return claims.token_use === 'id' && claims.iss === ISSUER && claims.aud === CLIENT_ID && typeof claims.sub === 'string'
}

/**
 * An `onRequest` hook around a peer's verification: the Cognito rules, then (in the
 * `resolveUser` workload) the user lookup, as an application would write it.
 */
export function peerHook (verify: (request: FastifyRequest) => Promise<Claims>, resolveUser: boolean): onRequestHookHandler {
  return async function authenticate (request, reply) {
    let claims: Claims
    try {
      claims = await verify(request)
    } catch {
      return refuse(reply)
    }
    if (!isCognitoIdToken(claims)) return refuse(reply)
    if (resolveUser && await findUser(claims.sub) === undefined) return refuse(reply)
    setSubject(request, claims.sub as string)
  }
}
