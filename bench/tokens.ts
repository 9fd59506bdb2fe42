/**
 * The benchmark's user pool: one RSA key pair (LocalIssuer), its JWKS served on 127.0.0.1, and the
 * tokens the workloads send, all signed before any measurement starts.
 */
import { LocalIssuer } from '../testing'
import { CLIENT_ID, KNOWN_USER_SUB, USER_POOL_ID } from './config'

export interface BenchPool {
  issuer: LocalIssuer
  jwksUri: string
  close: () => Promise<void>
}

/** The pool, with Cognito's real issuer form; its JWKS is served by LocalIssuer on loopback. */
export async function openPool (): Promise<BenchPool> {
  const issuer = new LocalIssuer({ userPoolId: USER_POOL_ID, clientId: CLIENT_ID })
  const jwksUri = await issuer.listen()
  return { issuer, jwksUri, close: async () => await issuer.close() }
}

/** The ID token of the one user the `resolveUser` workload's directory knows. */
export function knownUserToken (issuer: LocalIssuer): string {
  return issuer.idToken({ sub: KNOWN_USER_SUB })
}

/** `count` distinct valid ID tokens (about 1 ms each: an RSA signature apiece). */
export function distinctTokens (issuer: LocalIssuer, count: number): string[] {
  const tokens: string[] = []
  for (let i = 0; i < count; i++) tokens.push(issuer.idToken())
  return tokens
}

/**
 * Tokens every authenticating variant must refuse. A variant that accepts one of them is not
 * doing the same work as the others, so the run stops before measuring it.
 */
export function refusedTokens (issuer: LocalIssuer): Record<string, string> {
  const now = Math.floor(Date.now() / 1000)
  return {
    'forged signature': issuer.idToken({ sub: KNOWN_USER_SUB }, { signingKey: LocalIssuer.foreignKey() }),
    'other app client': issuer.idToken({ sub: KNOWN_USER_SUB, aud: 'another-client' }),
    'other issuer': issuer.idToken({ sub: KNOWN_USER_SUB, iss: 'https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_Other' }),
    'access token': issuer.accessToken({ sub: KNOWN_USER_SUB }),
    expired: issuer.idToken({ sub: KNOWN_USER_SUB, iat: now - 7200, auth_time: now - 7200, exp: now - 3600 })
  }
}
