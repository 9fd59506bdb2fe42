/**
 * The `fastify-cognito-jwt:jwks` events: one per fetch (fetched, failed, aborted), one per
 * rotation and one per expiry, each with its exact shape; none published while nobody listens.
 */
import { channel } from 'node:diagnostics_channel'
import Fastify from 'fastify'
import t from 'tap'
import cognitoAuth, { channels, type CognitoJwksEvent, type JsonWebKeySet } from '../index'
import { KeyStore, type KeyStoreOptions } from '../lib/keys/store'
import { LocalIssuer } from '../testing'
import { fakeClock } from './helpers/clock'
import { captureJwksEvents, testKeyStore } from './helpers/jwks-edges'
import { JwksServer } from './helpers/jwks-server'

const issuer = new LocalIssuer()
const successor = new LocalIssuer()
const both: JsonWebKeySet = { keys: [...issuer.jwks.keys, ...successor.jwks.keys] }

async function keyStore (t: tap.Test, options: Partial<KeyStoreOptions<string>> = {}): Promise<{ store: KeyStore<string>, server: JwksServer, publish: (jwks: JsonWebKeySet) => void }> {
  let published = issuer.jwks
  const server = await JwksServer.start(t, { keys: () => published })
  const app = Fastify()
  t.teardown(() => app.close())
  const store = testKeyStore(t, server.url, app.log, options)
  return { store, server, publish: (jwks) => { published = jwks } }
}

/** The event without its duration, which only has to be a number of milliseconds. */
function timed (t: tap.Test, event: CognitoJwksEvent | undefined): Omit<CognitoJwksEvent, 'durationMs'> {
  t.type(event?.durationMs, 'number', 'a duration in ms')
  t.ok((event?.durationMs ?? -1) >= 0)
  const { durationMs, ...rest } = event as CognitoJwksEvent
  return rest
}

t.test('fetched: once per fetch, with the status and the keys held', async (t) => {
  const events = captureJwksEvents(t)
  const { store, server } = await keyStore(t)
  await store.refresh()
  t.equal(events.length, 1)
  t.same(timed(t, events[0]), { jwksUri: server.url, outcome: 'fetched', status: 200, keys: 1 })
  await Promise.all([store.refresh(), store.refresh(), store.refresh()])
  t.equal(events.length, 2, 'concurrent refreshes share one fetch, and one event')
  t.equal(server.requests, 2)
})

t.test('failed: with the status, when one came, and the reason', async (t) => {
  const events = captureJwksEvents(t)
  const { store, server } = await keyStore(t)
  await server.setMode('error')
  await t.rejects(store.refresh())
  t.same(events.map((event) => timed(t, event)), [{ jwksUri: server.url, outcome: 'failed', status: 500, keys: 0, reason: 'unexpected status 500' }])
  await server.setMode('refused')
  await t.rejects(store.refresh())
  t.equal(events.length, 2)
  t.match(timed(t, events[1]), { outcome: 'failed', status: null, keys: 0, reason: /^connect ECONNREFUSED/ })
})

t.test('aborted: the server closing during a fetch, after its headers came', async (t) => {
  const events = captureJwksEvents(t)
  const { store, server } = await keyStore(t)
  await server.setMode('slow-body')
  const fetching = store.refresh()
  await server.receivedRequests(1)
  // Half the body is on its way; the headers may not have been read yet: wait until they are.
  const fetcher = (store as unknown as { remote: { fetcher: { response?: unknown } } }).remote.fetcher
  for (let tries = 0; fetcher.response === undefined && tries < 1000; tries++) await new Promise((resolve) => setTimeout(resolve, 5))
  store.close()
  await t.rejects(fetching, { name: 'FetchAbortedError', closing: true })
  t.same(events.map((event) => timed(t, event)), [{ jwksUri: server.url, outcome: 'aborted', status: 200, keys: 0, reason: 'aborted: the server is closing' }])
  await t.rejects(store.refresh(), { name: 'FetchAbortedError', closing: true })
  t.equal(events.length, 1, 'a closed store makes no fetch, and publishes nothing')
})

t.test('rotated: once per change of the key set, never for the first load', async (t) => {
  const events = captureJwksEvents(t)
  const { store, server, publish } = await keyStore(t)
  await store.refresh()
  publish(both)
  await store.refresh()
  publish(successor.jwks)
  await store.refresh()
  await store.refresh()
  t.same(events.map((event) => event.outcome), ['fetched', 'rotated', 'fetched', 'rotated', 'fetched', 'fetched'])
  t.same(events[1], { jwksUri: server.url, outcome: 'rotated', status: null, durationMs: null, keys: 2, added: [successor.kid], removed: [] })
  t.same(events[3], { jwksUri: server.url, outcome: 'rotated', status: null, durationMs: null, keys: 1, added: [], removed: [issuer.kid] })
})

t.test('expired: the kids dropped once the keys are too stale', async (t) => {
  const clock = fakeClock(t)
  const events = captureJwksEvents(t)
  const { store, server } = await keyStore(t, { ttlMs: 1000, maxStaleMs: 0 })
  await store.refresh()
  await server.setMode('error')
  clock.tick(1000)
  await clock.settle()
  t.equal(store.get(issuer.kid), undefined)
  await t.rejects(store.refresh())
  t.same(events.map((event) => event.outcome), ['fetched', 'expired', 'failed'])
  t.same(events[1], { jwksUri: server.url, outcome: 'expired', status: null, durationMs: null, keys: 0, removed: [issuer.kid] })
})

t.test('nothing is published while nobody listens', async (t) => {
  const jwks = channel(channels.jwks)
  t.equal(jwks.hasSubscribers, false, 'no listener in this test yet')
  const { store, publish } = await keyStore(t)
  await store.refresh()
  publish(both)
  await store.refresh()
  // A listener that arrives later hears only what happens from then on: nothing was queued.
  const events = captureJwksEvents(t)
  await store.refresh()
  t.same(events.map((event) => event.outcome), ['fetched'])
})

t.test('through the plugin: warm start and a rotation seen by a request; no token in any message', async (t) => {
  const events = captureJwksEvents(t)
  let published = issuer.jwks
  const server = await JwksServer.start(t, { keys: () => published })
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, { userPoolId: issuer.userPoolId, clientId: issuer.clientId, jwksUri: server.url, jwksCache: { cooldown: 0 } })
  app.get('/', { onRequest: app.authenticate }, async () => 'ok')
  await app.ready()
  published = both
  const token = successor.idToken()
  const response = await app.inject({ url: '/', headers: { authorization: `Bearer ${token}` } })
  t.equal(response.statusCode, 200)
  t.same(events.map((event) => event.outcome), ['fetched', 'rotated', 'fetched'])
  const text = JSON.stringify(events)
  for (const part of token.split('.')) t.notOk(text.includes(part), 'no part of the token')
})
