/**
 * fastify-cognito-jwt/testing: a local stand-in for a Cognito user pool, to test applications
 * that use the plugin without AWS. It holds an RSA key pair, publishes its JWKS (in memory, or
 * over HTTP on 127.0.0.1), and mints ID and access tokens with Cognito's claims, any of which a
 * test can override. `AlbIssuer` stands in for an Application Load Balancer in front of such a
 * pool: an EC P-256 key, its PEM served by `kid`, and the padded tokens the load balancer forwards.
 */
import { generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { CognitoAccessTokenClaims, CognitoAlbClaims, CognitoAlbOptions, CognitoIdTokenClaims, JsonWebKey, JsonWebKeySet } from './types'
import { closeOnAsyncDispose } from './lib/async-dispose'

export interface LocalIssuerOptions {
  /** Default `eu-central-1_LocalPool`. */
  userPoolId?: string
  /** Default `local-test-client`. */
  clientId?: string
  /** Default: Cognito's issuer for the pool, `https://cognito-idp.<region>.amazonaws.com/<poolId>`. */
  issuer?: string
  /** Token lifetime in seconds. Default 3600. */
  lifetime?: number
}

export interface TokenOptions {
  /** Header members to set or override (e.g. `{ alg: 'none' }`, `{ kid: undefined }`). */
  header?: Record<string, unknown>
  /** Sign with another key (a foreign key pair, e.g. one not in the JWKS). */
  signingKey?: KeyObject
}

/** The named claims of T, without its index signature. */
type KnownClaims<T> = keyof { [K in keyof T as string extends K ? never : number extends K ? never : K]: true }

/**
 * Claims to set or replace, and (set to `undefined`) to remove. Any claim may take any value, so
 * that tests can mint the tokens a verifier must refuse (`token_use: 'refresh'`, `exp: 'soon'`);
 * the named claims are listed only for the editor's completion.
 */
export type ClaimOverrides<T> = { [K in KnownClaims<T>]?: unknown } & Record<string, unknown>

interface SigningKey {
  kid: string
  privateKey: KeyObject
  jwk: JsonWebKey
}

function newSigningKey (kid: string = randomUUID()): SigningKey {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const { n, e } = publicKey.export({ format: 'jwk' })
  return { kid, privateKey, jwk: { kty: 'RSA', kid, alg: 'RS256', use: 'sig', n, e } }
}

// The pool ids from which the plugin derives issuer and JWKS URI on its own (`<aws-region>_<id>`).
const AWS_REGION = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/

function base64url (value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

function withoutUndefined (record: Record<string, unknown>): Record<string, unknown> {
  for (const key of Object.keys(record)) if (record[key] === undefined) delete record[key]
  return record
}

export class LocalIssuer {
  readonly userPoolId: string
  readonly region: string
  readonly clientId: string
  readonly issuer: string
  readonly lifetime: number
  private signingKeys: SigningKey[]
  private server: Server | undefined
  private url: string | undefined
  /** `close()`, for `await using` (defined below, on runtimes that have `Symbol.asyncDispose`). */
  declare [Symbol.asyncDispose]: () => Promise<void>

  constructor (options: LocalIssuerOptions = {}) {
    this.userPoolId = options.userPoolId ?? 'eu-central-1_LocalPool'
    this.region = this.userPoolId.split('_')[0]
    this.clientId = options.clientId ?? 'local-test-client'
    this.issuer = options.issuer ?? `https://cognito-idp.${this.region}.amazonaws.com/${this.userPoolId}`
    this.lifetime = options.lifetime ?? 3600
    this.signingKeys = [newSigningKey()]
  }

  /** The `kid` tokens are signed with. */
  get kid (): string {
    return this.signingKeys[0].kid
  }

  /** The public keys, as Cognito publishes them. */
  get jwks (): JsonWebKeySet {
    return { keys: this.signingKeys.map((key) => ({ ...key.jwk })) }
  }

  /** Where the JWKS is served, once `listen` resolved. */
  get jwksUri (): string {
    if (this.url === undefined) throw new Error('LocalIssuer: call listen() before reading jwksUri')
    return this.url
  }

  /**
   * Options for the plugin. Without a server the keys are handed over in `jwks`, with
   * `jwksUri: false`: they are the keys of the moment and nothing is ever fetched, so a token with
   * another `kid` (after `rotate()`, or a `kid` override) is refused; tests of rotations
   * `listen()` first, and the keys are then fetched from `jwksUri`. An issuer the plugin cannot
   * derive from the pool id is passed on.
   */
  pluginOptions (): { userPoolId: string, clientId: string, issuer?: string, jwksUri?: string | false, jwks?: JsonWebKeySet } {
    const custom = this.issuer !== `https://cognito-idp.${this.region}.amazonaws.com/${this.userPoolId}` || !AWS_REGION.test(this.region)
    return {
      userPoolId: this.userPoolId,
      clientId: this.clientId,
      ...(custom ? { issuer: this.issuer } : {}),
      // In memory, the keys are all there is: nothing is ever fetched.
      ...(this.url === undefined ? { jwks: this.jwks, jwksUri: false as const } : { jwksUri: this.url })
    }
  }

  /** Serves the JWKS at `http://127.0.0.1:<port>/<userPoolId>/.well-known/jwks.json`. */
  async listen (port = 0): Promise<string> {
    // A second server would replace the first one, which close() then could not stop.
    if (this.server !== undefined) throw new Error(`LocalIssuer: already listening at ${this.jwksUri}`)
    const server = createServer((request, response) => {
      if (request.url === `/${this.userPoolId}/.well-known/jwks.json`) {
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(this.jwks))
      } else {
        response.writeHead(404).end()
      }
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject) // e.g. the port is taken
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject)
        resolve()
      })
    })
    this.server = server
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/${this.userPoolId}/.well-known/jwks.json`
    return this.url
  }

  /** Stops the JWKS server, if `listen()` started one. `await using issuer = new LocalIssuer()` calls it at the end of the scope. */
  async close (): Promise<void> {
    const server = this.server
    if (server === undefined) return
    this.server = undefined
    this.url = undefined // pluginOptions() hands over the keys again, jwksUri throws again
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  /**
   * Rotates the keys: a new key signs from now on. With `keepOld` (the default) the previous key
   * stays published, as Cognito does during a rotation.
   */
  rotate ({ keepOld = true } = {}): string {
    const next = newSigningKey()
    this.signingKeys = keepOld ? [next, ...this.signingKeys] : [next]
    return next.kid
  }

  /** A key pair that is not in this issuer's JWKS, for forged-signature tests. */
  static foreignKey (): KeyObject {
    return newSigningKey().privateKey
  }

  /** An ID token for `sub` (a fresh one by default). */
  idToken (claims: ClaimOverrides<CognitoIdTokenClaims> = {}, options: TokenOptions = {}): string {
    const now = Math.floor(Date.now() / 1000)
    const sub = (claims.sub as string | undefined) ?? randomUUID()
    return this.sign({
      sub,
      'cognito:groups': ['users'],
      email_verified: true,
      iss: this.issuer,
      'cognito:username': sub,
      origin_jti: randomUUID(),
      aud: this.clientId,
      event_id: randomUUID(),
      token_use: 'id',
      auth_time: now,
      exp: now + this.lifetime,
      iat: now,
      jti: randomUUID(),
      email: `${sub}@example.com`,
      ...claims
    }, options)
  }

  /** An access token for `sub` (a fresh one by default). */
  accessToken (claims: ClaimOverrides<CognitoAccessTokenClaims> = {}, options: TokenOptions = {}): string {
    const now = Math.floor(Date.now() / 1000)
    const sub = (claims.sub as string | undefined) ?? randomUUID()
    return this.sign({
      sub,
      'cognito:groups': ['users'],
      iss: this.issuer,
      version: 2,
      client_id: this.clientId,
      origin_jti: randomUUID(),
      event_id: randomUUID(),
      token_use: 'access',
      scope: 'aws.cognito.signin.user.admin',
      auth_time: now,
      exp: now + this.lifetime,
      iat: now,
      jti: randomUUID(),
      username: sub,
      ...claims
    }, options)
  }

  /** Signs any payload with RS256 and the current key (headers and key overridable). */
  sign (payload: Record<string, unknown>, { header = {}, signingKey }: TokenOptions = {}): string {
    const fullHeader = withoutUndefined({ kid: this.kid, alg: 'RS256', ...header })
    const input = `${base64url(fullHeader)}.${base64url(withoutUndefined({ ...payload }))}`
    const key = signingKey ?? this.signingKeys[0].privateKey
    return `${input}.${sign('sha256', Buffer.from(input), key).toString('base64url')}`
  }
}

export interface AlbIssuerOptions {
  /** The pool behind the load balancer, whose access tokens it forwards. Default: a new LocalIssuer. */
  pool?: LocalIssuer
  /** Default `arn:aws:elasticloadbalancing:<the pool's region>:123456789012:loadbalancer/app/local-alb/0123456789abcdef`. */
  loadBalancerArn?: string
}

