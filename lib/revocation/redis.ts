/**
 * The revocation list in Redis, on the application's own client (ioredis' API, a `Cluster` too):
 *   - `<prefix>entries`: a sorted set, one member per entry, scored by its expiry (epoch ms). One
 *     key, so one Cluster slot: every write is one script on it (add unless Redis holds the entry
 *     already, publish, trim, keep the key alive);
 *   - `<prefix>events`: a channel on which every added entry is published (classic pub/sub, which
 *     a Cluster broadcasts to every node).
 * A subscriber connection (the client's `duplicate()`, which this module closes) subscribes first,
 * then the sorted set is loaded, in pages: an entry written in between arrives both ways, which the
 * replica's union absorbs. The load counts only if the subscription it started from held to its
 * end; when the subscriber loses Redis the replica is out of sync until a load completes again.
 *
 * On a Redis Cluster, the client moves its subscription to another node when its node fails, and
 * says so by no event: what was published meanwhile never arrives. There, each write also counts
 * its entries in `<prefix>seq` (a key of the sorted set's slot) and each message carries its count;
 * every second the store reads the count, and a message missing from the sequence, or a count that
 * went back (Redis lost it), makes it out of sync and loads again. Other clients are unchanged.
 *
 * The fleet is the list's redundancy: after every load, the entries the replica holds that Redis
 * lacks (Redis restarted empty, a failover that lost writes, revocations it could not take) are
 * written back, in batches. A revocation Redis did not take is enforced here and kept pending: the
 * same writing takes it as soon as Redis answers again.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { CognitoAuthError } from '../../types'
import { RevocationUnavailableError, withReason } from '../errors'
import { publishRevocation, wantsRevocationEvents } from '../events'
import type { RevocationEntry, RevocationReplica, RevocationStore, RevocationSyncStats } from './list'
import type { RevocationSettings } from './options'

type Listener = (...args: never[]) => void
type Results = Array<[Error | null, unknown]>

/** ioredis' pipeline, for WAIT on the connection that wrote. */
interface Pipeline {
  eval: (script: string, keys: number, ...args: Array<string | number>) => Pipeline
  wait: (replicas: number, timeoutMs: number) => Pipeline
  exec: () => Promise<Results>
}

/** The commands used, as ioredis (and iovalkey) declare them. */
interface Client {
  readonly status?: string
  /** True on ioredis' and iovalkey's `Cluster`. */
  readonly isCluster?: boolean
  duplicate: () => Client
  eval: (script: string, keys: number, ...args: Array<string | number>) => Promise<unknown>
  get: (key: string) => Promise<string | null>
  zscan: (key: string, cursor: string, count: 'COUNT', size: number) => Promise<[string, string[]]>
  subscribe: (channel: string) => Promise<unknown>
  pipeline: () => Pipeline
  on: (event: string, listener: Listener) => unknown
  removeAllListeners: (event: string) => unknown
  disconnect: () => void
}

/** How long a failed resync, or a failed writing of pending entries, waits before the next attempt. */
const RETRY_MS = 1000
/** Loads that may find their subscription lost before the start gives up. */
const START_ATTEMPTS = 3
/** Members asked for per page of a load (ZSCAN's COUNT). */
const PAGE = 5000
/** Entries per script when writing back. */
const BATCH = 500
/**
 * Redis trims an entry only this long after its expiry by Redis' own clock: an instance whose
 * clock runs behind Redis' still finds the entries it considers alive.
 */
const TRIM_MARGIN_MS = 10 * 60_000
/** The most expired entries one write trims: no writer can drop the list at once. */
const TRIM_LIMIT = 100
/** How often a Cluster's store compares Redis' count of published entries with what it received. */
const CHECK_MS = 1000

/**
 * One script, one key: adds each entry unless Redis holds it with a later expiry (then publishes
 * it), trims what expired by Redis' clock less the margin, at most TRIM_LIMIT members, and keeps
 * the key alive until its last entry expires (plus the margin). No writer's clock decides what
 * the others lose. ARGV: channel, margin, limit, then expiry/member pairs. Returns how many were added.
 * With a second key (Cluster), each published entry is counted there and its message ends with
 * a newline and its count; the count lives as long as the set.
 */
