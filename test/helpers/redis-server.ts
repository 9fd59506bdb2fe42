/**
 * A real redis-server for a test suite, on a free loopback port, its data in a temporary folder
 * with the append-only file fsynced on every write (the settings the README asks for), so that a
 * killed and restarted server keeps its revocations. Stopped in teardown.
 *
 * Where the binary is missing (`redisSkip` says so), the suites that need it are skipped; the
 * test runner (scripts/tap.mjs) prints one line about it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

/** The binary: `REDIS_SERVER` if set, else `redis-server` from the PATH. */
export function findRedisServer (): string | undefined {
  const configured = process.env.REDIS_SERVER
  if (configured !== undefined) return existsSync(configured) ? configured : undefined
  const found = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' })
  return found.status === 0 ? found.stdout.trim() : undefined
}

export const redisServerPath = findRedisServer()
/** The reason to skip a Redis suite, or false when redis-server is there. */
export const redisSkip: string | false = redisServerPath === undefined
  ? 'redis-server is not installed (apt-get install -y redis-server)'
  : false

interface Teardown {
  teardown: (fn: () => Promise<void> | void) => void
}

async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

export class RedisServer {
  private child: ChildProcess | undefined
  private constructor (readonly port: number, readonly dir: string, private readonly args: readonly string[]) {}

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  /** `args`: more of redis-server's options, e.g. `['--replicaof', '127.0.0.1', port]`. */
  static async start (t: Teardown, args: readonly string[] = []): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), mkdtempSync(join(tmpdir(), 'cognito-redis-')), args)
    t.teardown(async () => {
      await server.kill()
      rmSync(server.dir, { recursive: true, force: true })
    })
    await server.restart()
    return server
  }

  /** Starts the process (again), on the same port and data; resolves once it accepts connections. */
  async restart (): Promise<void> {
    const child = spawn(redisServerPath as string, [
      '--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir,
      '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', ...this.args
    ], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.child = child
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`redis-server exited (${code}) before it was ready`)))
      lines.on('line', (line) => { if (line.includes('Ready to accept connections')) resolve() })
    })
    child.removeAllListeners('exit')
  }

  /** SIGKILL, as a crash would: nothing is flushed beyond what the append-only file already holds. */
  async kill (): Promise<void> {
    const child = this.child
    this.child = undefined
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGCONT')
    child.kill('SIGKILL')
    await once(child, 'exit')
  }

  /** Forgets every entry: the next restart is that of a server without persistence. */
  wipe (): void {
    rmSync(this.dir, { recursive: true, force: true })
    mkdirSync(this.dir)
  }

  /** Freezes the server (SIGSTOP): connections stay open and nothing answers. */
  freeze (): void {
    this.child?.kill('SIGSTOP')
  }

  thaw (): void {
    this.child?.kill('SIGCONT')
  }
}
