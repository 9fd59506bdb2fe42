/** The part of autocannon's API the runner uses (the package ships no type declarations). */
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events'

  namespace autocannon {
    interface Request {
      method?: string
      path?: string
      headers?: Record<string, string>
      setupRequest?: (request: Request, context: Record<string, unknown>) => Request
    }

    interface Options {
      url: string
      connections?: number
      /** Seconds. */
      duration?: number
      /** Stop after this many requests instead of after `duration`. */
      amount?: number
      headers?: Record<string, string>
      requests?: Request[]
    }

    interface Stats {
      average: number
      p99: number
      total: number
    }

    interface Result {
      requests: Stats
      latency: Stats
      /** Seconds. */
      duration: number
      non2xx: number
      errors: number
      timeouts: number
    }

    interface Instance extends EventEmitter {
      on(event: 'response', listener: (client: unknown, statusCode: number, bytes: number, responseTimeMs: number) => void): this
    }
  }

  function autocannon (options: autocannon.Options, callback: (err: Error | null, result: autocannon.Result) => void): autocannon.Instance

  export = autocannon
}
