/**
 * The HTTP side of a key store: the undici dispatcher that get-jwks' `fetch` goes through.
 *
 * get-jwks hands its `fetchOptions` to the global `fetch` and ignores its own `timeout`, so the
 * bounds of each fetch live here: a deadline for the whole exchange (body included), a cap on the
 * body, no redirects, and an abort when the server closes. get-jwks answers one `kid` per call;
 * the dispatcher also keeps the response it fetched, so that the store sees the whole key set
 * (what was added, what was removed) from the same single request.
 */
import { Agent, type Dispatcher } from 'undici'

/** A JWKS response as it came off the wire; no body when the exchange broke off after the headers. */
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

type Abort = (err?: Error) => void

/** The handler `fetch` hands to its dispatcher, which has every callback a GET needs. */
type FetchHandler = Required<Pick<Dispatcher.DispatchHandlers, 'onConnect' | 'onError' | 'onResponseStarted' | 'onHeaders' | 'onData' | 'onComplete'>>

export class JwksFetcher {
  /** Spread by get-jwks into every `fetch` call. */
  readonly fetchOptions: { dispatcher: Dispatcher, redirect: 'error', headers: Record<string, string> }
  private readonly agent: Agent
  private readonly aborts = new Set<Abort>()
  /** The last response; the store takes it once the fetch has settled. */
  private response: JwksResponse | undefined

  constructor ({ timeoutMs, maxBytes }: JwksFetchLimits) {
    this.agent = new Agent({
      connectTimeout: timeoutMs,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      maxResponseSize: maxBytes
    })
    const dispatcher = this.agent.compose((dispatch) => (options, handler) =>
      dispatch(options, this.observe(handler, timeoutMs)))
    // The body is read as it comes off the wire, so it must come uncompressed: `fetch` would
    // otherwise ask for gzip, which CDNs serve.
    this.fetchOptions = { dispatcher, redirect: 'error', headers: { accept: 'application/json', 'accept-encoding': 'identity' } }
  }

  /** The response of the fetch that just settled, if one came; cleared for the next fetch. */
  takeResponse (): JwksResponse | undefined {
    const response = this.response
    this.response = undefined
    return response
  }

  /** Aborts the fetches under way, for good: the agent is destroyed. */
  close (): void {
    for (const abort of this.aborts) abort(new FetchAbortedError('aborted: the server is closing', true))
    this.agent.destroy(noop)
  }

  /** Wraps fetch's handler: a deadline for the whole exchange, and a copy of the body. */
  private observe (handler: Dispatcher.DispatchHandlers, timeoutMs: number): Dispatcher.DispatchHandlers {
    const next = handler as FetchHandler
    let status = 0
    let chunks: Buffer[] = []
    let timer: NodeJS.Timeout | undefined
    let abort: Abort | undefined
    const settle = (): void => {
      clearTimeout(timer)
      this.aborts.delete(abort as Abort)
    }
    // A GET has no request body and asks for no upgrade: those callbacks are never needed.
    return {
      onConnect: (abortRequest) => {
        abort = abortRequest
        this.aborts.add(abortRequest)
        clearTimeout(timer) // called again when a request is retried
        timer = setTimeout(() => abortRequest(new FetchAbortedError(`timed out after ${timeoutMs} ms`, false)), timeoutMs)
        next.onConnect(abortRequest)
      },
      onError: (err) => {
        settle()
        next.onError(err)
      },
      onResponseStarted: () => next.onResponseStarted(),
      onHeaders: (statusCode, headers, resume, statusText) => {
        status = statusCode
        chunks = []
        this.response = { status }
        return next.onHeaders(statusCode, headers, resume, statusText)
      },
      onData: (chunk) => {
        chunks.push(chunk)
        return next.onData(chunk)
      },
      onComplete: (trailers) => {
        settle()
        this.response = { status, body: Buffer.concat(chunks) }
        next.onComplete(trailers)
      }
    }
  }
}

function noop (): void {}
