/**
 * What `authenticate` leaves on a request it accepted, for `app.cognitoWatch`: the verified token
 * (claims, pool, expiry) and the reply. Two symbol-keyed request decorations: setting them is two
 * property writes on the request path, and nothing is loaded for an application that never
 * watches a connection.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { VerifiedToken } from '../token-cache'

export const kVerifiedToken = Symbol('fastify-cognito-jwt.verifiedToken')
export const kReply = Symbol('fastify-cognito-jwt.reply')

export interface MarkedRequest extends FastifyRequest {
  [kVerifiedToken]: VerifiedToken | null
  [kReply]: FastifyReply | null
}

/** Called where `authenticate` sets `request.cognitoClaims`. */
export function markAuthenticated (request: FastifyRequest, reply: FastifyReply, verified: VerifiedToken): void {
  (request as MarkedRequest)[kVerifiedToken] = verified;
  (request as MarkedRequest)[kReply] = reply
}