export interface AlbTokenOptions {
  /** Header members to set or override (e.g. `{ alg: 'none' }`, `{ signer: undefined }`). */
  header?: Record<string, unknown>
  /** Sign with another key (e.g. one whose PEM is not served). */
  signingKey?: KeyObject
  /** The alphabet of the segments: `'base64url'` (the default, as load balancers write since 2019) or `'base64'`. */
  alphabet?: 'base64url' | 'base64'
  /** Pad the segments with `=`, as the load balancer does. Default true. */
  padding?: boolean
  /** The signature's encoding: raw r||s (`'ieee-p1363'`, the default, as JWS requires) or `'der'` (a token to refuse). */
  dsaEncoding?: 'ieee-p1363' | 'der'
  /** Sign the text without its padding while sending it padded (a token to refuse). Default false. */
  signUnpadded?: boolean
}

/** The headers an Application Load Balancer forwards for a signed-in user (a type, so that it fits where headers go). */
export type AlbHeaders = Record<'x-amzn-oidc-data' | 'x-amzn-oidc-accesstoken' | 'x-amzn-oidc-identity', string>

interface AlbSigningKey {
  kid: string
  privateKey: KeyObject
  pem: string
}

function newAlbKey (): AlbSigningKey {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  return { kid: randomUUID(), privateKey, pem: publicKey.export({ type: 'spki', format: 'pem' }) as string }
}