const WRITE_SCRIPT = `
local key = KEYS[1]
local seq = KEYS[2]
local added = 0
for i = 4, #ARGV, 2 do
  local known = redis.call('ZSCORE', key, ARGV[i + 1])
  if not known or tonumber(known) < tonumber(ARGV[i]) then
    redis.call('ZADD', key, ARGV[i], ARGV[i + 1])
    local message = ARGV[i] .. ' ' .. ARGV[i + 1]
    if seq then message = message .. '\\n' .. redis.call('INCR', seq) end
    redis.call('PUBLISH', ARGV[1], message)
    added = added + 1
  end
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local margin = tonumber(ARGV[2])
local expired = redis.call('ZRANGEBYSCORE', key, '-inf', now - margin, 'LIMIT', 0, tonumber(ARGV[3]))
if #expired > 0 then redis.call('ZREM', key, unpack(expired)) end
local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
local keep = now + margin
if last[2] then
  keep = math.max(tonumber(last[2]), now) + margin
  redis.call('PEXPIREAT', key, keep)
end
if seq then redis.call('PEXPIREAT', seq, keep) end
return added
`

/**
 * Members carry what identifies an entry: `["s", userPoolId, id]` or `["u", userPoolId, sub, mark]`;
 * the expiry is the score (and leads the published message).
 */
export function encode (entry: RevocationEntry): string {
  return JSON.stringify(entry.kind === 'session' ? ['s', entry.pool, entry.id] : ['u', entry.pool, entry.sub, entry.mark])
}

function nonEmpty (value: unknown): value is string {
  return typeof value === 'string' && value !== ''
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
  const [kind, pool, a, mark] = value as unknown[]
  if (!nonEmpty(pool) || typeof a !== 'string') return undefined
  if (kind === 's' && value.length === 3) return { kind: 'session', pool, id: a, expires }
  if (kind === 'u' && typeof mark === 'number' && value.length === 4) return { kind: 'user', pool, sub: a, mark, expires }
  return undefined
}

/**
 * A key in the slot of `<prefix>entries` for the count: `<prefix>seq` when the prefix holds a hash
 * tag, else `{<prefix>entries}seq`; undefined when neither hashes alike (a `}` but no tag).
 */
