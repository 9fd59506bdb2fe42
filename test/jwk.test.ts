import { createPublicKey, generateKeyPairSync, verify } from 'node:crypto'
import t from 'tap'
import { parseJwks } from '../lib/keys/jwk'
import { LocalIssuer } from '../testing'
import type { JsonWebKey } from '../types'

const issuer = new LocalIssuer()
const good: JsonWebKey = issuer.jwks.keys[0]

function rsaJwk (modulusLength: number, kid: string): JsonWebKey & { d?: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength })
  return { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' } as JsonWebKey & { d?: string }
}

/** The one good key plus `jwk`: parsed keys and skipped count. */
function withGood (jwk: unknown): { kids: string[], skipped: number } {
  const { keys, skipped } = parseJwks({ keys: [good, jwk] })
  return { kids: [...keys.keys()], skipped }
}

t.test('a Cognito key becomes a public PEM that verifies its tokens', async (t) => {
  const { keys, skipped } = parseJwks(issuer.jwks)
  t.equal(skipped, 0)
  const key = keys.get(issuer.kid)
  if (key === undefined) throw new Error('the key is missing')
  t.equal(key.kid, issuer.kid)
  t.equal(key.material, `${good.n}.${good.e}`)
  t.match(key.pem, /^-----BEGIN PUBLIC KEY-----\n/)
  const token = issuer.idToken()
  const [header, payload, signature] = token.split('.')
  t.ok(verify('sha256', Buffer.from(`${header}.${payload}`), key.pem, Buffer.from(signature, 'base64url')))
})

t.test('use and alg may be absent, or must be sig and RS256', async (t) => {
  const { use, alg, ...bare } = good
  t.same(withGood({ ...bare, kid: 'bare' }), { kids: [good.kid, 'bare'], skipped: 0 })
  for (const [name, jwk] of Object.entries({
    'use enc': { ...good, kid: 'x', use: 'enc' },
    'use empty': { ...good, kid: 'x', use: '' },
    'alg RS384': { ...good, kid: 'x', alg: 'RS384' },
    'alg none': { ...good, kid: 'x', alg: 'none' },
    'alg HS256': { ...good, kid: 'x', alg: 'HS256' }
  })) {
    t.same(withGood(jwk), { kids: [good.kid], skipped: 1 }, name)
  }
  t.equal(use, 'sig')
  t.equal(alg, 'RS256')
})

t.test('only RSA keys with a non-empty string kid and string n and e are kept', async (t) => {
  const { kid, ...noKid } = good
  const { n, ...noN } = good
  const { e, ...noE } = good
  for (const [name, jwk] of Object.entries({
    'kty EC': { ...good, kid: 'x', kty: 'EC' },
    'kty oct': { ...good, kid: 'x', kty: 'oct' },
    'no kty': { ...good, kid: 'x', kty: undefined },
    'no kid': noKid,
    'empty kid': { ...good, kid: '' },
    'numeric kid': { ...good, kid: 7 },
    'no n': { ...noN, kid: 'x' },
    'numeric n': { ...good, kid: 'x', n: 12345 },
    'no e': { ...noE, kid: 'x' },
    'numeric e': { ...good, kid: 'x', e: 65537 },
    'null entry': null,
    'string entry': 'key',
    'array entry': [good]
  })) {
    t.same(withGood(jwk), { kids: [good.kid], skipped: 1 }, name)
  }
  t.ok(kid !== undefined && n !== undefined && e !== undefined)
})

t.test('moduli under 2048 bits and broken exponents are refused (the good key has 2048 bits)', async (t) => {
  t.same(withGood(rsaJwk(1024, 'short')), { kids: [good.kid], skipped: 1 }, '1024 bits')
  t.same(withGood(rsaJwk(2047, 'almost')), { kids: [good.kid], skipped: 1 }, '2047 bits')
  for (const [name, e] of Object.entries({ 'e = 1': 'AQ', 'e = 0': 'AA', 'e = 2': 'Ag', 'e = 65536': 'AQAA', 'e empty': '' })) {
    t.same(withGood({ ...good, kid: 'x', e }), { kids: [good.kid], skipped: 1 }, name)
  }
  t.same(withGood({ ...good, kid: 'three', e: 'Aw' }), { kids: [good.kid, 'three'], skipped: 0 }, 'e = 3')
  t.same(withGood({ ...good, kid: 'x', n: 'not-a-modulus' }), { kids: [good.kid], skipped: 1 }, 'garbage n')
  t.same(withGood({ ...good, kid: 'x', n: '' }), { kids: [good.kid], skipped: 1 }, 'empty n')
})

t.test('private members are ignored: only the public key is kept', async (t) => {
  const full = rsaJwk(2048, 'full')
  t.type(full.d, 'string')
  const { keys } = parseJwks({ keys: [full] })
  const pem = keys.get('full')?.pem as string
  t.match(pem, /^-----BEGIN PUBLIC KEY-----\n/)
  t.equal(createPublicKey(pem).type, 'public')
  const publicOnly = createPublicKey({ key: { kty: 'RSA', n: full.n, e: full.e }, format: 'jwk' })
  t.equal(pem, publicOnly.export({ type: 'spki', format: 'pem' }))
})

t.test('a kid given twice keeps its first key and counts the second as skipped', async (t) => {
  const other = rsaJwk(2048, good.kid as string)
  const { keys, skipped } = parseJwks({ keys: [good, other] })
  t.equal(skipped, 1)
  t.equal(keys.size, 1)
  t.equal(keys.get(good.kid as string)?.material, `${good.n}.${good.e}`)
})

t.test('malformed keys are skipped and counted; the good ones stay', async (t) => {
  const second = new LocalIssuer().jwks.keys[0]
  const { keys, skipped } = parseJwks({ keys: [{ kty: 'EC' }, good, 42, { ...good, kid: 'x', use: 'enc' }, second] })
  t.same([...keys.keys()], [good.kid, second.kid])
  t.equal(skipped, 3)
})

t.test('a document that is not a JWKS throws', async (t) => {
  for (const document of [null, undefined, 'keys', 42, [], [good], {}, { keys: {} }, { keys: 'a' }]) {
    t.throws(() => parseJwks(document), { message: 'the document is not a JWKS' }, JSON.stringify(document) ?? 'undefined')
  }
})

t.test('a JWKS without any usable key throws', async (t) => {
  t.throws(() => parseJwks({ keys: [] }), { message: 'the JWKS holds no usable RS256 key' })
  t.throws(() => parseJwks({ keys: [{ ...good, use: 'enc' }, { ...good, alg: 'RS512' }] }), { message: 'the JWKS holds no usable RS256 key' })
})
