/**
 * `resolveUser` and `isRevoked` receive the claims of the tokens the pool accepts, typed from
 * `tokenUse` inside `app.register` with no annotation: ID token claims by default, access token
 * claims with 'access', either with 'any', and the union of the pools' kinds with `userPools`.
 */
import fastify, { type FastifyRequest } from 'fastify'
import { describe, expect, test } from 'tstyche'
import cognitoAuth, {
  type CognitoAccessTokenClaims,
  type CognitoClaims,
  type CognitoClaimsFor,
  type CognitoClaimsOfPools,
  type CognitoIdTokenClaims,
  type CognitoSinglePoolOptionsFor,
  type CognitoUserPoolOptions
} from '../../../index'

const app = fastify()
const pool = { userPoolId: 'eu-central-1_xYzaq', clientId: 'client' }

describe('one pool', () => {
  test('by default, the claims of an ID token: aud needs no narrowing', () => {
    app.register(cognitoAuth, {
      ...pool,
      resolveUser: (claims, request) => {
        expect(claims).type.toBe<CognitoIdTokenClaims>()
        expect(claims.aud).type.toBe<string>()
        expect(request).type.toBe<FastifyRequest>()
        return claims
      },
      isRevoked: (claims) => {
        expect(claims).type.toBe<CognitoIdTokenClaims>()
        return false
      }
    })
    app.register(cognitoAuth, { ...pool, tokenUse: 'id', resolveUser: async (claims) => claims.email === undefined ? null : claims })
  })

  test('with tokenUse: access, the claims of an access token', () => {
    app.register(cognitoAuth, {
      ...pool,
      tokenUse: 'access',
      resolveUser: (claims) => {
        expect(claims).type.toBe<CognitoAccessTokenClaims>()
        expect(claims.client_id).type.toBe<string>()
        expect(claims.scope).type.toBe<string | undefined>()
        return claims
      },
      isRevoked: async (claims) => {
        expect(claims).type.toBe<CognitoAccessTokenClaims>()
        return claims.username === 'gone'
      }
    })
  })

  test('with tokenUse: any, either, to narrow on token_use', () => {
    app.register(cognitoAuth, {
      ...pool,
      tokenUse: 'any',
      resolveUser: (claims) => {
        expect(claims).type.toBe<CognitoClaims>()
        if (claims.token_use === 'access') expect(claims.client_id).type.toBe<string>()
        else expect(claims.aud).type.toBe<string>()
        return claims
      }
    })
  })

  test('a hook written for the other kind of token is refused', () => {
    const forIdTokens = (claims: CognitoIdTokenClaims): boolean => claims.email === undefined
    const forAccessTokens = (claims: CognitoAccessTokenClaims): boolean => claims.scope === undefined
    const forEither = (claims: CognitoClaims): boolean => claims.sub === ''
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, isRevoked: forIdTokens })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, isRevoked: forAccessTokens })
    expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, tokenUse: 'access', isRevoked: forAccessTokens })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, tokenUse: 'access', isRevoked: forIdTokens })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, tokenUse: 'any', isRevoked: forIdTokens })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, tokenUse: 'any', isRevoked: forAccessTokens })
    // A hook for either kind fits every pool.
    for (const tokenUse of ['id', 'access', 'any'] as const) {
      expect(app.register).type.toBeCallableWith(cognitoAuth, { ...pool, tokenUse, isRevoked: forEither })
    }
  })

  test('an unannotated hook that assumes the other kind does not compile', () => {
    expect(app.register(cognitoAuth, {
      ...pool,
      tokenUse: 'access',
      resolveUser: (claims) => {
        const email: string | undefined = claims.email
        return email === undefined ? null : claims
      }
    })).type.toRaiseError("Type 'unknown' is not assignable to type 'string | undefined'")
    expect(app.register(cognitoAuth, {
      ...pool,
      resolveUser: (claims) => {
        const clientId: string = claims.client_id
        return clientId === '' ? null : claims
      }
    })).type.toRaiseError("Type 'unknown' is not assignable to type 'string'")
  })

  test('optional options are left out, not set to undefined (exactOptionalPropertyTypes)', () => {
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, region: undefined })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { ...pool, tokenUse: undefined, resolveUser: (claims: CognitoIdTokenClaims) => claims })
  })
})

