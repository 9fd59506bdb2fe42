/**
 * Workload alb: behind an Application Load Balancer, the plugin's `authenticate` hook called in
 * this process on the headers a load balancer forwards, against a bare `crypto.verify` floor.
 *   - distinct: more tokens than the token cache holds, each a signature check (and, with the
 *     access token, a fast-jwt verification of it too);
 *   - reused: one user's headers on every call (token cache hits).
 * The floor is one ES256 `crypto.verify` over the padded text per token (plus one RS256 for the
 * access token's case): what no verifier of these tokens can skip. In process, like the
 * revocation check, so that the ratio does not move when other processes share the cores.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import cognitoAuth from '../index'
import { AlbIssuer, LocalIssuer, type AlbHeaders } from '../testing'
import { median } from './report'

export interface AlbSettings {
  /** Distinct users; more than the token cache's 1000 entries, so that none is a cache hit. */
  tokens: number
  rounds: number
}

interface Row {
  name: string
  nsPerCall: number
  floorNs: number
}

const silent = { debug () {}, info () {}, warn () {}, error () {}, child () { return silent } }

/** The hook's cost per call, in nanoseconds; every call must authenticate, synchronously. */
function timeHook (app: FastifyInstance, headers: readonly AlbHeaders[], calls: number): number {
  const reply = {} as FastifyReply
  let failed = 0
  const done = (err?: Error): void => { if (err !== undefined) failed++ }
  const requests = headers.map((h) => ({ headers: h, log: silent }) as unknown as FastifyRequest)
  // The hook as Fastify calls it, with `done`: a known key keeps the whole path synchronous.
  const hook = app.authenticate as unknown as (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => void
  const start = process.hrtime.bigint()
  for (let i = 0; i < calls; i++) hook(requests[i % requests.length], reply, done)
  const ns = Number(process.hrtime.bigint() - start) / calls
  if (failed !== 0) throw new Error(`${failed} calls were refused`)
  return ns
}

/** The floor: the signature checks alone, with keys imported at start. */
function timeFloor (headers: readonly AlbHeaders[], albKey: KeyObject, poolKey: KeyObject | undefined, calls: number): number {
  const parts = headers.map((h) => {
    const data = h['x-amzn-oidc-data']
    const access = h['x-amzn-oidc-accesstoken']
    const cut = data.lastIndexOf('.')
    const accessCut = access.lastIndexOf('.')
    return {
      signed: Buffer.from(data.slice(0, cut)),
      signature: Buffer.from(data.slice(cut + 1), 'base64'),
      accessSigned: Buffer.from(access.slice(0, accessCut)),
      accessSignature: Buffer.from(access.slice(accessCut + 1), 'base64url')
    }
  })
  let valid = 0
  const start = process.hrtime.bigint()
  for (let i = 0; i < calls; i++) {
    const p = parts[i % parts.length]
    let ok = verify('sha256', p.signed, { key: albKey, dsaEncoding: 'ieee-p1363' }, p.signature)
    if (poolKey !== undefined) ok &&= verify('RSA-SHA256', p.accessSigned, poolKey, p.accessSignature)
    if (ok) valid++
  }
  const ns = Number(process.hrtime.bigint() - start) / calls
  if (valid !== calls) throw new Error('the floor refused a valid token')
  return ns
}

async function plugin (pool: LocalIssuer, alb: AlbIssuer, accessToken: boolean, warm: AlbHeaders): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(cognitoAuth, { ...pool.pluginOptions(), tokenUse: 'access', alb: { ...alb.albOptions(), accessToken } })
  await app.ready()
  // The load balancer's key is fetched once, before anything is timed.
  await app.authenticate({ headers: warm, log: silent } as unknown as FastifyRequest, {} as FastifyReply)
  return app
}

export async function runAlb (settings: AlbSettings, log: (message: string) => void): Promise<string> {
  const pool = new LocalIssuer()
  const alb = new AlbIssuer({ pool })
  await alb.listen()
  const apps: FastifyInstance[] = []
  try {
    const distinct = Array.from({ length: settings.tokens }, () => alb.headers({ name: '???>>>' }))
    log(`signed ${settings.tokens} distinct load balancer and access tokens`)
    const albKey = createPublicKey(alb.pem() as string)
    const poolKey = createPublicKey({ key: pool.jwks.keys[0], format: 'jwk' })
    const rows: Row[] = []
    for (const accessToken of [false, true]) {
      const app = await plugin(pool, alb, accessToken, distinct[0])
      apps.push(app)
      const floorKey = accessToken ? poolKey : undefined
      const what = accessToken ? 'ALB + access token' : 'ALB token alone'
      for (const [kind, headers, calls] of [['distinct', distinct, settings.tokens], ['reused', [distinct[0]], 200_000]] as const) {
        timeHook(app, headers, Math.min(calls, 20_000)) // warm-up
        const ns: number[] = []
        const floor: number[] = []
        for (let round = 0; round < settings.rounds; round++) {
          ns.push(timeHook(app, headers, calls))
          floor.push(timeFloor(distinct, albKey, floorKey, Math.min(settings.tokens, 20_000)))
        }
        rows.push({ name: `${what}, ${kind}`, nsPerCall: median(ns), floorNs: median(floor) })
        log(`alb, ${what}, ${kind}: ${(median(ns) / 1000).toFixed(1)} µs per call`)
      }
    }
    return formatAlb(rows)
  } finally {
    for (const app of apps) await app.close()
    await alb.close()
  }
}

function formatAlb (rows: readonly Row[]): string {
  const lines = ['case                              µs/call   floor µs   ratio to floor']
  for (const { name, nsPerCall, floorNs } of rows) {
    lines.push(`${name.padEnd(32)}  ${(nsPerCall / 1000).toFixed(1).padStart(7)}   ${(floorNs / 1000).toFixed(1).padStart(8)}   ${formatRatio(nsPerCall / floorNs).padStart(6)}x`)
  }
  lines.push('floor: crypto.verify ES256 over the padded text (plus RS256 for the access token) per distinct token, keys imported at start')
  return lines.join('\n')
}

/** Two significant digits: a cache hit is a small fraction of a signature check. */
function formatRatio (ratio: number): string {
  return ratio >= 1 ? ratio.toFixed(2) : ratio.toPrecision(2)
}
