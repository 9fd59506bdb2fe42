/**
 * A JWKS endpoint on 127.0.0.1 whose behaviour the test sets: it serves the keys, or fails in
 * one of the ways a real endpoint can. It counts the requests it receives, and stops when the
 * test ends.
 */
import { createServer, type ServerResponse } from 'node:http'
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib'
import type { AddressInfo } from 'node:net'
import type { JsonWebKeySet } from '../../types'

export type JwksServerMode =
  /** 200 with the current keys, gzipped for a client that accepts gzip. */
  | 'ok'
  /** Never answers, until the server stops. */
  | 'slow'
  /** Sends the headers and half of the body, then nothing more. */
  | 'slow-body'
  /** 500. */
  | 'error'
  /** 204, a response without a body. */
  | 'no-content'
  /** Nothing listens on the port any more: connections are refused. */
  | 'refused'
  /** 200 with a body that is not JSON. */
  | 'not-json'
  /** 200 with JSON that is not a JWKS. */
  | 'not-jwks'
  /** 200 with a JWKS none of whose keys can verify RS256 tokens. */
  | 'unusable-keys'
  /** 200 with the keys padded past `oversizeBytes`, with Content-Length. */
  | 'oversize'
  /** The same body, chunked: no Content-Length. */
  | 'oversize-chunked'
  /** 302 to another path of this server. */
  | 'redirect'
  /** 200 with the keys compressed although the client asked for identity, as some servers do. */
  | 'gzip' | 'deflate' | 'deflate-raw' | 'br' | 'gzip-deflate'
  /** 200 with a small gzip body that inflates past `oversizeBytes`. */
  | 'gzip-oversize'
  /** 200 claiming gzip, with a body that is not. */
  | 'gzip-corrupt'
  /** 200 with a coding neither fetch nor the plugin knows. */
  | 'compress'

export interface JwksServerOptions {
  /** The keys served; read on every request, so that a rotation shows at once. */
  keys: () => JsonWebKeySet
  /** The size the oversize modes exceed. Default 70,000 (over the plugin's 64 KiB default). */
  oversizeBytes?: number
}

interface Teardown {
  teardown: (fn: () => Promise<void>) => void
}

export class JwksServer {
  /** Requests received since the start (redirects followed would count twice). */
  requests = 0
  private current: JwksServerMode = 'ok'
  private waiters: Array<{ count: number, resolve: () => void }> = []
  private readonly server = createServer((request, response) => this.answer(request.url, request.headers['accept-encoding'], response))
  private port = 0

  private constructor (private readonly options: JwksServerOptions) {}

  /** Starts a server, stopped when `t` ends. */
  static async start (t: Teardown, options: JwksServerOptions): Promise<JwksServer> {
    const jwksServer = new JwksServer(options)
    await jwksServer.listen()
    t.teardown(() => jwksServer.stop())
    return jwksServer
  }

  get url (): string {
    return `http://127.0.0.1:${this.port}/jwks.json`
  }

  /** Changes the behaviour; 'refused' closes the port, any other mode opens it again. */
  async setMode (mode: JwksServerMode): Promise<void> {
    const wasRefusing = this.current === 'refused'
    this.current = mode
    if (mode === 'refused' && !wasRefusing) await this.unlisten()
    if (mode !== 'refused' && wasRefusing) await this.listen()
  }

  /** Resolves once `count` requests in all have arrived (to act while a slow one hangs). */
  async receivedRequests (count: number): Promise<void> {
    if (this.requests >= count) return
    await new Promise<void>((resolve) => this.waiters.push({ count, resolve }))
  }

  async stop (): Promise<void> {
    if (this.current !== 'refused') await this.unlisten()
    this.current = 'refused'
  }

