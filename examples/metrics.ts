/**
 * Prometheus metrics of authentication, from the plugin's events, with fastify-metrics
 * (prom-client): requests accepted (from the token cache or not), refused (by error code), and
 * the duration of JWKS fetches. The README shows this file; test/metrics.test.ts runs it.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { FastifyInstance } from 'fastify'
import fastifyMetrics from 'fastify-metrics'
// An application imports the package: `from 'fastify-cognito-jwt'`.
import { channels, type CognitoAuthenticatedEvent, type CognitoJwksEvent, type CognitoRefusedEvent } from '../index'

export async function cognitoMetrics (app: FastifyInstance): Promise<void> {
  // GET /metrics, and prom-client as `app.metrics.client`.
  await app.register(fastifyMetrics, { endpoint: '/metrics', clearRegisterOnInit: true })
  const { Counter, Histogram } = app.metrics.client
  const accepted = new Counter({
    name: 'cognito_requests_accepted_total',
    help: 'Requests authenticated, by whether the token came from the token cache',
    labelNames: ['cached']
  })
  const refused = new Counter({
    name: 'cognito_requests_refused_total',
    help: 'Requests refused, by FST_COGNITO_* code',
    labelNames: ['code']
  })
  const jwksFetches = new Histogram({
    name: 'cognito_jwks_fetch_duration_seconds',
    help: 'JWKS fetches, by outcome (fetched, failed, aborted)',
    labelNames: ['outcome'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
  })

  // diagnostics_channel hands every subscriber an `unknown`: each one reads its channel's type.
  const onAccepted = (message: unknown): void => {
    accepted.inc({ cached: String((message as CognitoAuthenticatedEvent).cached) })
  }
  const onRefused = (message: unknown): void => {
    refused.inc({ code: (message as CognitoRefusedEvent).error.code })
  }
  const onJwks = (message: unknown): void => {
    const { outcome, durationMs } = message as CognitoJwksEvent
    // Rotations and expiries are not fetches: they carry no duration.
    if (durationMs !== null) jwksFetches.observe({ outcome }, durationMs / 1000)
  }
  // Channels are process-wide: subscribe once per process, and let go when the app closes.
  subscribe(channels.authenticated, onAccepted)
  subscribe(channels.refused, onRefused)
  subscribe(channels.jwks, onJwks)
  app.addHook('onClose', async () => {
    unsubscribe(channels.authenticated, onAccepted)
    unsubscribe(channels.refused, onRefused)
    unsubscribe(channels.jwks, onJwks)
  })
}
