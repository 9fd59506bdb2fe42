/**
 * What the key store tests share beyond the JWKS server: an endpoint whose connection never comes
 * up, and the `jwks` events, captured.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { createServer, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import type { FastifyBaseLogger } from 'fastify'
import { channels, type CognitoJwksEvent } from '../../index'
import { KeyStore, type KeyStoreOptions } from '../../lib/keys/store'

interface Teardown {
  teardown: (fn: () => void | Promise<void>) => void
}

/**
 * An `https` JWKS URI on 127.0.0.1 whose TLS handshake never completes: the TCP connection is
 * accepted and the client's hello goes unanswered, so the fetch stays "connecting" for as long as
 * the client waits. Deterministic, unlike a full accept backlog.
 */
export interface HangingEndpoint {
  url: string
  /** TCP connections accepted so far. */
  readonly connections: number
  /** Resolves once `count` connections in all have been accepted. */
  connected: (count: number) => Promise<void>
}

export async function hangingEndpoint (t: Teardown): Promise<HangingEndpoint> {
  const sockets = new Set<Socket>()
  let connections = 0
  let waiters: Array<{ count: number, resolve: () => void }> = []
  const server = createServer((socket) => {
    connections++
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    for (const waiter of waiters.filter(({ count }) => connections >= count)) waiter.resolve()
    waiters = waiters.filter(({ count }) => connections < count)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `https://127.0.0.1:${port}/jwks.json`,
    get connections () { return connections },
    connected: async (count) => {
      if (connections >= count) return
      await new Promise<void>((resolve) => waiters.push({ count, resolve }))
    }
  }
}

/** Every `jwks` event published from now until the test ends. */
export function captureJwksEvents (t: Teardown): CognitoJwksEvent[] {
  const events: CognitoJwksEvent[] = []
  const listener = (message: unknown): void => { events.push(message as CognitoJwksEvent) }
  subscribe(channels.jwks, listener)
  t.teardown(() => { unsubscribe(channels.jwks, listener) })
  return events
}

/**
 * A key store as a pool of the plugin would have one, with test-sized settings (`prepare` keeps
 * the PEM), closed when the test ends.
 */
export function testKeyStore (t: Teardown, jwksUri: string, log: FastifyBaseLogger, options: Partial<KeyStoreOptions<string>> = {}): KeyStore<string> {
  const store = new KeyStore<string>({
    jwksUri,
    ttlMs: 60_000,
    maxKeys: 16,
    cooldownMs: 10_000,
    timeoutMs: 5000,
    maxStaleMs: 600_000,
    maxBytes: 65_536,
    log,
    prepare: (pem) => pem,
    ...options
  })
  t.teardown(() => store.close())
  return store
}
