/**
 * Every watched connection of an instance, found three ways:
 *   - by time: one heap ordered by deadline, and one real timer for the earliest (lib/connections/heap.ts);
 *   - by session id (`origin_jti`, and `jti`) and by user (`sub`): a revocation the replica applies
 *     finds its candidates by index, never by a scan, then the list's `refusal` gives the verdict;
 *   - by issuer, for a resolved pool: its answer is asked again every `poolCache.ttl` while it
 *     has watched connections, and they end once it names no pool.
 * A watch leaves every structure the moment it ends or stops: nothing here outlives its connection.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { CognitoClaims, CognitoWatchEndReason } from '../../types'
import type { RevocationEntry, RevocationList, RevocationPool } from '../revocation/list'
import { DueHeap, type Due } from './heap'

/** The longest delay a Node timer takes (about 24.8 days); a later deadline is reached in steps. */
const MAX_DELAY_MS = 2 ** 31 - 1

/** What the registry knows of one watch; lib/connections/api.ts builds it. */
export interface Watched extends Due {
  claims: CognitoClaims
  /** The pool's issuer: the claims' `iss`. */
  readonly issuer: string
  /** The pool that accepted the token: revocations are the pool's. */
  readonly pool: RevocationPool
  /** The session ids it is indexed by (`origin_jti`, `jti`). */
  sessions: readonly string[]
  /** Called once, when the watch ends for a reason (not when it stops). */
  end: (reason: CognitoWatchEndReason) => void
}

/** A resolved pool's next question, due like a watch. */
interface PoolCheck extends Due {
  readonly issuer: string
  readonly watches: Set<Watched>
}

/** Sizes, for tests and health checks: everything a watch may occupy. */
export interface WatchSizes {
  watches: number
  sessions: number
  users: number
  pools: number
  timers: number
}

export interface WatchesContext {
  revocation?: RevocationList
  /** A resolving directory's question: whether the issuer is still a pool (rejects when the resolver cannot answer). */
  recheck?: (issuer: string) => Promise<boolean>
  /** `poolCache.ttl`, with a resolver. */
  poolTtlMs: number
  log: FastifyBaseLogger
}

export class Watches {
  private readonly heap = new DueHeap<Watched | PoolCheck>()
  private readonly bySession = new Map<string, Set<Watched>>()
  private readonly byUser = new Map<string, Set<Watched>>()
  private readonly byIssuer = new Map<string, PoolCheck>()
  private watchCount = 0
  private timer: NodeJS.Timeout | undefined
  /** When the timer fires; Infinity without one. */
  private timerAt = Infinity
  private readonly unlisten: (() => void) | undefined
  private readonly onTimer = (): void => this.fire()

  constructor (private readonly context: WatchesContext) {
    this.unlisten = context.revocation?.listen((entry) => this.revoked(entry))
  }

  add (watch: Watched): void {
    this.watchCount++
    this.heap.push(watch)
    this.index(watch)
    if (this.context.recheck !== undefined) {
      let check = this.byIssuer.get(watch.issuer)
      if (check === undefined) {
        check = { issuer: watch.issuer, watches: new Set(), at: Date.now() + this.context.poolTtlMs, slot: -1 }
        this.byIssuer.set(watch.issuer, check)
        this.heap.push(check)
      }
      check.watches.add(watch)
    }
    this.arm()
  }

  /** Takes the watch out of every structure; false when it was out already. */
  remove (watch: Watched): boolean {
    if (watch.slot < 0) return false
    this.heap.remove(watch)
    this.watchCount--
    this.unindex(watch)
    const check = this.byIssuer.get(watch.issuer)
    if (check !== undefined) {
      check.watches.delete(watch)
      if (check.watches.size === 0) {
        this.byIssuer.delete(watch.issuer)
        this.heap.remove(check)
      }
    }
    // The timer stays as it is: it may fire early, find nothing due and arm for the next.
    if (this.heap.size === 0) this.disarm()
    return true
  }

  /** A renewal: new claims (and session ids), a new deadline. */
  update (watch: Watched, claims: CognitoClaims, sessions: readonly string[], at: number): void {
    this.unindex(watch)
    watch.claims = claims
    watch.sessions = sessions
    this.index(watch)
    this.heap.move(watch, at)
    this.arm()
  }

