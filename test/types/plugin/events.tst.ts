/**
 * The events' channel names and message types, as a subscriber uses them with
 * node:diagnostics_channel, which hands every handler an `unknown` message.
 */
import diagnostics from 'node:diagnostics_channel'
import type { FastifyRequest } from 'fastify'
import { describe, expect, test } from 'tstyche'
import {
  channels,
  type CognitoAuthenticatedEvent,
  type CognitoClaims,
  type CognitoJwksEvent,
  type CognitoPoolEvent,
  type CognitoRefusedEvent,
  type CognitoRevocationEvent
} from '../../../index'

describe('channels', () => {
  test('are the literal channel names, read-only', () => {
    expect(channels.authenticated).type.toBe<'fastify-cognito-jwt:authenticated'>()
    expect(channels.refused).type.toBe<'fastify-cognito-jwt:refused'>()
    expect(channels.jwks).type.toBe<'fastify-cognito-jwt:jwks'>()
    expect(channels.revocation).type.toBe<'fastify-cognito-jwt:revocation'>()
    expect(channels.pools).type.toBe<'fastify-cognito-jwt:pools'>()
    expect(channels).type.not.toHaveProperty('token')
    // @ts-expect-error Cannot assign to 'refused' because it is a read-only property
    channels.refused = 'x'
  })

  test('name the channels of diagnostics_channel', () => {
    expect(diagnostics.subscribe).type.toBeCallableWith(channels.authenticated, (message: unknown) => { void message })
    expect(diagnostics.channel).type.toBeCallableWith(channels.jwks)
  })
})

describe('a typed handler', () => {
  test('reads its message as the event type of its channel', () => {
    diagnostics.subscribe(channels.authenticated, (message) => {
      const { request, claims, cached } = message as CognitoAuthenticatedEvent
      expect(request).type.toBe<FastifyRequest>()
      expect(claims).type.toBe<CognitoClaims>()
      expect(cached).type.toBe<boolean>()
    })
    diagnostics.subscribe(channels.refused, (message) => {
      const { error } = message as CognitoRefusedEvent
      expect(error.code).type.toBe<string>()
      expect(error.statusCode).type.toBe<number>()
      expect(error.reason).type.toBe<string | undefined>()
    })
    diagnostics.subscribe(channels.jwks, (message) => {
      const { jwksUri, outcome, status, durationMs, keys } = message as CognitoJwksEvent
      expect(jwksUri).type.toBe<string | null>()
      expect(outcome).type.toBe<'fetched' | 'failed' | 'aborted' | 'rotated' | 'expired'>()
      expect(status).type.toBe<number | null>()
      expect(durationMs).type.toBe<number | null>()
      expect(keys).type.toBe<number>()
    })
    diagnostics.subscribe(channels.revocation, (message) => {
      const { event, entries, written, pending } = message as CognitoRevocationEvent
      expect(event).type.toBe<'synced' | 'disconnected' | 'reconnected' | 'written'>()
      expect(entries).type.toBe<number>()
      expect(written).type.toBe<number | undefined>()
      expect(pending).type.toBe<number | undefined>()
    })
    diagnostics.subscribe(channels.pools, (message) => {
      const { event, issuer, pools, refresh, durationMs, changed, reason } = message as CognitoPoolEvent
      expect(event).type.toBe<'asked' | 'answered' | 'unknown' | 'failed' | 'evicted' | 'refused'>()
      expect(issuer).type.toBe<string>()
      expect(pools).type.toBe<number>()
      expect(refresh).type.toBe<boolean | undefined>()
      expect(durationMs).type.toBe<number | undefined>()
      expect(changed).type.toBe<boolean | undefined>()
      expect(reason).type.toBe<string | undefined>()
    })
  })

  test('an error, the request and the claims are read-only facts, not options', () => {
    expect<CognitoRefusedEvent>().type.not.toHaveProperty('claims')
    expect<CognitoAuthenticatedEvent>().type.not.toHaveProperty('error')
    expect<CognitoJwksEvent>().type.not.toHaveProperty('request')
    expect<CognitoPoolEvent>().type.not.toHaveProperty('token')
  })

  test('a handler that declares the event type is a ChannelListener only through unknown', () => {
    const typed = (message: CognitoAuthenticatedEvent): boolean => message.cached
    // diagnostics_channel hands `unknown` to every handler: a handler typed otherwise is refused.
    expect(diagnostics.subscribe).type.not.toBeCallableWith(channels.authenticated, typed)
    expect(diagnostics.subscribe).type.toBeCallableWith(channels.authenticated, (message: unknown) => typed(message as CognitoAuthenticatedEvent))
  })
})
