/**
 * The `ws` package, typed for the tests (it ships no types): a WebSocket client, and the server
 * that @fastify/websocket wraps.
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { EventEmitter } from 'node:events'

export interface WsClient extends EventEmitter {
  readonly readyState: number
  readonly protocol: string
  send: (data: string) => void
  close: (code?: number, reason?: string) => void
  terminate: () => void
}

export interface WsServer extends EventEmitter {
  handleUpgrade: (request: IncomingMessage, socket: Duplex, head: Buffer, done: (socket: WsClient) => void) => void
  close: () => void
  readonly clients: Set<WsClient>
}

interface WsModule {
  WebSocket: new (url: string, protocols?: string | string[], options?: { headers?: Record<string, string> }) => WsClient
  WebSocketServer: new (options: { noServer: true, handleProtocols?: (protocols: Set<string>) => string | false }) => WsServer
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const { WebSocket, WebSocketServer } = require('ws') as WsModule

export const OPEN = 1
