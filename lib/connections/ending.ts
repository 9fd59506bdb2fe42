/**
 * How a watch ends its connection when the application gave no `onEnd`: the one response or
 * WebSocket the watch belongs to, never the TCP connection under an HTTP/1.1 keep-alive or
 * HTTP/2 response, which serves other requests.
 *   - a WebSocket (of @fastify/websocket's server): closed with 4401 and the reason, so that the
 *     client knows to sign in again;
 *   - an upgraded socket of another server: destroyed (it carries that one connection only);
 *   - a response under way (an event stream): ended, as a stream ends; the client's reconnection
 *     then meets `authenticate`;
 *   - a response not yet started: 401 with the refusal's code and challenge.
 */
import type { IncomingMessage } from 'node:http'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { CognitoWatchEndReason } from '../../types'
import { buildChallenge, TokenExpiredError, TokenInvalidError, TokenRevokedError, type CognitoAuthError } from '../errors'

/** The WebSocket's close code for "authentication ended": 4000-4999 are the application's. */
export const CLOSE_CODE = 4401

/** What the watch needs of a WebSocket (`ws`'s, as @fastify/websocket hands it). */
export interface ClosableSocket {
  close: (code: number, reason: string) => void
}

/** The WebSocket of an upgraded request, set when @fastify/websocket's server announces it. */
const kWebSocket = Symbol('fastify-cognito-jwt.webSocket')

interface UpgradedRequest extends IncomingMessage {
  [kWebSocket]?: ClosableSocket
}

/** The response as the ending uses it: HTTP/1.1's and HTTP/2's have these in common. */
export interface RawResponse {
  readonly destroyed: boolean
  readonly headersSent: boolean
  once: (event: 'close', listener: () => void) => unknown
  removeListener: (event: 'close', listener: () => void) => unknown
  writeHead: (status: number, headers: Record<string, string>) => unknown
  end: (body?: string) => unknown
}

/**
 * Learns each WebSocket's request from @fastify/websocket's server, which announces every
 * connection with the request it upgraded (`connection`, (socket, request)).
 */
export function learnWebSockets (fastify: FastifyInstance): void {
  if (!fastify.hasDecorator('websocketServer')) return
  const server = (fastify as unknown as { websocketServer: NodeJS.EventEmitter }).websocketServer
  server.on('connection', (socket: ClosableSocket, request: UpgradedRequest) => {
    request[kWebSocket] = socket
  })
}

function refusalFor (reason: CognitoWatchEndReason): CognitoAuthError {
  if (reason === 'expired') return new TokenExpiredError()
  if (reason === 'pool-removed') return new TokenInvalidError()
  return new TokenRevokedError()
}

export function endByDefault (request: FastifyRequest, response: RawResponse, reason: CognitoWatchEndReason, realm: string): void {
  const raw = request.raw as UpgradedRequest
  const socket = raw[kWebSocket]
  if (socket !== undefined) {
    socket.close(CLOSE_CODE, reason)
    return
  }
  if (raw.headers.upgrade !== undefined) {
    raw.socket.destroy()
    return
  }
  if (response.headersSent) {
    response.end()
    return
  }
  const error = refusalFor(reason)
  response.writeHead(error.statusCode, {
    'content-type': 'application/json; charset=utf-8',
    'www-authenticate': buildChallenge(realm, error) as string
  })
  response.end(JSON.stringify({ statusCode: error.statusCode, code: error.code, error: 'Unauthorized', message: error.message }))
}
