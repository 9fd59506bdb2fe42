/**
 * The load balancer's token (`x-amzn-oidc-data`) taken apart, and its header checked, before any
 * key is looked up: a token that cannot pass never costs a fetch.
 *
 * Its segments are base64url with `=` padding (standard base64 in tokens from before 2019), and
 * the signature covers the text as sent, padding included: the segments are decoded in either
 * alphabet, never rewritten. The header carries what a JWT would have in its payload: `signer`
 * (the load balancer's ARN), `client` (the app client), `iss` and `exp`.
 */
import { TokenExpiredError, TokenInvalidError, withReason, type CognitoAuthError } from '../errors'

/** The token's parts, as sent; the payload is read only once the signature has passed. */
export interface AlbTokenParts {
  /** `header.payload` exactly as sent: what the signature covers. */
  signed: string
  payload: string
  signature: Buffer
  header: AlbHeader
}

/** The header members the checks decide with. */
export interface AlbHeader {
  kid: string
  signer: string
  client: string
  iss: string
  exp: number
}

/** What the header is checked against: the accepted load balancers, and the app clients of the pool its `iss` named. */
export interface AlbHeaderRules {
  signers: ReadonlySet<string>
  clientIds: ReadonlySet<string> | null
}

/** ES256's signature: r and s, 32 bytes each (IEEE P1363), not DER. */
const SIGNATURE_BYTES = 64

/** One segment in either alphabet, with or without padding. Linear: one class, then at most two `=`. */
const SEGMENT = /^[A-Za-z0-9_\-+/]+={0,2}$/

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export function refuse (reason: string): CognitoAuthError {
  return withReason(new TokenInvalidError(), reason)
}

/** A segment's bytes, or undefined when it is not base64 in either alphabet (padding included, where it is). */
export function decodeSegment (segment: string): Buffer | undefined {
  if (!SEGMENT.test(segment)) return undefined
  const padded = segment.includes('=')
  // Padding only completes a group of four; without it a group cannot be one character long.
  if (padded ? segment.length % 4 !== 0 : segment.length % 4 === 1) return undefined
  // Node's base64 decoder reads both alphabets.
  return Buffer.from(segment, 'base64')
}

/** A segment's JSON object, or undefined when it is not one. */
export function parseSegment (segment: string): Record<string, unknown> | undefined {
  const bytes = decodeSegment(segment)
  if (bytes === undefined) return undefined
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'))
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}

/** The token's three parts and its header's members; throws TokenInvalidError for anything else. */
export function readAlbToken (token: string): AlbTokenParts {
  const firstDot = token.indexOf('.')
  const lastDot = token.lastIndexOf('.')
  if (firstDot <= 0 || lastDot === firstDot || token.indexOf('.', firstDot + 1) !== lastDot) throw refuse('not three parts')
  const header = parseSegment(token.slice(0, firstDot))
  if (header === undefined) throw refuse('malformed token header')
  // Fixed here, never taken from the token or the key: `none`, HS256 with the PEM as a secret, RS256 ...
  if (header.alg !== 'ES256') throw refuse('algorithm is not ES256')
  // No extension is understood, so none that must be may be present (RFC 7515 §4.1.11).
  if (header.crit !== undefined) throw refuse('a crit header is not supported')
  const { kid, signer, client, iss, exp } = header
  // A UUID: the `kid` becomes a path segment of the key URL, and nothing else may reach it.
  if (typeof kid !== 'string' || !UUID.test(kid)) throw refuse('kid header is not a UUID')
  if (typeof signer !== 'string') throw refuse('signer header missing')
  if (typeof client !== 'string') throw refuse('client header missing')
  if (typeof iss !== 'string') throw refuse('iss header missing')
  if (typeof exp !== 'number' || !Number.isFinite(exp)) throw refuse('exp header missing or not a number')
  const signature = decodeSegment(token.slice(lastDot + 1))
  if (signature === undefined || signature.length !== SIGNATURE_BYTES) throw refuse('signature is not 64 bytes of r||s')
  return {
    signed: token.slice(0, lastDot),
    payload: token.slice(firstDot + 1, lastDot),
    signature,
    header: { kid, signer, client, iss, exp }
  }
}

/** Throws the refusal of a header that names another load balancer or client, or has expired; its `iss` picked the pool. */
export function checkAlbHeader (header: AlbHeader, rules: AlbHeaderRules, nowMs: number, toleranceMs: number): void {
  if (!rules.signers.has(header.signer)) throw refuse('signer header is not an accepted load balancer')
  if (rules.clientIds !== null && !rules.clientIds.has(header.client)) throw refuse('client header is not an allowed app client')
  if (nowMs >= header.exp * 1000 + toleranceMs) throw withReason(new TokenExpiredError(), 'the token has expired (header exp reached)')
}
