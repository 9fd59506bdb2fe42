/**
 * The revocation list in Redis, on the application's own client (ioredis' API):
 *   - `<prefix>entries`: a sorted set, one member per entry, scored by its expiry (epoch ms);
 *     every write also trims the expired members and keeps the key alive `maxTokenLifetime`;
 *   - `<prefix>events`: a channel on which every write publishes its entry.
 * A subscriber connection (the client's `duplicate()`, the only connection this module closes)
 * subscribes first, then the sorted set is loaded: an entry written in between arrives both ways,
 * which the replica's union absorbs. When the subscriber loses Redis, the replica is out of sync;
 * once it is back, subscribe and load again catch up with whatever was written meanwhile.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { CognitoAuthError } from '../../types'
import { RevocationUnavailableError, withReason } from '../errors'
import { publishRevocation, wantsRevocationEvents } from '../events'
import type { RevocationEntry, RevocationReplica, RevocationStore, RevocationSyncStats } from './list'
import type { RevocationSettings } from './options'

type Listener = (...args: never[]) => void

/** The commands used, as ioredis (and iovalkey) declare them. */
interface Transaction {
  zadd: (key: string, score: number, member: string) => Transaction
  zremrangebyscore: (key: string, min: string, max: number) => Transaction
  pexpire: (key: string, ms: number) => Transaction
  publish: (channel: string, message: string) => Transaction
  exec: () => Promise<Array<[Error | null, unknown]>>
}

interface Client {
  readonly status?: string
  duplicate: () => Client
  multi: () => Transaction
  zrangebyscore: (key: string, min: number, max: string, withScores: 'WITHSCORES') => Promise<string[]>
  subscribe: (channel: string) => Promise<unknown>
  on: (event: string, listener: Listener) => unknown
  removeAllListeners: (event: string) => unknown
  disconnect: () => void
}

/** How long a failed resync waits before the next attempt. */
const RETRY_MS = 1000

/** Members carry what identifies an entry; the expiry is the score (and leads the published message). */
function encode (entry: RevocationEntry): string {
  return JSON.stringify(entry.kind === 'session' ? ['s', entry.id] : ['u', entry.iss, entry.sub, entry.mark])
}

/** An entry read back; anything else in the key or on the channel (another writer's data) is skipped. */
export function decode (member: string, expires: number): RevocationEntry | undefined {
  if (!Number.isFinite(expires)) return undefined
  let value: unknown
  try {
    value = JSON.parse(member)
  } catch {
    return undefined
  }
  if (!Array.isArray(value)) return undefined
  const [kind, a, b, mark] = value as unknown[]
  if (kind === 's' && typeof a === 'string' && value.length === 2) return { kind: 'session', id: a, expires }
  if (kind === 'u' && typeof a === 'string' && typeof b === 'string' && typeof mark === 'number' && value.length === 4) {
    return { kind: 'user', iss: a, sub: b, mark, expires }
  }
  return undefined
}