  sizes (): WatchSizes {
    return {
      watches: this.watchCount,
      sessions: this.bySession.size,
      users: this.byUser.size,
      pools: this.byIssuer.size,
      timers: this.timer === undefined ? 0 : 1
    }
  }

  /** The instance closes: every watch stops (without its ending), the list is no longer listened to. */
  close (): void {
    this.unlisten?.()
    // Every watch is in the user index; the last one out takes the timer and the pool checks along.
    for (const set of [...this.byUser.values()]) for (const watch of [...set]) this.remove(watch)
  }

  private index (watch: Watched): void {
    for (const id of watch.sessions) addTo(this.bySession, id, watch)
    addTo(this.byUser, watch.claims.sub, watch)
  }

  private unindex (watch: Watched): void {
    for (const id of watch.sessions) deleteFrom(this.bySession, id, watch)
    deleteFrom(this.byUser, watch.claims.sub, watch)
  }

  /** One timer, for the earliest thing due. */
  private arm (): void {
    const top = this.heap.peek() as Due
    if (top.at >= this.timerAt) return
    clearTimeout(this.timer)
    this.timerAt = top.at
    this.timer = setTimeout(this.onTimer, Math.min(Math.max(top.at - Date.now(), 0), MAX_DELAY_MS)).unref()
  }

  private disarm (): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.timerAt = Infinity
  }

  private fire (): void {
    this.timer = undefined
    this.timerAt = Infinity
    const now = Date.now()
    for (;;) {
      const top = this.heap.peek()
      if (top === undefined || top.at > now) break
      if ('end' in top) {
        this.remove(top)
        top.end('expired')
      } else {
        this.heap.remove(top)
        this.ask(top)
      }
    }
    if (this.heap.size > 0) this.arm()
  }

  /** An entry the replica applied: its candidates, by index, each judged by the list itself. */
  private revoked (entry: RevocationEntry): void {
    const candidates = entry.kind === 'session' ? this.bySession.get(entry.id) : this.byUser.get(entry.sub)
    if (candidates === undefined) return
    const reason: CognitoWatchEndReason = entry.kind === 'session' ? 'revoked' : 'signed-out'
    const revocation = this.context.revocation as RevocationList
    for (const watch of [...candidates]) {
      // Only a revocation ends a connection: a list out of sync with its store refuses new
      // requests, and the revocations it missed end their connections once it has them.
      if (revocation.refusal(watch.claims, watch.pool)?.code !== 'FST_COGNITO_TOKEN_REVOKED') continue
      this.remove(watch)
      watch.end(reason)
    }
  }

  /** A resolved pool's question, again: its watches end once it names no pool. */
  private ask (check: PoolCheck): void {
    const recheck = this.context.recheck as (issuer: string) => Promise<boolean>
    recheck(check.issuer).then((stands) => stands, (err: unknown) => {
      // The resolver failed: its connections stay, and it is asked again after the TTL.
      this.context.log.warn({ issuer: check.issuer, err }, 'cognito: could not ask again whether a pool with watched connections stands')
      return true
    }).then((stands) => {
      if (this.byIssuer.get(check.issuer) !== check) return
      if (stands) {
        check.at = Date.now() + this.context.poolTtlMs
        this.heap.push(check)
        this.arm()
        return
      }
      this.poolRemoved(check.issuer)
    })
  }

  /** The issuer is no longer a pool the plugin accepts (or its answer changed): its watches end. */
  poolRemoved (issuer: string): void {
    const check = this.byIssuer.get(issuer)
    if (check === undefined) return
    this.byIssuer.delete(issuer)
    this.heap.remove(check)
    for (const watch of [...check.watches]) {
      this.remove(watch)
      watch.end('pool-removed')
    }
  }
}

function addTo (index: Map<string, Set<Watched>>, key: string, watch: Watched): void {
  let set = index.get(key)
  if (set === undefined) {
    set = new Set()
    index.set(key, set)
  }
  set.add(watch)
}

function deleteFrom (index: Map<string, Set<Watched>>, key: string, watch: Watched): void {
  const set = index.get(key) as Set<Watched>
  set.delete(watch)
  if (set.size === 0) index.delete(key)
}