describe('several pools', () => {
  const idPool = { userPoolId: 'eu-central-1_Customers', clientId: 'web' }
  const accessPool = { userPoolId: 'eu-central-1_Staff', clientId: 'backoffice', tokenUse: 'access' } as const

  test('ID token pools give ID token claims', () => {
    app.register(cognitoAuth, {
      userPools: [idPool, { ...idPool, userPoolId: 'eu-west-1_Other', tokenUse: 'id' }],
      resolveUser: (claims) => {
        expect(claims).type.toBe<CognitoIdTokenClaims>()
        return claims
      }
    })
  })

  test('access token pools give access token claims', () => {
    app.register(cognitoAuth, {
      userPools: [accessPool],
      isRevoked: (claims) => {
        expect(claims).type.toBe<CognitoAccessTokenClaims>()
        return false
      }
    })
  })

  test('a mix gives the union', () => {
    app.register(cognitoAuth, {
      userPools: [idPool, accessPool],
      resolveUser: (claims) => {
        expect(claims).type.toBe<CognitoIdTokenClaims | CognitoAccessTokenClaims>()
        return claims
      }
    })
    app.register(cognitoAuth, {
      userPools: [{ ...idPool, tokenUse: 'any' }],
      resolveUser: (claims) => {
        expect(claims).type.toBe<CognitoClaims>()
        return claims
      }
    })
    const forIdTokens = (claims: CognitoIdTokenClaims): boolean => claims.email === undefined
    expect(app.register).type.toBeCallableWith(cognitoAuth, { userPools: [idPool], isRevoked: forIdTokens })
    expect(app.register).type.not.toBeCallableWith(cognitoAuth, { userPools: [idPool, accessPool], isRevoked: forIdTokens })
  })

  test('pools whose kinds are not known give the union', () => {
    const pools: CognitoUserPoolOptions[] = [idPool]
    app.register(cognitoAuth, {
      userPools: pools,
      resolveUser: (claims) => {
        expect(claims).type.toBe<CognitoClaims>()
        return claims
      }
    })
  })
})

describe('the types behind it', () => {
  test('CognitoClaimsFor', () => {
    expect<CognitoClaimsFor<'id'>>().type.toBe<CognitoIdTokenClaims>()
    expect<CognitoClaimsFor<'access'>>().type.toBe<CognitoAccessTokenClaims>()
    expect<CognitoClaimsFor<'any'>>().type.toBe<CognitoClaims>()
  })

  test('CognitoClaimsOfPools', () => {
    expect<CognitoClaimsOfPools<[{ userPoolId: string, clientId: string }]>>().type.toBe<CognitoIdTokenClaims>()
    expect<CognitoClaimsOfPools<[{ userPoolId: string, clientId: string, tokenUse: 'access' }]>>().type.toBe<CognitoAccessTokenClaims>()
    expect<CognitoClaimsOfPools<CognitoUserPoolOptions[]>>().type.toBe<CognitoClaims>()
  })

  test('CognitoSinglePoolOptionsFor: tokenUse may be left out only where the claims include an ID token\'s', () => {
    expect<CognitoSinglePoolOptionsFor<'id'>>().type.toBeAssignableFrom(pool)
    expect<CognitoSinglePoolOptionsFor<'access'>>().type.not.toBeAssignableFrom(pool)
    expect<CognitoSinglePoolOptionsFor<'access'>>().type.toBeAssignableFrom({ ...pool, tokenUse: 'access' as const })
    expect<CognitoSinglePoolOptionsFor<'any'>>().type.not.toBeAssignableFrom(pool)
  })
})
