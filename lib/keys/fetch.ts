/**
 * The HTTP side of a key store: get-jwks, and the undici dispatcher that its `fetch` goes through.
 *
 * This is the only module that loads get-jwks and undici, and it loads them when a store makes its
 * first fetch (`openRemote`), not at import: an application that gives its keys up front, or one
 * that has not met a token yet, does not pay for them. Only types are imported statically.
 *
 * get-jwks hands its `fetchOptions` to the global `fetch` and ignores its own `timeout`, so the
 * bounds of each fetch live here: a deadline for the whole exchange (connecting included), a cap
 * on the body, no redirects, and an abort when the server closes. get-jwks answers one `kid` per
 * call; the dispatcher also keeps the response it fetched, so that the store sees the whole key
 * set (what was added, what was removed) from the same single request. `fetchDocument` fetches
 * other documents (a load balancer's PEM keys, lib/alb/keys.ts) through the same bounds.
 */
import { brotliDecompressSync, gunzipSync, inflateRawSync, inflateSync } from 'node:zlib'
import type { Dispatcher } from 'undici'
import type { GetJwks } from 'get-jwks'

/** A JWKS response as it came off the wire (decoded); no body when the exchange broke off. */
export interface JwksResponse {
  status: number
  body?: Buffer
}

export interface JwksFetchLimits {
  timeoutMs: number
  maxBytes: number
}

/** Why a fetch was cut short; its message is what the failure is logged with. */
export class FetchAbortedError extends Error {
  constructor (message: string, readonly closing: boolean) {
    super(message)
    this.name = 'FetchAbortedError'
  }
}

/** How a store with a URI fetches: get-jwks, through the bounded dispatcher, for one domain. */
export interface Remote {
  fetcher: JwksFetcher
  getJwks: GetJwks
  domain: string
  /** The key of a `kid` in get-jwks' cache. */
  cacheKey: (kid: string) => string
}

export interface RemoteOptions extends JwksFetchLimits {
  jwksUri: string
  ttlMs: number
  maxKeys: number
}

/** Keys are asked of get-jwks for RS256, the only algorithm the plugin accepts. */
export const ALG = 'RS256'

/** Loads get-jwks (and, through the fetcher, undici) and sets them up for one JWKS URI. */
export function openRemote ({ jwksUri, ttlMs, maxKeys, timeoutMs, maxBytes }: RemoteOptions): Remote {
  const buildGetJwks = require('get-jwks') as typeof import('get-jwks')
  const { domain, jwksPath } = splitUri(jwksUri)
  const fetcher = new JwksFetcher({ timeoutMs, maxBytes })
  const getJwks = buildGetJwks({
    // Its LRU cache takes whole milliseconds, and holds an entry until strictly past its TTL:
    // one less makes the keys due at the TTL itself.
    ttl: Math.max(1, Math.ceil(ttlMs) - 1),
    max: maxKeys,
    issuersWhitelist: [domain],
    jwksPath,
    fetchOptions: fetcher.fetchOptions
  })
  return { fetcher, getJwks, domain, cacheKey: (kid) => getJwks.generateCacheKey(ALG, kid, domain) }
}

/**
 * get-jwks fetches `<domain><jwksPath>`: the configured URI, split at its last path segment, so
 * that the URL fetched is exactly the configured one, never one derived from a token.
 */
function splitUri (jwksUri: string): { domain: string, jwksPath: string } {
  const url = new URL(jwksUri)
  const cut = url.pathname.lastIndexOf('/') + 1
  return { domain: url.origin + url.pathname.slice(0, cut), jwksPath: url.pathname.slice(cut) + url.search }
}

/** Ends an exchange with an error: the timeout, or the server closing. */
type Fail = (err: Error) => void

/** The handler `fetch` hands to its dispatcher, which has every callback a GET needs. */
type FetchHandler = Required<Pick<Dispatcher.DispatchHandlers, 'onConnect' | 'onError' | 'onResponseStarted' | 'onHeaders' | 'onData' | 'onComplete'>>

export class JwksFetcher {
  /** Spread by get-jwks into every `fetch` call. */
  readonly fetchOptions: { dispatcher: Dispatcher, redirect: 'error', headers: Record<string, string> }
  private readonly agent: Dispatcher
  /** The exchanges under way, from the moment they are dispatched (before connecting). */
  private readonly exchanges = new Set<Fail>()
  /** The last response; the store takes it once the fetch has settled. */
  private response: JwksResponse | undefined

  constructor ({ timeoutMs, maxBytes }: JwksFetchLimits) {
    const { Agent } = require('undici') as typeof import('undici')
    // undici's own timeouts are a backstop, a second later: the deadline below ends the exchange.
    const backstopMs = timeoutMs + 1000
    this.agent = new Agent({
      connectTimeout: backstopMs,
      headersTimeout: backstopMs,
      bodyTimeout: backstopMs,
      maxResponseSize: maxBytes
    })
    const dispatcher = this.agent.compose((dispatch) => (options, handler) =>
      dispatch(options, this.observe(handler, timeoutMs, maxBytes)))
    // The body is read as it comes off the wire, so it is asked for uncompressed (`fetch` would
    // ask for gzip, which CDNs serve); a server that compresses all the same is decoded below.
    this.fetchOptions = { dispatcher, redirect: 'error', headers: { accept: 'application/json', 'accept-encoding': 'identity' } }
  }

  /** The response of the fetch that just settled, if one came; cleared for the next fetch. */
  takeResponse (): JwksResponse | undefined {
    const response = this.response
    this.response = undefined
    return response
  }