export function countKey (keyPrefix: string): string | undefined {
  const key = `${keyPrefix}entries`
  const open = key.indexOf('{')
  const close = open < 0 ? -1 : key.indexOf('}', open + 1)
  if (close > open + 1) return `${keyPrefix}seq`
  return key.includes('}') ? undefined : `{${key}}seq`
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
  /** On a Cluster: the key counting the published entries. */
  private readonly seqKey: string | undefined
  /**
   * On a Cluster: the count up to which every message arrived (or the load covered), `arrived` the
   * highest that arrived, and `expected` the count Redis gave at the previous check.
   */
  private seen = 0
  private arrived = 0
  private expected = 0
  private subscriber: Client | undefined
  /** The connection that writes and WAITs, with `replicas` (WAIT holds its connection). */
  private writer: Client | undefined
  /** What stats() says of the sync; `inSync` turns true once a load completes under one subscription. */
  private readonly state: Omit<RevocationSyncStats, 'pending'> = { inSync: false, since: Date.now(), lastSync: null, lastError: null }
  /** Subscriber connections lost so far: a load counts only if this did not move while it ran. */
  private generation = 0
  /** Whether the first load completed; the server is then running. */
  private started = false
  private closed = false
  /** A resync is running; `again`: the subscriber came back meanwhile, so load once more. */
  private syncing = false
  private again = false
  /** Stops every wait on close. */
  private readonly stop = new AbortController()
  /** Entries this process holds that Redis did not take yet, by member. */
  private readonly pending = new Map<string, RevocationEntry>()
  private flushing = false
  /** Entries of the batch being written: still pending until Redis has them. */
  private writing = 0
  private flushTimer: NodeJS.Timeout | undefined

  constructor (private readonly settings: RevocationSettings, private readonly replica: RevocationReplica) {
    this.client = settings.redis as unknown as Client
    this.key = `${settings.keyPrefix}entries`
    this.channel = `${settings.keyPrefix}events`
    this.seqKey = this.client.isCluster === true ? countKey(settings.keyPrefix) : undefined
  }

  async start (): Promise<void> {
    if (this.client.isCluster === true && this.seqKey === undefined) {
      throw new Error('on a Redis Cluster, a keyPrefix holding a "}" must hold a hash tag ("{...}")')
    }
    const subscriber = this.client.duplicate()
    this.subscriber = subscriber
    // The subscriber listens to one channel only.
    subscriber.on('message', ((_channel: string, message: string) => this.onMessage(message)) as Listener)
    // Without a listener an 'error' event would throw; the errors are kept for stats() instead.
    subscriber.on('error', this.onError as Listener)
    subscriber.on('close', () => this.onClose())
    subscriber.on('ready', () => this.onReady())
    try {
      // A subscription lost during the first load: load again once it is back (the subscribe
      // waits for it, within the timeout), a few times at most.
      for (let attempt = 1; !(await this.load()); attempt++) {
        if (attempt === START_ATTEMPTS) throw new Error('the subscriber connection to Redis kept closing while the list loaded')
      }
    } catch (error) {
      // The server will not start: the subscriber must not keep reconnecting.
      await this.close()
      throw error
    }
    this.started = true
    // One check at a time, a second after the last one ended; close aborts the wait.
    if (this.seqKey !== undefined) this.checkLoop().catch(() => {})
  }

  async write (entry: RevocationEntry): Promise<void> {
    const member = encode(entry)
    try {
      await this.send([[member, entry]], this.settings.replicas)
    } catch (err) {
      const cause = err as Error
      this.failed(cause)
      if (!(cause instanceof ReplicasError)) this.keepPending(member, entry)
      const error = withReason(new RevocationUnavailableError({ cause }), `Redis did not take the revocation: ${cause.message}`)
      error.message = cause instanceof ReplicasError
        ? 'Redis took the revocation, but not enough replicas acknowledged it in time; it is enforced on this instance'
        : 'Redis did not take the revocation; it is enforced on this instance and will be written to Redis once it is back'
      throw error
    }
  }

  staleRefusal (): CognitoAuthError | undefined {
    const { inSync, since } = this.state
    if (inSync || Date.now() - since <= this.settings.maxStaleMs) return undefined
    return withReason(new RevocationUnavailableError(), 'the revocation list has been out of sync with Redis for longer than maxStale')
  }

  syncStats (): RevocationSyncStats {
    return { ...this.state, pending: this.pending.size + this.writing }
  }

  /** Always succeeds, started or not. */
  async close (): Promise<void> {
    this.closed = true
    this.stop.abort()
    clearTimeout(this.flushTimer)
    for (const connection of [this.subscriber, this.writer]) {
      if (connection === undefined) continue
      // The 'error' listener stays: a late error must not throw.
      for (const event of ['message', 'close', 'ready']) connection.removeAllListeners(event)
      connection.disconnect()
    }
  }

  /**
   * Writes entries in one script; with `replicas`, on the writer's own connection, then WAITs for
   * them. Throws what Redis answered, or why it was not asked.
   */
  private async send (batch: Array<[string, RevocationEntry]>, replicas = 0): Promise<void> {
    const { client, key, settings, seqKey } = this
    // A client that is reconnecting would queue the command: answer now instead of maybe later.
    if (client.status !== undefined && client.status !== 'ready') throw new Error(`the Redis client is ${client.status}`)
    const keys = seqKey === undefined ? [key] : [key, seqKey]
    const args: Array<string | number> = [...keys, this.channel, TRIM_MARGIN_MS, TRIM_LIMIT]
    for (const [member, entry] of batch) args.push(entry.expires, member)
    if (replicas === 0) {
      await withTimeout(client.eval(WRITE_SCRIPT, keys.length, ...args), settings.timeoutMs, 'the revocation')
      return
    }
    this.writer ??= this.connectWriter()
    // The write, then WAIT for the replicas: each may take the timeout.
    const results = await withTimeout(this.writer.pipeline().eval(WRITE_SCRIPT, keys.length, ...args).wait(replicas, settings.timeoutMs).exec(),
      2 * settings.timeoutMs, 'the revocation')
    for (const [error] of results) if (error !== null) throw error
    const acknowledged = results[1][1] as number
    if (acknowledged < replicas) throw new ReplicasError(`${acknowledged} of ${replicas} Redis replicas acknowledged the revocation within ${settings.timeoutMs / 1000} s`)
  }

  private connectWriter (): Client {
    const writer = this.client.duplicate()
    writer.on('error', this.onError as Listener)
    return writer
  }

  /**
   * Subscribes (again: idempotent, and ordered before the load), then loads the whole set in
   * pages, then writes back what Redis lacks. Resolves whether the replica is in sync: false when
   * the subscription was lost while it loaded.
   */
  private async load (): Promise<boolean> {
    const { client, key, settings, replica, state } = this
    const started = Date.now()
    await withTimeout((this.subscriber as Client).subscribe(this.channel), settings.timeoutMs, 'the subscription')
    const generation = this.generation
    // The count read after the subscription: the load covers the entries up to it, the messages
    // the ones after it (in order: one node publishes them all).
    this.arrived = 0
    const count = this.seqKey === undefined ? 0 : Number(await withTimeout(client.get(this.seqKey), settings.timeoutMs, 'the load'))
    // What Redis holds, member -> expiry, to find what it lacks. A replica empty when the load
    // begins (a start) lacks nothing Redis does not hold: what reaches it meanwhile came from Redis
    // (a Redis that lost it drops the subscription, and this load) or is written (or pending) by
    // this instance. Building the map took about a third of a 1,000,000-entry start.
    const writeBack = replica.size() > 0
    const held = new Map<string, number>()
    const page = async (cursor: string): Promise<[string, string[]]> =>
      await withTimeout(client.zscan(key, cursor, 'COUNT', PAGE), settings.timeoutMs, 'the load')
    let next = page('0')
    for (let done = false; !done;) {
      const [cursor, flat] = await next
      done = cursor === '0'
      // The next page is asked for before this one is read: Redis scans while this process parses.
      if (!done) next = page(cursor)
      for (let i = 0; i < flat.length; i += 2) {
        const expires = Number(flat[i + 1])
        const entry = decode(flat[i], expires)
        if (entry === undefined || entry.expires <= started) continue
        if (writeBack) held.set(flat[i], expires)
        replica.apply(entry)
      }
    }
    // A message published while the subscriber was away is in no page read before it came back.
    if (this.generation !== generation || this.closed) return false
    this.seen = Math.max(count, this.arrived)
    this.expected = 0
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
    if (writeBack) {
      for (const entry of replica.entries()) {
        const member = encode(entry)
        const expires = held.get(member)
        if (expires === undefined || expires < entry.expires) this.keepPending(member, entry)
      }
    }
    // The writing runs on its own; a failure retries and never undoes the sync.
    void this.flush()
    return true
  }

  /** Keeps an entry to write (the later of two of one member); writes at once unless a writing runs. */
  private keepPending (member: string, entry: RevocationEntry): void {
    const known = this.pending.get(member)
    if (known === undefined || known.expires < entry.expires) this.pending.set(member, entry)
    void this.flush()
  }

  /**
   * Writes the pending entries, in batches, until none is left; on a failure, tries again a
   * second later. A batch leaves the map while it is written (a newer entry of the same member
   * may come meanwhile, and stays) and goes back to it if Redis does not take it.
   */
  private async flush (): Promise<void> {
    if (this.flushing || this.closed) return
    this.flushing = true
    clearTimeout(this.flushTimer)
    let written = 0
    let batch: Array<[string, RevocationEntry]> = []
    try {
      while (this.pending.size > 0) {
        batch = []
        for (const pair of this.pending) {
          batch.push(pair)
          this.pending.delete(pair[0])
          if (batch.length === BATCH) break
        }
        this.writing = batch.length
        await this.send(batch)
        written += batch.length
      }
    } catch (error) {
      this.failed(error as Error)
      for (const [member, entry] of batch) this.keepPending(member, entry)
      this.flushTimer = setTimeout(() => { void this.flush() }, RETRY_MS).unref()
    } finally {
      this.writing = 0
      this.flushing = false
    }
    if (written === 0) return
    const { replica } = this
    const pending = this.pending.size
    replica.log.info({ written, pending }, 'cognito: revocations this instance held and Redis lacked were written to Redis')
    if (wantsRevocationEvents()) publishRevocation({ event: 'written', entries: replica.size(), written, pending })
  }

  /** Both connections' 'error' listener: without one an error would throw; it is kept for stats(). */
  private readonly onError = (error: Error): void => this.failed(error)

  private failed (error: Error): void {
    this.state.lastError = error.message
  }

  private onMessage (message: string): void {
    const space = message.indexOf(' ')
    // A Cluster's messages end with their count (JSON holds no raw newline).
    const [member, count] = message.slice(space + 1).split('\n')
    const entry = decode(member, Number(message.slice(0, space)))
    if (entry !== undefined) this.replica.apply(entry)
    if (count === undefined) return
    const seq = Number(count)
    this.arrived = Math.max(this.arrived, seq)
    // After a gap the count stays behind Redis' own: the next check finds it.
    if (seq === this.seen + 1) this.seen = seq
  }

  /**
   * On a Cluster, every second: a count Redis gave at the previous check that the messages have
   * not reached (a message was lost), or a count below the messages' (Redis lost it), ends the
   * sync, and the list loads again. While out of sync the resync's own loads are what count.
   */
  private async check (): Promise<void> {
    const generation = this.generation
    try {
      const count = Number(await withTimeout(this.client.get(this.seqKey as string), this.settings.timeoutMs, 'the count'))
      // Out of sync, or a sync ended meanwhile: the resync's loads decide instead.
      if (!this.state.inSync || this.generation !== generation) return
      if (this.seen < this.expected || count < this.seen) {
        this.onClose('a revocation published on the Redis Cluster did not reach this instance')
        this.resync()
        return
      }
      this.expected = count
    } catch (error) {
      this.failed(error as Error)
    }
  }

  private async checkLoop (): Promise<void> {
    for (;;) {
      await sleep(CHECK_MS, undefined, { signal: this.stop.signal, ref: false })
      await this.check()
    }
  }

  private onClose (reason = 'the subscriber connection to Redis closed'): void {
    this.generation++
    const { replica, state } = this
    if (!state.inSync) return
    state.inSync = false
    state.since = Date.now()
    state.lastError = reason
    replica.log.warn({ entries: replica.size() }, 'cognito: the revocation list lost Redis and may be stale; it keeps enforcing the revocations it knows')
    if (wantsRevocationEvents()) publishRevocation({ event: 'disconnected', entries: replica.size(), reason })
  }

  private onReady (): void {
    // Before the first load completes, start() loads again itself.
    if (!this.started) return
    this.replica.log.info('cognito: the revocation list reached Redis again; resyncing')
    if (wantsRevocationEvents()) publishRevocation({ event: 'reconnected', entries: this.replica.size() })
    this.resync()
  }

  /**
   * Loads until a load completes under one subscription, a second apart after a failure; a
   * reconnection while it runs makes it load once more. Stops on close.
   */
  private resync (): void {
    if (this.syncing) {
      this.again = true
      return
    }
    this.syncing = true
    const loop = async (): Promise<void> => {
      try {
        for (;;) {
          this.again = false
          try {
            // Not in sync: the subscription was lost again, and its return asks anew.
            if (await this.load() || !this.again) return
            continue
          } catch (error) {
            this.failed(error as Error)
          }
          await sleep(RETRY_MS, undefined, { signal: this.stop.signal, ref: false })
        }
      } finally {
        this.syncing = false
      }
    }
    // An aborted wait (close) ends the loop.
    loop().catch(() => {})
  }
}

/** Fewer replicas than asked acknowledged a write that the primary took. */
class ReplicasError extends Error {}

export function createStore (settings: RevocationSettings, replica: RevocationReplica): RevocationStore {
  return new RedisRevocationStore(settings, replica)
}
