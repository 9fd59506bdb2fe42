/**
 * Real Redis deployments for the test suites, on free loopback ports, their data in temporary
 * folders, always stopped in teardown (each process is the leader of its own process group, and
 * the group is killed: a child forked for a snapshot or a diskless sync goes with it):
 *   - `RedisServer`: one redis-server, the append-only file fsynced on every write (the settings
 *     the README asks for), so that a killed and restarted server keeps its revocations;
 *   - `RedisSentinel`: a primary, a replica and three sentinels (`redis-server <conf> --sentinel`);
 *   - `RedisCluster`: three primaries, `redis-cli --cluster create`d.
 *
 * Where the binary is missing (`redisSkip` says so), the suites that need it are skipped; the
 * test runner (scripts/tap.mjs) prints one line about it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import Redis from 'ioredis'

/** The binary: `REDIS_SERVER` if set, else `redis-server` from the PATH. */
export function findRedisServer (): string | undefined {
  const configured = process.env.REDIS_SERVER
  if (configured !== undefined) return existsSync(configured) ? configured : undefined
  const found = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' })
  return found.status === 0 ? found.stdout.trim() : undefined
}

export const redisServerPath = findRedisServer()
/** redis-cli, next to redis-server (Debian's redis-server package brings both); for the cluster only. */
const redisCliPath = redisServerPath === undefined ? undefined : join(dirname(redisServerPath), 'redis-cli')
/** The reason to skip a Redis suite, or false when redis-server is there. */
export const redisSkip: string | false = redisServerPath === undefined
  ? 'redis-server is not installed (apt-get install -y redis-server)'
  : false

interface Teardown {
  teardown: (fn: () => Promise<void> | void) => void
}

export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

