/**
 * Load from autocannon, and the checks before it: a server is measured only after it accepted a
 * valid token and refused the invalid ones, so that a misconfigured variant fails the run instead
 * of being measured answering fast 401s.
 */
import autocannon from 'autocannon'
import { CPU_ROUTE, ROUTE } from './config'

/** Hands out tokens in turn; one source is shared by all connections of a measurement. */
export class TokenCycle {
  private position = 0

  constructor (readonly tokens: readonly string[]) {
    if (tokens.length === 0) throw new Error('TokenCycle needs at least one token')
  }

  next (): string {
    const token = this.tokens[this.position]
    this.position = (this.position + 1) % this.tokens.length
    return token
  }
}

export interface LoadOptions {
  connections: number
  /** Seconds; ignored when `amount` is set. */
  duration: number
  /** Send exactly this many requests instead. */
  amount?: number
}

export interface Measurement {
  requestsPerSecond: number
  /** Of the 2xx responses, in milliseconds. */
  p99Ms: number
  non2xx: number
  /** Connection errors and timeouts. */
  errors: number
  /** CPU time (user + system) of the server process per response, in microseconds. */
  cpuMicrosPerRequest: number
}

/** Loads `url` with `Authorization: Bearer <token>`, one token for all requests or each in turn. */
export async function measure (url: string, tokens: TokenCycle, { connections, duration, amount }: LoadOptions): Promise<Measurement> {
  // One token: a fixed header, so the client does not rebuild each request.
  const requests: autocannon.Request[] = tokens.tokens.length === 1
    ? [{ method: 'GET', path: ROUTE, headers: { authorization: `Bearer ${tokens.tokens[0]}` } }]
    : [{ method: 'GET', path: ROUTE, setupRequest: (request) => ({ ...request, headers: { authorization: `Bearer ${tokens.next()}` } }) }]
  const latencies = new LatencyRecorder()
  const cpuBefore = await serverCpuMicros(url)
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon({ url, connections, requests, ...(amount === undefined ? { duration } : { amount }) }, (err, res) => {
      if (err !== null) reject(err)
      else resolve(res)
    })
    instance.on('response', (_client, statusCode, _bytes, responseTimeMs) => {
      if (statusCode >= 200 && statusCode < 300) latencies.record(responseTimeMs)
    })
  })
  return {
    requestsPerSecond: result.requests.average,
    p99Ms: latencies.percentile(99),
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    cpuMicrosPerRequest: (await serverCpuMicros(url) - cpuBefore) / result.requests.total
  }
}

async function serverCpuMicros (url: string): Promise<number> {
  const response = await fetch(`${url}${CPU_ROUTE}`)
  const { micros } = await response.json() as { micros: number }
  return micros
}

/**
 * Response times at full precision (autocannon's own histogram keeps whole milliseconds, too
 * coarse for sub-millisecond loopback latencies).
 */
class LatencyRecorder {
  private values = new Float64Array(1 << 16)
  private count = 0

  record (ms: number): void {
    if (this.count === this.values.length) {
      const grown = new Float64Array(this.values.length * 2)
      grown.set(this.values)
      this.values = grown
    }
    this.values[this.count++] = ms
  }

  percentile (p: number): number {
    if (this.count === 0) return NaN
    const sorted = this.values.subarray(0, this.count).sort()
    return sorted[Math.min(this.count - 1, Math.ceil((p / 100) * this.count) - 1)]
  }
}

async function statusOf (url: string, token: string): Promise<{ status: number, body: string }> {
  const response = await fetch(`${url}${ROUTE}`, { headers: { authorization: `Bearer ${token}` } })
  return { status: response.status, body: await response.text() }
}

/** Throws unless the server answers 2xx to a valid token. */
export async function assertAccepts (name: string, url: string, token: string): Promise<void> {
  const { status, body } = await statusOf(url, token)
  if (status < 200 || status >= 300) throw new Error(`${name} answered ${status} to a valid token: ${body}`)
}

/** Throws unless the server answers 401 to each of these tokens. */
export async function assertRefuses (name: string, url: string, tokens: Record<string, string>): Promise<void> {
  for (const [what, token] of Object.entries(tokens)) {
    const { status, body } = await statusOf(url, token)
    if (status !== 401) throw new Error(`${name} answered ${status} to a token it must refuse (${what}): ${body}`)
  }
}
