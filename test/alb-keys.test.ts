/**
 * The load balancer's keys: PEM files fetched by `kid` from a server on 127.0.0.1 whose behaviour
 * the test sets. What "no such key" and "unavailable" answer, the bounds that keep a flood of
 * made-up `kid`s from fetching on every request, the events and counters, and the bounded store.
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { createServer, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import t, { type Test } from 'tap'
import cognitoAuth, { channels, type CognitoAuthOptions, type CognitoJwksEvent } from '../index'
import { AlbIssuer, LocalIssuer } from '../testing'
import { fakeClock } from './helpers/clock'

const pool = new LocalIssuer()
const rsaPem = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' })

type Mode = 'ok' | 'slow' | 'not-pem' | 'rsa' | 'big' | number

/** Serves the AlbIssuer's PEMs at `/keys/<kid>`, or fails as the test says; counts requests. */
class KeyServer {
  requests = 0
  mode: Mode = 'ok'
  keysUri = ''
  private readonly server: Server
  private readonly hanging = new Set<ServerResponse>()

  constructor (private readonly alb: AlbIssuer) {
    this.server = createServer((request, response) => {
      this.requests++
      const kid = (request.url ?? '').replace('/keys/', '')
      const mode = this.mode
      if (mode === 'slow') {
        this.hanging.add(response)
        return
      }
      if (typeof mode === 'number') return response.writeHead(mode).end('<Error/>')
      if (mode === 'not-pem') return response.writeHead(200).end('not a key')
      if (mode === 'rsa') return response.writeHead(200).end(rsaPem)
      if (mode === 'big') return response.writeHead(200).end('x'.repeat(10_000))
      const pem = this.alb.pem(kid)
      if (pem === undefined) response.writeHead(404).end()
      else response.writeHead(200).end(pem)
    })
  }

