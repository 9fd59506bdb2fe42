/**
 * The pools of workload t, as the runner and the server both see them: pool `i` is
 * `eu-central-1_Tenant<i>`, with Cognito's issuer, one app client, and a JWKS of its own served on
 * 127.0.0.1. Every pool publishes the same RSA key under a `kid` of its own, so that 1,000 pools
 * cost one key pair to make while each still has its own keys, headers and verifiers.
 */
export const MEMORY_ROUTE = '/__memory'

export interface TenantServerSpec {
  mode: 'one' | 'tenants'
  /** `http://127.0.0.1:<port>`: pool i's JWKS is at `<jwksBase>/<poolId>/jwks.json`. */
  jwksBase: string
  tenants: number
  tokenCache: boolean
}

export interface TenantPool {
  userPoolId: string
  clientId: string
  issuer: string
  jwksUri: string
  kid: string
  tenant: number
}

export function tenantPool (jwksBase: string, i: number): TenantPool {
  const userPoolId = `eu-central-1_Tenant${i}`
  return {
    userPoolId,
    clientId: `tenant-${i}-client`,
    issuer: `https://cognito-idp.eu-central-1.amazonaws.com/${userPoolId}`,
    jwksUri: `${jwksBase}/${userPoolId}/jwks.json`,
    kid: `tenant-${i}-key`,
    tenant: i
  }
}
