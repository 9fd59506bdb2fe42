/**
 * One bounded HTTP GET of a JSON document: its own timeout per call, body included (a shared
 * AbortSignal would stay aborted after the first timeout), a cap on the body, no redirects.
 */

export class FetchError extends Error {
  constructor (message: string, readonly status?: number) {
    super(message)
    this.name = 'FetchError'
  }
}

export interface FetchJsonOptions {
  timeoutMs: number
  maxBytes: number
  /** Aborts the fetch from outside (the server closing). */
  signal: AbortSignal
}

export async function fetchJson (url: string, { timeoutMs, maxBytes, signal }: FetchJsonOptions): Promise<{ status: number, body: unknown }> {
  const timeout = AbortSignal.timeout(timeoutMs)
  try {
    const response = await fetch(url, {
      signal: AbortSignal.any([timeout, signal]),
      redirect: 'error',
      headers: { accept: 'application/json' }
    })
    if (response.status !== 200) {
      await response.body?.cancel()
      throw new FetchError(`unexpected status ${response.status}`, response.status)
    }
    const text = await readCapped(response, maxBytes)
    try {
      return { status: response.status, body: JSON.parse(text) }
    } catch {
      throw new FetchError('the body is not JSON', response.status)
    }
  } catch (err) {
    // A timeout says so, rather than with the bare abort error.
    throw timeout.aborted ? new FetchError(`timed out after ${timeoutMs} ms`) : err
  }
}

async function readCapped (response: Response, maxBytes: number): Promise<string> {
  const declared = Number(response.headers.get('content-length'))
  if (declared > maxBytes) {
    await response.body?.cancel()
    throw new FetchError(`the body is over ${maxBytes} bytes`, response.status)
  }
  const chunks: Uint8Array[] = []
  let size = 0
  // A body without Content-Length (chunked) is counted as it arrives.
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength
    if (size > maxBytes) throw new FetchError(`the body is over ${maxBytes} bytes`, response.status)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}
