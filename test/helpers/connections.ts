/**
 * A server with long-lived connections for the `cognitoWatch` tests: the plugin (memory
 * revocation list unless told otherwise), WebSocket routes (test/helpers/websocket-server.ts),
 * listening on loopback; clients that open WebSockets and event streams on it.
 */
import { once } from 'node:events'
import FakeTimers from '@sinonjs/fake-timers'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { Agent, fetch } from 'undici'
import cognitoAuth, { type CognitoAuthOptions, type CognitoWatchEndReason } from '../../index'
import { kWatchSizes } from '../../lib/connections/api'
import type { WatchSizes } from '../../lib/connections/watches'
import { LocalIssuer } from '../../testing'
import { webSocketRoutes, type WebSocketOptions, type WebSocketRoutes } from './websocket-server'
import { WebSocket, type WsClient } from './ws'

export const issuer = new LocalIssuer()

export interface Served {
  app: FastifyInstance
  ws: WebSocketRoutes
  url: string
}

/**
 * A fake clock for `Date`, `setTimeout` and `clearTimeout` (the watches' timer), installed before
 * the server: sockets stay real. Uninstalled when the test ends.
 */
export type Clock = ReturnType<typeof FakeTimers.install>

export function fakeTimers (t: Test): Clock {
  const clock = FakeTimers.install({ toFake: ['Date', 'setTimeout', 'clearTimeout'], now: Date.now() })
  t.teardown(() => clock.uninstall())
  return clock
}

export async function serve (t: Test, options: Partial<CognitoAuthOptions> = {}, routes: (served: Served) => void = () => {}, ws: WebSocketOptions = {}): Promise<Served> {
  const app = Fastify()
  t.teardown(() => app.close())
  // With a resolver (`userPools` as a function) the pools are its answers.
  const pool = 'userPools' in options ? {} : { ...issuer.pluginOptions(), tokenUse: 'any' }
  await app.register(cognitoAuth, { ...pool, revocation: { store: 'memory' }, ...options } as CognitoAuthOptions)
  const served = { app, ws: webSocketRoutes(app, ws), url: '' }
  routes(served)
  await app.listen({ port: 0, host: '127.0.0.1' })
  served.url = `127.0.0.1:${(app.server.address() as { port: number }).port}`
  return served
}

export function sizes (app: FastifyInstance): WatchSizes {
  return (app as unknown as Record<typeof kWatchSizes, () => WatchSizes>)[kWatchSizes]()
}

/** A WebSocket client, open; terminated when the test ends. */
export async function openSocket (t: Test, url: string, token: string | undefined, protocols?: string[]): Promise<WsClient> {
  const client = new WebSocket(`ws://${url}`, protocols, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } })
  t.teardown(() => client.terminate())
  await once(client, 'open')
  return client
}

/** Resolves with the close code and reason the server sent. */
export async function closed (client: WsClient): Promise<{ code: number, reason: string }> {
  const [code, reason] = await once(client, 'close') as [number, Buffer]
  return { code, reason: reason.toString() }
}

/** Sends a message and waits for its echo: the connection is open end to end. */
export async function echoes (client: WsClient, text = 'ping'): Promise<boolean> {
  const reply = once(client, 'message')
  client.send(text)
  const [data] = await reply as [Buffer]
  return data.toString() === text
}

/** An echoing WebSocket route at `path`, watched by `cognitoWatch`; endings are recorded in `ends`. */
export function echoRoute (served: Served, path: string, ends?: CognitoWatchEndReason[]): void {
  served.ws.route(path, served.app.authenticate, (socket, request) => {
    if (ends === undefined) served.app.cognitoWatch(request)
    else served.app.cognitoWatch(request, (reason) => { ends.push(reason); socket.close(4401, reason) })
    socket.on('message', (data: Buffer) => socket.send(data.toString()))
  })
}

/** An event stream at `path`: one event, then open until the watch ends it (the default ending). */
export function streamRoute (served: Served, path: string): void {
  served.app.get(path, { onRequest: served.app.authenticate }, (request, reply) => {
    reply.hijack()
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' })
    reply.raw.write('data: hello\n\n')
    served.app.cognitoWatch(request)
  })
}

/** No timeout of its own: a stream stays open for as long as the server keeps it. */
export function agent (t: Test, options: Agent.Options = {}): Agent {
  const dispatcher = new Agent({ bodyTimeout: 0, headersTimeout: 0, ...options })
  t.teardown(() => dispatcher.close())
  return dispatcher
}

export interface Stream {
  /** The text read so far. */
  text: () => string
  /** Resolves once the server ended the stream. */
  ended: Promise<void>
}

/** Opens an event stream with fetch, reads its first event, then goes on reading to its end. */
export async function openStream (t: Test, url: string, token: string, dispatcher = agent(t)): Promise<Stream> {
  const controller = new AbortController()
  t.teardown(() => {
    // The body's reader rejects with the abort; nothing waits for it any more.
    try { controller.abort() } catch {}
  })
  const response = await fetch(`http://${url}`, { headers: { authorization: `Bearer ${token}` }, dispatcher, signal: controller.signal })
  if (response.status !== 200) throw new Error(`status ${response.status}`)
  const reader = (response.body as ReadableStream<Uint8Array>).getReader()
  const decoder = new TextDecoder()
  let text = ''
  const first = await reader.read()
  text += decoder.decode(first.value)
  const ended = (async () => {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return
      text += decoder.decode(value)
    }
  })()
  ended.catch(() => {})
  return { text: () => text, ended }
}