async function withTimeout<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer ${what} within ${ms / 1000} s`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

export class RedisRevocationStore implements RevocationStore {
  private readonly client: Client
  private readonly key: string
  private readonly channel: string
  private subscriber: Client | undefined
  private replica!: RevocationReplica
  /** What stats() says of the sync; `inSync` turns true once a load completes after a subscription. */
  private readonly state: RevocationSyncStats = { inSync: false, since: Date.now(), lastSync: null, lastError: null }
  /** 'starting' until the first load, then whether the subscriber is connected. */
  private phase: 'starting' | 'connected' | 'disconnected' | 'closed' = 'starting'
  /** Stops the resync in progress. */
  private retries = new AbortController()

  constructor (private readonly settings: RevocationSettings) {
    this.client = settings.redis as unknown as Client
    this.key = `${settings.keyPrefix}entries`
    this.channel = `${settings.keyPrefix}events`
  }

  async start (replica: RevocationReplica): Promise<void> {
    this.replica = replica
    const subscriber = this.client.duplicate()
    this.subscriber = subscriber
    // The subscriber listens to one channel only.
    subscriber.on('message', ((_channel: string, message: string) => this.onMessage(message)) as Listener)
    // Without a listener an 'error' event would throw; the errors are kept for stats() instead.
    subscriber.on('error', ((error: Error) => this.failed(error)) as Listener)
    subscriber.on('close', () => this.onClose())
    subscriber.on('ready', () => this.onReady())
    try {
      await this.load()
    } catch (error) {
      // The server will not start: the subscriber must not keep reconnecting.
      await this.close()
      throw error
    }
    // (Closed meanwhile, the subscriber has no listeners left: the phase no longer matters.)
    this.phase = 'connected'
  }

  async write (entry: RevocationEntry): Promise<void> {
    try {
      await this.send(entry)
    } catch (err) {
      const error = err as Error
      this.failed(error)
      throw withReason(new RevocationUnavailableError({ cause: error }), `Redis did not take the revocation: ${error.message}`)
    }
  }

  staleRefusal (): CognitoAuthError | undefined {
    const { inSync, since } = this.state
    if (inSync || Date.now() - since <= this.settings.maxStaleMs) return undefined
    return withReason(new RevocationUnavailableError(), 'the revocation list has been out of sync with Redis for longer than maxStale')
  }

  syncStats (): RevocationSyncStats {
    return { ...this.state }
  }

  private async send (entry: RevocationEntry): Promise<void> {
    const { client, key, settings } = this
    // A client that is reconnecting would queue the command: answer now instead of maybe later.
    if (client.status !== undefined && client.status !== 'ready') throw new Error(`the Redis client is ${client.status}`)
    const member = encode(entry)
    const results = await withTimeout(client.multi()
      .zadd(key, entry.expires, member)
      .zremrangebyscore(key, '-inf', Date.now())
      .pexpire(key, settings.maxTokenLifetimeMs)
      .publish(this.channel, `${entry.expires} ${member}`)
      .exec(), settings.timeoutMs, 'the revocation')
    for (const [error] of results) if (error !== null) throw error
  }

  async close (): Promise<void> {
    this.phase = 'closed'
    this.retries.abort()
    // start() made it before its first await.
    const subscriber = this.subscriber as Client
    for (const event of ['message', 'close', 'ready']) subscriber.removeAllListeners(event)
    subscriber.disconnect()
  }

  /** Subscribes (again: idempotent, and ordered before the load), then loads the whole set. */
  private async load (): Promise<void> {
    const { client, key, settings } = this
    const { replica, state } = this
    const started = Date.now()
    await withTimeout((this.subscriber as Client).subscribe(this.channel), settings.timeoutMs, 'the subscription')
    const flat = await withTimeout(client.zrangebyscore(key, started, '+inf', 'WITHSCORES'), settings.timeoutMs, 'the load')
    for (let i = 0; i < flat.length; i += 2) {
      const entry = decode(flat[i], Number(flat[i + 1]))
      if (entry !== undefined) replica.apply(entry)
    }
    const now = Date.now()
    replica.prune(now)
    state.lastSync = now
    if (!state.inSync) {
      state.inSync = true
      state.since = now
    }
    const durationMs = now - started
    replica.log.debug({ entries: replica.size(), durationMs }, 'cognito: revocation list loaded from Redis')
    if (wantsRevocationEvents()) publishRevocation({ event: 'synced', entries: replica.size(), durationMs })
  }

  private failed (error: Error): void {
    this.state.lastError = error.message
  }

  private onMessage (message: string): void {
    const space = message.indexOf(' ')
    const entry = decode(message.slice(space + 1), Number(message.slice(0, space)))
    if (entry !== undefined) this.replica.apply(entry)
  }

  private onClose (): void {
    if (this.phase !== 'connected') return
    this.phase = 'disconnected'
    this.retries.abort()
    const { replica, state } = this
    const reason = 'the subscriber connection to Redis closed'
    state.inSync = false
    state.since = Date.now()
    state.lastError = reason
    replica.log.warn({ entries: replica.size() }, 'cognito: the revocation list lost Redis and may be stale; it keeps enforcing the revocations it knows')
    if (wantsRevocationEvents()) publishRevocation({ event: 'disconnected', entries: replica.size(), reason })
  }

  private onReady (): void {
    if (this.phase !== 'disconnected') return
    this.phase = 'connected'
    this.replica.log.info('cognito: the revocation list reached Redis again; resyncing')
    if (wantsRevocationEvents()) publishRevocation({ event: 'reconnected', entries: this.replica.size() })
    this.retries = new AbortController()
    this.resync(this.retries.signal)
  }

  /** Loads until it works, a second apart, or until the subscriber is lost or closed (the signal). */
  private resync (signal: AbortSignal): void {
    const loop = async (): Promise<void> => {
      for (;;) {
        try {
          await this.load()
          return
        } catch (error) {
          this.failed(error as Error)
        }
        await sleep(RETRY_MS, undefined, { signal, ref: false })
      }
    }
    // An aborted wait ends the loop: a later reconnection starts another.
    loop().catch(() => {})
  }
}

export function createStore (settings: RevocationSettings): RevocationStore {
  return new RedisRevocationStore(settings)
}