/** Calls `check` until it answers true, `ms` at most. */
async function until (what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    try {
      if (await check()) return
    } catch {}
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`)
    await sleep(50)
  }
}

/** One command on a short-lived connection (no retries: a server that is down answers at once). */
export async function command (port: number, ...args: Array<string | number>): Promise<unknown> {
  const redis = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  redis.on('error', () => {})
  try {
    await redis.connect()
    return await redis.call(String(args[0]), ...args.slice(1).map(String))
  } finally {
    redis.disconnect()
  }
}

export class RedisServer {
  private child: ChildProcess | undefined

  private constructor (
    readonly port: number,
    readonly dir: string,
    /** The command line after the binary. */
    private readonly args: string[],
    /** The log line that says the process is ready. */
    private readonly ready: string
  ) {}

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  /** A server; `args` add to (or override) its settings, e.g. `['--replicaof', '127.0.0.1', '6379']`. */
  static async start (t: Teardown, args: readonly string[] = []): Promise<RedisServer> {
    const port = await freePort()
    const dir = mkdtempSync(join(tmpdir(), 'cognito-redis-'))
    return await RedisServer.launch(t, new RedisServer(port, dir, [
      '--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
      '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', ...args
    ], 'Ready to accept connections'))
  }

  /** A sentinel: its configuration file (which it rewrites) in its own folder. */
  static async startSentinel (t: Teardown, config: (port: number) => string): Promise<RedisServer> {
    const port = await freePort()
    const dir = mkdtempSync(join(tmpdir(), 'cognito-sentinel-'))
    const file = join(dir, 'sentinel.conf')
    writeFileSync(file, `port ${port}\nbind 127.0.0.1\ndir ${dir}\n${config(port)}`)
    return await RedisServer.launch(t, new RedisServer(port, dir, [file, '--sentinel'], '+monitor master'))
  }

  private static async launch (t: Teardown, server: RedisServer): Promise<RedisServer> {
    t.teardown(async () => {
      await server.kill()
      rmSync(server.dir, { recursive: true, force: true })
    })
    await server.restart()
    return server
  }

  /**
   * Starts the process (again), on the same port and data; resolves once it accepts connections.
   * `empty`: its data is gone first, as after a restart without persistence.
   */
  async restart (options: { empty?: boolean } = {}): Promise<void> {
    if (options.empty === true) this.wipe()
    const child = spawn(redisServerPath as string, this.args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    this.child = child
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`redis-server exited (${code}) before it was ready`)))
      lines.on('line', (line) => { if (line.includes(this.ready)) resolve() })
    })
    child.removeAllListeners('exit')
  }

  /** SIGKILL, as a crash would: nothing is flushed beyond what the append-only file already holds. */
  async kill (): Promise<void> {
    const child = this.child
    this.child = undefined
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    // A frozen server dies without running again: what sits in its sockets is never delivered.
    this.signal('SIGKILL', child)
    await exited
  }

  /** Forgets every entry: the next restart is that of a server without persistence. */
  wipe (): void {
    for (const name of readdirSync(this.dir)) rmSync(join(this.dir, name), { recursive: true, force: true })
  }

  /** Freezes the server (SIGSTOP): connections stay open and nothing answers. */
  freeze (): void {
    this.signal('SIGSTOP')
  }

  thaw (): void {
    this.signal('SIGCONT')
  }

  /** To the process group (the server and any child it forked). */
  private signal (signal: NodeJS.Signals, child = this.child): void {
    if (child?.pid === undefined) return
    try {
      process.kill(-child.pid, signal)
    } catch {
      child.kill(signal) // the group is gone already
    }
  }
}

/**
 * A primary, one replica, three sentinels with a quorum of two. Failovers happen only when a test
 * asks for one (`failover()`): down-after is long, so a restart of the primary is not one.
 */
export class RedisSentinel {
  readonly name = 'cognito'

  private constructor (
    /** The primary and the replica swap roles on a failover. */
    public primary: RedisServer,
    public replica: RedisServer,
    readonly sentinels: RedisServer[]
  ) {}

  /** What an ioredis client takes: `new Redis({ ...sentinel.clientOptions })`. */
  get clientOptions (): { sentinels: Array<{ host: string, port: number }>, name: string } {
    return { sentinels: this.sentinels.map(({ port }) => ({ host: '127.0.0.1', port })), name: this.name }
  }

  static async start (t: Teardown): Promise<RedisSentinel> {
    // A replica's first sync starts at once (Redis 7.0 waits 5 s for more replicas by default).
    const primary = await RedisServer.start(t, ['--repl-diskless-sync-delay', '0'])
    const replica = await RedisServer.start(t, ['--repl-diskless-sync-delay', '0', '--replicaof', '127.0.0.1', String(primary.port)])
    const sentinels: RedisServer[] = []
    for (let i = 0; i < 3; i++) {
      sentinels.push(await RedisServer.startSentinel(t, () => [
        `sentinel monitor cognito 127.0.0.1 ${primary.port} 2`,
        'sentinel down-after-milliseconds cognito 60000',
        'sentinel failover-timeout cognito 10000',
        ''
      ].join('\n')))
    }
    const deployment = new RedisSentinel(primary, replica, sentinels)
    await deployment.discovered(primary, replica)
    return deployment
  }

  /** Until every sentinel knows the other two and sees `replica` in sync with `primary`. */
  async discovered (primary: RedisServer, replica: RedisServer): Promise<void> {
    for (const sentinel of this.sentinels) {
      await until('sentinel discovery', async () => {
        const [host, port] = await command(sentinel.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.name) as string[]
        const others = await command(sentinel.port, 'SENTINEL', 'SENTINELS', this.name) as unknown[]
        const replicas = (await command(sentinel.port, 'SENTINEL', 'REPLICAS', this.name) as string[][]).map(fields)
        return host === '127.0.0.1' && Number(port) === primary.port && others.length === 2 &&
          replicas.some((r) => Number(r.port) === replica.port && r.flags === 'slave' && r['master-link-status'] === 'ok')
      }, 30_000)
    }
  }

  /**
   * Cuts the replica off: frozen, and its link dropped by the primary (on loopback the frozen
   * replica's socket buffer would otherwise still take the writes). What the primary takes from
   * now on, the replica misses.
   */
  async cutOffReplica (): Promise<void> {
    this.replica.freeze()
    await command(this.primary.port, 'CLIENT', 'KILL', 'TYPE', 'replica')
  }

  /**
   * The primary killed, the replica (thawed if frozen) promoted by `SENTINEL FAILOVER`; resolves
   * once every sentinel names it and it answers as primary. The two swap roles.
   */
  async failover (): Promise<void> {
    const { primary, replica } = this
    await primary.kill()
    replica.thaw()
    // The sentinels refuse until they have heard from the replica since it was thawed.
    await until('SENTINEL FAILOVER accepted', async () => await command(this.sentinels[0].port, 'SENTINEL', 'FAILOVER', this.name) === 'OK', 20_000)
    for (const sentinel of this.sentinels) {
      await until('the new primary', async () => {
        const [, port] = await command(sentinel.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.name) as string[]
        return Number(port) === replica.port
      }, 20_000)
    }
    await until('the new primary takes writes', async () => ((await command(replica.port, 'ROLE')) as string[])[0] === 'master', 10_000)
    this.primary = replica
    this.replica = primary
  }

  /**
   * A planned failover: `SENTINEL FAILOVER` with both servers up. Resolves once every sentinel
   * names the replica, and the old primary, reconfigured by the sentinels, is its replica (the
   * sentinels then drop that server's clients, so that they ask for the primary again).
   */
  async switchOver (): Promise<void> {
    const { primary, replica } = this
    await until('SENTINEL FAILOVER accepted', async () => await command(this.sentinels[0].port, 'SENTINEL', 'FAILOVER', this.name) === 'OK', 20_000)
    for (const sentinel of this.sentinels) {
      await until('the new primary', async () => {
        const [, port] = await command(sentinel.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.name) as string[]
        return Number(port) === replica.port
      }, 20_000)
    }
    await until('the old primary a replica', async () => {
      const role = await command(primary.port, 'ROLE') as [string, string, number]
      return role[0] === 'slave' && Number(role[2]) === replica.port
    }, 30_000)
    this.primary = replica
    this.replica = primary
  }
}

/** SENTINEL's replies: flat [name, value, ...] lists. */
function fields (flat: string[]): Record<string, string> {
  const record: Record<string, string> = {}
  for (let i = 0; i < flat.length; i += 2) record[flat[i]] = flat[i + 1]
  return record
}

/** The reason to skip a cluster suite, or false. */
export const clusterSkip: string | false = redisSkip !== false
  ? redisSkip
  : existsSync(redisCliPath as string) ? false : 'redis-cli is not installed (apt-get install -y redis-tools)'

/** Three primaries sharing the 16384 slots, no replicas. */
export class RedisCluster {
  private constructor (readonly nodes: RedisServer[]) {}

  /** What `new Redis.Cluster(cluster.startupNodes)` takes. */
  get startupNodes (): Array<{ host: string, port: number }> {
    return this.nodes.map(({ port }) => ({ host: '127.0.0.1', port }))
  }

  static async start (t: Teardown): Promise<RedisCluster> {
    const nodes: RedisServer[] = []
    for (let i = 0; i < 3; i++) {
      nodes.push(await RedisServer.start(t, [
        '--cluster-enabled', 'yes', '--cluster-port', String(await freePort()),
        '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000'
      ]))
    }
    const create = spawn(redisCliPath as string, [
      '--cluster', 'create', ...nodes.map(({ port }) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes'
    ], { stdio: ['ignore', 'ignore', 'pipe'] })
    const [code] = await once(create, 'exit') as [number | null]
    if (code !== 0) throw new Error(`redis-cli --cluster create exited with ${code}`)
    for (const { port } of nodes) {
      await until('cluster_state:ok', async () => {
        const info = await command(port, 'CLUSTER', 'INFO') as string
        return info.includes('cluster_state:ok') && info.includes('cluster_known_nodes:3') && info.includes('cluster_slots_ok:16384')
      }, 30_000)
    }
    return new RedisCluster(nodes)
  }
}