  private async listen (): Promise<void> {
    // The same port after a 'refused' spell, so that the configured URL stays valid.
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(this.port, '127.0.0.1', () => {
        this.server.off('error', reject)
        resolve()
      })
    })
    this.port = (this.server.address() as AddressInfo).port
  }

  private async unlisten (): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    // Keep-alive sockets and hanging responses would otherwise keep the port answering.
    this.server.closeAllConnections()
    await closed
  }

  private answer (path: string | undefined, acceptEncoding: string | undefined, response: ServerResponse): void {
    this.requests++
    for (const waiter of this.waiters.filter(({ count }) => this.requests >= count)) {
      this.waiters.splice(this.waiters.indexOf(waiter), 1)
      waiter.resolve()
    }
    if (path !== '/jwks.json') {
      response.writeHead(404).end()
      return
    }
    const json = { 'content-type': 'application/json' }
    switch (this.current) {
      case 'ok':
        // As CDNs do: compressed for a client that accepts it.
        if (acceptEncoding?.includes('gzip') === true) {
          response.writeHead(200, { ...json, 'content-encoding': 'gzip' }).end(gzipSync(JSON.stringify(this.options.keys())))
        } else {
          response.writeHead(200, json).end(JSON.stringify(this.options.keys()))
        }
        return
      case 'slow':
        return
      case 'slow-body': {
        const body = JSON.stringify(this.options.keys())
        response.writeHead(200, { ...json, 'content-length': Buffer.byteLength(body) })
        response.write(body.slice(0, body.length >> 1))
        return
      }
      case 'error':
        response.writeHead(500, json).end('{"message":"internal error"}')
        return
      case 'no-content':
        response.writeHead(204).end()
        return
      case 'not-json':
        response.writeHead(200, json).end('<html>maintenance</html>')
        return
      case 'not-jwks':
        response.writeHead(200, json).end('{"message":"hello"}')
        return
      case 'unusable-keys': {
        const keys = this.options.keys().keys.map((key) => ({ ...key, use: 'enc' }))
        response.writeHead(200, json).end(JSON.stringify({ keys }))
        return
      }
      case 'oversize': {
        const body = this.paddedKeys()
        response.writeHead(200, { ...json, 'content-length': Buffer.byteLength(body) }).end(body)
        return
      }
      case 'oversize-chunked': {
        response.writeHead(200, json)
        // Several writes and no Content-Length: Node sends the body chunked.
        const body = this.paddedKeys()
        for (let at = 0; at < body.length; at += 4096) response.write(body.slice(at, at + 4096))
        response.end()
        return
      }
      case 'redirect':
        response.writeHead(302, { location: '/elsewhere' }).end()
        return
      case 'gzip':
      case 'deflate':
      case 'deflate-raw':
      case 'br':
      case 'gzip-deflate':
      case 'gzip-oversize':
      case 'gzip-corrupt':
      case 'compress':
        this.answerCompressed(this.current, response)
    }
  }

  /** Compressed whatever the request's accept-encoding said. */
  private answerCompressed (mode: JwksServerMode, response: ServerResponse): void {
    const body = Buffer.from(mode === 'gzip-oversize' ? this.paddedKeys() : JSON.stringify(this.options.keys()))
    const [coding, compressed] =
      mode === 'deflate' ? ['deflate', deflateSync(body)]
        : mode === 'deflate-raw' ? ['deflate', deflateRawSync(body)]
          : mode === 'br' ? ['br', brotliCompressSync(body)]
            : mode === 'gzip-deflate' ? ['deflate, gzip', gzipSync(deflateSync(body))]
              : mode === 'gzip-corrupt' ? ['gzip', body]
                : mode === 'compress' ? ['compress', body]
                  : ['gzip', gzipSync(body)]
    response.writeHead(200, { 'content-type': 'application/json', 'content-encoding': coding, 'content-length': compressed.length }).end(compressed)
  }

  /** A valid JWKS, larger than `oversizeBytes`: only the size cap refuses it. */
  private paddedKeys (): string {
    const size = this.options.oversizeBytes ?? 70_000
    return JSON.stringify({ ...this.options.keys(), padding: 'x'.repeat(size) })
  }
}