/** A JSON segment as the load balancer writes it: padded, in the alphabet asked for. */
function albSegment (value: unknown, alphabet: 'base64url' | 'base64', padding: boolean): string {
  return encodeAlb(Buffer.from(JSON.stringify(value)), alphabet, padding)
}

function encodeAlb (bytes: Buffer, alphabet: 'base64url' | 'base64', padding: boolean): string {
  let text = bytes.toString('base64')
  if (alphabet === 'base64url') text = text.replaceAll('+', '-').replaceAll('/', '_')
  return padding ? text : text.replace(/=+$/, '')
}

/**
 * An Application Load Balancer in front of a LocalIssuer's pool: it signs the user's claims with
 * ES256 (`x-amzn-oidc-data`, padded segments, `signer`, `client`, `iss` and `exp` in the header)
 * and serves its public key as PEM at `<keysUri>/<kid>`.
 */
export class AlbIssuer {
  readonly pool: LocalIssuer
  readonly loadBalancerArn: string
  /** Requests the key server received. */
  keyRequests = 0
  private signingKeys: AlbSigningKey[]
  private server: Server | undefined
  private url: string | undefined
  /** `close()`, for `await using` (defined below, on runtimes that have `Symbol.asyncDispose`). */
  declare [Symbol.asyncDispose]: () => Promise<void>

  constructor (options: AlbIssuerOptions = {}) {
    this.pool = options.pool ?? new LocalIssuer()
    this.loadBalancerArn = options.loadBalancerArn ??
      `arn:aws:elasticloadbalancing:${this.pool.region}:123456789012:loadbalancer/app/local-alb/0123456789abcdef`
    this.signingKeys = [newAlbKey()]
  }

  /** The `kid` tokens are signed with. */
  get kid (): string {
    return this.signingKeys[0].kid
  }

  /** The public key of a `kid` (the current one by default), as the load balancer serves it. */
  pem (kid = this.kid): string | undefined {
    return this.signingKeys.find((key) => key.kid === kid)?.pem
  }

  /** Where the keys are served (`<keysUri>/<kid>`), once `listen` resolved. */
  get keysUri (): string {
    if (this.url === undefined) throw new Error('AlbIssuer: call listen() before reading keysUri')
    return this.url
  }

  /** The `alb` option for the plugin. */
  albOptions (): CognitoAlbOptions & { keysUri: string } {
    return { loadBalancerArn: this.loadBalancerArn, keysUri: this.keysUri }
  }

