/**
 * The plugin's events, on Node's `diagnostics_channel`: the one module that knows the channel
 * names. Every message is built only when someone subscribes (`hasSubscribers`), so that an
 * application that does not listen pays a property read. Messages never carry a token; claims
 * travel only in `authenticated`, where the subscriber is handed them on purpose.
 */
import { channel } from 'node:diagnostics_channel'
import type { FastifyRequest } from 'fastify'
import type {
  CognitoAlbClaims,
  CognitoAuthError,
  CognitoClaims,
  CognitoJwksEvent,
  CognitoPoolEvent,
  CognitoRevocationEvent,
  CognitoWatchEndReason
} from '../types'

/** The channel names, as exported to applications (`diagnostics_channel.subscribe(channels.refused, ...)`). */
export const channels = Object.freeze({
  authenticated: 'fastify-cognito-jwt:authenticated',
  refused: 'fastify-cognito-jwt:refused',
  jwks: 'fastify-cognito-jwt:jwks',
  revocation: 'fastify-cognito-jwt:revocation',
  pools: 'fastify-cognito-jwt:pools',
  watch: 'fastify-cognito-jwt:watch'
} as const)

const authenticated = channel(channels.authenticated)
const refused = channel(channels.refused)
const jwks = channel(channels.jwks)
const revocation = channel(channels.revocation)
const pools = channel(channels.pools)
const watch = channel(channels.watch)

/**
 * A request was authenticated; `cached` when its token came from the verified-token cache. Behind
 * a load balancer the message also carries the user claims it signed.
 */
export function publishAuthenticated (request: FastifyRequest, claims: CognitoClaims | null, cached: boolean, albClaims?: CognitoAlbClaims): void {
  if (!authenticated.hasSubscribers) return
  authenticated.publish(albClaims === undefined ? { request, claims, cached } : { request, claims, albClaims, cached })
}

/** Whether a refusal has a listener: the caller then builds an error for the event alone. */
export function wantsRefusedEvents (): boolean {
  return refused.hasSubscribers
}

/** A request was refused; the error carries its code, status and (non-enumerable) reason. */
export function publishRefused (request: FastifyRequest, error: CognitoAuthError): void {
  if (refused.hasSubscribers) refused.publish({ request, error })
}

/** Whether a key store event has a listener: the caller then builds the message (rare events, several fields). */
export function wantsJwksEvents (): boolean {
  return jwks.hasSubscribers
}

export function publishJwks (message: CognitoJwksEvent): void {
  if (jwks.hasSubscribers) jwks.publish(message)
}

/** Whether a revocation list event has a listener. */
export function wantsRevocationEvents (): boolean {
  return revocation.hasSubscribers
}

export function publishRevocation (message: CognitoRevocationEvent): void {
  if (revocation.hasSubscribers) revocation.publish(message)
}

/** Whether a pool directory event has a listener: the caller then builds the message. */
export function wantsPoolEvents (): boolean {
  return pools.hasSubscribers
}

export function publishPool (message: CognitoPoolEvent): void {
  if (pools.hasSubscribers) pools.publish(message)
}

/** A watched connection was ended (`app.cognitoWatch`): why, and how long it was watched. */
export function publishWatchEnded (request: FastifyRequest, reason: CognitoWatchEndReason, watchedMs: number): void {
  if (watch.hasSubscribers) watch.publish({ request, reason, watchedMs })
}
