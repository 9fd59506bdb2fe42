/**
 * The testing kit's load balancer (AlbIssuer): its tokens are shaped as the load balancer's, its
 * key server serves PEMs by `kid`, and its lifecycle is that of LocalIssuer.
 */
import { createPublicKey, verify } from 'node:crypto'
import t from 'tap'
import { AlbIssuer, LocalIssuer } from '../testing'

function decode (segment: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(segment, 'base64').toString('utf8'))
}

t.test('a token as the load balancer makes it: header fields, padded segments, a raw ES256 signature', async (t) => {
  const pool = new LocalIssuer()
  const alb = new AlbIssuer({ pool })
  const token = alb.dataToken({ sub: 'alice', name: '???>>>' })
  const [header, payload, signature] = token.split('.')
  t.match(decode(header), { typ: 'JWT', alg: 'ES256', kid: alb.kid, signer: alb.loadBalancerArn, iss: pool.issuer, client: pool.clientId })
  t.match(decode(payload), { sub: 'alice', email_verified: 'true', username: 'alice', iss: pool.issuer })
  t.equal(decode(header).exp, decode(payload).exp)
  t.equal(signature.length % 4, 0, 'padded')
  t.match(payload, /[-_]/)
  t.notMatch(token, /[+/]/)
  const key = createPublicKey(alb.pem() as string)
  t.ok(verify('sha256', Buffer.from(`${header}.${payload}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64')))
  t.match(alb.dataToken({ name: '???>>>' }, { alphabet: 'base64' }), /[+/]/)
  t.notMatch(alb.dataToken({}, { padding: false }), /=/)
  t.equal(alb.pem('no-such-kid'), undefined)
  // Any payload, for tokens a verifier must refuse: the header's exp then comes from the options.
  const [nullHeader, nullPayload] = alb.sign(null, { header: { exp: 1 } }).split('.')
  t.equal(Buffer.from(nullPayload, 'base64').toString(), 'null')
  t.equal(decode(nullHeader).exp, 1)
  t.same(decode(alb.sign([1]).split('.')[1]), [1])
  t.notOk('exp' in decode(alb.sign('text').split('.')[0]), 'no exp without one in the payload or the options')
})

t.test('headers: the three the load balancer forwards, for one user', async (t) => {
  const alb = new AlbIssuer()
  const headers = alb.headers()
  const sub = headers['x-amzn-oidc-identity']
  t.equal(decode(headers['x-amzn-oidc-data'].split('.')[1]).sub, sub)
  t.equal(decode(headers['x-amzn-oidc-accesstoken'].split('.')[1]).sub, sub)
  t.equal(alb.headers({ sub: 'bob' })['x-amzn-oidc-identity'], 'bob')
  t.match(alb.loadBalancerArn, /^arn:aws:elasticloadbalancing:eu-central-1:\d{12}:loadbalancer\/app\//)
  t.equal(new AlbIssuer({ loadBalancerArn: 'arn:x' }).loadBalancerArn, 'arn:x')
})

t.test('the key server: PEMs by kid, rotated keys kept, one server at a time', async (t) => {
  const alb = new AlbIssuer()
  t.throws(() => alb.keysUri, /call listen\(\) before reading keysUri/)
  const keysUri = await alb.listen()
  t.equal(alb.keysUri, keysUri)
  await t.rejects(alb.listen(), /already listening/)
  const first = alb.kid
  const second = alb.rotate()
  t.not(first, second)
  for (const kid of [first, second]) {
    const res = await fetch(`${keysUri}/${kid}`)
    t.equal(res.status, 200)
    t.equal(await res.text(), alb.pem(kid))
  }
  t.equal((await fetch(`${keysUri}/unknown`)).status, 404)
  t.equal((await fetch(`${keysUri.replace('/alb-keys', '')}/other`)).status, 404)
  t.equal(alb.keyRequests, 4)
  t.same(alb.pluginOptions().alb, { loadBalancerArn: alb.loadBalancerArn, keysUri })
  t.equal(alb.pluginOptions().tokenUse, 'access')
  await alb.close()
  await alb.close()
  t.throws(() => alb.keysUri)
})

t.test('closed at the end of an `await using` scope', async (t) => {
  const dispose = (Symbol as { asyncDispose?: symbol }).asyncDispose
  if (dispose === undefined) {
    t.pass('this runtime has no Symbol.asyncDispose')
    return
  }
  const alb = new AlbIssuer()
  await alb.listen()
  await (alb as unknown as Record<symbol, () => Promise<void>>)[dispose]()
  t.throws(() => alb.keysUri)
})

t.test('a foreign key is an EC P-256 key the load balancer does not serve', async (t) => {
  const key = AlbIssuer.foreignKey()
  t.equal(key.asymmetricKeyType, 'ec')
  t.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1')
})
