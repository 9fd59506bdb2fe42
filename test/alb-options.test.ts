/**
 * The `alb` option: every mistake, and every option it cannot go with, fails `register` with
 * FST_COGNITO_INVALID_OPTION naming the option; the defaults it sets.
 */
import t, { type Test } from 'tap'
import type { CognitoAuthOptions } from '../index'
import { parseOptions } from '../lib/options'
import { LocalIssuer } from '../testing'

const issuer = new LocalIssuer()
const arn = 'arn:aws:elasticloadbalancing:eu-central-1:123456789012:loadbalancer/app/my-alb/50dc6c495c0c9188'
const base = { userPoolId: 'eu-central-1_xYzaq', clientId: 'app-client', jwks: issuer.jwks }

function parse (options: Record<string, unknown>): ReturnType<typeof parseOptions> {
  return parseOptions({ ...base, ...options } as unknown as CognitoAuthOptions)
}

function fails (t: Test, options: Record<string, unknown>, option: string, problem: RegExp): void {
  t.throws(() => parse(options), { code: 'FST_COGNITO_INVALID_OPTION', message: new RegExp(`^Invalid option ${option.replace(/[.[\]]/g, '\\$&')}: ${problem.source}`) }, `${option} ${problem.source}`)
}

t.test('the defaults: the access token checked, tokenUse access, the aws key host of the region', async (t) => {
  const settings = parse({ alb: { loadBalancerArn: arn } })
  t.same(settings.alb, { signers: new Set([arn]), keysUri: 'https://public-keys.auth.elb.eu-central-1.amazonaws.com', accessToken: true })
  t.equal(settings.pools[0].tokenUse, 'access')
  t.equal(parse({}).pools[0].tokenUse, 'id', 'without alb, id stays the default')
  const two = parse({ alb: { loadBalancerArn: [arn, arn.replace('my-alb', 'other-alb')] } })
  t.equal(two.alb?.signers.size, 2)
})

t.test('keysUri: GovCloud and China need one; a trailing slash is dropped', async (t) => {
  const gov = 'arn:aws-us-gov:elasticloadbalancing:us-gov-west-1:123456789012:loadbalancer/app/my-alb/50dc6c495c0c9188'
  const cn = 'arn:aws-cn:elasticloadbalancing:cn-north-1:123456789012:loadbalancer/app/my-alb/50dc6c495c0c9188'
  fails(t, { alb: { loadBalancerArn: gov } }, 'alb.keysUri', /is required for load balancers outside the aws partition/)
  fails(t, { alb: { loadBalancerArn: [arn, cn] } }, 'alb.keysUri', /is required for load balancers outside the aws partition/)
  fails(t, { alb: { loadBalancerArn: [arn, arn.replace('eu-central-1', 'eu-west-1')] } }, 'alb.keysUri', /is required when the load balancers are in different regions/)
  const bucket = 'https://s3-us-gov-west-1.amazonaws.com/aws-elb-public-keys-prod-us-gov-west-1/'
  t.equal(parse({ alb: { loadBalancerArn: gov, keysUri: bucket } }).alb?.keysUri, bucket.slice(0, -1))
  t.equal(parse({ alb: { loadBalancerArn: cn, keysUri: 'https://keys.example.cn' } }).alb?.keysUri, 'https://keys.example.cn')
  fails(t, { alb: { loadBalancerArn: arn, keysUri: 42 } }, 'alb.keysUri', /must be a URL string/)
  fails(t, { alb: { loadBalancerArn: arn, keysUri: 'not a url' } }, 'alb.keysUri', /must be an absolute http\(s\) URL/)
  fails(t, { alb: { loadBalancerArn: arn, keysUri: 'ftp://keys.example.com' } }, 'alb.keysUri', /must be an absolute http\(s\) URL/)
  fails(t, { alb: { loadBalancerArn: arn, keysUri: 'https://keys.example.com/?v=1' } }, 'alb.keysUri', /must have no query or fragment/)
  fails(t, { alb: { loadBalancerArn: arn, keysUri: 'https://keys.example.com/#k' } }, 'alb.keysUri', /must have no query or fragment/)
})

t.test('loadBalancerArn: an Application Load Balancer ARN, or a non-empty list of them', async (t) => {
  for (const value of [undefined, [], 42, [42]]) fails(t, { alb: { loadBalancerArn: value } }, 'alb.loadBalancerArn', /is required|must be/)
  for (const value of [
    'arn:aws:elasticloadbalancing:eu-central-1:123456789012:loadbalancer/net/my-nlb/50dc6c495c0c9188',
    'arn:aws-iso:elasticloadbalancing:eu-central-1:123456789012:loadbalancer/app/my-alb/50dc6c495c0c9188',
    'arn:aws:elasticloadbalancing:eu-central-1:12345:loadbalancer/app/my-alb/50dc6c495c0c9188',
    `${arn} `,
    [arn, '']
  ]) fails(t, { alb: { loadBalancerArn: value } }, 'alb.loadBalancerArn', /must be an Application Load Balancer ARN/)
})

t.test('the shape of alb, and unknown keys by name', async (t) => {
  for (const value of [null, 'arn', [arn]]) fails(t, { alb: value }, 'alb', /must be an object/)
  fails(t, { alb: { loadBalancerArns: arn } }, 'alb.loadBalancerArns', /is not an option; did you mean loadBalancerArn\?/)
  fails(t, { alb: { loadBalancerArn: arn, accessToken: 'yes' } }, 'alb.accessToken', /must be true or false/)
})

t.test('options alb cannot go with', async (t) => {
  const alb = { loadBalancerArn: arn }
  fails(t, { alb, tokenUse: 'id' }, 'tokenUse', /must be "access" with alb/)
  fails(t, { alb, tokenUse: 'any' }, 'tokenUse', /must be "access" with alb/)
  t.throws(() => parseOptions({ userPools: [{ ...base, tokenUse: 'access' }, { ...base, userPoolId: 'eu-central-1_Other', tokenUse: 'id' }], alb } as unknown as CognitoAuthOptions),
    { message: /^Invalid option userPools\[1\]\.tokenUse: must be "access" with alb/ })
  t.throws(() => parseOptions({ userPools: () => null, alb } as unknown as CognitoAuthOptions), { message: /^Invalid option alb: cannot be combined with a userPools resolver/ })
  fails(t, { alb, extractToken: () => 'x' }, 'extractToken', /cannot be combined with alb/)
  const aloneAlb = { ...alb, accessToken: false }
  t.equal(parse({ alb: aloneAlb, tokenUse: 'id' }).alb?.accessToken, false, 'without the access token, tokenUse does not matter')
  fails(t, { alb: aloneAlb, resolveUser: () => ({}) }, 'resolveUser', /needs the access token's claims/)
  fails(t, { alb: aloneAlb, isRevoked: () => false }, 'isRevoked', /needs the access token's claims/)
  fails(t, { alb: aloneAlb, revocation: { store: 'memory' } }, 'revocation', /needs the access token's claims/)
})
