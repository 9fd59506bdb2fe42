import t from 'tap'
import { fetchJson, FetchError } from '../lib/fetch-json'
import { LocalIssuer } from '../testing'
import { JwksServer } from './helpers/jwks-server'

const issuer = new LocalIssuer()
const never = new AbortController().signal
const defaults = { timeoutMs: 5000, maxBytes: 65_536, signal: never }

async function serving (t: tap.Test, oversizeBytes?: number): Promise<JwksServer> {
  return JwksServer.start(t, { keys: () => issuer.jwks, oversizeBytes })
}

t.test('a 200 JSON body is returned parsed', async (t) => {
  const server = await serving(t)
  const { status, body } = await fetchJson(server.url, defaults)
  t.equal(status, 200)
  t.same(body, issuer.jwks)
})

t.test('any status but 200 is an error that carries the status', async (t) => {
  const server = await serving(t)
  for (const [mode, status] of [['error', 500], ['no-content', 204]] as const) {
    await server.setMode(mode)
    const err: unknown = await fetchJson(server.url, defaults).catch((err: unknown) => err)
    t.type(err, FetchError, mode)
    t.equal((err as FetchError).status, status, mode)
    t.match((err as FetchError).message, `unexpected status ${status}`, mode)
  }
})

t.test('a body over maxBytes is refused, with Content-Length or chunked', async (t) => {
  const server = await serving(t, 2000)
  for (const mode of ['oversize', 'oversize-chunked'] as const) {
    await server.setMode(mode)
    await t.rejects(fetchJson(server.url, { ...defaults, maxBytes: 2000 }), { name: 'FetchError', message: 'the body is over 2000 bytes', status: 200 }, mode)
    // The same body passes under a cap that fits it: the cap alone refused it.
    const { body } = await fetchJson(server.url, { ...defaults, maxBytes: 100_000 })
    t.same((body as { keys: unknown }).keys, issuer.jwks.keys, mode)
  }
})

t.test('a body that is not JSON is refused', async (t) => {
  const server = await serving(t)
  await server.setMode('not-json')
  const err = await fetchJson(server.url, defaults).catch((err: unknown) => err)
  t.type(err, FetchError)
  t.equal((err as FetchError).message, 'the body is not JSON')
  t.equal((err as FetchError).status, 200)
})

t.test('a fetch that takes longer than timeoutMs fails, before or during the body', async (t) => {
  const server = await serving(t)
  for (const mode of ['slow', 'slow-body'] as const) {
    await server.setMode(mode)
    const before = server.requests
    await t.rejects(fetchJson(server.url, { ...defaults, timeoutMs: 100 }), { name: 'FetchError', message: 'timed out after 100 ms', status: undefined }, mode)
    t.equal(server.requests, before + 1, `${mode}: the request was made`)
  }
})

t.test('each call has its own timeout: a second call after a timeout is really made', async (t) => {
  const server = await serving(t)
  await server.setMode('slow')
  await t.rejects(fetchJson(server.url, { ...defaults, timeoutMs: 50 }), { message: 'timed out after 50 ms' })
  await server.setMode('ok')
  const { body } = await fetchJson(server.url, { ...defaults, timeoutMs: 5000 })
  t.same(body, issuer.jwks)
  t.equal(server.requests, 2)
})

t.test('redirects are refused, not followed', async (t) => {
  const server = await serving(t)
  await server.setMode('redirect')
  await t.rejects(fetchJson(server.url, defaults), TypeError)
  t.equal(server.requests, 1, 'the target of the redirect was not asked')
})

t.test('a refused connection is an error without a status', async (t) => {
  const server = await serving(t)
  const url = server.url
  await server.setMode('refused')
  const err = await fetchJson(url, defaults).catch((err: unknown) => err)
  t.type(err, TypeError)
  t.equal((err as { status?: number }).status, undefined)
})

t.test('the outside signal aborts a fetch under way', async (t) => {
  const server = await serving(t)
  await server.setMode('slow')
  const outside = new AbortController()
  const fetching = fetchJson(server.url, { ...defaults, signal: outside.signal })
  await server.receivedRequests(1)
  outside.abort()
  await t.rejects(fetching, { name: 'AbortError' })
})
