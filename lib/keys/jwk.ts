/**
 * Turns a JWKS document into the RSA signing keys it holds. Keys that cannot sign RS256 tokens,
 * or are malformed, are skipped: one bad key must not take the others down with it.
 */
import { createPublicKey } from 'node:crypto'

/** A usable key: its id, what identifies its material, its public key as PEM, and the JWK itself. */
export interface ParsedKey {
  kid: string
  /** The modulus and exponent: a `kid` reused with other material is another key. */
  material: string
  pem: string
  jwk: Record<string, unknown>
}

export interface ParsedKeySet {
  keys: Map<string, ParsedKey>
  skipped: number
}

/** RSA keys shorter than this are refused, as NIST and AWS do. */
const MIN_MODULUS_BITS = 2048

/** What Node always reports for an RSA key. */
interface RsaKeyDetails {
  modulusLength: number
  publicExponent: bigint
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The usable keys of a JWKS document, at most `maxKeys` of them; throws when there is none. */
export function parseJwks (document: unknown, maxKeys = Infinity): ParsedKeySet {
  if (!isObject(document) || !Array.isArray(document.keys)) {
    throw new Error('the document is not a JWKS')
  }
  const keys = new Map<string, ParsedKey>()
  let skipped = 0
  for (const jwk of document.keys) {
    const key = toRsaSigningKey(jwk)
    if (key === undefined || keys.has(key.kid) || keys.size >= maxKeys) skipped++
    else keys.set(key.kid, key)
  }
  if (keys.size === 0) throw new Error('the JWKS holds no usable RS256 key')
  return { keys, skipped }
}

function toRsaSigningKey (jwk: unknown): ParsedKey | undefined {
  if (!isObject(jwk)) return undefined
  const { kty, kid, use, alg, n, e } = jwk
  if (kty !== 'RSA' || typeof kid !== 'string' || kid === '') return undefined
  if (typeof n !== 'string' || typeof e !== 'string') return undefined
  if (use !== undefined && use !== 'sig') return undefined
  if (alg !== undefined && alg !== 'RS256') return undefined
  // Only the public members are handed on: whatever else the JWK carries (`d`...) is ignored.
  // Node reads any string as base64url, so a malformed key shows as a wrong size or exponent.
  const key = createPublicKey({ key: { kty, n, e }, format: 'jwk' })
  const { modulusLength, publicExponent } = key.asymmetricKeyDetails as RsaKeyDetails
  if (modulusLength < MIN_MODULUS_BITS) return undefined
  // An even exponent cannot be RSA's; with 1, any "signature" made of the padded hash verifies.
  if (publicExponent < 3n || publicExponent % 2n === 0n) return undefined
  return { kid, material: `${n}.${e}`, pem: key.export({ type: 'spki', format: 'pem' }) as string, jwk }
}
