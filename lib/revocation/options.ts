/**
 * The `revocation` option, checked at register: which store holds the list (the application's
 * Redis client, or this process's memory) and how long its entries live. A key that is present
 * counts whatever its value, so `redis: process.env.UNSET && client` is refused, not read as
 * "no revocation".
 */
import type { RevocationRedisClient } from '../../types'
import { InvalidOptionError } from '../errors'
import { refuseUnknownKeys } from '../option-keys'

const REDIS_KEYS = ['redis', 'keyPrefix', 'maxTokenLifetime', 'maxStale', 'timeout', 'replicas']
const MEMORY_KEYS = ['store', 'maxTokenLifetime']
/** What the Redis store calls on the application's client (ioredis' API; iovalkey and @fastify/redis give the same). */
const CLIENT_METHODS = ['duplicate', 'eval', 'zscan', 'subscribe', 'on']

export interface RevocationSettings {
  store: 'memory' | 'redis'
  /** The application's client; set for the Redis store. */
  redis?: RevocationRedisClient
  keyPrefix: string
  /** How long an entry lives: the longest lifetime of the tokens it revokes. */
  maxTokenLifetimeMs: number
  /** Refuse tokens once the replica has been out of sync this long; Infinity: never. */
  maxStaleMs: number
  /** The longest a write, or one page of a load, may take. */
  timeoutMs: number
  /** Redis replicas that must acknowledge a revocation (WAIT) before it resolves; 0: none asked. */
  replicas: number
  /** The top-level `clockTolerance`: sign-out marks and entry lifetimes allow for it. */
  clockToleranceMs: number
}

function fail (option: string, problem: string): never {
  throw new InvalidOptionError(`revocation.${option}`, problem)
}

function seconds (value: unknown, option: string, fallback: number): number {
  if (value === undefined) return fallback * 1000
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) fail(option, 'must be a positive number of seconds')
  return value * 1000
}

export function parseRevocation (value: unknown, clockToleranceMs: number): RevocationSettings | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError('revocation', 'must be { redis: <client> } or { store: \'memory\' }')
  }
  const options = value as Record<string, unknown>
  const memory = 'store' in options
  if (memory === 'redis' in options) {
    throw new InvalidOptionError('revocation', memory
      ? 'takes either redis or store, not both'
      : 'needs redis (the application\'s Redis client) or store: \'memory\' (one process only)')
  }
  refuseUnknownKeys(options, memory ? MEMORY_KEYS : REDIS_KEYS, 'revocation')
  const { redis, store, keyPrefix = 'cognito:revocation:' } = options
  if (memory && store !== 'memory') fail('store', 'must be \'memory\'; for several processes give redis instead')
  if (!memory) {
    if (typeof redis !== 'object' || redis === null) fail('redis', 'must be a Redis client (ioredis, iovalkey, or @fastify/redis\' app.redis)')
    const missing = CLIENT_METHODS.find((name) => typeof (redis as Record<string, unknown>)[name] !== 'function')
    if (missing !== undefined) fail('redis', `must be a Redis client with ioredis' API; it has no ${missing}()`)
  }
  if (typeof keyPrefix !== 'string' || keyPrefix === '') fail('keyPrefix', 'must be a non-empty string')
  const { replicas = 0 } = options
  if (!Number.isSafeInteger(replicas) || (replicas as number) < 0) fail('replicas', 'must be a whole number of Redis replicas (0: none waited for)')
  if ((replicas as number) > 0 && typeof (redis as Record<string, unknown>).pipeline !== 'function') fail('redis', 'must be a Redis client with pipeline() to wait for replicas')
  return {
    store: memory ? 'memory' : 'redis',
    redis: memory ? undefined : redis as RevocationRedisClient,
    keyPrefix,
    maxTokenLifetimeMs: seconds(options.maxTokenLifetime, 'maxTokenLifetime', 86_400),
    maxStaleMs: options.maxStale === undefined ? Infinity : seconds(options.maxStale, 'maxStale', 0),
    timeoutMs: seconds(options.timeout, 'timeout', 5),
    replicas: replicas as number,
    clockToleranceMs
  }
}
