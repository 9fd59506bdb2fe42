/**
 * What `npm run demo -- --once` does: mints demo tokens with a local user pool, sends one real
 * HTTP request per case to the running API, and compares each answer with the expected one.
 */
import { randomUUID } from 'node:crypto'
// An application writes `from 'fastify-cognito-jwt/testing'`.
import { AlbIssuer, LocalIssuer } from '../testing'

/** Tokens for two demo users: Alice (group `users`) and Bob (groups `users` and `admin`). */
export interface DemoTokens {
  /** Alice's ID token. */
  id: string
  /** Bob's ID token. */
  admin: string
  /** Alice's access token, granted the scope `orders/read`. */
  access: string
  /** Alice's `sub`. */
  alice: string
}

export function demoTokens (issuer: LocalIssuer): DemoTokens {
  // One `sub` per person: the ID and access tokens of Alice resolve to the same user row.
  const alice = randomUUID()
  const bob = randomUUID()
  return {
    id: issuer.idToken({ sub: alice, 'cognito:username': 'alice', email: 'alice@example.com', 'cognito:groups': ['users'] }),
    admin: issuer.idToken({ sub: bob, 'cognito:username': 'bob', email: 'bob@example.com', 'cognito:groups': ['users', 'admin'] }),
    access: issuer.accessToken({ sub: alice, username: 'alice', scope: 'openid email orders/read' }),
    alice
  }
}

export interface Check {
  /** GET unless said. */
  method?: 'POST'
  path: string
  /** What is sent, in words. */
  what: string
  token?: string
  /** Headers sent instead of a Bearer token: those a load balancer forwards. */
  headers?: Record<string, string>
  expected: { status: number, code?: string }
}

/** With a load balancer in front of /alb: its headers, sent straight to the API, as a client behind it or an attacker would. */
function albChecks (alb: AlbIssuer, alice: string): Check[] {
  const headers = alb.headers({ sub: alice, email: 'alice@example.com' })
  return [
    { path: '/alb/me', what: 'load balancer headers', headers, expected: { status: 200 } },
    {
      path: '/alb/me',
      what: 'Bearer token, no ALB headers',
      token: alb.pool.accessToken({ sub: alice }),
      expected: { status: 401, code: 'FST_COGNITO_NO_TOKEN' }
    },
    {
      path: '/alb/me',
      what: 'ALB token signed by another key',
      headers: alb.headers({ sub: alice }, { signingKey: AlbIssuer.foreignKey() }),
      expected: { status: 401, code: 'FST_COGNITO_TOKEN_INVALID' }
    },
    {
      path: '/alb/me',
      what: 'another user\'s access token',
      headers: { ...headers, 'x-amzn-oidc-accesstoken': alb.pool.accessToken() },
      expected: { status: 401, code: 'FST_COGNITO_TOKEN_INVALID' }
    }
  ]
}

export function demoChecks (issuer: LocalIssuer, alb?: AlbIssuer): Check[] {
  const tokens = demoTokens(issuer)
  const hourAgo = Math.floor(Date.now() / 1000) - 3600
  return [
    { path: '/', what: 'no token', expected: { status: 200 } },
    { path: '/me', what: 'ID token', token: tokens.id, expected: { status: 200 } },
    { path: '/me', what: 'no token', expected: { status: 401, code: 'FST_COGNITO_NO_TOKEN' } },
    {
      path: '/me',
      what: 'expired ID token',
      token: issuer.idToken({ iat: hourAgo - 60, auth_time: hourAgo - 60, exp: hourAgo }),
      expected: { status: 401, code: 'FST_COGNITO_TOKEN_EXPIRED' }
    },
    {
      path: '/me',
      what: 'ID token of another app client',
      token: issuer.idToken({ aud: 'another-app-client' }),
      expected: { status: 401, code: 'FST_COGNITO_TOKEN_INVALID' }
    },
    {
      path: '/me',
      what: 'token signed with a foreign key',
      token: issuer.idToken({}, { signingKey: LocalIssuer.foreignKey() }),
      expected: { status: 401, code: 'FST_COGNITO_TOKEN_INVALID' }
    },
    { path: '/admin', what: 'ID token, not in group admin', token: tokens.id, expected: { status: 403, code: 'FST_COGNITO_FORBIDDEN' } },
    { path: '/admin', what: 'ID token in group admin', token: tokens.admin, expected: { status: 200 } },
    { path: '/orders', what: 'access token, scope orders/read', token: tokens.access, expected: { status: 200 } },
    {
      path: '/orders',
      what: 'access token without the scope',
      token: issuer.accessToken({ scope: 'openid email' }),
      expected: { status: 403, code: 'FST_COGNITO_FORBIDDEN' }
    },
    { path: '/orders', what: 'ID token (has no scopes)', token: tokens.id, expected: { status: 403, code: 'FST_COGNITO_FORBIDDEN' } },
    // Last: signing Bob out revokes every token of his sign-in.
    { method: 'POST', path: '/logout', what: 'ID token in group admin', token: tokens.admin, expected: { status: 204 } },
    { path: '/admin', what: 'the same token, signed out', token: tokens.admin, expected: { status: 401, code: 'FST_COGNITO_TOKEN_REVOKED' } },
    ...(alb === undefined ? [] : albChecks(alb, tokens.alice))
  ]
}

export interface CheckResult {
  check: Check
  status: number
  /** The error code of the answer, if it is an error. */
  code?: string
  pass: boolean
}

export async function runCheck (baseUrl: string, check: Check): Promise<CheckResult> {
  const headers: Record<string, string> = { ...check.headers, ...(check.token === undefined ? {} : { authorization: `Bearer ${check.token}` }) }
  const response = await fetch(baseUrl + check.path, { method: check.method ?? 'GET', headers })
  const text = await response.text()
  // A 204 has no body; every other answer is JSON.
  const { code } = (text === '' ? {} : JSON.parse(text)) as { code?: string }
  const { expected } = check
  const pass = response.status === expected.status && code === expected.code
  return { check, status: response.status, code, pass }
}

/** A status and its error code, as printed: `200`, `401 FST_COGNITO_NO_TOKEN`. */
export function outcome (status: number, code: string | undefined): string {
  return code === undefined ? String(status) : `${status} ${code}`
}

/** One line per check, e.g. `PASS  GET /me  no token  expected 401 FST_COGNITO_NO_TOKEN, got 401 FST_COGNITO_NO_TOKEN`. */
export function formatResult ({ check, status, code, pass }: CheckResult): string {
  const request = `${check.method ?? 'GET'} ${check.path}`.padEnd(12)
  const expected = outcome(check.expected.status, check.expected.code)
  return `${pass ? 'PASS' : 'FAIL'}  ${request} ${check.what.padEnd(32)} expected ${expected}, got ${outcome(status, code)}`
}

/** The report's closing line and the process exit code: 0 only when every check passed. */
export function summarize (results: CheckResult[]): { line: string, exitCode: number } {
  const failed = results.filter((result) => !result.pass).length
  return failed === 0
    ? { line: `All ${results.length} checks passed.`, exitCode: 0 }
    : { line: `${failed} of ${results.length} checks failed.`, exitCode: 1 }
}