  async listen (t: Test): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    this.keysUri = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/keys/`
    t.teardown(async () => {
      for (const response of this.hanging) response.destroy()
      this.server.closeAllConnections()
      await new Promise((resolve) => this.server.close(resolve))
    })
  }
}

interface Setup {
  app: FastifyInstance
  alb: AlbIssuer
  keys: KeyServer
}

async function setup (t: Test, jwksCache: Record<string, unknown> = {}): Promise<Setup> {
  const alb = new AlbIssuer({ pool })
  const keys = new KeyServer(alb)
  await keys.listen(t)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, {
    ...pool.pluginOptions(),
    tokenUse: 'access',
    jwksCache,
    // With a trailing slash: the kid is appended after exactly one.
    alb: { loadBalancerArn: alb.loadBalancerArn, keysUri: keys.keysUri }
  } as CognitoAuthOptions)
  app.get('/me', { onRequest: app.authenticate }, async (request) => ({ sub: request.cognitoAlbClaims?.sub }))
  return { app, alb, keys }
}

function jwksEvents (t: Test): CognitoJwksEvent[] {
  const heard: CognitoJwksEvent[] = []
  const listener = (message: unknown): void => { heard.push(message as CognitoJwksEvent) }
  subscribe(channels.jwks, listener)
  t.teardown(() => unsubscribe(channels.jwks, listener))
  return heard
}

async function codeOf (app: FastifyInstance, headers: Record<string, string>): Promise<string> {
  const res = await app.inject({ url: '/me', headers })
  return res.statusCode === 200 ? 'ok' : `${res.statusCode as number} ${res.json().code as string}`
}

/** Resolves once the server has received this many requests: the fetch is under way. */
async function received (keys: KeyServer, count: number): Promise<void> {
  while (keys.requests < count) await new Promise((resolve) => setTimeout(resolve, 5))
}

/** Headers with a token signed by a key the server does not have, under a `kid` of its own. */
function unknownKid (alb: AlbIssuer): Record<string, string> {
  return alb.headers({}, { header: { kid: randomUUID() }, signingKey: AlbIssuer.foreignKey() })
}

t.test('a key fetched once, with its event and counters; the URL is <keysUri>/<kid>', async (t) => {
  const { app, alb, keys } = await setup(t)
  const events = jwksEvents(t)
  t.equal(await codeOf(app, alb.headers()), 'ok')
  t.equal(await codeOf(app, alb.headers()), 'ok')
  t.equal(keys.requests, 1)
  t.match(events, [{ jwksUri: keys.keysUri.slice(0, -1), outcome: 'fetched', status: 200, keys: 1 }])
  t.match(app.cognitoKeyStores(), [{ jwksUri: null }, { jwksUri: keys.keysUri.slice(0, -1), keys: 1, fetches: 1, failures: 0 }])
  t.type(app.cognitoKeyStores()[1].lastSuccess, 'number')
})

t.test('many requests for one new kid share one fetch', async (t) => {
  const { app, alb, keys } = await setup(t)
  const codes = await Promise.all(Array.from({ length: 20 }, () => codeOf(app, alb.headers())))
  t.same(new Set(codes), new Set(['ok']))
  t.equal(keys.requests, 1)
})

t.test('requests that share a fetch each get an error of their own', async (t) => {
  const { app, alb, keys } = await setup(t)
  keys.mode = 404
  const heard: unknown[] = []
  const listener = (message: unknown): void => { heard.push((message as { error: unknown }).error) }
  subscribe(channels.refused, listener)
  t.teardown(() => unsubscribe(channels.refused, listener))
  const headers = unknownKid(alb)
  const answers = await Promise.all(Array.from({ length: 5 }, async () => await app.inject({ url: '/me', headers })))
  t.same(answers.map((res) => res.statusCode), [401, 401, 401, 401, 401])
  for (const res of answers) t.match(res.headers['www-authenticate'], /error="invalid_token"/)
  t.equal(keys.requests, 1, 'one fetch for all of them')
  t.equal(new Set(heard).size, 5, 'five error objects')
})

t.test('any 4xx is no such key (401), remembered for the cooldown; other unknown kids wait for it', async (t) => {
  const clock = fakeClock(t)
  const { app, alb, keys } = await setup(t, { cooldown: 10 })
  const events = jwksEvents(t)
  keys.mode = 403 // S3's answer for a missing object
  const missing = unknownKid(alb)
  t.equal(await codeOf(app, missing), '401 FST_COGNITO_TOKEN_INVALID')
  t.match(events, [{ outcome: 'failed', status: 403, reason: 'no such key (status 403)' }])
  t.equal(await codeOf(app, missing), '401 FST_COGNITO_TOKEN_INVALID', 'the same kid: answered from memory')
  t.equal(await codeOf(app, unknownKid(alb)), '503 FST_COGNITO_JWKS_UNAVAILABLE', 'another unknown kid waits for the cooldown')
  t.equal(keys.requests, 1)
  clock.tick(10_000)
  keys.mode = 'ok'
  t.equal(await codeOf(app, alb.headers()), 'ok', 'after the cooldown, a new kid is fetched')
  t.equal(await codeOf(app, missing), '401 FST_COGNITO_TOKEN_INVALID', 'the missing kid is asked again')
  t.equal(keys.requests, 3)
})

t.test('a flood of made-up kids fetches at most once while it lasts', async (t) => {
  const { app, alb, keys } = await setup(t)
  keys.mode = 'slow'
  const first = codeOf(app, unknownKid(alb))
  await received(keys, 1)
  const flood = await Promise.all(Array.from({ length: 50 }, () => codeOf(app, unknownKid(alb))))
  t.same(new Set(flood), new Set(['503 FST_COGNITO_JWKS_UNAVAILABLE']), 'refused without a fetch while one is under way')
  t.equal(keys.requests, 1)
  keys.mode = 404
  await app.close()
  t.equal(await first, '503 FST_COGNITO_JWKS_UNAVAILABLE', 'the fetch under way is aborted by the close')
})

t.test('5xx, timeouts and bodies that are no P-256 key: unavailable (503), then a backoff', async (t) => {
  const clock = fakeClock(t)
  const { app, alb, keys } = await setup(t, { timeout: 0.2, maxBytes: 4096 })
  const events = jwksEvents(t)
  const cases: Array<[Mode, RegExp]> = [
    [500, /unexpected status 500/],
    ['not-pem', /not a PEM public key/],
    ['rsa', /not an EC P-256 public key/],
    ['big', /over 4096 bytes/],
    ['slow', /timed out after 200 ms/]
  ]
  let failures = 0
  for (const [mode, reason] of cases) {
    keys.mode = mode
    t.equal(await codeOf(app, alb.headers()), '503 FST_COGNITO_JWKS_UNAVAILABLE', String(mode))
    failures++
    t.match(events.at(-1), { outcome: 'failed', reason }, String(mode))
    t.equal(app.cognitoKeyStores()[1].failures, failures)
    t.equal(await codeOf(app, alb.headers()), '503 FST_COGNITO_JWKS_UNAVAILABLE', 'within the backoff: no fetch')
    t.equal(keys.requests, failures)
    clock.tick(60_000)
  }
  keys.mode = 'ok'
  t.equal(await codeOf(app, alb.headers()), 'ok', 'a success ends the backoff')
  t.equal(await codeOf(app, unknownKid(alb)), '401 FST_COGNITO_TOKEN_INVALID', 'and no cooldown follows a success')
})

t.test('the store keeps at most maxKeys keys: a key let go is fetched again, its cached tokens re-verified', async (t) => {
  const { app, alb, keys } = await setup(t, { maxKeys: 1, cooldown: 0 })
  const old = alb.headers()
  for (let i = 0; i < 3; i++) t.equal(await codeOf(app, old), 'ok')
  t.equal(keys.requests, 1)
  alb.rotate()
  t.equal(await codeOf(app, alb.headers()), 'ok')
  t.equal(keys.requests, 2)
  t.equal(app.cognitoKeyStores()[1].keys, 1)
  t.equal(await codeOf(app, old), 'ok', 'the cached token of the old key is verified again')
  t.equal(keys.requests, 3, 'with its key fetched again')
  // The missing kids remembered are bounded too.
  keys.mode = 404
  const a = unknownKid(alb)
  t.equal(await codeOf(app, a), '401 FST_COGNITO_TOKEN_INVALID')
  t.equal(await codeOf(app, unknownKid(alb)), '401 FST_COGNITO_TOKEN_INVALID')
  t.equal(await codeOf(app, a), '401 FST_COGNITO_TOKEN_INVALID')
  t.equal(keys.requests, 6, 'the first missing kid was forgotten, and asked again')
})

t.test('a server that closes aborts the fetch under way and fetches no more', async (t) => {
  const { app, alb, keys } = await setup(t)
  const events = jwksEvents(t)
  keys.mode = 'slow'
  const headers = alb.headers()
  const pending = codeOf(app, headers)
  await received(keys, 1)
  const waiting = codeOf(app, headers)
  await app.close()
  t.equal(await pending, '503 FST_COGNITO_JWKS_UNAVAILABLE')
  t.equal(await waiting, '503 FST_COGNITO_JWKS_UNAVAILABLE', 'the request sharing it too')
  t.match(events, [{ outcome: 'aborted', reason: 'aborted: the server is closing' }])
  // The hook called by hand after the close: no fetch starts.
  const request = { headers: unknownKid(alb), log: app.log } as unknown as FastifyRequest
  await t.rejects(app.authenticate(request, {} as FastifyReply), { code: 'FST_COGNITO_JWKS_UNAVAILABLE', reason: 'the server is closing' })
  t.equal(keys.requests, 1)
})