  /** Aborts the fetches under way, connecting or not, for good: the agent is destroyed. */
  close (): void {
    for (const fail of this.exchanges) fail(new FetchAbortedError('aborted: the server is closing', true))
    this.agent.destroy(noop)
  }

  /**
   * Wraps fetch's handler: a deadline from the dispatch on (a slow connect counts), a body
   * decoded if the server compressed it anyway, and a copy of that body.
   */
  private observe (handler: Dispatcher.DispatchHandlers, timeoutMs: number, maxBytes: number): Dispatcher.DispatchHandlers {
    const next = handler as FetchHandler
    let status = 0
    let chunks: Buffer[] = []
    let codings: string[] = []
    /** fetch's view of a compressed response, given once the body is decoded. */
    let deferred: (() => void) | undefined
    let abortRequest: Fail | undefined
    let failure: Error | undefined
    let settled = false
    const settle = (): void => {
      settled = true
      clearTimeout(timer)
      this.exchanges.delete(fail)
    }
    // Called at most once: the timer and the close both go through `exchanges`, left on settling.
    const fail: Fail = (err) => {
      failure = err
      // Connected: undici aborts the request and calls onError, which tells fetch.
      if (abortRequest !== undefined) return abortRequest(err)
      // Still connecting: fetch is told now; the connection is dropped when it comes (onConnect).
      settle()
      next.onError(err)
    }
    const timer = setTimeout(() => fail(new FetchAbortedError(`timed out after ${timeoutMs} ms`, false)), timeoutMs)
    this.exchanges.add(fail)
    // A GET has no request body and asks for no upgrade: those callbacks are never needed.
    return {
      onConnect: (abort) => {
        if (settled) return abort(failure)
        abortRequest = abort
        next.onConnect(abort)
      },
      onError: (err) => {
        if (settled) return
        settle()
        next.onError(err)
      },
      onResponseStarted: () => next.onResponseStarted(),
      onHeaders: (statusCode, headers, resume, statusText) => {
        status = statusCode
        chunks = []
        this.response = { status }
        codings = contentCodings(headers)
        if (codings.length === 0) return next.onHeaders(statusCode, headers, resume, statusText)
        // A compressed response goes to fetch once decoded, whole (it is at most maxBytes): a body
        // that cannot be decoded then fails the fetch as a network error would.
        deferred = () => { next.onHeaders(statusCode, withoutCoding(headers), resume, statusText) }
        return true
      },
      onData: (chunk) => {
        chunks.push(chunk)
        return deferred === undefined ? next.onData(chunk) : true
      },
      onComplete: (trailers) => {
        settle()
        let body: Buffer = Buffer.concat(chunks)
        if (codings.length > 0) {
          try {
            body = decode(body, codings, maxBytes)
          } catch (err) {
            next.onError(err as Error)
            return
          }
          deferred?.()
          next.onData(body)
        }
        this.response = { status, body }
        next.onComplete(trailers)
      }
    }
  }
}

/** The codings of a response's `content-encoding`, in the order they were applied; none for identity. */
function contentCodings (headers: Buffer[]): string[] {
  const codings: string[] = []
  for (let i = 0; i + 1 < headers.length; i += 2) {
    if (String(headers[i]).toLowerCase() !== 'content-encoding') continue
    for (const coding of String(headers[i + 1]).split(',')) {
      const name = coding.trim().toLowerCase()
      if (name !== '' && name !== 'identity') codings.push(name)
    }
  }
  return codings
}

/** The headers as fetch should see a decoded body: neither its coding nor its compressed length. */
function withoutCoding (headers: Buffer[]): Buffer[] {
  const kept: Buffer[] = []
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const name = String(headers[i]).toLowerCase()
    if (name !== 'content-encoding' && name !== 'content-length') kept.push(headers[i], headers[i + 1])
  }
  return kept
}

/** Undoes the codings, last applied first, as `fetch` would; the result is held to `maxBytes` too. */
function decode (body: Buffer, codings: readonly string[], maxBytes: number): Buffer {
  const options = { maxOutputLength: maxBytes }
  for (const coding of [...codings].reverse()) {
    try {
      switch (coding) {
        case 'gzip':
        case 'x-gzip':
          body = gunzipSync(body, options)
          break
        case 'deflate':
          // "deflate" should be zlib-wrapped; some servers send it raw, and fetch reads both.
          body = (body[0] & 0x0f) === 0x08 ? inflateSync(body, options) : inflateRawSync(body, options)
          break
        case 'br':
          body = brotliDecompressSync(body, options)
          break
        default:
          throw new Error(`unsupported content-encoding ${coding}`)
      }
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') throw new Error(`the body is over ${maxBytes} bytes`)
      if ((err as { code?: unknown }).code === undefined) throw err
      throw new Error(`the body is not valid ${coding}`)
    }
  }
  return body
}

function noop (): void {}

/** A document fetched whole through a fetcher's bounds: its status and its body (at most `maxBytes`). */
export interface FetchedDocument {
  status: number
  body: Buffer
}

/**
 * Fetches one document that is not a JWKS (a load balancer's PEM key) through the fetcher's
 * dispatcher: the same deadline, body cap and refusal of redirects as the JWKS fetches.
 * Rejects as `fetch` does, with the network's error as `cause`.
 */
export async function fetchDocument (fetcher: JwksFetcher, url: string, accept: string): Promise<FetchedDocument> {
  const { dispatcher, redirect, headers } = fetcher.fetchOptions
  // The global fetch takes undici's dispatcher; its bundled types name another copy of the class.
  const init = { dispatcher, redirect, headers: { ...headers, accept } } as unknown as RequestInit
  const response = await fetch(url, init)
  return { status: response.status, body: Buffer.from(await response.arrayBuffer()) }
}
