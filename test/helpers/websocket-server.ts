/**
 * WebSocket routes for the tests, the way @fastify/websocket serves them: an upgrade request goes
 * through Fastify's router and hooks (so `authenticate` answers it) on a response bound to the
 * socket; the route's handler upgrades it with `ws`'s server, which announces the connection
 * with its request (`connection`, (socket, request)). With `announce`, that server is the
 * instance's `websocketServer`, as @fastify/websocket decorates it.
 */
import { ServerResponse, type IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyInstance, FastifyRequest, onRequestHookHandler } from 'fastify'
import { WebSocketServer, type WsClient } from './ws'

const kUpgrade = Symbol('upgrade')

interface Upgrading extends IncomingMessage {
  [kUpgrade]?: { socket: Duplex, head: Buffer }
}

export interface WebSocketRoutes {
  route: (path: string, onRequest: onRequestHookHandler | onRequestHookHandler[], handler: (socket: WsClient, request: FastifyRequest) => void) => void
}

export interface WebSocketOptions {
  /** Decorate the instance with the server (as @fastify/websocket does); default true. */
  announce?: boolean
  handleProtocols?: (protocols: Set<string>) => string | false
}

export function webSocketRoutes (app: FastifyInstance, options: WebSocketOptions = {}): WebSocketRoutes {
  const wss = new WebSocketServer({ noServer: true, ...(options.handleProtocols === undefined ? {} : { handleProtocols: options.handleProtocols }) })
  if (options.announce !== false) app.decorate('websocketServer', wss)
  app.server.on('upgrade', (request: Upgrading, socket: Duplex, head: Buffer) => {
    request[kUpgrade] = { socket, head }
    const response = new ServerResponse(request)
    response.assignSocket(socket as never)
    app.routing(request, response)
  })
  app.addHook('onClose', async () => {
    for (const client of wss.clients) client.terminate()
    wss.close()
  })
  return {
    route (path, onRequest, handler) {
      app.get(path, { onRequest }, (request, reply) => {
        const upgrade = (request.raw as Upgrading)[kUpgrade]
        if (upgrade === undefined) return reply.code(426).send()
        reply.hijack()
        wss.handleUpgrade(request.raw, upgrade.socket, upgrade.head, (socket) => {
          wss.emit('connection', socket, request.raw)
          handler(socket, request)
        })
      })
    }
  }
}