  /** Options for the plugin: the pool's (its access tokens verified), and `alb`. */
  pluginOptions (): ReturnType<LocalIssuer['pluginOptions']> & { tokenUse: 'access', alb: CognitoAlbOptions & { keysUri: string } } {
    return { ...this.pool.pluginOptions(), tokenUse: 'access', alb: this.albOptions() }
  }

  /** Serves each key's PEM at `http://127.0.0.1:<port>/alb-keys/<kid>`; 404 for any other `kid`. */
  async listen (port = 0): Promise<string> {
    if (this.server !== undefined) throw new Error(`AlbIssuer: already listening at ${this.keysUri}`)
    const server = createServer((request, response) => {
      this.keyRequests++
      const prefix = '/alb-keys/'
      const pem = request.url?.startsWith(prefix) === true ? this.pem(request.url.slice(prefix.length)) : undefined
      if (pem === undefined) response.writeHead(404).end()
      else response.writeHead(200, { 'content-type': 'application/x-pem-file' }).end(pem)
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject)
        resolve()
      })
    })
    this.server = server
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/alb-keys`
    return this.url
  }

  /** Stops the key server, if `listen()` started one. */
  async close (): Promise<void> {
    const server = this.server
    if (server === undefined) return
    this.server = undefined
    this.url = undefined
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  /** A new key signs from now on; the previous keys stay served, as the load balancer's do. */
  rotate (): string {
    this.signingKeys = [newAlbKey(), ...this.signingKeys]
    return this.kid
  }

  /** An EC P-256 key whose PEM this load balancer does not serve, for forged-signature tests. */
  static foreignKey (): KeyObject {
    return newAlbKey().privateKey
  }

  /** The load balancer's token for `sub` (a fresh one by default): the user claims, signed with ES256. */
  dataToken (claims: ClaimOverrides<CognitoAlbClaims> = {}, options: AlbTokenOptions = {}): string {
    const sub = (claims.sub as string | undefined) ?? randomUUID()
    return this.sign({
      sub,
      email_verified: 'true',
      email: `${sub}@example.com`,
      username: sub,
      exp: Math.floor(Date.now() / 1000) + 120,
      iss: this.pool.issuer,
      ...claims
    }, options)
  }

  /**
   * Signs any payload as the load balancer does: ES256, padded segments, and a header with `kid`,
   * `signer`, `iss`, `client` and `exp` (the payload's), each overridable.
   */
  sign (payload: unknown, options: AlbTokenOptions = {}): string {
    const { header = {}, signingKey, alphabet = 'base64url', padding = true, dsaEncoding = 'ieee-p1363', signUnpadded = false } = options
    const body = typeof payload === 'object' && payload !== null && !Array.isArray(payload) ? withoutUndefined({ ...payload }) : payload
    const fullHeader = withoutUndefined({
      typ: 'JWT',
      kid: this.kid,
      alg: 'ES256',
      iss: this.pool.issuer,
      client: this.pool.clientId,
      signer: this.loadBalancerArn,
      exp: (body as { exp?: unknown } | null)?.exp,
      ...header
    })
    const input = `${albSegment(fullHeader, alphabet, padding)}.${albSegment(body, alphabet, padding)}`
    const key = signingKey ?? this.signingKeys[0].privateKey
    const signed = signUnpadded ? input.replaceAll('=', '') : input
    const signature = sign('sha256', Buffer.from(signed), { key, dsaEncoding })
    return `${input}.${encodeAlb(signature, alphabet, padding)}`
  }

  /** The three headers the load balancer forwards for one user: its token, the pool's access token, and the `sub`. */
  headers (claims: ClaimOverrides<CognitoAlbClaims> = {}, options: AlbTokenOptions = {}): AlbHeaders {
    const sub = (claims.sub as string | undefined) ?? randomUUID()
    return {
      'x-amzn-oidc-data': this.dataToken({ ...claims, sub }, options),
      'x-amzn-oidc-accesstoken': this.pool.accessToken({ sub }),
      'x-amzn-oidc-identity': sub
    }
  }
}

// Node.js before 20.4 has no Symbol.asyncDispose; `close()` works there all the same.
closeOnAsyncDispose(LocalIssuer.prototype, (Symbol as { asyncDispose?: symbol }).asyncDispose)
closeOnAsyncDispose(AlbIssuer.prototype, (Symbol as { asyncDispose?: symbol }).asyncDispose)
