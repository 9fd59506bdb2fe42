/**
 * The `alb` option, checked once at register: the load balancers whose signature is accepted,
 * where their keys are served, and whether the access token must come along (the default).
 */
import { InvalidOptionError } from '../errors'
import { refuseUnknownKeys } from '../option-keys'

export interface AlbSettings {
  /** The ARNs accepted in the token's `signer` header. */
  signers: ReadonlySet<string>
  /** `<keysUri>/<kid>` serves a key's PEM. */
  keysUri: string
  /** Whether `x-amzn-oidc-accesstoken` must verify as an access token of the pool, with the same `sub`. */
  accessToken: boolean
}

const ALB_KEYS = ['loadBalancerArn', 'keysUri', 'accessToken']

/**
 * An Application Load Balancer's ARN: `arn:<partition>:elasticloadbalancing:<region>:<account>:loadbalancer/app/<name>/<id>`.
 * Linear: every group is a character class with a fixed separator after it.
 */
const ALB_ARN = /^arn:(aws|aws-us-gov|aws-cn):elasticloadbalancing:([a-z]{2}(?:-[a-z]+)+-\d{1,2}):(\d{12}):loadbalancer\/app\/([A-Za-z0-9-]{1,32})\/([0-9a-f]{16})$/

function fail (option: string, problem: string): never {
  throw new InvalidOptionError(option, problem)
}

/** The ARNs, checked; `loadBalancerArn` may be one or several (a list of load balancers in front of the app). */
function arns (value: unknown): string[] {
  const list = typeof value === 'string' ? [value] : value
  if (!Array.isArray(list) || list.length === 0) fail('alb.loadBalancerArn', 'is required: the ARN of the load balancer, or a non-empty list of them')
  for (const arn of list) {
    if (typeof arn !== 'string' || !ALB_ARN.test(arn)) {
      fail('alb.loadBalancerArn', 'must be an Application Load Balancer ARN, arn:<aws|aws-us-gov|aws-cn>:elasticloadbalancing:<region>:<account>:loadbalancer/app/<name>/<id>')
    }
  }
  return list as string[]
}

/** The default key host, for load balancers of the `aws` partition, all in one region. */
function defaultKeysUri (list: readonly string[]): string {
  const parts = list.map((arn) => ALB_ARN.exec(arn) as RegExpExecArray)
  const region = parts[0][2]
  if (parts.some(([, p]) => p !== 'aws')) fail('alb.keysUri', 'is required for load balancers outside the aws partition (GovCloud and China serve their keys elsewhere)')
  if (parts.some(([, , r]) => r !== region)) fail('alb.keysUri', 'is required when the load balancers are in different regions (each region serves its own keys)')
  return `https://public-keys.auth.elb.${region}.amazonaws.com`
}

function keysUriOf (value: unknown): string {
  if (typeof value !== 'string') fail('alb.keysUri', 'must be a URL string')
  let url: URL
  try {
    url = new URL(value)
  } catch {
    fail('alb.keysUri', 'must be an absolute http(s) URL')
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') fail('alb.keysUri', 'must be an absolute http(s) URL')
  if (url.search !== '' || url.hash !== '') fail('alb.keysUri', 'must have no query or fragment: the kid is appended to it')
  // `${keysUri}/${kid}`: a trailing slash would make the path `//kid`.
  return value.endsWith('/') ? value.slice(0, -1) : value
}

export function parseAlb (value: unknown): AlbSettings {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('alb', 'must be an object, { loadBalancerArn }')
  const options = value as Record<string, unknown>
  refuseUnknownKeys(options, ALB_KEYS, 'alb')
  const list = arns(options.loadBalancerArn)
  const { accessToken = true } = options
  if (typeof accessToken !== 'boolean') fail('alb.accessToken', 'must be true or false')
  return {
    signers: new Set(list),
    keysUri: options.keysUri === undefined ? defaultKeysUri(list) : keysUriOf(options.keysUri),
    accessToken
  }
}
