/**
 * fastify-cognito-jwt/testing: a local stand-in for a Cognito user pool, to test applications
 * that use the plugin without AWS. It holds an RSA key pair, publishes its JWKS (in memory, or
 * over HTTP on 127.0.0.1), and mints ID and access tokens with Cognito's claims, any of which a
 * test can override.
 */
import { generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { CognitoAccessTokenClaims, CognitoIdTokenClaims, JsonWebKey, JsonWebKeySet } from './types'
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

// Node.js before 20.4 has no Symbol.asyncDispose; `close()` works there all the same.
closeOnAsyncDispose(LocalIssuer.prototype, (Symbol as { asyncDispose?: symbol }).asyncDispose)
